"""Compare two SimResults trace by trace and say where they first part.

    assert_traces_equal(reference_result, lava_result, order=[p.name for p in net.populations])

On a mismatch the failure names the earliest diverging model step over all traces (ties
broken by `order`, the netlist's population order), the population, the sample and
compartment, and both values, then how many values differ per trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from snncompile.reference.simulator import SimResult


def _differs(expected: np.ndarray, actual: np.ndarray, atol: float) -> np.ndarray:
    if atol == 0:
        return expected != actual
    return ~np.isclose(expected, actual, rtol=0.0, atol=atol)


def first_divergence(
    expected: SimResult, actual: SimResult, *, order: Sequence[str] = (), atol: float = 0.0
) -> str | None:
    """A one-paragraph account of the first difference, or None if the results agree."""
    rank = {name: i for i, name in enumerate(order)}
    missing = sorted(set(expected.traces) ^ set(actual.traces))
    if missing:
        return f"traces present in only one result: {missing}"
    candidates = []  # (model step, netlist rank, name, index, expected, actual)
    counts = {}
    for name in expected.traces:
        want, got = np.asarray(expected.traces[name]), np.asarray(actual.traces[name])
        if want.shape != got.shape:
            return f"trace {name!r}: shape {got.shape}, expected {want.shape}"
        bad = np.argwhere(_differs(want, got, atol))
        if len(bad) == 0:
            continue
        counts[name] = len(bad)
        # Earliest model step (axis 1 of (batch, step, compartment)) in this trace.
        b, t, i = min(bad.tolist(), key=lambda idx: (idx[1], idx[0], idx[2]))
        # "<population>.<state>" traces rank with their population.
        position = rank.get(name, rank.get(name.rsplit(".", 1)[0], len(rank)))
        candidates.append((t, position, name, (b, i), want[b, t, i], got[b, t, i]))
    if candidates:
        t, _, name, (b, i), want, got = min(candidates, key=lambda c: c[:3])
        tally = ", ".join(f"{k}: {v}" for k, v in counts.items())
        return (
            f"first divergence: population {name!r} at model step {t} (sample {b}, "
            f"compartment {i}): expected {want}, got {got}; values differing per trace: {tally}"
        )
    for field in ("readout", "logits"):
        want, got = np.asarray(getattr(expected, field)), np.asarray(getattr(actual, field))
        if want.shape != got.shape or np.any(_differs(want, got, atol)):
            return f"{field} differs: expected {want.tolist()}, got {got.tolist()}"
    return None


def assert_traces_equal(
    expected: SimResult, actual: SimResult, *, order: Sequence[str] = (), atol: float = 0.0
) -> None:
    """Fail (pytest) unless every trace, the readout and the logits agree (within atol)."""
    message = first_divergence(expected, actual, order=order, atol=atol)
    if message is not None:
        pytest.fail(message, pytrace=False)
