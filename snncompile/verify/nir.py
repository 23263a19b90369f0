"""Verification of a network imported from NIR: the three rungs without a PyTorch model.

The oracle is snncompile's own float simulation of the NIR equations at the import's dt
(frontend.nir_sim, written from the NIR node definitions, not through the netlist):

1. lowering is exact: the float64 netlist spikes exactly as the NIR simulation, in every
   spiking population at every step (any difference fails), and its outputs (the Output
   node's values averaged over the steps, as the readout pools them) are the NIR
   simulation's to MAX_OUTPUT_LOWERING_ERROR relative (float64 sums in another order;
   this is all rung 1 has to compare on a graph of graded neurons only); a sample whose
   first difference is a spike decided at a threshold tie (the NIR simulation's and the
   float64 netlist's membranes both within TIE_RELATIVE of their thresholds) is reported
   as such, not failed (float64 rounding decides a tie): from that step on, the tied node
   and the nodes it reaches are left out of the spike check (the sample's other nodes
   are compared on), and the sample out of the output check;
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
from snncompile.ir.graph import reachable
from snncompile.reference.parts import bytes_per_input as run_bytes_per_input
from snncompile.reference.parts import parts_within_budget
from snncompile.verify.quantized import below, logit_error_failure
from snncompile.verify.traces import Divergence, earliest_divergence, first_divergence

# Default verification inputs: Bernoulli spikes on every input at the calibration's rate,
# from another seed than the calibration's, so verify does not test on calibration data.
DEFAULT_SHAPE = (16, 64)
DEFAULT_SEED = 1

# Rung 1 on the outputs: the float64 netlist and the NIR simulation add the same terms
# in different orders; the torch verify's default lowering tolerance.
MAX_OUTPUT_LOWERING_ERROR = 1e-9

# Rung 1 on spikes: where the NIR simulation's membrane (the value compared with the
# threshold) is within this fraction of the threshold, the spike decision is a tie that
# float64 rounding decides. The lowering computes the same value in another order and
# scale (1 / threshold folded into the weights, dt / tau into gains): Linear 0.1 x 3
# inputs into an IF at threshold 0.3 gives 0.30000000000000004 > 0.3 in the NIR
# simulation and 3 x fl(0.1 / 0.3) = 1.0, not > 1, in the netlist; both are float64
# roundings of a sum whose exact value (of the stored weights) is 1 + 9e-17 thresholds.
# The netlist's membrane must be as near its own threshold (_NetlistTies), so that a
# wrong netlist at a tie of the NIR graph still fails.
# 1e-12 is about 4,500 ulps of the threshold: above the rounding of either computation
# over long runs, far below what a wrong gain, decay or reset changes.
TIE_RELATIVE = 1e-12


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
    # Rung 1 per spiking node: the fraction of the spike values it compared (all but what
    # a threshold tie left out, lowering_left_out) that the float64 netlist shares with
    # the NIR simulation; None where a tie left out every value.
    lowering_agreement: dict[str, float | None] = field(default_factory=dict)
    lowering_left_out: dict[str, int] = field(default_factory=dict)
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
    # over the samples not parted by a tie; None when a tie parted every one (JSON null:
    # 0.0 read as exact where the text says 'not compared')
    output_lowering_error: float | None = 0.0
    # Rung 1's threshold ties (TIE_RELATIVE): spiking node -> samples whose first
    # difference between the float64 netlist and the NIR simulation is a spike decided
    # at a tie in that node; from there that node and those it reaches are left out of
    # rung 1's spike check, and those samples out of its output check.
    lowering_ties: dict[str, int] = field(default_factory=dict)
    output_relative_error: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def bytes_per_input(net: Any, steps: int) -> int:
    """Bytes a part holds per input: the spike traces and tie flags of the NIR simulation
    (and rung 1's comparison of them), the two reference runs
    (reference.parts.bytes_per_input, with what each run holds besides), and each run's
    copy of a split node's traces put together (nir_compile.node_traces)."""
    spiking = [p for p in net.populations if p.compartment.spiking]
    # 8 bytes a spike, 1 a tie flag, 1 rung 1's differing flag, and the rerun of the
    # tied samples with internals (_NetlistTies.RERUNS chunks of the part: up to 5
    # float64 values and a flag per neuron and step, over the chunk).
    oracle = (8 + 1 + 1 + 41 // _NetlistTies.RERUNS + 1) * steps * sum(p.size for p in spiking)
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

    flat = load_flat(meta["nir_file"])
    # What a spike decided otherwise at a tie can change: the node and all it reaches.
    downstream = {name: reachable(flat.edges, name) for name in flat.nodes}
    tally = _Tally(spiking_nodes(net), flat.output, _thresholds(flat), downstream)
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
        output_lowering_error=(
            tally.relative(tally.max_lowering_error) if sum(tally.ties.values()) < n else None
        ),
        output_relative_error=tally.relative(tally.max_error),
    )
    for name in tally.names:
        values = tally.values[name]
        compared = tally.lowering_values[name]
        report.lowering_agreement[name] = tally.lowered_equal[name] / compared if compared else None
        report.lowering_left_out[name] = values - compared
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
    report.lowering_ties = dict(tally.ties)
    tie = earliest_divergence(tally.tie_divergences, tally.names)
    if tie is not None:
        samples = sum(tally.ties.values())
        report.warnings.append(
            f"{samples} of {n} samples part from the NIR simulation at a threshold tie (the "
            f"membrane within {TIE_RELATIVE:g} of the threshold, decided by float64 "
            f"rounding), not a lowering error; in rung 1 the tied node's and the nodes it "
            f"reaches' later steps, and these samples' outputs, are not compared. The "
            f"first: {tie.describe('node', 'neuron')}"
        )
    lowering = earliest_divergence(tally.lowering_divergences, tally.names)
    if lowering is not None:
        # Traces here are whole NIR nodes (a split node's groups joined back), so the
        # divergence names the node and its neuron, not a netlist population.
        report.failures.append(f"lowering not exact: {lowering.describe('node', 'neuron')}")
    error = report.output_lowering_error
    if error is not None and error > MAX_OUTPUT_LOWERING_ERROR:
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

    def __init__(
        self,
        spiking: dict[str, list[tuple[str, np.ndarray]]],
        output: str,
        thresholds: dict[str, np.ndarray],
        downstream: dict[str, set[str]],
    ) -> None:
        self.spiking = spiking  # spiking NIR node -> its populations (nir_compile.spiking_nodes)
        self.output = output  # the node whose pooled values are logits
        self.thresholds = thresholds  # Threshold node -> its threshold (_thresholds)
        self.downstream = downstream  # node -> itself and the nodes it reaches
        self.names: list[str] = []  # the spiking nodes the NIR simulation has
        self.events: dict[str, int] = {}
        self.values: dict[str, int] = {}
        self.lowering_values: dict[str, int] = {}  # rung 1's compared values (not tie-parted)
        self.lowered_equal: dict[str, int] = {}
        self.quant_equal: dict[str, int] = {}
        self.float_spikes: dict[str, float] = {}
        self.quant_spikes: dict[str, float] = {}
        self.divergences: list[tuple[Any, int]] = []
        self.lowering_divergences: list[tuple[Any, int]] = []
        self.tie_divergences: list[tuple[Any, int]] = []  # each tied sample's first
        self.ties: dict[str, int] = {}  # node -> samples parted first by a tie there
        self.steps_not_run: dict[str, int] = {}  # node -> its last model steps not run
        self.parts = 0
        self.max_error = self.max_lowering_error = self.max_output = 0.0

    def relative(self, error: float) -> float:
        return error / self.max_output if self.max_output else error

    def add(self, compiled: Any, x: np.ndarray, first: int, reset: str) -> None:
        from snncompile.frontend.nir_sim import simulate_nir_ties
        from snncompile.reference.simulator import simulate

        meta = compiled.meta
        record = [*self.spiking, self.output]
        oracle, ties = simulate_nir_ties(
            meta["nir_file"], x, dt=meta["dt_s"], reset=reset, record=record,
            tolerance=TIE_RELATIVE,
        )  # fmt: skip
        pooled = oracle.pop(self.output).mean(axis=1)
        names = [name for name in self.spiking if name in oracle]
        nodes = {name: self.spiking[name] for name in names}
        pops = [pop for groups in nodes.values() for pop, _ in groups]
        if not self.parts:
            self.names = names
            for counts in (self.values, self.lowering_values, self.lowered_equal, self.quant_equal):
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
            self.quant_equal[name] += int(np.count_nonzero(quant_traces[name] == expected[name]))
            self.float_spikes[name] += float(expected[name].sum())
            self.quant_spikes[name] += float(quant_traces[name].sum())
        # Rung 1 leaves out what a threshold tie parted (the tied node's and the nodes it
        # reaches, from that step on, and the sample's outputs), and fails on any other
        # difference: a tie in one branch does not hide an error in another.
        order = [name for name in oracle if name in expected]  # the graph's order
        tied, start = self._ties(
            order,
            expected,
            lowered_traces,
            ties,
            first,
            _NetlistTies(compiled, nodes, x, self.thresholds),
        )
        untied = ~tied
        self.max_lowering_error = float(
            np.abs(lowered.logits[untied] - pooled[untied]).max(initial=self.max_lowering_error)
        )
        for name in names:  # in place: the float64 run's traces are not read again
            out = np.arange(expected[name].shape[1]) >= start[name][:, None]
            equal = lowered_traces[name] == expected[name]
            self.lowered_equal[name] += int(np.count_nonzero(equal[~out]))
            self.lowering_values[name] += int(np.count_nonzero(~out)) * equal.shape[2]
            lowered_traces[name][out] = expected[name][out]
        for runs, found in (
            (quant_traces, self.divergences),
            (lowered_traces, self.lowering_divergences),
        ):
            divergence = first_divergence(expected, runs, names)
            if divergence is not None:
                found.append((divergence, first))

    def _ties(
        self,
        names: list[str],
        expected: dict[str, np.ndarray],
        lowered: dict[str, np.ndarray],
        ties: dict[str, np.ndarray],
        first: int,
        netlist: _NetlistTies,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Where the float64 netlist parts from the NIR simulation at a threshold tie: a
        sample's earliest differing model step whose every differing neuron of the first
        differing node in the graph's order (`names`; later nodes of that step may follow
        it) decided its spike at a tie, in the NIR simulation and in the float64 netlist
        (both membranes within TIE_RELATIVE of their thresholds: a wrong gain at a tie of
        the NIR graph is no tie of the netlist). From that step on, the tied node and the
        nodes it reaches are left out; the sample's other nodes are compared on, and a
        later tie among them is left out the same way. Returns the samples with a tie
        (bool (B,)) and per node the first step left out (int (B,); its length: none).
        Counts each sample's first tie and keeps its first difference for the report."""
        tied = np.zeros(netlist.batch, dtype=bool)
        differ = {name: lowered[name] != expected[name] for name in names}
        start = {name: np.full(netlist.batch, differ[name].shape[1]) for name in names}

        def first_difference(b: int) -> tuple[str, int] | None:
            found = None
            for name in names:  # the graph's order: an earlier node wins a step's tie
                steps = np.flatnonzero(differ[name][b, : start[name][b]].any(axis=1))
                if steps.size and (found is None or steps[0] < found[1]):
                    found = (name, int(steps[0]))
            return found

        def nir_tie(b: int, name: str, step: int) -> bool:
            neurons = np.flatnonzero(differ[name][b, step])
            return name in ties and bool(ties[name][b, step, neurons].all())

        candidates = []  # samples whose first difference is a tie of the NIR simulation
        for b in range(netlist.batch):
            found = first_difference(b)
            if found is not None and nir_tie(b, *found):
                candidates.append(b)
        near = netlist.near_threshold(candidates)
        for k, b in enumerate(candidates):
            while (found := first_difference(b)) is not None:
                name, step = found
                neurons = np.flatnonzero(differ[name][b, step])
                if not (nir_tie(b, name, step) and name in near):
                    break
                if not near[name][k, step, neurons].all():
                    break
                if not tied[b]:
                    tied[b] = True
                    self.ties[name] = self.ties.get(name, 0) + 1
                    i = int(neurons[0])
                    count = {name: int(np.count_nonzero(differ[name][b]))}
                    want, got = float(expected[name][b, step, i]), float(lowered[name][b, step, i])
                    divergence = Divergence(name, step, b, i, want, got, count)
                    self.tie_divergences.append((divergence, first))
                for later in self.downstream.get(name, {name}):
                    if later in start:
                        start[later][b] = min(int(start[later][b]), step)
        return tied, start


class _NetlistTies:
    """The float64 netlist's side of a tie: its membrane (the value each spiking
    compartment compares with its threshold) rebuilt from a rerun of the samples asked
    for with their states and inputs recorded (only those: internals cost 3 traces)."""

    # The rerun goes in this many chunks of the part at most, so that its internals
    # (bytes_per_input) hold an eighth of the part's at a time.
    RERUNS = 8

    def __init__(
        self,
        compiled: Any,
        nodes: dict[str, list[tuple[str, np.ndarray]]],
        x: np.ndarray,
        thresholds: dict[str, np.ndarray],
    ) -> None:
        self.net, self.nodes, self.x = compiled.float_netlist, nodes, x
        self.thresholds = thresholds
        self.batch = int(x.shape[0])

    def near_threshold(self, samples: list[int]) -> dict[str, np.ndarray]:
        """node -> bool (len(samples), L, node size): the membrane within TIE_RELATIVE of
        the threshold. A Threshold node's heaviside compares its input with 0 (the
        threshold went into the bias, at the NIR graph's scale): near where that input is
        within TIE_RELATIVE of the NIR threshold."""
        from snncompile.reference.simulator import simulate

        if not samples:
            return {}
        pops = [pop for groups in self.nodes.values() for pop, _ in groups]
        by_name = {p.name: p for p in self.net.populations}
        near: dict[str, np.ndarray] = {}
        chunk = -(-self.batch // self.RERUNS)
        for start in range(0, len(samples), chunk):
            part = samples[start : start + chunk]
            run = simulate(self.net, self.x[part], record=pops, record_internals=True)
            for node, groups in self.nodes.items():
                size = sum(idx.size for _, idx in groups)
                if node not in near:
                    steps = run.traces[groups[0][0]].shape[1]
                    near[node] = np.empty((len(samples), steps, size), dtype=bool)
                given = self.thresholds.get(node)
                for pop, idx in groups:
                    theta = None if given is None else np.broadcast_to(given, (size,))[idx]
                    values = _near(by_name[pop], run.traces, pop, theta)
                    near[node][start : start + len(part), :, idx] = values
        return near


def _thresholds(flat: Any) -> dict[str, np.ndarray]:
    """Each Threshold node's threshold per neuron, broadcast as the import does: the
    netlist's heaviside compares its input minus this with 0."""
    out = {}
    for name, node in flat.nodes.items():
        if type(node).__name__ == "Threshold" and name not in flat.relays:
            out[name] = np.asarray(node.threshold, dtype=np.float64).ravel()
    return out


def _near(
    pop: Any, traces: dict[str, np.ndarray], name: str, theta: np.ndarray | None
) -> np.ndarray:
    """Where `pop`'s membrane (rebuilt as reference.kinds' float models compute it) is
    within TIE_RELATIVE of its threshold, per (sample, step, neuron). `theta`: a
    heaviside's NIR threshold (its neurons'), which its input has had subtracted."""
    spikes = traces[name]
    if pop.kind == "heaviside":
        if theta is None:  # not a NIR Threshold node: no tie is excused
            return np.zeros(spikes.shape, dtype=bool)
        # A wrong gain or bias into a Threshold node changed only the decisions at its
        # ties (Linear 0.5 x 2 into threshold 1 at a 10% gain error) and passed as ties.
        return np.abs(traces[f"{name}.in"]) <= TIE_RELATIVE * np.abs(theta)
    v = traces[f"{name}.v"]
    before = np.concatenate([np.zeros_like(v[:, :1]), v[:, :-1]], axis=1)  # v at rest: 0
    if pop.kind in ("cuba_lif", "cuba_lif_sub"):
        membrane = float(pop.params["alpha_v"]) * before + traces[f"{name}.u"]
        threshold = np.asarray(pop.params["vth"], dtype=np.float64)
    elif pop.kind == "reset_refractory":
        membrane = pop.params["beta"] * before + traces[f"{name}.in"]
        threshold = np.asarray(pop.params["theta"], dtype=np.float64)
    else:  # a kind the NIR lowering does not make: no tie is excused
        return np.zeros(spikes.shape, dtype=bool)
    return np.abs(membrane - threshold) <= TIE_RELATIVE * np.abs(threshold)
