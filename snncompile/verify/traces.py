"""Compare two runs trace by trace and say where they first part.

The one comparator of the project: verify uses it for float-vs-quantized spikes (rung 2)
and for reference-vs-target runs (rung 3), the tests through tests/trace_compare.py.
Traces are (batch, model step, compartment) arrays keyed by population name, or by
"<population>.<state>" for states, which rank with their population.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from snncompile.reference.simulator import SimResult


@dataclass(frozen=True)
class Divergence:
    """The earliest differing value: model step first, then the population order given."""

    population: str
    step: int
    sample: int
    compartment: int
    expected: float
    actual: float
    differing: dict[str, int]  # trace name -> number of differing values

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, unit: str = "population", element: str = "compartment") -> str:
        """One line; `unit` and `element` name what the traces are keyed by and index
        (a NIR comparison's traces are whole NIR nodes and their neurons)."""
        tally = ", ".join(f"{k}: {v}" for k, v in self.differing.items())
        return (
            f"first divergence: {unit} {self.population!r} at model step {self.step} "
            f"(sample {self.sample}, {element} {self.compartment}): expected "
            f"{_number(self.expected)}, got {_number(self.actual)}; values differing per "
            f"trace: {tally}"
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _differs(expected: np.ndarray, actual: np.ndarray, atol: float) -> np.ndarray:
    if atol == 0:
        return expected != actual
    return ~np.isclose(expected, actual, rtol=0.0, atol=atol)


def first_divergence(
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    order: Sequence[str] = (),
    *,
    atol: float = 0.0,
) -> Divergence | None:
    """The first difference between two sets of traces (same names, same shapes), or None.

    Raises ValueError when the names or shapes differ: that is a bug in the caller, not
    a divergence of the computation.
    """
    if set(expected) != set(actual):
        raise ValueError(f"traces present in only one run: {sorted(set(expected) ^ set(actual))}")
    rank = _ranks(order)
    candidates = []  # (model step, rank, name, sample, compartment, expected, actual)
    counts: dict[str, int] = {}
    for name in expected:
        want, got = np.asarray(expected[name]), np.asarray(actual[name])
        if want.shape != got.shape:
            raise ValueError(f"trace {name!r}: shapes {want.shape} and {got.shape}")
        bad = np.argwhere(_differs(want, got, atol))
        if len(bad) == 0:
            continue
        counts[name] = len(bad)
        b, t, i = min(bad.tolist(), key=lambda idx: (idx[1], idx[0], idx[2]))
        candidates.append((t, _position(name, rank), name, b, i, want[b, t, i], got[b, t, i]))
    if not candidates:
        return None
    t, _, name, b, i, want, got = min(candidates, key=lambda c: c[:3])
    return Divergence(name, int(t), int(b), int(i), float(want), float(got), counts)


def _ranks(order: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(order)}


def _position(name: str, rank: Mapping[str, int]) -> int:
    """Where a trace ranks: its population's place in the order ("<pop>.<state>" too)."""
    return rank.get(name, rank.get(name.rsplit(".", 1)[0], len(rank)))


def earliest_divergence(
    parts: Sequence[tuple[Divergence, int]], order: Sequence[str] = ()
) -> Divergence | None:
    """The first divergence of one run compared in parts of its batch: each part's
    divergence with the index of the part's first sample. The same order as
    `first_divergence` (model step, population order, sample, compartment), with
    sample indices of the whole batch and the differing values summed over the parts."""
    if not parts:
        return None
    rank = _ranks(order)

    def key(part: tuple[Divergence, int]) -> tuple:
        d, offset = part
        return (d.step, _position(d.population, rank), d.population, d.sample + offset)

    first, offset = min(parts, key=key)
    counts: dict[str, int] = {}
    for d, _ in parts:
        for name, count in d.differing.items():
            counts[name] = counts.get(name, 0) + count
    return replace(first, sample=first.sample + offset, differing=counts)


@dataclass(frozen=True)
class RunDiff:
    """How two simulator runs differ: a description of the first difference (None when
    they agree), how many values differ in all traces and the readout, and the first
    differing trace value when there is one."""

    message: str | None
    differing: int
    divergence: Divergence | None = None


def diff_runs(
    expected: SimResult, actual: SimResult, order: Sequence[str] = (), *, atol: float = 0.0
) -> RunDiff:
    """Every trace, then the readout state and the logits, compared in one pass."""
    missing = sorted(set(expected.traces) ^ set(actual.traces))
    if missing:
        return RunDiff(f"traces present in only one result: {missing}", -1)
    for name, want in expected.traces.items():
        got = actual.traces[name]
        if np.shape(want) != np.shape(got):
            return RunDiff(f"trace {name!r}: shape {np.shape(got)}, expected {np.shape(want)}", -1)
    divergence = first_divergence(expected.traces, actual.traces, order, atol=atol)
    differing = sum(divergence.differing.values()) if divergence is not None else 0
    message = divergence.describe() if divergence is not None else None
    for field in ("readout", "logits"):
        want, got = np.asarray(getattr(expected, field)), np.asarray(getattr(actual, field))
        if want.shape != got.shape:
            return RunDiff(message or f"{field}: shape {got.shape}, expected {want.shape}", -1)
        bad = _differs(want, got, atol)
        if field == "readout":
            differing += int(np.count_nonzero(bad))
        if message is None and np.any(bad):
            message = f"{field} differs: expected {want.tolist()}, got {got.tolist()}"
    return RunDiff(message, differing, divergence)


def compare_runs(
    expected: SimResult, actual: SimResult, order: Sequence[str] = (), *, atol: float = 0.0
) -> str | None:
    """One paragraph on the first difference of two simulator runs, or None if they agree:
    every trace, then the readout state and the logits."""
    return diff_runs(expected, actual, order, atol=atol).message
