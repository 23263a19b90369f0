"""The reference simulator: runs a Netlist exactly as docs/numerics.md specifies.

The run goes tile by tile of ticks and, in a tile, component by component of the plan
(reference.plan): a synapse is one product over the tile's ticks, a population's state
recursion a loop over them (reference.sequences; docs/compiler.md, "Reference
simulator"). The arithmetic of one tick is reference.kinds. Dense integer products are
summed with float64 BLAS, which is exact because the netlist validator bounds every sum
below 2**53; sparse ones in int64 by a compiled loop (reference.loops).

A sequence of L inputs takes net.total_ticks(L) simulation steps (ticks): a population
at latency k works on model step t at tick ticks_per_step * t + k and is idle (keeps its
state, sends zero) at every other tick. Traces are returned aligned to model time, so
the trace of every population has L steps whatever its latency.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import UsageError
from snncompile.ir.netlist import Netlist, Synapse
from snncompile.reference import malloc
from snncompile.reference.kinds import STEPS, Events, saturate, zeros_state
from snncompile.reference.plan import plan_for
from snncompile.reference.sequences import run_sequence

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
    steps: the network steps (ticks) run, summed when a batch ran as several runs;
    peaks: when asked for, the largest magnitude over the run of every message
           ("<name>"), state ("<name>.<state>") and input half ("<name>.in.0", ".in.1");
    spike_rates: mean message of every spiking population over the input window;
    activity: when asked for, the fraction of nonzero messages of every population that
              sends, over the input window (the Loihi 2 estimate's graded rates).
    """

    logits: np.ndarray
    readout: np.ndarray
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    latency: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    peaks: dict[str, float] = field(default_factory=dict)
    spike_rates: dict[str, float] = field(default_factory=dict)
    activity: dict[str, float] = field(default_factory=dict)


def encode_input(net: Netlist, x: np.ndarray, events: Events | None = None) -> np.ndarray:
    """Float model input (B, L, d_in) -> what the input population sends."""
    x = np.asarray(x, dtype=np.float64)
    if net.numeric == "float64":
        return x
    # Bounded in float first: beyond 2**63 the int64 cast wraps (1e300 became negative).
    # One past the limit still counts as a saturation event below.
    edge = float(1 << (net.formats.message_bits - 1))
    scaled = np.clip(np.rint(x / net.input_scale), -edge, edge)
    ints = scaled.astype(np.int64)
    return saturate(ints, net.formats.message_bits, events or Events(), net.input.name)


