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
Array = np.ndarray  # annotations only: numba types the arguments at the first call


# Loops run sample by sample, then tick by tick, then over a row's values: a tick's row
# is contiguous and the sample's state row is updated in place, so the innermost loop
# vectorizes and the state row stays in cache over the ticks (a batch's whole state
# would not). Each integer loop writes int64 messages (and int64 state trajectories when
# `keep`) directly and returns whether every value stayed inside the bounds that make
# float64 exact; when it returns False the caller discards everything it wrote (the
# float64 SSM's loop has no bounds and returns nothing). The SSM and
# reset-refractory loops take the int64 state and write the new one into separate
# arrays, converting one sample's row to float64 in a scratch row: with tiles of one
# tick (a large batch) converting the whole state in numpy cost as much as the ticks.
#
# The innermost loops vectorize only if LLVM can prove, with at most 8 run-time overlap
# checks, that the arrays written do not overlap those read (numba cannot declare them
# distinct). A loop that reads and writes many separate arrays therefore stays scalar:
# an SSM row with separate re, im, a_re, a_im, b_re and b_im arrays needs 9 checks, and
# ran 2.2x slower (docs/compiler.md). So per-value parameters and states are interleaved in one
# flat array each and indexed with a constant stride (a 2-d array's row stride is known
# only at run time, which defeats the same proof).


# int64 <-> float64 through the bits of 1.5 * 2**52: for an integer |x| < 2**51, the bits
# of x + INT_BIAS read as a float64 are x + FLOAT_BIAS exactly (the integer lands in the
# mantissa), and the same holds back. AVX2 has no vector int64 <-> float64 conversion
# (AVX-512 DQ has), so a plain cast compiles to one scalar instruction per value; an
# integer add, a reinterpretation and a float subtract vectorize. 1.5x on the SSM loop
# at batch 32 on an AVX2 CPU (docs/compiler.md).
FLOAT_BIAS = 1.5 * 2.0**52
INT_BIAS = np.int64(np.float64(FLOAT_BIAS).view(np.int64))
BIASED_LIMIT = np.int64(2**51 - 1)


@_jit
def ssm_sequence_float(
    inputs: Array, coef: Array, re: Array, im: Array, messages: Array, re_out: Array,
    im_out: Array, re_trace: Array, im_trace: Array, keep: bool,
) -> None:  # pragma: no cover  # fmt: skip
    """z_t = a z_{t-1} + b x_t in float64 with the float step's operations in its order,
    so the same roundings (reference.kinds): inputs (n, B, S); coef (4 S,), per mode
    a_re, a_im, b_re, b_im; re, im (B, S) the state before the first tick; re_out,
    im_out (B, S) get the state after the last; messages (n, B, S) get re."""
    n, batch, size = inputs.shape
    z_row = np.empty(2 * size)  # one sample's state, per mode re, im
    for b in range(batch):
        for j in range(size):
            z_row[2 * j], z_row[2 * j + 1] = re[b, j], im[b, j]
        for t in range(n):
            x, sent = inputs[t, b], messages[t, b]
            for j in range(size):
                r_old, i_old = z_row[2 * j], z_row[2 * j + 1]
                a_re, a_im = coef[4 * j], coef[4 * j + 1]
                r = a_re * r_old - a_im * i_old + coef[4 * j + 2] * x[j]
                i = a_im * r_old + a_re * i_old + coef[4 * j + 3] * x[j]
                z_row[2 * j], z_row[2 * j + 1] = r, i
                sent[j] = r
            if keep:
                for j in range(size):
                    re_trace[t, b, j] = z_row[2 * j]
                    im_trace[t, b, j] = z_row[2 * j + 1]
        for j in range(size):
            re_out[b, j], im_out[b, j] = z_row[2 * j], z_row[2 * j + 1]


