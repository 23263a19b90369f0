"""Compiled tick loops for the reference simulator's hot paths (numba).

At a batch of one, a tick of a population is a few thousand values: numpy spends more
time entering each of its calls than computing, and a whole-sequence kernel
(reference.sequences) makes 3-8 calls a tick. These loops run all ticks of a sequence
in one call, converting to and from int64 as they go. They hold no policy: the kernels
in reference.sequences derive the bounds that make float64 exact, the loops report
whether a value left them, and the kernels then hand the tile to the step functions, so
what they compute is pinned by the same tests against the step functions of
reference.kinds.

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


# Loops run sample by sample, then tick by tick, then over a row's values: a tick's row
# is contiguous and the sample's state row is updated in place, so the innermost loop
# vectorizes and the state row stays in cache over the ticks (a batch's whole state
# would not). Each loop writes int64 messages (and int64 state trajectories when `keep`)
# directly and returns whether every value stayed inside the bounds that make float64
# exact; when it returns False the caller discards everything it wrote (states included:
# it passes copies).


@_jit
def ssm_sequence(
    inputs, input_max, b_re, b_im, a_re, a_im, re, im, state_limit, message_limit,
    messages, re_trace, im_trace, keep,
):  # pragma: no cover  # fmt: skip
    """z_t = trunc(a z_{t-1} + b x_t) in float64 (a, b already scaled by 2**-frac):
    inputs (n, B, S) int64; re, im (B, S) float64, the state, advanced in place. Exact
    while no |x| exceeds input_max and no |z| exceeds state_limit (the caller derives
    input_max from the coefficients so that every sum stays below 2**53). messages
    (n, B, S) get re clipped to +-message_limit. Returns (exact, clipped messages)."""
    n, batch, size = inputs.shape
    outside = False
    clipped = 0
    for b in range(batch):
        for t in range(n):
            x, r_row, i_row, sent = inputs[t, b], re[b], im[b], messages[t, b]
            for j in range(size):
                xj = np.float64(x[j])
                r_old, i_old = r_row[j], i_row[j]
                r = np.trunc(a_re[j] * r_old - a_im[j] * i_old + b_re[j] * xj)
                i = np.trunc(a_im[j] * r_old + a_re[j] * i_old + b_im[j] * xj)
                outside |= (abs(xj) > input_max) | (abs(r) > state_limit) | (abs(i) > state_limit)
                r_row[j], i_row[j] = r, i
                message = min(max(r, -message_limit), message_limit)
                clipped += message != r
                sent[j] = np.int64(message)
            if keep:
                for j in range(size):
                    re_trace[t, b, j] = np.int64(r_row[j])
                    im_trace[t, b, j] = np.int64(i_row[j])
    return not outside, clipped


@_jit
def reset_refractory_sequence(
    inputs, input_max, retain, theta, reset, v, state_limit, spikes, v_trace, keep
):  # pragma: no cover
    """m_t = trunc(v_{t-1} retain) + x_t; s_t = m_t > theta; v_t = m_t - reset s_t, in
    float64 (retain = (4096 - decay) / 2**12): inputs (n, B, S) int64; v (B, S) float64,
    the state, advanced in place; spikes (n, B, S) int64. Exact while no |x| exceeds
    input_max and neither |m| nor |v| exceeds state_limit. Returns whether it was."""
    n, batch, size = inputs.shape
    outside = False
    for b in range(batch):
        for t in range(n):
            x, v_row, fired = inputs[t, b], v[b], spikes[t, b]
            for j in range(size):
                xj = np.float64(x[j])
                m = np.trunc(v_row[j] * retain[j]) + xj
                spike = m > theta[j]
                v_new = m - reset[j] if spike else m
                outside |= (abs(xj) > input_max) | (abs(m) > state_limit)
                outside |= abs(v_new) > state_limit
                v_row[j] = v_new
                fired[j] = spike
            if keep:
                for j in range(size):
                    v_trace[t, b, j] = np.int64(v_row[j])
    return not outside


@_jit
def lava_lif_sequence(
    inputs, input_max, keep_u, keep_v, threshold, subtract, u, v, half,
    spikes, u_trace, v_trace, keep,
):  # pragma: no cover  # fmt: skip
    """Lava's LIF scaled by 2**6, in float64: u_t = trunc(u_{t-1} keep_u) + 64 x_t;
    V_t = trunc(v_{t-1} keep_v) + u_t; s_t = V_t > threshold; v_t = V_t - threshold s_t
    (subtract) or V_t (1 - s_t). u, v (B, S) float64, the state, advanced in place;
    spikes (n, B, S) int64. Exact (and free of Lava's wrap of u and saturation of V)
    while no |x| exceeds input_max, -half < u <= half and -half < V < half. Returns
    whether it was."""
    n, batch, size = inputs.shape
    outside = False
    for b in range(batch):
        for t in range(n):
            x, u_row, v_row, fired = inputs[t, b], u[b], v[b], spikes[t, b]
            for j in range(size):
                xj = np.float64(x[j])
                u_new = np.trunc(u_row[j] * keep_u) + 64.0 * xj
                voltage = np.trunc(v_row[j] * keep_v) + u_new
                spike = voltage > threshold
                outside |= (abs(xj) > input_max) | (u_new <= -half) | (u_new > half)
                outside |= (voltage <= -half) | (voltage >= half)
                u_row[j] = u_new
                if spike:
                    v_row[j] = voltage - threshold if subtract else 0.0
                else:
                    v_row[j] = voltage
                fired[j] = spike
            if keep:
                for j in range(size):
                    u_trace[t, b, j] = np.int64(u_row[j])
                    v_trace[t, b, j] = np.int64(v_row[j])
    return not outside


@numba.njit(cache=True, nogil=True, inline="always")
def _wrap32_shift(total, weight_exp):  # pragma: no cover
    """(floor_shift(wrap32(total), weight_exp), 1 if it wrapped else 0): a synapse's sum
    as docs/numerics.md delivers it, wrapped as Lava's int32 accumulator does."""
    limit = np.int64(1) << 31
    wraps = 0
    if total >= limit or total < -limit:
        total = (total + limit) % (2 * limit) - limit
        wraps = 1
    return (total << weight_exp if weight_exp >= 0 else total >> -weight_exp), wraps


@_jit
def csr_synapse_int(indptr, indices, weights, weight_exp, messages, out):  # pragma: no cover
    """out[r] += shift(wrap32(W @ messages[r]), weight_exp) for a CSR W (int64 data):
    the int64 sum is exact; a sum outside int32 wraps as Lava's int32 accumulator does
    (docs/numerics.md). Returns the number of wrapped sums."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for i in range(indptr.shape[0] - 1):
            total = np.int64(0)
            for k in range(indptr[i], indptr[i + 1]):
                total += weights[k] * message[indices[k]]
            value, wraps = _wrap32_shift(total, weight_exp)
            target[i] += value
            wrapped += wraps
    return wrapped


@_jit
def gather_synapse_int(indices, weights, weight_exp, messages, out):  # pragma: no cover
    """csr_synapse_int for a W with at most one weight per destination (an SSM's fan-out
    of each channel to its modes): out[r, i] += shift(wrap32(weights[i] *
    messages[r, indices[i]]), weight_exp), with weights[i] = 0 for an empty row. Without
    the per-row loop of a CSR the compiler vectorizes the gather."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for i in range(indices.shape[0]):
            value, wraps = _wrap32_shift(weights[i] * message[indices[i]], weight_exp)
            target[i] += value
            wrapped += wraps
    return wrapped