def check_run_input(x: Any, width: int) -> np.ndarray:
    """The inputs of one run, as every backend (reference, Lava, ONNX) takes them: real
    numbers (bool, int or float) of shape (batch, steps, width), batch and steps at least
    1, all finite; returned as float64. UsageError naming the first fault (a complex
    input was cast with its imaginary part dropped, a batch of 0 divided by zero)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise UsageError(f"input must hold real numbers, got {x.dtype}")
    if x.ndim != 3 or x.shape[2] != width:
        raise UsageError(f"input must have shape (batch, steps, {width}), got {x.shape}")
    if x.shape[0] == 0:
        raise UsageError("input has no samples (batch size 0)")
    if x.shape[1] == 0:
        raise UsageError("input has no time steps")
    return finite_float64(x, "input")


def finite_float64(x: np.ndarray, what: str) -> np.ndarray:
    """x as float64, UsageError if any value is NaN or inf there: in x already, or beyond
    float64's range (a longdouble of 1e4000 turned inf in the cast, with numpy's overflow
    warning on stderr, and was then called "NaN or inf")."""
    with np.errstate(over="ignore", invalid="ignore"):
        x64 = np.ascontiguousarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x64)):
        if np.all(np.isfinite(x)):
            raise UsageError(f"{what} holds values beyond the float64 range")
        raise UsageError(f"{what} holds NaN or inf")
    return x64


def recorded_names(record: bool | str | Iterable[str] | None) -> set[str]:
    """The names a `record` argument that is not True asks for ("a" is one name)."""
    return {record} if isinstance(record, str) else set(record or ())


def _may_wrap(syn: Synapse, msg: np.ndarray, acc: np.ndarray) -> bool:
    """Whether a sum in acc = W @ msg is outside int32. Bounding the sums by the messages'
    largest magnitude is cheaper when fewer messages come in than sums go out (an SSM's
    input fan-out), and settles it whenever the bound is inside."""
    if acc.size == 0:
        return False
    if msg.size < acc.size:
        bound = float(np.abs(msg).max(initial=0)) * syn.max_row_abs_sum
        if bound < INT32_LIMIT - 1:
            return False
    return bool(acc.max() >= INT32_LIMIT or acc.min() < -INT32_LIMIT)


_SPARSE_INT: weakref.WeakKeyDictionary[Synapse, tuple] = weakref.WeakKeyDictionary()
# Mean run length from which a fan-out loop beats the gather: measured on 224 rows, runs
# of 33 (an SSM's modes per channel) took 0.4x the gather's time, runs of 1 took 4x.
FAN_OUT_RUN = 8


def _sparse_int(syn: Synapse) -> tuple:
    """A sparse synapse's compiled loop and its weight arrays (int64): when every
    destination has at most one stored entry, a fan-out over runs of destinations that
    read one source if the runs are long, else a gather; otherwise spans when every row
    reads consecutive sources, else the CSR (indptr, indices, weights).
    Cached per Synapse object, like _ROW_ABS_SUMS: a netlist's weights never change."""
    if syn not in _SPARSE_INT:
        from snncompile.reference import loops  # numba, imported on the first run

        weight = sparse.csr_matrix(syn.weight)  # whatever sparse format it came in
        per_row = np.diff(weight.indptr)
        if per_row.max(initial=0) <= 1:
            rows = np.repeat(np.arange(weight.shape[0]), per_row)
            indices, values = np.zeros((2, weight.shape[0]), np.int64)
            indices[rows], values[rows] = weight.indices, weight.data
            starts = np.flatnonzero(np.diff(indices, prepend=-1))  # runs of one source
            if len(indices) >= FAN_OUT_RUN * len(starts):
                runs = np.append(starts, len(indices)).astype(np.int64)
                _SPARSE_INT[syn] = (loops.fan_out_synapse_int, runs, indices[starts], values)
            else:
                _SPARSE_INT[syn] = (loops.gather_synapse_int, indices, values)
        else:
            spans = _spans(weight)
            if spans is not None:
                _SPARSE_INT[syn] = (loops.span_synapse_int, *spans)
            else:
                arrays = (weight.indptr, weight.indices, weight.data)
                _SPARSE_INT[syn] = (loops.csr_synapse_int, *(a.astype(np.int64) for a in arrays))
    return _SPARSE_INT[syn]


# How many more products than stored weights spans may compute (zeros in a row's gaps)
# and still beat the indexed loop (3x slower per product on an SSM's readout).
SPAN_PADDING = 2


def _spans(weight: sparse.csr_matrix) -> tuple[np.ndarray, ...] | None:
    """loops.span_synapse_int's (indptr, firsts, weights) when each row's sources lie in
    a range at most SPAN_PADDING times its stored weights (an SSM's readout of a channel's
    modes; a weight quantized to 0 leaves a gap, filled with a 0), else None."""
    per_row = np.diff(weight.indptr)
    nonempty = per_row > 0
    starts = weight.indptr[:-1][nonempty]  # reduceat over the rows that hold weights
    firsts = np.zeros(len(per_row), np.int64)
    lasts = np.full(len(per_row), -1, np.int64)
    firsts[nonempty] = np.minimum.reduceat(weight.indices, starts)
    lasts[nonempty] = np.maximum.reduceat(weight.indices, starts)
    lengths = lasts - firsts + 1
    if lengths.sum() > SPAN_PADDING * weight.nnz:
        return None
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.repeat(np.arange(len(per_row)), per_row)
    padded = np.zeros(int(indptr[-1]), np.int64)
    # Summed, not assigned: a CSR may hold one entry twice, and the products add.
    np.add.at(padded, indptr[rows] + weight.indices - firsts[rows], weight.data.astype(np.int64))
    return indptr, firsts, padded


