"""The reference simulator: runs a Netlist exactly as docs/numerics.md specifies.

Vectorized over the batch and over the compartments of a population; a Python loop over
time steps, populations and synapses. Integer products are summed with float64 BLAS,
which is exact because the netlist validator bounds every sum below 2**53.

A sequence of L inputs takes net.total_ticks(L) simulation steps (ticks): a population
at latency k works on model step t at tick ticks_per_step * t + k and is idle (keeps its
state, sends zero) at every other tick. Traces are returned aligned to model time, so
the trace of every population has L steps whatever its latency.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from snncompile.errors import UsageError
from snncompile.ir.netlist import Netlist, Synapse
from snncompile.reference.kinds import STEPS, Events, saturate, zeros_state

INT32_LIMIT = 1 << 31


@dataclass
class SimResult:
    """What a run produced.

    logits: (B, d_out) float, the readout state mapped back to float;
    readout: (B, d_out) the raw readout state (int64 in int netlists);
    traces: population name -> (B, L, size) messages aligned to model time, plus
            "<name>.<state>" -> (B, L, size) states and "<name>.in" -> (B, L, input
            width) summed synaptic input when internals were recorded;
    events: saturation / wrap / overflow counts by population or synapse name;
    latency: steps from the input to each population;
    peaks: when asked for, the largest magnitude over the run of every message
           ("<name>"), state ("<name>.<state>") and input half ("<name>.in.0", ".in.1");
    spike_rates: mean message of every spiking population over the input window.
    """

    logits: np.ndarray
    readout: np.ndarray
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    latency: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    peaks: dict[str, float] = field(default_factory=dict)
    spike_rates: dict[str, float] = field(default_factory=dict)


def encode_input(net: Netlist, x: np.ndarray, events: Events | None = None) -> np.ndarray:
    """Float model input (B, L, d_in) -> what the input population sends."""
    x = np.asarray(x, dtype=np.float64)
    if net.numeric == "float64":
        return x
    ints = np.rint(x / net.input_scale).astype(np.int64)
    return saturate(ints, net.formats.message_bits, events or Events(), net.input.name)


def _check_input(net: Netlist, x: np.ndarray) -> None:
    width = net.input.size
    if x.ndim != 3 or x.shape[2] != width:
        raise UsageError(f"input must have shape (batch, steps, {width}), got {x.shape}")
    if x.shape[1] == 0:
        raise UsageError("input has no time steps")
    if not np.all(np.isfinite(x)):
        raise UsageError("input holds NaN or inf")


_ROW_ABS_SUMS: weakref.WeakKeyDictionary[Synapse, float] = weakref.WeakKeyDictionary()


def _row_abs_sum(syn: Synapse) -> float:
    """The largest sum of |weight| over one destination (so |W @ m| <= this * max|m|)."""
    if syn not in _ROW_ABS_SUMS:
        sums = np.asarray(abs(syn.weight).sum(axis=1)).ravel()  # sparse gives a matrix
        _ROW_ABS_SUMS[syn] = float(sums.max(initial=0))
    return _ROW_ABS_SUMS[syn]


def _may_wrap(syn: Synapse, msg: np.ndarray, acc: np.ndarray) -> bool:
    """Whether a sum in acc = W @ msg is outside int32. Bounding the sums by the messages'
    largest magnitude is cheaper when fewer messages come in than sums go out (an SSM's
    input fan-out), and settles it whenever the bound is inside."""
    if acc.size == 0:
        return False
    if msg.size < acc.size:
        bound = float(np.abs(msg).max(initial=0)) * _row_abs_sum(syn)
        if bound < INT32_LIMIT - 1:
            return False
    return bool(acc.max() >= INT32_LIMIT or acc.min() < -INT32_LIMIT)


def _apply(syn: Synapse, msg: np.ndarray, numeric: str, events: Events) -> np.ndarray:
    """One synapse's contribution: shift(W @ msg, weight_exp), for msg (B, src size)."""
    if sparse.issparse(syn.weight):
        product = np.asarray(syn.weight @ msg.T.astype(np.float64)).T
    else:
        product = msg.astype(np.float64) @ syn.weight.T
    if numeric == "float64":
        return product * 2.0**syn.weight_exp
    # Integer mantissas times integer messages: the float64 sum is an exact integer (the
    # netlist bounds it below 2**53), so the cast loses nothing.
    acc = product.astype(np.int64)
    # Lava sums a synapse in int32: count and reproduce a wrap (the compiler's calibration
    # keeps sums far below it, so any event here means the data left the calibrated range).
    if _may_wrap(syn, msg, acc):
        wrapped = (acc + INT32_LIMIT) % (2 * INT32_LIMIT) - INT32_LIMIT
        events.add(syn.name, np.count_nonzero(wrapped != acc))
        acc = wrapped
    return acc << syn.weight_exp if syn.weight_exp >= 0 else acc >> -syn.weight_exp


