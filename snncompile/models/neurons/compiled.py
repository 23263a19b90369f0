"""The reset-refractory neuron's step loop compiled with numba, and its closed-form backward.

method="compiled" of ResetRefractoryNeuron. The forward is `pmbc.sequential_spikes`'s
recurrence, operation for operation in x's dtype (numba without fastmath neither fuses
multiply-adds nor reorders), so its spikes are the reference's bit for bit; it also
keeps the surrogate derivative at the membrane it computed (and the post-reset
potential v when beta is trainable). The backward is the closed form of
`reset_refractory._PmbcNeuron` (reverse filter of g = grad * surrogate', then the
parameter sums), as a second compiled loop.

Why it exists beside PMBC: on a CPU the sequential recurrence itself is cheap once it is
not a Python loop (under 1 ns per channel-step), while PMBC's parallel bounds cost full
passes over the sequence; PMBC is the method for hardware where passes are cheap and
loops are not (GPUs). README "Benchmarks" measures all three.

Both loops run batch rows on `torch.get_num_threads()` Python threads (numba releases
the GIL; no numba threading layer, so nothing changes for forked processes), except
small batches, which run on the calling thread (`THREAD_MIN_VALUES`). Inner
loops run over one contiguous row of channels with few arrays each, so LLVM can prove
them apart and vectorize (docs/compiler.md, "Kernels").
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

from snncompile.models.neurons.pmbc import check_final_potential

# error_model="numpy": a float division may not raise (a zero-divisor test per value kept
# the surrogate loop scalar: 13.5 against 6.1 ms for the forward of B=16, L=4096, H=128
# on one thread). No divisor here can be zero.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# Surrogate derivative codes of the forward kernel.
_NONE, _TRIANGLE, _FAST_SIGMOID = 0, 1, 2
SURROGATE_CODES = {"triangle": _TRIANGLE, "fast_sigmoid": _FAST_SIGMOID}


@_jit
def _forward_rows(x, beta, theta, c, kind, consts, b0, b1, spikes, sd, v_keep, keep_v, v_end):
    """Rows b0..b1-1: m_t = beta v + x_t; s_t = [m_t > theta]; v_t = m_t - c s_t (v_-1 = 0).
    Writes spikes (0/1), sd = surrogate'(m - theta) unless kind is _NONE, v when keep_v,
    and each row's last v to v_end (B, H).
    consts = (slope, 1, 0) in x's dtype, so no operation is promoted to float64."""
    channels = x.shape[2]
    slope, one, zero = consts[0], consts[1], consts[2]
    v = np.zeros(channels, x.dtype)
    m = np.empty(channels, x.dtype)
    for b in range(b0, b1):
        v[:] = zero
        for t in range(x.shape[1]):
            x_row = x[b, t]
            for h in range(channels):
                m[h] = beta[h] * v[h] + x_row[h]  # two roundings, as the reference
            s_row = spikes[b, t]
            for h in range(channels):
                s_row[h] = one if m[h] > theta[h] else zero
            for h in range(channels):
                v[h] = m[h] - c[h] * s_row[h]  # the reference's own expression
            if kind != _NONE:
                d_row = sd[b, t]
                if kind == _TRIANGLE:
                    for h in range(channels):
                        d_row[h] = max(zero, one - abs(m[h] - theta[h]))
                else:
                    for h in range(channels):
                        q = slope * abs(m[h] - theta[h]) + one
                        d_row[h] = one / (q * q)
            if keep_v:
                v_keep[b, t] = v
        v_end[b] = v


# Steps per block of the backward: the reverse filter must run backwards in time, but a
# loop that walks memory backwards row by row defeats the hardware prefetcher (3x slower
# here); blocks are read and written forwards and filtered backwards in cache.
BACKWARD_BLOCK = 32


@_jit
def _backward_rows(grad_out, sd, spikes, v_keep, beta, keep_v, b0, b1, grad_x, sums):
    """Rows b0..b1-1, with g = grad_out * sd and r the reverse filter r_t = g_t + beta r_{t+1}:
    grad_x = r; sums[b] = (sum_t g_t, sum_t s_t (r_t - g_t), sum_{t>=1} v_{t-1} r_t) in
    float64 (the third only when keep_v)."""
    length, channels = grad_out.shape[1], grad_out.shape[2]
    r = np.zeros(channels, grad_out.dtype)
    g = np.empty((BACKWARD_BLOCK, channels), grad_out.dtype)
    r_block = np.empty((BACKWARD_BLOCK, channels), grad_out.dtype)
    sum_g = np.empty(channels)
    sum_sr = np.empty(channels)
    sum_vr = np.empty(channels)
    for b in range(b0, b1):
        r[:] = 0
        sum_g[:] = 0
        sum_sr[:] = 0
        sum_vr[:] = 0
        stop = length
        while stop > 0:
            start = max(0, stop - BACKWARD_BLOCK)
            count = stop - start
            for i in range(count):
                go_row, sd_row, g_row = grad_out[b, start + i], sd[b, start + i], g[i]
                for h in range(channels):
                    g_row[h] = go_row[h] * sd_row[h]
            for i in range(count - 1, -1, -1):
                g_row, r_row = g[i], r_block[i]
                for h in range(channels):
                    r[h] = g_row[h] + beta[h] * r[h]
                for h in range(channels):
                    r_row[h] = r[h]
            for i in range(count):
                t = start + i
                g_row, r_row, s_row, out_row = g[i], r_block[i], spikes[b, t], grad_x[b, t]
                for h in range(channels):
                    out_row[h] = r_row[h]
                for h in range(channels):
                    sum_g[h] += g_row[h]
                for h in range(channels):
                    sum_sr[h] += s_row[h] * (r_row[h] - g_row[h])
                if keep_v and t > 0:
                    v_row = v_keep[b, t - 1]
                    for h in range(channels):
                        sum_vr[h] += v_row[h] * r_row[h]
            stop = start
        sums[b, 0] = sum_g
        sums[b, 1] = sum_sr
        sums[b, 2] = sum_vr