def _deliver(
    syn: Synapse, msg: np.ndarray, target: np.ndarray, numeric: str, events: Events, add: bool
) -> None:
    """target (rows, dst size) += shift(W @ msg, weight_exp), for msg (rows, src size);
    with add=False, target = that (an int netlist's first synapse into a tile's inputs
    writes them, so they need not be zeroed first: 9% of a batch-8 run)."""
    if numeric == "int" and sparse.issparse(syn.weight):
        # Sparse int synapses (an SSM's fan-out and readout): one compiled loop does the
        # exact int64 product, Lava's int32 wrap and the shift and adds into the target,
        # with no float copies. Int sums do not depend on the order of the synapses.
        loop, *weights = _sparse_int(syn)
        messages = np.ascontiguousarray(msg, dtype=np.int64)
        events.add(syn.name, loop(*weights, syn.weight_exp, messages, target, add))
    elif add:
        target += _apply(syn, msg, numeric, events)
    else:
        target[...] = _apply(syn, msg, numeric, events)


def _apply(syn: Synapse, msg: np.ndarray, numeric: str, events: Events) -> np.ndarray:
    """One synapse's contribution: shift(W @ msg, weight_exp), for msg (B, src size)."""
    if sparse.issparse(syn.weight):
        # CSR times a C-ordered (src size, rows) block runs row by row over contiguous memory.
        product = (syn.weight @ np.ascontiguousarray(msg.T, dtype=np.float64)).T
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
    progress: Callable[[float], None] | None = None,
    activity: bool = False,
) -> SimResult:
    """Run `net` on float inputs x (B, L, d_in); see SimResult.

    record: True for traces of every population, or an iterable of population names;
    record_internals: also trace the recorded populations' states and inputs;
    peaks: track the largest magnitude of every message, state and input (calibration)
    without storing traces;
    progress: called with the fraction of the run done (in (0, 1]) after each tile;
    activity: count the nonzero messages of every sending population (SimResult.activity)
    without storing traces.
    """
    x = check_run_input(x, net.input.size)
    recorded = {p.name for p in net.populations} if record is True else recorded_names(record)
    unknown = recorded - {p.name for p in net.populations}
    if unknown:
        raise UsageError(f"cannot record unknown populations: {', '.join(sorted(unknown))}")
    events = Events()
    data = encode_input(net, x, events)
    run = _Run(net, data, recorded, record_internals, peaks, events, activity)
    run.run(progress)
    return run.result()


def simulate_into(net: Netlist, x: np.ndarray, sink: Any) -> tuple[Iterator[float], Callable]:
    """simulate(net, x, record=True, record_internals=True) whose traces go to `sink` (a
    verify.stream.TraceSink) tile by tile instead of into arrays: (the run's tiles, to
    advance one at a time, each yielding the fraction done; a function giving the
    SimResult, without traces, once they are exhausted)."""
    x = check_run_input(x, net.input.size)
    events = Events()
    data = encode_input(net, x, events)
    names = {p.name for p in net.populations}
    run = _Run(net, data, names, True, False, events, sink=sink)
    return run.tiles(), run.result


# Messages and inputs one tile of ticks may hold (all populations, the whole batch).
# A small batch runs its whole sequence as one tile (few, long array operations); a
# large one runs short tiles, fewer ticks each the larger the batch, and every tile
# pays the Python calls of every population and synapse once. Larger tiles pay off only
# if glibc keeps a freed tile's memory for the next (reference/malloc.py): measured on
# the bundled spike-ssm (76 KB per row of ticks x batch; AMD EPYC, 2026-12-05), with the
# CLI's malloc settings 32 MiB ran 1.12x / 1.22x / 1.36x faster than 8 MiB at batch 8 /
# 32 / 128; with glibc's defaults (a library user's process) 32 MiB ran 1.6x / 1.3x
# slower at batch 8 / 32 (its tiles crossing the trim threshold, faulted in again).
# A batch one model step of which exceeds the budget runs in groups of samples, each
# within it (_Run.group_size): its one-step tiles were hundreds of MB, past the largest
# mmap threshold glibc allows (32 MiB), so every array of every tile was a fresh mmap
# faulted in page by page, whatever the settings.
TILE_BUDGET_BYTES = 8 << 20  # glibc's defaults
TUNED_TILE_BUDGET_BYTES = 32 << 20  # after malloc.tune_malloc_for_tiles()


