"""The trace comparison for tests: snncompile.verify.traces, failing through pytest.

    assert_traces_equal(reference_result, lava_result, order=[p.name for p in net.populations])

On a mismatch the failure names the earliest diverging model step over all traces (ties
broken by `order`, the netlist's population order), the population, the sample and
compartment, and both values, then how many values differ per trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from snncompile.reference.simulator import SimResult
from snncompile.verify.traces import compare_runs

first_divergence = compare_runs


def assert_traces_equal(
    expected: SimResult, actual: SimResult, *, order: Sequence[str] = (), atol: float = 0.0
) -> None:
    """Fail (pytest) unless every trace, the readout and the logits agree (within atol)."""
    message = compare_runs(expected, actual, order, atol=atol)
    if message is not None:
        pytest.fail(message, pytrace=False)
