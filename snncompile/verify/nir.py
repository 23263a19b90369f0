"""Verification of a network imported from NIR: the three rungs without a PyTorch model.

The oracle is snncompile's own float simulation of the NIR equations at the import's dt
(frontend.nir_sim, written from the NIR node definitions, not through the netlist):

1. lowering is exact: the float64 netlist spikes exactly as the NIR simulation, in every
   spiking population at every step (any difference fails), and its outputs (the Output
   node's values averaged over the steps, as the readout pools them) are the NIR
   simulation's to MAX_OUTPUT_LOWERING_ERROR relative (float64 sums in another order;
   this is all rung 1 has to compare on a graph of graded neurons only);
2. quantization is measured: per spiking population, the fraction of spike values the
   quantized reference shares with the NIR simulation, both spike rates, and the first
   diverging population and step; the outputs' relative error; `min_spike_agreement` is
   the declared tolerance;
3. a target other than the reference runs the integer netlist exactly as the reference
   (verify.targets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snncompile.frontend.nir_compile import node_traces, spiking_nodes
from snncompile.reference.parts import bytes_per_input as run_bytes_per_input
from snncompile.reference.parts import parts_within_budget
from snncompile.verify.quantized import below, logit_error_failure
from snncompile.verify.traces import earliest_divergence, first_divergence

# Default verification inputs: Bernoulli spikes on every input at the calibration's rate,
# from another seed than the calibration's, so verify does not test on calibration data.
DEFAULT_SHAPE = (16, 64)
DEFAULT_SEED = 1

# Rung 1 on the outputs: the float64 netlist and the NIR simulation add the same terms
# in different orders; the torch verify's default lowering tolerance.
MAX_OUTPUT_LOWERING_ERROR = 1e-9


def default_inputs(width: int, rate: float) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(DEFAULT_SEED)
    x = (rng.random((*DEFAULT_SHAPE, width)) < rate).astype(np.float64)
    n, steps = DEFAULT_SHAPE
    return x, f"Bernoulli spikes p={rate}, {n} x {steps} steps, seed {DEFAULT_SEED}"


@dataclass
class NirVerifyReport:
    source: str
    n: int
    steps: int
    latency: int
    dt_s: float
    reset: str
    data: str
    lowering_agreement: dict[str, float] = field(default_factory=dict)
    spike_agreement: dict[str, float] = field(default_factory=dict)
    spike_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    first_divergence: dict[str, Any] | None = None
    events: dict[str, int] = field(default_factory=dict)
    target_check: dict[str, Any] | None = None
    tolerances: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ticks_per_step: int = 1  # latency counts ticks when > 1
    parts: int = 1  # runs of equal parts of the batch (bytes_per_input)
    warnings: list[str] = field(default_factory=list)  # e.g. saturation past the calibration
    # max |error| of the pooled outputs over max |NIR output| (absolute if that is 0)
    output_lowering_error: float = 0.0
    output_relative_error: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def bytes_per_input(net: Any, steps: int) -> int:
    """Bytes a part holds per input: the spike traces of the NIR simulation and the two
    reference runs (reference.parts.bytes_per_input, with what each run holds besides),
    and each run's copy of a split node's traces put together (nir_compile.node_traces)."""
    spiking = [p for p in net.populations if p.compartment.spiking]
    oracle = 8 * steps * sum(p.size for p in spiking)
    joined = sum(
        idx.size for groups in spiking_nodes(net).values() if len(groups) > 1 for _, idx in groups
    )
    runs = 2 * (run_bytes_per_input(net, steps, [p.name for p in spiking]) + 8 * steps * joined)
    return oracle + runs


def verify_nir(
    compiled: Any,
    x: np.ndarray,
    data: str,
    *,
    min_spike_agreement: float | None = None,
    max_output_error: float | None = None,
) -> NirVerifyReport:
    """Rungs 1 and 2 for a compiled NIR source on inputs x (B, L, n_in), in equal parts
    of the batch within reference.parts.RUN_BUDGET_BYTES (bytes_per_input); every
    statistic is the whole batch's (counts and sums merge exactly)."""
    net, meta = compiled.netlist, compiled.meta
    reset = meta.get("reset", "zero")
    n, steps = int(x.shape[0]), int(x.shape[1])
    advice = "verify shorter sequences (simulate takes longer ones)"
    size = parts_within_budget(n, bytes_per_input(net, steps), steps, advice)
    from snncompile.frontend.nir_graph import load_flat

    output = load_flat(meta["nir_file"]).output  # the node whose pooled values are logits
    tally = _Tally(spiking_nodes(net), output)
    for first in range(0, n, size):
        tally.add(compiled, x[first : first + size], first, reset)
    report = NirVerifyReport(
        source=meta["nir_file"],
        n=n,
        steps=steps,
        latency=net.output_latency,
        ticks_per_step=net.ticks_per_step,
        dt_s=float(meta["dt_s"]),
        reset=reset,
        data=data,
        events=tally.events,
        tolerances={
            "min_spike_agreement": min_spike_agreement,
            "max_logit_error": max_output_error,
        },
        parts=tally.parts,
        output_lowering_error=tally.relative(tally.max_lowering_error),
        output_relative_error=tally.relative(tally.max_error),
    )
    for name in tally.names:
        values = tally.values[name]
        report.lowering_agreement[name] = tally.lowered_equal[name] / values
        report.spike_agreement[name] = tally.quant_equal[name] / values
        report.spike_rates[name] = {
            "float": tally.float_spikes[name] / values,
            "quantized": tally.quant_spikes[name] / values,
        }
        if tally.float_spikes[name] and not tally.quant_spikes[name]:
            # Agreement counts silences too: a dead layer still agrees where the float
            # one is silent (87% on a layer spiking at 0.13), and rung 2 has no default
            # tolerance, so say it.
            rate = tally.float_spikes[name] / values
            report.warnings.append(
                f"the quantized {name} never spikes (the NIR simulation: rate {rate:.4f})"
            )
    for name, missing in tally.steps_not_run.items():
        report.warnings.append(
            f"{name} runs later than the readout: the last {missing} of its {steps} model "
            "steps come after the run's last tick (not run, not compared)"
        )
    divergence = earliest_divergence(tally.divergences, tally.names)
    if divergence is not None:
        # Its traces are whole NIR nodes (a split node's groups joined back), so it names
        # a node and the node's neuron, as a failure's text does; "population" and "compartment"
        # stay, with the same values, for what read the JSON before (helper-88).
        report.first_divergence = {
            "node": divergence.population,
            "neuron": divergence.compartment,
            **divergence.to_dict(),
        }
    lowering = earliest_divergence(tally.lowering_divergences, tally.names)
    if lowering is not None:
        # Traces here are whole NIR nodes (a split node's groups joined back), so the
        # divergence names the node and its neuron, not a netlist population.
        report.failures.append(f"lowering not exact: {lowering.describe('node', 'neuron')}")
    if report.output_lowering_error > MAX_OUTPUT_LOWERING_ERROR:
        report.failures.append(
            f"lowering not exact: outputs' relative error {report.output_lowering_error:.3g} "
            f"> {MAX_OUTPUT_LOWERING_ERROR:g}"
        )
    report.failures += logit_error_failure(report.output_relative_error, max_output_error, "output")
    if min_spike_agreement is not None:
        for name, value in report.spike_agreement.items():
            if value < min_spike_agreement:
                report.failures.append(
                    f"spike agreement of {name} {below(value, min_spike_agreement)} < "
                    f"{min_spike_agreement}"
                )
    return report


