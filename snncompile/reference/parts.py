"""Running a batch in equal parts, so that memory is bounded by one part.

    size = part_size(net, n, steps)         # inputs per part within RUN_BUDGET_BYTES
    size = equal_parts(n, per_input, budget)
    result = simulate_in_parts(net, x)      # the reference on x, in parts, merged

A reference run holds, per input, its encoded input and the traces it records over every
step; messages live only for a tile of ticks (simulator.tile_budget_bytes() across the
batch). So simulate, verify (rungs 1-2) and quantization's calibration run a large batch
in parts whose per-input bytes sum to at most RUN_BUDGET_BYTES and merge the results;
verify (verify.quantized, verify.targets) counts its own, larger, per-input bytes: the
PyTorch side's, and every trace of both runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from snncompile.errors import UsageError
from snncompile.ir.netlist import Netlist
from snncompile.reference.simulator import SimResult, simulate, tick_bytes_per_sample

RUN_BUDGET_BYTES = 1 << 30


def equal_parts(n: int, per_input_bytes: int, budget_bytes: int) -> int:
    """Inputs per part: n inputs in equal parts, each within the budget (at least 1)."""
    parts = max(1, -(-n * per_input_bytes // budget_bytes))
    return max(1, -(-n // parts))


def bytes_per_input(net: Netlist, steps: int, recorded: Iterable[str] = ()) -> int:
    """Bytes a reference run of one input of `steps` steps holds: the input as float64
    and encoded (the encoding makes four arrays of it), the messages of the `recorded`
    populations over every step, and every population's messages and inputs over two
    model steps (the shortest tile, with room for the kernels' temporaries)."""
    names = set(recorded)
    traced = sum(p.size for p in net.populations if p.name in names and p.compartment.sends)
    tile = 2 * net.ticks_per_step * tick_bytes_per_sample(net)
    return 8 * steps * (4 * net.input.size + traced) + tile


def parts_within_budget(
    n: int, per_input_bytes: int, steps: int, advice: str = "run shorter sequences"
) -> int:
    """Inputs per part for n inputs within RUN_BUDGET_BYTES; UsageError ending in `advice`
    when one input alone is beyond it (parts split the batch, never a sequence)."""
    if per_input_bytes > RUN_BUDGET_BYTES:
        raise UsageError(
            f"one input of {steps} steps needs {per_input_bytes / 2**30:.1f} GiB; the "
            f"limit is {RUN_BUDGET_BYTES / 2**30:.0f} GiB: {advice}"
        )
    return equal_parts(n, per_input_bytes, RUN_BUDGET_BYTES)


def part_size(net: Netlist, n: int, steps: int, recorded: Iterable[str] = ()) -> int:
    """Inputs per part for n reference runs of `steps` steps recording `recorded`."""
    return parts_within_budget(n, bytes_per_input(net, steps, recorded), steps)


def part_progress(
    progress: Callable[[float], None] | None, index: int, count: int
) -> Callable[[float], None] | None:
    """The progress callback for part `index` of `count` equal parts of a run: a part's
    fraction f is the run's (index + f) / count."""
    if progress is None:
        return None
    return lambda fraction: progress((index + fraction) / count)


def merge_runs(results: list[Any]) -> Any:
    """One result from runs of consecutive parts of a batch: logits and readout
    concatenated, saturation events summed, spike rates and activity averaged over all
    inputs, peaks the largest of any part, steps summed (the network steps run). Traces
    are not merged (part runs record none)."""
    if len(results) == 1:
        return results[0]
    n = sum(r.logits.shape[0] for r in results)
    weights = [r.logits.shape[0] / n for r in results]
    merged = results[0]
    merged.logits = np.concatenate([r.logits for r in results])
    merged.readout = np.concatenate([r.readout for r in results])
    merged.steps = sum(r.steps for r in results)
    merged.events = {
        key: sum(int(r.events.get(key, 0)) for r in results)
        for key in dict.fromkeys(k for r in results for k in r.events)
    }
    merged.spike_rates = _weighted_mean([r.spike_rates for r in results], weights)
    merged.activity = _weighted_mean([r.activity for r in results], weights)
    merged.peaks = {key: max(r.peaks[key] for r in results) for key in merged.peaks}
    return merged


def _weighted_mean(rates: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """Per-input means of parts, weighted by their share of the inputs: the whole's mean."""
    return {
        key: float(sum(w * part[key] for w, part in zip(weights, rates, strict=True)))
        for key in rates[0]
    }


def simulate_in_parts(net: Netlist, x: np.ndarray) -> SimResult:
    """The reference simulator on x (B, L, d_in) in parts within RUN_BUDGET_BYTES, merged."""
    size = part_size(net, int(x.shape[0]), int(x.shape[1]))
    return merge_runs([simulate(net, x[i : i + size]) for i in range(0, int(x.shape[0]), size)])
