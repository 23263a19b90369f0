"""Whole sequences of one population: its inputs at every active tick -> its messages.

`run_sequence` takes a population's summed input at each of its active ticks, (n, B,
input width), and returns what it sends at each, (n, B, size), updating its state dict
as n calls of its step function (reference.kinds) would, with the same event counts.

A kind without state is one call of its step function on all n ticks at once. A kind
with state loops over the ticks; for the integer kinds whose loop dominates a run (the
SSM resonator, the reset-refractory neuron, Lava's LIF) there are faster kernels here,
whose tick loops are compiled (reference.loops), and the readout's is a numpy cumsum.
The compiled ones compute in float64, which is exact while every intermediate value is
an integer (or an integer times a power of two) below 2**53: each kernel derives from
its coefficients and starting state the largest input that keeps it there, and its loop
runs without saturation or wrap and reports whether an input exceeded that or a state
left its range. Then the kernel returns None and the step function's loop runs instead, so
clipping, wrapping and their counts stay those of reference.kinds. Truncation toward
zero of x / 2**n is trunc(x * 2**-n), exactly tz_shift. The float64 SSM (float netlists)
has a compiled loop too, doing its step's operations in their order (the same floats);
it clips nothing, so it never declines.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from snncompile.ir.netlist import Formats, Population
from snncompile.reference.kinds import LIF_STATE_BITS, STEPS, Events, saturate

EXACT = 2**53

# (messages (n, B, size), state trajectories name -> (n, B, size) when asked for them);
# None: the kernel is not exact on these inputs.
Result = tuple[np.ndarray, dict[str, np.ndarray]]
Kernel = Callable[[Population, np.ndarray, dict, Formats, Events, bool], "Result | None"]


def run_sequence(
    pop: Population,
    inputs: np.ndarray,
    state: dict[str, np.ndarray],
    fmt: Formats,
    numeric: str,
    events: Events,
    keep_states: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(messages (n, B, size), state trajectories when keep_states else {})."""
    step = STEPS[numeric][pop.kind]
    n, batch = inputs.shape[:2]
    if n * batch == 0:  # e.g. a last tile without an active tick of this population
        empty = np.zeros((n, batch, pop.size), inputs.dtype)
        return empty, ({k: empty for k in state} if keep_states else {})
    if not pop.compartment.states:
        out = step(pop, state, inputs.reshape(n * batch, -1), fmt, events)
        return out.reshape(n, batch, pop.size), {}
    kernel = KERNELS.get((numeric, pop.kind))
    result = None if kernel is None else kernel(pop, inputs, state, fmt, events, keep_states)
    if result is not None:
        return result
    return _step_loop(step, pop, inputs, state, fmt, events, keep_states)


def _step_loop(step, pop, inputs, state, fmt, events, keep_states):
    if inputs.shape[0] == 1:  # step functions replace state arrays, never write into them
        out = step(pop, state, inputs[0], fmt, events)[None]
        return out, ({k: v[None] for k, v in state.items()} if keep_states else {})
    n, batch = inputs.shape[:2]
    dtype = inputs.dtype
    out = np.zeros((n, batch, pop.size), dtype)
    trajectory = {k: np.zeros((n, batch, pop.size), dtype) for k in state} if keep_states else {}
    for i in range(n):
        out[i] = step(pop, state, inputs[i], fmt, events)
        for name, values in trajectory.items():
            values[i] = state[name]
    return out, trajectory


