"""Compiled tick loops for the reference simulator's hot paths (numba).

At a batch of one, a tick of a population is a few thousand values: numpy spends more
time entering each of its calls than computing, and a whole-sequence kernel
(reference.sequences) makes 3-8 calls a tick. These loops run all ticks of a sequence
in one call. They hold no policy: the kernels in reference.sequences check their
exactness bounds before calling them and their ranges after, exactly as for the numpy
loops they replace, so what they compute is pinned by the same tests against the step
functions of reference.kinds.

Float64 loops are compiled without fastmath: no reassociation and no fused
multiply-add, so each operation rounds as numpy's does (and inside the kernels' bounds
nothing rounds at all). The int64 synapse loop is exact by construction.
Compiled code is cached on disk next to this file (numba's cache=True): a process pays
the compile time (about a second per loop) once per machine, then only a load.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


# Loops run time outermost and a row's values innermost: a tick's row is contiguous, so
# the innermost loop vectorizes; each tick reads the previous tick's trajectory row.


@_jit
def ssm_sequence(inputs, b_re, b_im, a_re, a_im, re, im, z_re, z_im):  # pragma: no cover
    """z_t = trunc(a z_{t-1} + b x_t) for t < n, in float64 (a, b already scaled by
    2**-frac): inputs (n, B, S) int64; re, im (B, S) the starting state; z_re, z_im
    (n, B, S) receive the trajectory. Exact while |a| |z| + |b| |x| < 2**53."""
    n, batch, size = inputs.shape
    for t in range(n):
        for b in range(batch):
            r_prev = re[b] if t == 0 else z_re[t - 1, b]
            i_prev = im[b] if t == 0 else z_im[t - 1, b]
            x, r_now, i_now = inputs[t, b], z_re[t, b], z_im[t, b]
            for j in range(size):
                xj = np.float64(x[j])
                r_now[j] = np.trunc(a_re[j] * r_prev[j] - a_im[j] * i_prev[j] + b_re[j] * xj)
                i_now[j] = np.trunc(a_im[j] * r_prev[j] + a_re[j] * i_prev[j] + b_im[j] * xj)


@_jit
def reset_refractory_sequence(inputs, retain, theta, reset, v0, m, v, spikes):  # pragma: no cover
    """m_t = trunc(v_{t-1} retain) + x_t; s_t = m_t > theta; v_t = m_t - reset s_t, in
    float64 (retain = (4096 - decay) / 2**12): inputs (n, B, S) int64, v0 (B, S); m, v
    (n, B, S) float64 and spikes (n, B, S) bool receive the trajectories."""
    n, batch, size = inputs.shape
    for t in range(n):
        for b in range(batch):
            v_prev = v0[b] if t == 0 else v[t - 1, b]
            x, m_now, v_now, s_now = inputs[t, b], m[t, b], v[t, b], spikes[t, b]
            for j in range(size):
                m_j = np.trunc(v_prev[j] * retain[j]) + np.float64(x[j])
                fired = m_j > theta[j]
                m_now[j] = m_j
                s_now[j] = fired
                v_now[j] = m_j - reset[j] if fired else m_j


@_jit
def lava_lif_sequence(
    inputs, keep_u, keep_v, threshold, subtract, u0, v0, u, voltage, v, spikes
):  # pragma: no cover
    """Lava's LIF scaled by 2**6, in float64, without its wrap or saturation: u_t =
    trunc(u_{t-1} keep_u) + 64 x_t; V_t = trunc(v_{t-1} keep_v) + u_t; s_t = V_t >
    threshold; v_t = V_t - threshold s_t (subtract) or V_t (1 - s_t). Trajectories of
    u, V, v (n, B, S) float64 and spikes (n, B, S) bool."""
    n, batch, size = inputs.shape
    for t in range(n):
        for b in range(batch):
            u_prev = u0[b] if t == 0 else u[t - 1, b]
            v_prev = v0[b] if t == 0 else v[t - 1, b]
            x, u_now, voltage_now = inputs[t, b], u[t, b], voltage[t, b]
            v_now, s_now = v[t, b], spikes[t, b]
            for j in range(size):
                u_j = np.trunc(u_prev[j] * keep_u) + 64.0 * np.float64(x[j])
                voltage_j = np.trunc(v_prev[j] * keep_v) + u_j
                fired = voltage_j > threshold
                u_now[j] = u_j
                voltage_now[j] = voltage_j
                s_now[j] = fired
                if fired:
                    v_now[j] = voltage_j - threshold if subtract else 0.0
                else:
                    v_now[j] = voltage_j


@_jit
def csr_synapse_int(indptr, indices, weights, weight_exp, messages, out):  # pragma: no cover
    """out[r] = shift(wrap32(W @ messages[r]), weight_exp) for a CSR W (int64 data):
    the int64 sum is exact; a sum outside int32 wraps as Lava's int32 accumulator does
    (docs/numerics.md). Returns the number of wrapped sums."""
    limit = np.int64(1) << 31
    wrapped = 0
    rows = messages.shape[0]
    for r in range(rows):
        message = messages[r]
        target = out[r]
        for i in range(indptr.shape[0] - 1):
            total = np.int64(0)
            for k in range(indptr[i], indptr[i + 1]):
                total += weights[k] * message[indices[k]]
            if total >= limit or total < -limit:
                total = (total + limit) % (2 * limit) - limit
                wrapped += 1
            target[i] = total << weight_exp if weight_exp >= 0 else total >> -weight_exp
    return wrapped