# Values below which a kernel runs on the calling thread alone. Handing small work to
# threads costs more than it saves: besides starting them, the next torch operation
# then waits for torch's own worker threads, which were spinning against ours (a
# (64, 64, 64) training batch: 14.6 ms per forward + backward on 2 threads, against
# 1.1 ms on the calling thread; the loops of B=16, L=4096, H=128 run 1.5x faster on 2).
THREAD_MIN_VALUES = 1 << 21


def _on_threads(kernel, shape: tuple[int, ...], head: tuple, tail: tuple) -> None:
    """kernel(*head, b0, b1, *tail) over row ranges that split the batch (shape[0]) among
    torch's thread count (the kernels release the GIL); small work runs here alone."""
    batch = shape[0]
    threads = max(1, min(torch.get_num_threads(), batch))
    if math.prod(shape) < THREAD_MIN_VALUES:
        threads = 1
    if threads == 1:
        kernel(*head, 0, batch, *tail)
        return
    bounds = np.linspace(0, batch, threads + 1).astype(int).tolist()
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(kernel, *head, b0, b1, *tail) for b0, b1 in itertools.pairwise(bounds)]
        for job in jobs:
            job.result()


def _vector(value: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return value.detach().to(dtype).contiguous().numpy()


def forward(
    x: torch.Tensor,
    beta: torch.Tensor,
    theta: torch.Tensor,
    rho: torch.Tensor,
    surrogate: str | None,
    slope: float,
    keep_v: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(spikes, surrogate derivative or None, v or None), each (B, L, H) in x's dtype.
    x (B, L, H) float32/float64; beta, theta, rho (H,); surrogate None: spikes only."""
    xs = x.detach().contiguous()
    dtype = xs.dtype
    c = (theta.detach().to(dtype) + rho.detach().to(dtype)).contiguous().numpy()
    spikes = torch.empty_like(xs)
    sd = torch.empty_like(xs) if surrogate else torch.empty((1, 1, 1), dtype=dtype)
    v = torch.empty_like(xs) if keep_v else torch.empty((1, 1, 1), dtype=dtype)
    kind = SURROGATE_CODES[surrogate] if surrogate else _NONE
    consts = np.array([slope, 1, 0], dtype=xs.numpy().dtype)
    head = (xs.numpy(), _vector(beta, dtype), _vector(theta, dtype), c, kind, consts)
    v_end = np.empty((xs.shape[0], xs.shape[2]), dtype=consts.dtype)
    tail = (spikes.numpy(), sd.numpy(), v.numpy(), keep_v, v_end)
    _on_threads(_forward_rows, tuple(xs.shape), head, tail)
    check_final_potential(torch.from_numpy(v_end), "compiled")
    return spikes, (sd if surrogate else None), (v if keep_v else None)


def backward(
    grad_out: torch.Tensor,
    sd: torch.Tensor,
    spikes: torch.Tensor,
    v: torch.Tensor | None,
    beta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, sum_t g, sum_t s (r - g), sum_t v_{t-1} r_t) over batch and time; the
    sums are (H,) in grad_out's dtype, the last zeros unless v is given."""
    go = grad_out.detach().to(sd.dtype).contiguous()
    batch, _, channels = go.shape
    grad_x = torch.empty_like(go)
    sums = np.zeros((batch, 3, channels))
    v_arr = v.numpy() if v is not None else np.empty((1, 1, 1), dtype=go.numpy().dtype)
    head = (go.numpy(), sd.numpy(), spikes.numpy(), v_arr, _vector(beta, go.dtype), v is not None)
    _on_threads(_backward_rows, tuple(go.shape), head, (grad_x.numpy(), sums))
    total = torch.from_numpy(sums.sum(axis=0)).to(go.dtype)
    return grad_x, total[0], total[1], total[2]