@_jit
def ssm_sequence(
    inputs: Array, input_max: int, coef: Array, re: Array, im: Array, state_limit: float,
    message_scale: float, message_limit: float, messages: Array, re_out: Array,
    im_out: Array, re_trace: Array, im_trace: Array, keep: bool,
) -> tuple[bool, int]:  # pragma: no cover  # fmt: skip
    """z_t = trunc(a z_{t-1} + b x_t) in float64 (each mode's a, b already scaled by its
    2**-frac): inputs (n, B, S) int64; coef (4 S,) float64, per mode a_re, a_im, b_re, b_im; re, im
    (B, S) int64, the state before the first tick; re_out, im_out (B, S) int64 get the
    state after the last. Exact while no |x| exceeds input_max (an int; at most 2**51 - 1
    is used, the biased conversion's range) and no |z| exceeds state_limit (the caller
    derives input_max from the coefficients so that every sum stays below 2**53).
    messages (n, B, S) get trunc(re message_scale) (2**-out_shift: an integer below
    2**53 times a power of two is exact, and trunc is tz) clipped to +-message_limit
    (< 2**51). Returns (exact, clipped messages)."""
    n, batch, size = inputs.shape
    outside = 0
    clipped = 0
    x_limit = min(np.int64(input_max), BIASED_LIMIT)
    z_row = np.empty(2 * size)  # one sample's state, per mode re, im
    x_bits = np.empty(size, np.int64)  # a tick's inputs + INT_BIAS, read as float64 below
    x_biased = x_bits.view(np.float64)
    for b in range(batch):
        for j in range(size):
            z_row[2 * j], z_row[2 * j + 1] = np.float64(re[b, j]), np.float64(im[b, j])
        for t in range(n):
            x, sent = inputs[t, b], messages[t, b]
            sent_biased = sent.view(np.float64)  # written biased, unbiased as int64 below
            for j in range(size):
                outside += np.int64((x[j] > x_limit) | (x[j] < -x_limit))
                x_bits[j] = x[j] + INT_BIAS
            for j in range(size):
                xj = x_biased[j] - FLOAT_BIAS
                r_old, i_old = z_row[2 * j], z_row[2 * j + 1]
                a_re, a_im = coef[4 * j], coef[4 * j + 1]
                r = np.trunc(a_re * r_old - a_im * i_old + coef[4 * j + 2] * xj)
                i = np.trunc(a_im * r_old + a_re * i_old + coef[4 * j + 3] * xj)
                z_row[2 * j], z_row[2 * j + 1] = r, i
                outside += np.int64((abs(r) > state_limit) | (abs(i) > state_limit))
                shifted = np.trunc(r * message_scale)
                message = min(max(shifted, -message_limit), message_limit)
                clipped += np.int64(message != shifted)
                sent_biased[j] = message + FLOAT_BIAS
            for j in range(size):
                sent[j] -= INT_BIAS
            if keep:
                for j in range(size):
                    re_trace[t, b, j] = np.int64(z_row[2 * j])
                    im_trace[t, b, j] = np.int64(z_row[2 * j + 1])
        for j in range(size):
            re_out[b, j], im_out[b, j] = np.int64(z_row[2 * j]), np.int64(z_row[2 * j + 1])
    return outside == 0, clipped


@_jit
def reset_refractory_sequence(
    inputs: Array, input_max: float, params: Array, v: Array, state_limit: float,
    spikes: Array, v_out: Array, v_trace: Array, keep: bool,
) -> bool:  # pragma: no cover  # fmt: skip
    """m_t = trunc(v_{t-1} retain) + x_t; s_t = m_t > theta; v_t = m_t - reset s_t, in
    float64 (retain = (4096 - decay) / 2**12): inputs (n, B, S) int64; params (3 S,)
    float64, per neuron retain, theta, reset; v (B, S) int64, the state before the first
    tick; v_out (B, S) int64 gets it after the last; spikes (n, B, S) int64. Exact while
    no |x| exceeds input_max and neither |m| nor |v| exceeds state_limit. Returns whether
    it was."""
    n, batch, size = inputs.shape
    outside = 0
    v_row = np.empty(size)
    for b in range(batch):
        for j in range(size):
            v_row[j] = np.float64(v[b, j])
        for t in range(n):
            x, fired = inputs[t, b], spikes[t, b]
            for j in range(size):
                xj = np.float64(x[j])
                m = np.trunc(v_row[j] * params[3 * j]) + xj
                spike = m > params[3 * j + 1]
                v_new = m - params[3 * j + 2] if spike else m
                bad = (abs(xj) > input_max) | (abs(m) > state_limit) | (abs(v_new) > state_limit)
                outside += np.int64(bad)
                v_row[j] = v_new
                fired[j] = spike
            if keep:
                for j in range(size):
                    v_trace[t, b, j] = np.int64(v_row[j])
        for j in range(size):
            v_out[b, j] = np.int64(v_row[j])
    return outside == 0