class _Tally:
    """Rungs 1 and 2 over parts of a batch: counts and sums that merge exactly."""

    def __init__(self, spiking: dict[str, list[tuple[str, np.ndarray]]], output: str) -> None:
        self.spiking = spiking  # spiking NIR node -> its populations (nir_compile.spiking_nodes)
        self.output = output
        self.names: list[str] = []  # the spiking nodes the NIR simulation has
        self.events: dict[str, int] = {}
        self.values: dict[str, int] = {}
        self.lowered_equal: dict[str, int] = {}
        self.quant_equal: dict[str, int] = {}
        self.float_spikes: dict[str, float] = {}
        self.quant_spikes: dict[str, float] = {}
        self.divergences: list[tuple[Any, int]] = []
        self.lowering_divergences: list[tuple[Any, int]] = []
        self.steps_not_run: dict[str, int] = {}  # node -> its last model steps not run
        self.parts = 0
        self.max_error = self.max_lowering_error = self.max_output = 0.0

    def relative(self, error: float) -> float:
        return error / self.max_output if self.max_output else error

    def add(self, compiled: Any, x: np.ndarray, first: int, reset: str) -> None:
        from snncompile.frontend.nir_sim import simulate_nir
        from snncompile.reference.simulator import simulate

        meta = compiled.meta
        record = [*self.spiking, self.output]
        oracle = simulate_nir(meta["nir_file"], x, dt=meta["dt_s"], reset=reset, record=record)
        pooled = oracle.pop(self.output).mean(axis=1)
        names = [name for name in self.spiking if name in oracle]
        nodes = {name: self.spiking[name] for name in names}
        pops = [pop for groups in nodes.values() for pop, _ in groups]
        if not self.parts:
            self.names = names
            for counts in (self.values, self.lowered_equal, self.quant_equal):
                counts.update(dict.fromkeys(names, 0))
            for sums in (self.float_spikes, self.quant_spikes):
                sums.update(dict.fromkeys(names, 0.0))
        lowered = simulate(compiled.float_netlist, x, record=pops)
        quant = simulate(compiled.netlist, x, record=pops)
        lowered_traces = node_traces(nodes, lowered.traces)
        quant_traces = node_traces(nodes, quant.traces)
        self.parts += 1
        # ndarray.max, not max(): a NaN output must propagate into the report.
        self.max_output = float(np.abs(pooled).max(initial=self.max_output))
        self.max_error = float(np.abs(quant.logits - pooled).max(initial=self.max_error))
        self.max_lowering_error = float(
            np.abs(lowered.logits - pooled).max(initial=self.max_lowering_error)
        )
        for key, count in quant.events.items():
            self.events[key] = self.events.get(key, 0) + int(count)
        # Only the steps the netlist runs: a node later than the readout (in a loop through
        # several neurons) has its last steps after the run's end, zeros in its traces.
        run = compiled.netlist.steps_run(x.shape[1])
        kept = {name: run[nodes[name][0][0]] for name in names}
        self.steps_not_run.update(
            {name: x.shape[1] - k for name, k in kept.items() if k < x.shape[1]}
        )
        expected = {name: oracle[name][:, : kept[name]] for name in names}
        lowered_traces = {name: lowered_traces[name][:, : kept[name]] for name in names}
        quant_traces = {name: quant_traces[name][:, : kept[name]] for name in names}
        for name in names:
            self.values[name] += int(expected[name].size)
            self.lowered_equal[name] += int(
                np.count_nonzero(lowered_traces[name] == expected[name])
            )
            self.quant_equal[name] += int(np.count_nonzero(quant_traces[name] == expected[name]))
            self.float_spikes[name] += float(expected[name].sum())
            self.quant_spikes[name] += float(quant_traces[name].sum())
        for runs, found in (
            (quant_traces, self.divergences),
            (lowered_traces, self.lowering_divergences),
        ):
            divergence = first_divergence(expected, runs, names)
            if divergence is not None:
                found.append((divergence, first))
