"""Rung 3 of verification: a target runs the integer netlist exactly as the reference does.

    check = check_backend(net, x, "lava")   # every population, every model step

Both runs give the messages of every population that sends, every population's states
and summed input (record_internals), and the readout, aligned to model time
(docs/numerics.md: a population at latency k works on model step t at simulation step,
or tick, T t + k, with T = ticks_per_step; Lava's first step is simulation step 0 + 1,
which its runner undoes; one ONNX call is one model step of T ticks), and the readout
state. Exact means equal: there is no tolerance to declare.

They are compared while they run (verify.stream): recording everything costs about 9 MB
per input for the bundled sdigits models on each side (and Lava's side peaks at about 1.8
times its traces), so the 360 sdigits test inputs through Lava took 4.1 GB in four
recorded parts (12.5 GB in one) and 53 s; compared while running, 2.3 GB and 30 s, in
two Lava runs (measured side by side, 2026-12-04). check_backend(record=True) keeps the
recorded comparison, in parts within TRACE_BUDGET_BYTES, as the tests' oracle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snncompile.errors import UsageError
from snncompile.ir.netlist import Netlist
from snncompile.reference.parts import equal_parts, part_progress
from snncompile.verify.traces import Divergence, RunDiff, diff_runs, earliest_divergence

# One side's recorded traces of one part of the batch (int64 or float64 values).
TRACE_BUDGET_BYTES = 1 << 30

# How each backend's simulation steps line up with the reference's (docs/targets.md).
ALIGNMENT = {
    "lava": "Lava step s = reference step s - 1 (Lava counts from 1); then the same "
    "per-population latency as the reference",
}


def alignment(backend: str, ticks_per_step: int) -> str:
    """How `backend`'s steps line up with the reference's ticks."""
    if backend == "onnx" and ticks_per_step > 1:
        t = ticks_per_step
        return (
            f"onnx call c = reference ticks {t}c .. {t}c + {t - 1} (one call per model step; "
            f"a population at latency k works in call c on model step c - k // {t})"
        )
    text = ALIGNMENT.get(backend, "same steps as the reference")
    if ticks_per_step > 1:
        text += (
            f"; a population at latency k works on model step t at tick {ticks_per_step} t + k "
            "and is idle at the other ticks"
        )
    return text


@dataclass
class BackendCheck:
    """The outcome of one reference-vs-backend comparison."""

    backend: str
    n: int
    steps: int  # model steps per input
    simulated_steps: int  # ticks run per input: ticks_per_step (steps - 1) + output_latency + 1
    output_latency: int  # ticks
    alignment: str
    populations: int  # populations whose traces were compared
    traces: int  # traces compared: messages, states and summed inputs
    values_compared: int
    values_differing: int  # -1 when the runs could not be compared (names or shapes)
    divergence: str | None  # the first difference, described; None when exact
    reference_seconds: float
    backend_seconds: float  # streamed: the wall time less the reference's tiles
    ticks_per_step: int = 1  # simulation steps (ticks) per model step
    runs: int = 1  # parts of the batch run and compared one after the other
    streamed: bool = False  # compared while running, not from recorded traces

    @property
    def exact(self) -> bool:
        return self.divergence is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


def check_backend(
    net: Netlist,
    x: np.ndarray,
    backend: str,
    *,
    record: bool = False,
    budget_bytes: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> BackendCheck:
    """Run x (B, L, d_in) on the reference and on `backend` and compare every value.

    By default both runs are compared while they go (_check_streaming: about one
    reference tile of traces held, any sequence length). record=True records every
    trace of both runs and compares them whole (diff_runs), in parts of the batch whose
    traces fit `budget_bytes` per side (default: TRACE_BUDGET_BYTES as it is at the
    call; one input beyond it is a UsageError): the plainest comparison, which the tests
    hold the streamed one to. progress: the fraction of the backend's runs done."""
    from snncompile.reference.simulator import check_run_input, simulate
    from snncompile.simulate import run_backend

    x = check_run_input(x, net.input.size)  # a batch of 0 compared nothing, "exact"
    if not record:
        return _check_streaming(net, x, backend, progress)
    n = int(x.shape[0])
    part = traced_part_size(net, n, int(x.shape[1]), budget_bytes)
    tally = _Tally([p.name for p in net.populations])
    starts = range(0, n, part)
    for index, first in enumerate(starts):
        xs = x[first : first + part]
        start = time.perf_counter()
        expected = simulate(net, xs, record=True, record_internals=True)
        tally.reference_seconds += time.perf_counter() - start
        start = time.perf_counter()
        actual = run_backend(
            backend, net, xs, record=True, internals=True,
            progress=part_progress(progress, index, len(starts)),
        )  # fmt: skip
        tally.backend_seconds += time.perf_counter() - start
        tally.traces = tuple(expected.traces)
        compared = sum(int(np.size(t)) for t in expected.traces.values())
        diff = diff_runs(expected, actual, tally.order)
        if not tally.add(first, compared + int(np.size(expected.readout)), diff):
            break
    return tally.check(net, x, backend, streamed=False)


def traced_bytes_per_input(net: Netlist, steps: int) -> int:
    """Bytes of one input's traces on one side: the readout, and per model step every
    population's messages, states and summed input."""
    values = net.readout.size
    for pop in net.populations:
        width = pop.size if pop.compartment.sends else 0
        width += len(pop.compartment.states) * pop.size + pop.input_width
        values += steps * width
    return 8 * values