@_jit
def lava_lif_sequence(
    inputs: Array, input_max: float, keep_u: float, keep_v: float, threshold: float,
    subtract: bool, subtrahend: float, u: Array, v: Array, half: float, spikes: Array,
    u_trace: Array, v_trace: Array, keep: bool,
) -> bool:  # pragma: no cover  # fmt: skip
    """Lava's LIF scaled by 2**6, in float64: u_t = trunc(u_{t-1} keep_u) + 64 x_t;
    V_t = trunc(v_{t-1} keep_v) + u_t; s_t = V_t > threshold; v_t = V_t - subtrahend s_t
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
                    v_row[j] = voltage - subtrahend if subtract else 0.0
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
    # Without branches (the mask is the floor modulo 2**32 in two's complement; one of
    # the two shifts is by zero), so the loops that call this vectorize.
    limit = np.int64(1) << 31
    wrapped = ((total + limit) & np.int64(0xFFFFFFFF)) - limit
    left, right = max(weight_exp, 0), max(-weight_exp, 0)
    return (wrapped << left) >> right, np.int64(wrapped != total)


@_jit
def csr_synapse_int(
    indptr: Array, indices: Array, weights: Array, weight_exp: int, messages: Array,
    out: Array, accumulate: bool,
) -> int:  # pragma: no cover  # fmt: skip
    """out[r] += shift(wrap32(W @ messages[r]), weight_exp) for a CSR W (int64 data), or
    out[r] = that if not accumulate (every destination is written, an empty row's as 0):
    the int64 sum is exact; a sum outside int32 wraps as Lava's int32 accumulator does
    (docs/numerics.md). Returns the number of wrapped sums."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for i in range(indptr.shape[0] - 1):
            row = slice(indptr[i], indptr[i + 1])  # from 0, as in gather_synapse_int
            row_indices, row_weights = indices[row], weights[row]
            total = np.int64(0)
            for k in range(row_indices.shape[0]):
                total += row_weights[k] * message[row_indices[k]]
            value, wraps = _wrap32_shift(total, weight_exp)
            target[i] = target[i] + value if accumulate else value
            wrapped += wraps
    return wrapped


@_jit
def span_synapse_int(
    indptr: Array, firsts: Array, weights: Array, weight_exp: int, messages: Array,
    out: Array, accumulate: bool,
) -> int:  # pragma: no cover  # fmt: skip
    """csr_synapse_int for a W whose row i reads the consecutive sources firsts[i] ..
    firsts[i] + (indptr[i + 1] - indptr[i]) - 1 (an SSM's readout of a channel's modes,
    gaps filled with zero weights): contiguous reads instead of indexed ones, 3x faster
    per product on a readout of 33-mode runs."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for i in range(indptr.shape[0] - 1):
            row_weights = weights[indptr[i] : indptr[i + 1]]
            span = message[firsts[i] : firsts[i] + row_weights.shape[0]]
            total = np.int64(0)
            for k in range(row_weights.shape[0]):
                total += row_weights[k] * span[k]
            value, wraps = _wrap32_shift(total, weight_exp)
            target[i] = target[i] + value if accumulate else value
            wrapped += wraps
    return wrapped


@_jit
def gather_synapse_int(
    indices: Array, weights: Array, weight_exp: int, messages: Array, out: Array,
    accumulate: bool,
) -> int:  # pragma: no cover  # fmt: skip
    """csr_synapse_int for a W with at most one weight per destination: out[r, i] (+)=
    shift(wrap32(weights[i] * messages[r, indices[i]]), weight_exp), with weights[i] = 0
    for an empty row. Scalar (the compiler cannot bound the indexed reads apart from the
    writes), but without a CSR's per-row loop."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for i in range(indices.shape[0]):
            value, wraps = _wrap32_shift(weights[i] * message[indices[i]], weight_exp)
            target[i] = target[i] + value if accumulate else value
            wrapped += wraps
    return wrapped


@_jit
def fan_out_synapse_int(
    run_starts: Array, run_sources: Array, weights: Array, weight_exp: int, messages: Array,
    out: Array, accumulate: bool,
) -> int:  # pragma: no cover  # fmt: skip
    """gather_synapse_int for a W whose destinations come in runs that read the same
    source (an SSM's fan-out of each channel to its modes): destinations run_starts[k] ..
    run_starts[k + 1] - 1 read source run_sources[k]. A run's loop reads one message
    and contiguous weights, so it vectorizes; worth it when runs are long."""
    wrapped = 0
    for r in range(messages.shape[0]):
        message = messages[r]
        target = out[r]
        for k in range(run_sources.shape[0]):
            value_in = message[run_sources[k]]
            # Slices, so the loop index starts at 0: an index numba cannot prove
            # non-negative gets a wrap-around select that stops the vectorizer.
            run = slice(run_starts[k], run_starts[k + 1])
            run_target, run_weights = target[run], weights[run]
            for i in range(run_target.shape[0]):
                value, wraps = _wrap32_shift(run_weights[i] * value_in, weight_exp)
                run_target[i] = run_target[i] + value if accumulate else value
                wrapped += wraps
    return wrapped