def tile_budget_bytes() -> int:
    """The tile budget this process's allocator settings suit (see above)."""
    return TUNED_TILE_BUDGET_BYTES if malloc.tuned() else TILE_BUDGET_BYTES


def tick_bytes_per_sample(net: Netlist) -> int:
    """Bytes of one sample's messages and inputs of every population at one tick: what
    tiles and groups are sized by (parts.bytes_per_input charges two model steps)."""
    return 8 * sum(p.size + p.input_width for p in net.populations)


@dataclass
class _Group:
    """Samples of the batch (consecutive rows) that run together, with their own
    populations' states and message histories: samples never interact, so a batch run in
    groups is the same run (integer netlists exactly; docs/compiler.md, "Tiles")."""

    rows: slice
    states: dict[str, dict[str, np.ndarray]]
    history: dict[str, np.ndarray]

    @property
    def batch(self) -> int:
        return self.rows.stop - self.rows.start


class _Run:
    """One simulation, tile by tile of ticks, in groups of samples (one group unless the
    batch is large). In a tile, a group runs the plan's components one after another,
    each over all the tile's ticks; a population's messages of the last (longest
    outgoing delay + 1) ticks carry over to the group's next tile as its history."""

    def __init__(
        self, net, data, recorded, record_internals, peaks, events, activity=False, sink=None
    ):
        self.net, self.data, self.events = net, data, events
        self.batch, self.length = data.shape[:2]
        self.plan = plan_for(net)
        self.latency = net.latency()
        self.ticks = net.ticks_per_step
        self.total = net.total_ticks(self.length)
        self.dtype = np.int64 if net.numeric == "int" else np.float64
        self.recorded, self.record_internals, self.peaks = recorded, record_internals, peaks
        self.traces: dict[str, np.ndarray] = {}
        # Netlist order, not the set's: trace dicts and a streamed comparison's
        # per-trace counts come out in the same order in every process.
        for pop in (p for p in net.populations if p.name in recorded):
            name = pop.name
            widths = {name: pop.size} if pop.compartment.sends else {}
            if record_internals:
                widths.update({f"{name}.{s}": pop.size for s in pop.compartment.states})
                if pop.input_width:
                    widths[f"{name}.in"] = pop.input_width
            for key, width in widths.items():
                if sink is not None:
                    sink.declare(key, width)
                else:
                    self.traces[key] = np.zeros((self.batch, self.length, width), self.dtype)
        self.sink = sink  # verify.stream.TraceSink: traces go there, tile by tile
        self.peak: dict[str, float] = {}
        self.spike_sums = {p.name: 0.0 for p in net.populations if p.compartment.spiking}
        senders = [p.name for p in net.populations if p.compartment.sends]
        self.nonzero: dict[str, int] | None = dict.fromkeys(senders, 0) if activity else None
        self.depth = {p.name: 1 for p in net.populations}
        for syn in net.synapses:
            self.depth[syn.src] = max(self.depth[syn.src], syn.delay + 1)
        size = self.group_size()
        self.row_groups = [slice(i, min(i + size, self.batch)) for i in range(0, self.batch, size)]
        self.readouts: list[np.ndarray] = []  # each group's final readout state, in order
        # key -> (first model step, the groups' values) of the tile, for the sink
        self.pending: dict[str, tuple[int, list[np.ndarray]]] = {}

    def _group(self, rows: slice) -> _Group:
        batch, net = rows.stop - rows.start, self.net
        return _Group(
            rows,
            states={p.name: zeros_state(p, batch, net.numeric) for p in net.populations},
            history={
                p.name: np.zeros((self.depth[p.name], batch, p.size), self.dtype)
                for p in net.populations
                if p.compartment.sends
            },
        )

    def group_size(self) -> int:
        """Samples per group: the whole batch while one model step of it fits
        tile_budget_bytes(), else as many as fit (at least one), in groups as equal as
        can be."""
        fit = max(1, tile_budget_bytes() // (self.ticks * tick_bytes_per_sample(self.net)))
        groups = -(-self.batch // fit)
        return -(-self.batch // groups)

    def tile_ticks(self) -> int:
        """Ticks per tile: a multiple of ticks_per_step whose messages and inputs of every
        population, over a group's samples, fit tile_budget_bytes() (kernels add a few
        state-sized temporaries of one population, so the peak is a small multiple of it)."""
        largest = self.row_groups[0]
        per_tick = tick_bytes_per_sample(self.net) * (largest.stop - largest.start)
        tile = max(1, tile_budget_bytes() // per_tick) // self.ticks * self.ticks
        return min(max(tile, self.ticks), self.total)

    def run(self, progress: Callable[[float], None] | None = None) -> None:
        for fraction in self.tiles():
            if progress is not None:
                progress(fraction)

    def tiles(self) -> Iterator[float]:
        """Run tile by tile, yielding the fraction of the run done after each. Group by
        group, so that one group's states and histories are alive at a time (the whole
        batch's held 642 MiB of heap at 6,000 inputs, faulted in by each run); with a
        sink, which takes each tile's traces of the whole batch, every group runs a tile
        before the next tile."""
        tile = self.tile_ticks()
        spans = [(start, min(self.total, start + tile)) for start in range(0, self.total, tile)]
        if self.sink is None:
            for index, rows in enumerate(self.row_groups):
                group = self._group(rows)
                for start, stop in spans:
                    self._run_tile(group, start, stop)
                    yield (index + stop / self.total) / len(self.row_groups)
                self.readouts.append(group.states[self.net.readout.name]["acc"])
            return
        groups = [self._group(rows) for rows in self.row_groups]
        for start, stop in spans:
            for group in groups:
                self._run_tile(group, start, stop)
            for key, (first_step, values) in self.pending.items():
                whole = values[0] if len(values) == 1 else np.concatenate(values)
                self.sink.put(key, first_step, whole)
            self.pending.clear()
            yield stop / self.total
        self.readouts = [group.states[self.net.readout.name]["acc"] for group in groups]

    def _run_tile(self, group: _Group, start: int, stop: int) -> None:
        sent: dict[str, np.ndarray] = {}  # name -> messages of this tile's ticks
        for comp in self.plan.components:
            if comp.cyclic:
                self._run_cycle(group, comp, sent, start, stop)
            else:
                pop = comp.populations[0]
                a = self._delivered(group, comp.incoming, pop.input_width, sent, stop - start)
                self._run_alone(group, pop, a, sent, start, stop)
        for name, messages in sent.items():
            group.history[name] = self._last(group, name, messages)

    def _last(self, group: _Group, name: str, messages: np.ndarray) -> np.ndarray:
        """The messages of the last `depth` ticks, the tile's after the history's (a view:
        copies made bench_reference's batch of 360, whose one-tick tiles they are whole,
        about 12% slower)."""
        depth = self.depth[name]
        if messages.shape[0] >= depth:
            return messages[messages.shape[0] - depth :]
        return np.concatenate([group.history[name][messages.shape[0] :], messages])

    def _delivered(self, group: _Group, synapses, width: int, sent, count: int) -> np.ndarray:
        """What `synapses` deliver over a tile's `count` ticks, summed in their order (a
        tick's order; float64 sums depend on it): (count, B, width). In an int netlist
        the first synapse writes the array rather than adding into zeros (zeroing was 9%
        of a batch-8 run); float64 sums start from 0.0 as a tick's do (0.0 + -0.0 is 0.0)."""
        shape = (count, group.batch, width)
        writes = self.dtype == np.int64 and len(synapses) > 0
        a = np.empty(shape, self.dtype) if writes else np.zeros(shape, self.dtype)
        for index, syn in enumerate(synapses):
            self._add_synapse(group, a, syn, sent, add=index > 0 or not writes)
        return a

    def _add_synapse(self, group: _Group, a: np.ndarray, syn, sent, add: bool) -> None:
        """a (tile ticks, B, input width) += what syn delivers (a = it, if not add): tick
        i of the tile takes the message of its tick i - 1 - delay, from the source's
        history for i <= delay, from its messages of this tile after that. Rows are
        independent, so the products over the tile are those of one tick at a time
        (exactly, in int netlists)."""
        count = a.shape[0]
        early = min(count, syn.delay + 1)
        first = self.depth[syn.src] - 1 - syn.delay
        parts = [(a[:early], group.history[syn.src][first : first + early])]
        if count > early:
            parts.append((a[early:], sent[syn.src][: count - early]))
        for target, msg in parts:
            rows = msg.shape[0] * group.batch
            flat = target.view()
            flat.shape = (rows, -1)  # raises rather than copy: the sums must land in `a`
            _deliver(syn, msg.reshape(rows, -1), flat, self.net.numeric, self.events, add)

    def _active(self, pop, start: int) -> tuple[slice, int]:
        """(the tile's ticks pop works at, as a slice of the tile; the model step of the
        first). A tile starts at a multiple of ticks_per_step."""
        lat = self.latency[pop.name]
        return slice(lat % self.ticks, None, self.ticks), (
            start + lat % self.ticks - lat
        ) // self.ticks

    def _run_alone(self, group: _Group, pop, a, sent, start, stop) -> None:
        active, first_step = self._active(pop, start)
        a = a[active]
        count = a.shape[0]
        trajectory: dict[str, np.ndarray] = {}
        if pop.kind in ("input", "bias"):
            out = np.zeros((count, group.batch, pop.size), self.dtype)
            steps = np.arange(first_step, first_step + count)
            sending = (steps >= 0) & (steps < self.length)
            if pop.kind == "input":
                out[sending] = self.data[group.rows].transpose(1, 0, 2)[steps[sending]]
            else:  # the bias sends its value until the last model step, from tick 0
                out[steps < self.length] = pop.params["value"]
        else:
            numeric, fmt, keep = self.net.numeric, self.net.formats, self._keeps_states(pop)
            state = group.states[pop.name]
            out, trajectory = run_sequence(pop, a, state, fmt, numeric, self.events, keep)
        if pop.compartment.sends:
            if self.ticks == 1:
                sent[pop.name] = out
            else:  # idle ticks send zero
                sent[pop.name] = np.zeros((stop - start, *out.shape[1:]), self.dtype)
                sent[pop.name][active] = out
        self._observe(group, pop, out, trajectory, a if pop.input_width else None, first_step)

    def _run_cycle(self, group: _Group, comp, sent, start, stop) -> None:
        """The populations of a cycle tick by tick; a lagged synapse reads a message its
        source sent at an earlier tick of this same loop. A tick sums a population's
        synapses in netlist order (float64 sums depend on it): those from earlier
        components are computed for the whole tile first, one array each."""
        numeric, fmt, steps = self.net.numeric, self.net.formats, STEPS[self.net.numeric]
        count = stop - start
        # name -> messages of ticks start - depth .. stop - 1 (history, then this tile)
        buffers, trajectories, inputs, delivered = {}, {}, {}, {}
        actives = {p.name: self._active(p, start) for p in comp.populations}
        for pop in comp.populations:
            tile = np.zeros((count, group.batch, pop.size), self.dtype)
            buffers[pop.name] = np.concatenate([group.history[pop.name], tile])
            shape = (len(range(count)[actives[pop.name][0]]), group.batch, pop.size)
            states = group.states[pop.name] if self._keeps_states(pop) else {}
            trajectories[pop.name] = {s: np.zeros(shape, self.dtype) for s in states}
            inputs[pop.name] = np.zeros((count, group.batch, pop.input_width), self.dtype)
        for syn in comp.incoming:
            width = inputs[syn.dst].shape[2]
            delivered[syn.name] = self._delivered(group, [syn], width, sent, count)
        incoming = {
            p.name: [s for s in self.net.synapses if s.dst == p.name] for p in comp.populations
        }
        for t in range(count):
            for pop in comp.populations:
                index, phase = divmod(t - actives[pop.name][0].start, self.ticks)
                if phase:  # idle tick (time-multiplexing): state kept, nothing sent
                    continue
                a = inputs[pop.name][t]
                for syn in incoming[pop.name]:
                    if syn.name in delivered:
                        a += delivered[syn.name][t]
                    else:
                        msg = buffers[syn.src][t + self.depth[syn.src] - 1 - syn.delay]
                        _deliver(syn, msg, a, numeric, self.events, add=True)
                out = steps[pop.kind](pop, group.states[pop.name], a, fmt, self.events)
                buffers[pop.name][t + self.depth[pop.name]] = out
                for name, values in trajectories[pop.name].items():
                    values[index] = group.states[pop.name][name]
        for pop in comp.populations:
            active, first_step = actives[pop.name]
            sent[pop.name] = buffers[pop.name][self.depth[pop.name] :]
            out = sent[pop.name][active]
            a = inputs[pop.name][active]
            self._observe(group, pop, out, trajectories[pop.name], a, first_step)

    def _keeps_states(self, pop) -> bool:
        return self.peaks or (self.record_internals and pop.name in self.recorded)

    def _observe(self, group: _Group, pop, out, trajectory, a, first_step) -> None:
        """Traces, peaks and spike counts of the model steps 0..L-1 among a tile's active
        ticks; arrays are (active ticks, the group's samples, width), the first at model
        step first_step. The sink gets a tile's traces of the whole batch (self.pending)."""
        lo, hi = max(0, -first_step), min(out.shape[0], self.length - first_step)
        if hi <= lo:
            return
        window = slice(lo, hi)
        out = out[window]
        if pop.name in self.spike_sums:
            self.spike_sums[pop.name] += float(out.sum())
        if self.nonzero is not None and pop.name in self.nonzero:
            self.nonzero[pop.name] += int(np.count_nonzero(out))
        states = {name: values[window] for name, values in trajectory.items()}
        a = None if a is None else a[window]
        if self.peaks:
            self._track(pop, out, states, a)
        if pop.name not in self.recorded:
            return
        series = {pop.name: out} if pop.compartment.sends else {}
        if self.record_internals:
            series.update({f"{pop.name}.{name}": v for name, v in states.items()})
            if a is not None:
                series[f"{pop.name}.in"] = a
        steps = slice(first_step + lo, first_step + hi)
        for key, values in series.items():
            if self.sink is not None:
                self.pending.setdefault(key, (steps.start, []))[1].append(values.transpose(1, 0, 2))
            else:
                self.traces[key][group.rows, steps] = values.transpose(1, 0, 2)

    def _track(self, pop, out, states, a) -> None:
        values = {pop.name: out, **{f"{pop.name}.{k}": v for k, v in states.items()}}
        if a is not None:
            values[f"{pop.name}.in"] = a
            if pop.compartment.input_factor == 2:
                values[f"{pop.name}.in.0"] = a[..., : pop.size]
                values[f"{pop.name}.in.1"] = a[..., pop.size :]
        for key, value in values.items():
            if value.size:
                self.peak[key] = max(self.peak.get(key, 0.0), float(np.abs(value).max()))

    def result(self) -> SimResult:
        net, length = self.net, self.length
        readout = np.concatenate(self.readouts)
        logits = readout.astype(np.float64) * net.output_scale
        if net.readout.attrs["mode"] == "mean":
            logits = logits / length
        return SimResult(
            logits=logits,
            readout=readout,
            traces=self.traces,
            events=dict(self.events.counts),
            latency=self.latency,
            steps=self.total,
            peaks=self.peak,
            spike_rates={
                name: total / (self.batch * length * net.population(name).size)
                for name, total in self.spike_sums.items()
            },
            activity={
                name: count / (self.batch * length * net.population(name).size)
                for name, count in (self.nonzero or {}).items()
            },
        )