def traced_part_size(net: Netlist, n: int, steps: int, budget_bytes: int | None = None) -> int:
    """Inputs per part: equal parts, each within the budget; UsageError when one input's
    traces alone are beyond it (the streamed check takes any length)."""
    budget_bytes = TRACE_BUDGET_BYTES if budget_bytes is None else budget_bytes
    per_input = traced_bytes_per_input(net, steps)
    if per_input > budget_bytes:
        raise UsageError(
            f"one input of {steps} steps has {per_input / 2**30:.1f} GiB of traces; "
            f"parts hold at most {budget_bytes / 2**30:.0f} GiB: compare it while running"
        )
    return equal_parts(n, per_input, budget_bytes)


def _check_streaming(
    net: Netlist, x: np.ndarray, backend: str, progress: Callable[[float], None] | None
) -> BackendCheck:
    """check_backend compared while running: both runs hand their traces to a
    verify.stream.StreamComparison as they make them (the reference a tile at a time,
    when the target needs it), in parts of the batch that fit one run of the target.
    Every value is compared, as in the recorded check."""
    from snncompile.reference.simulator import simulate_into
    from snncompile.simulate import run_backend
    from snncompile.verify.stream import StreamComparison

    n, steps = int(x.shape[0]), int(x.shape[1])
    part = n
    if backend == "lava":
        from snncompile.targets.lava.runner import copies_per_run

        part = copies_per_run(net, n)
    tally = _Tally([p.name for p in net.populations])
    starts = range(0, n, part)
    for index, first in enumerate(starts):
        xs = x[first : first + part]
        reference = _OnDemand()
        comparison = StreamComparison(len(xs), steps, tally.order, reference)
        reference.tiles, result = simulate_into(net, xs, comparison.reference)
        start = time.perf_counter()
        actual = run_backend(
            backend, net, xs, record=True, internals=True,
            progress=part_progress(progress, index, len(starts)), sink=comparison.target,
        )  # fmt: skip
        mismatch = comparison.finish()
        tally.backend_seconds += time.perf_counter() - start - reference.seconds
        tally.reference_seconds += reference.seconds
        tally.traces = tuple(comparison.widths[0])
        if mismatch is not None:
            tally.add(first, 0, RunDiff(mismatch, -1))
            break
        expected = result()
        readout = diff_runs(expected, actual, tally.order)  # no traces: readout and logits
        diff = RunDiff(
            readout.message,
            readout.differing + comparison.differing if readout.differing >= 0 else -1,
            comparison.divergence(),
        )
        if not tally.add(first, comparison.compared + int(np.size(expected.readout)), diff):
            break
    return tally.check(net, x, backend, streamed=True)


@dataclass
class _Tally:
    """A check over parts of the batch: counts summed, the earliest divergence of all
    parts (sample numbers of the whole batch), or -1 once runs were not comparable."""

    order: list[str]
    compared: int = 0
    differing: int = 0
    runs: int = 0
    reference_seconds: float = 0.0
    backend_seconds: float = 0.0
    traces: tuple[str, ...] = ()
    divergences: list[tuple[Divergence, int]] = field(default_factory=list)
    other: str | None = None  # the first difference that is not a trace value's

    def add(self, first: int, compared: int, diff: RunDiff) -> bool:
        """One part starting at sample `first`; False when the runs could not be
        compared at all (names or shapes), which ends the check."""
        self.runs += 1
        self.compared += compared
        if diff.differing < 0:
            self.differing, self.divergences, self.other = -1, [], diff.message
            return False
        self.differing += diff.differing
        if diff.divergence is not None:
            self.divergences.append((diff.divergence, first))
        elif self.other is None:
            self.other = diff.message  # the readout or logits differ, or None
        return True

    def check(self, net: Netlist, x: np.ndarray, backend: str, streamed: bool) -> BackendCheck:
        divergence = earliest_divergence(self.divergences, self.order)
        # Population names hold dots; a state trace is "<population>.<state>".
        traced = {name.rsplit(".", 1)[0] for name in self.traces} | set(self.traces)
        steps = int(x.shape[1])
        return BackendCheck(
            backend=backend,
            n=int(x.shape[0]),
            steps=steps,
            simulated_steps=net.total_ticks(steps),
            output_latency=net.output_latency,
            alignment=alignment(backend, net.ticks_per_step),
            populations=sum(1 for p in net.populations if p.name in traced),
            traces=len(self.traces),
            values_compared=self.compared,
            values_differing=self.differing,
            divergence=divergence.describe() if divergence is not None else self.other,
            reference_seconds=self.reference_seconds,
            backend_seconds=self.backend_seconds,
            ticks_per_step=net.ticks_per_step,
            runs=self.runs,
            streamed=streamed,
        )


class _OnDemand:
    """The reference's tiles, run one per call when the comparison needs them (False
    once there are none left), and the seconds they took."""

    def __init__(self) -> None:
        self.tiles: Iterator[float] = iter(())
        self.seconds = 0.0

    def __call__(self) -> bool:
        start = time.perf_counter()
        more = next(self.tiles, None) is not None
        self.seconds += time.perf_counter() - start
        return more