def _limit(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def _within(values: np.ndarray, low: float, high: float) -> bool:
    return values.size == 0 or bool(values.min() >= low and values.max() <= high)


def _int_peak(values: np.ndarray) -> int:
    """The largest magnitude of an int64 array, as a Python int (exact)."""
    return 0 if values.size == 0 else max(-int(values.min()), int(values.max()))


def _input_max(fixed: int, per_input: int) -> int:
    """The largest |x| for which fixed + per_input * |x| < 2**53 (exact integers): the
    kernels' float64 sums are exact below it; -1 (every input declines) when fixed alone
    reaches 2**53 (a LIF's u can start far beyond it, past int64 for the loop)."""
    if fixed >= EXACT:
        return -1
    return (EXACT - 1 - fixed) // per_input if per_input else EXACT


def _traces(keep: bool, shape: tuple[int, ...], count: int, dtype=np.int64) -> list[np.ndarray]:
    """count trajectory arrays to fill, or empty ones when they are not kept."""
    return [np.empty(shape if keep else (0, 0, 0), dtype) for _ in range(count)]


# Per population, the parameters of its compiled loop (interleaved, reference.loops says
# why) and the bounds derived from them: a run of many short tiles built them per tile.
_LOOP_PARAMS: weakref.WeakKeyDictionary[Population, dict] = weakref.WeakKeyDictionary()


def _loop_params(pop: Population, key: object, build: Callable[[], Any]) -> Any:
    cached = _LOOP_PARAMS.setdefault(pop, {})
    if key not in cached:
        cached[key] = build()
    return cached[key]


def _ssm_coefficients(pop: Population, frac_bits: int) -> tuple[np.ndarray, int, int]:
    """(a_re, a_im, b_re, b_im interleaved per mode, scaled by 2**-(frac - frac_cut); the
    largest |a_re| + |a_im|; the largest |b_re| or |b_im|), the latter two as exact ints
    (the sums are of integers in each mode's own units, so the bounds ignore the scale)."""
    p = {k: v.astype(np.int64) for k, v in pop.params.items()}
    coef_peak = _int_peak(np.abs(p["a_re_q"]) + np.abs(p["a_im_q"]))
    b_peak = max(_int_peak(p["b_re_q"]), _int_peak(p["b_im_q"]))
    scale = np.repeat(2.0 ** -(frac_bits - p["frac_cut"]).astype(np.float64), 4)
    coef = _interleaved(pop, ("a_re_q", "a_im_q", "b_re_q", "b_im_q")) * scale
    return coef, coef_peak, b_peak


def _interleaved(pop: Population, names: tuple[str, ...]) -> np.ndarray:
    """The named parameters interleaved per compartment, float64 (reference.loops)."""
    return np.stack([pop.params[k].astype(np.float64) for k in names], axis=1).ravel()


def _ssm_outputs(inputs: np.ndarray, state: dict, keep: bool, dtype) -> tuple[np.ndarray, ...]:
    """What an SSM loop fills, in its argument order: messages (n, B, S), the new re and
    im (B, S), and their trajectories (empty unless kept)."""
    new = (np.empty(state["re"].shape, dtype), np.empty(state["im"].shape, dtype))
    return (np.empty(inputs.shape, dtype), *new, *_traces(keep, inputs.shape, 2, dtype))


def _ssm_result(state: dict, outputs: tuple[np.ndarray, ...], keep: bool) -> Result:
    messages, state["re"], state["im"], re_trace, im_trace = outputs
    return messages, ({"re": re_trace, "im": im_trace} if keep else {})


def _ssm_int(pop, inputs, state, fmt, events, keep):
    """z = trunc((a z + b x) / 2**frac) in float64: re and im are the two rounded sums."""
    from snncompile.reference import loops  # numba, imported on the first run

    limit = _limit(fmt.state_bits)
    frac = fmt.ssm_frac_bits
    coef, coef_peak, b_peak = _loop_params(pop, frac, lambda: _ssm_coefficients(pop, frac))
    outputs = _ssm_outputs(inputs, state, keep, np.int64)
    exact, clipped = loops.ssm_sequence(
        np.ascontiguousarray(inputs, dtype=np.int64),
        _input_max(coef_peak * limit, b_peak),
        coef,
        *(np.ascontiguousarray(state[k], dtype=np.int64) for k in ("re", "im")),
        limit,
        2.0 ** -int(pop.params["out_shift"]),
        _limit(min(fmt.message_bits, fmt.state_bits)),
        *outputs,
        keep,
    )
    if not exact:
        return None
    events.add(pop.name, clipped)
    return _ssm_result(state, outputs, keep)


def _ssm_float(pop, inputs, state, fmt, events, keep):
    """The float step's z = a z + b x over all ticks in one compiled loop (it clips and
    counts nothing, so it never declines): numpy's dozen passes over the batch a tick
    were 30% of `verify`'s time on the bundled spike-ssm."""
    from snncompile.reference import loops  # numba, imported on the first run

    coef = _loop_params(pop, "float", lambda: _interleaved(pop, ("a_re", "a_im", "b_re", "b_im")))
    outputs = _ssm_outputs(inputs, state, keep, np.float64)
    loops.ssm_sequence_float(
        np.ascontiguousarray(inputs, dtype=np.float64),
        coef,
        *(np.ascontiguousarray(state[k], dtype=np.float64) for k in ("re", "im")),
        *outputs,
        keep,
    )
    return _ssm_result(state, outputs, keep)


def _reset_refractory_params(pop: Population) -> np.ndarray:
    """retain, theta, reset (theta + rho) interleaved per neuron, float64."""
    theta = pop.params["theta"].astype(np.float64)
    retain = (4096 - pop.params["decay"].astype(np.float64)) * 2.0**-12
    reset = theta + pop.params["rho"].astype(np.float64)
    return np.stack([retain, theta, reset], axis=1).ravel()


def _reset_refractory_int(pop, inputs, state, fmt, events, keep):
    from snncompile.reference import loops  # numba, imported on the first run

    limit = _limit(fmt.state_bits)
    spikes = np.empty(inputs.shape, np.int64)
    v_out = np.empty(state["v"].shape, np.int64)
    (v_trace,) = _traces(keep, inputs.shape, 1)
    exact = loops.reset_refractory_sequence(
        np.ascontiguousarray(inputs, dtype=np.int64),
        _input_max(4096 * limit, 1),
        _loop_params(pop, "reset_refractory", lambda: _reset_refractory_params(pop)),
        np.ascontiguousarray(state["v"], dtype=np.int64),
        limit,
        spikes,
        v_out,
        v_trace,
        keep,
    )
    if not exact:
        return None
    state["v"] = v_out
    return spikes, ({"v": v_trace} if keep else {})


def _lava_lif_int(pop, inputs, state, fmt, events, keep, subtract: bool):
    """Lava's bit-accurate LIF (kinds._lava_lif_int) while u never wraps and v never
    saturates at 24 bits."""
    from snncompile.reference import loops  # numba, imported on the first run

    half = 1 << (LIF_STATE_BITS - 1)
    du, dv, vth = (int(pop.params[k]) for k in ("du", "dv", "vth"))
    # Lava wraps u only once, so a tile may start with |u| far beyond 24 bits.
    state_peak = max(half, _int_peak(state["u"]), _int_peak(state["v"]))
    u, v = state["u"].astype(np.float64), state["v"].astype(np.float64)
    spikes = np.empty(inputs.shape, np.int64)
    u_trace, v_trace = _traces(keep, inputs.shape, 2)
    exact = loops.lava_lif_sequence(
        np.ascontiguousarray(inputs, dtype=np.int64),
        _input_max(2 * 4096 * state_peak, 64),
        (4096 - (du + 1)) * 2.0**-12,
        (4096 - dv) * 2.0**-12,
        float(vth << 6),
        subtract,
        float(int(pop.params["vsub"]) << 6) if subtract else 0.0,
        u,
        v,
        half,
        spikes,
        u_trace,
        v_trace,
        keep,
    )
    if not exact:
        return None
    state["u"], state["v"] = u.astype(np.int64), v.astype(np.int64)
    return spikes, ({"u": u_trace, "v": v_trace} if keep else {})


def _lif_int(pop, inputs, state, fmt, events, keep):
    return _lava_lif_int(pop, inputs, state, fmt, events, keep, subtract=False)


def _cuba_lif_sub_int(pop, inputs, state, fmt, events, keep):
    return _lava_lif_int(pop, inputs, state, fmt, events, keep, subtract=True)


def _readout_int(pop, inputs, state, fmt, events, keep):
    """mean: acc = running sum (int64, exact); last: acc = a. Saturation is per step."""
    if pop.attrs["mode"] != "mean":
        acc = saturate(inputs, fmt.state_bits, events, pop.name)
    else:
        acc = state["acc"] + np.cumsum(inputs, axis=0)
        limit = _limit(fmt.state_bits)
        if not _within(acc, -limit, limit):
            return None
    state["acc"] = acc[-1].copy()
    return acc, ({"acc": acc} if keep else {})


KERNELS: dict[tuple[str, str], Kernel] = {
    ("int", "ssm"): _ssm_int,
    ("int", "reset_refractory"): _reset_refractory_int,
    ("int", "lif"): _lif_int,
    ("int", "cuba_lif"): _lif_int,
    ("int", "cuba_lif_sub"): _cuba_lif_sub_int,
    ("int", "readout"): _readout_int,
    ("float64", "ssm"): _ssm_float,
}