def simulate(
    net: Netlist,
    x: np.ndarray,
    *,
    record: bool | Iterable[str] = False,
    record_internals: bool = False,
    peaks: bool = False,
) -> SimResult:
    """Run `net` on float inputs x (B, L, d_in); see SimResult.

    record: True for traces of every population, or an iterable of population names;
    record_internals: also trace the recorded populations' states and inputs;
    peaks: track the largest magnitude of every message, state and input (calibration)
    without storing traces.
    """
    x = np.asarray(x)
    _check_input(net, x)
    events = Events()
    data = encode_input(net, x, events)
    batch, length, _ = data.shape
    latency = net.latency()
    ticks = net.ticks_per_step
    total_steps = net.total_ticks(length)
    numeric = net.numeric
    dtype = np.int64 if numeric == "int" else np.float64

    recorded = {p.name for p in net.populations} if record is True else set(record or ())
    unknown = recorded - {p.name for p in net.populations}
    if unknown:
        raise UsageError(f"cannot record unknown populations: {', '.join(sorted(unknown))}")
    traces: dict[str, np.ndarray] = {}
    for name in recorded:
        pop = net.population(name)
        if pop.compartment.sends:
            traces[name] = np.zeros((batch, length, pop.size), dtype)
        if record_internals:
            for state in pop.compartment.states:
                traces[f"{name}.{state}"] = np.zeros((batch, length, pop.size), dtype)
            if pop.compartment.input_factor:
                traces[f"{name}.in"] = np.zeros((batch, length, pop.input_width), dtype)

    # Each population keeps its last (max outgoing delay + 1) messages in a ring.
    depth = {p.name: 1 for p in net.populations}
    for syn in net.synapses:
        depth[syn.src] = max(depth[syn.src], syn.delay + 1)
    history = {
        p.name: np.zeros((depth[p.name], batch, p.size), dtype)
        for p in net.populations
        if p.compartment.sends
    }
    states = {p.name: zeros_state(p, batch, numeric) for p in net.populations}
    incoming = {p.name: net.incoming(p.name) for p in net.populations}
    steps = STEPS[numeric]
    fmt = net.formats
    peak: dict[str, float] = {}
    spike_sums = {p.name: 0.0 for p in net.populations if p.compartment.spiking}

    def track(key: str, value: np.ndarray) -> None:
        if value.size:
            peak[key] = max(peak.get(key, 0.0), float(np.abs(value).max()))

    for t in range(total_steps):
        sent: dict[str, np.ndarray] = {}
        for pop in net.populations:
            model_t, phase = divmod(t - latency[pop.name], ticks)
            if phase:  # idle tick (time-multiplexing): state kept, nothing sent
                if pop.name in history:
                    sent[pop.name] = np.zeros((batch, pop.size), dtype)
                continue
            if pop.kind == "input":
                out = data[:, model_t] if model_t < length else np.zeros((batch, pop.size), dtype)
            elif pop.kind == "bias":
                value = pop.params["value"] if model_t < length else 0
                out = np.full((batch, pop.size), value, dtype)
            else:
                a = np.zeros((batch, pop.input_width), dtype)
                for syn in incoming[pop.name]:
                    step = t - 1 - syn.delay
                    if step < 0:
                        continue
                    ring = history[syn.src]
                    a += _apply(syn, ring[step % ring.shape[0]], numeric, events)
                out = steps[pop.kind](pop, states[pop.name], a, fmt, events)
            sent[pop.name] = out
            in_window = 0 <= model_t < length
            if pop.name in spike_sums and in_window:
                spike_sums[pop.name] += float(out.sum())
            if peaks and in_window:
                _track_population(track, pop, out, states[pop.name], a if pop.input_width else None)
            if pop.name in recorded and in_window:
                if pop.name in traces:
                    traces[pop.name][:, model_t] = out
                if record_internals:
                    for state_name, value in states[pop.name].items():
                        traces[f"{pop.name}.{state_name}"][:, model_t] = value
                    if pop.compartment.input_factor:
                        traces[f"{pop.name}.in"][:, model_t] = a
        for name, out in sent.items():
            if name in history:
                ring = history[name]
                ring[t % ring.shape[0]] = out

    readout = states[net.readout.name]["acc"]
    logits = readout.astype(np.float64) * net.output_scale
    if net.readout.attrs["mode"] == "mean":
        logits = logits / length
    return SimResult(
        logits=logits,
        readout=readout.copy(),
        traces=traces,
        events=dict(events.counts),
        latency=latency,
        steps=total_steps,
        peaks=peak,
        spike_rates={
            name: total / (batch * length * net.population(name).size)
            for name, total in spike_sums.items()
        },
    )


def _track_population(track, pop, out, state: dict, a: np.ndarray | None) -> None:
    track(pop.name, out)
    for name, value in state.items():
        track(f"{pop.name}.{name}", value)
    if a is not None:
        track(f"{pop.name}.in", a)
        if pop.compartment.input_factor == 2:
            track(f"{pop.name}.in.0", a[:, : pop.size])
            track(f"{pop.name}.in.1", a[:, pop.size :])
