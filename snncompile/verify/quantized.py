"""Rungs 1 and 2 of verification: the float model against the netlists it compiled to.

Rung 1 (lowering is exact): the float64 netlist against PyTorch in float64.
Rung 2 (quantization is measured): the integer netlist against PyTorch on real inputs:
argmax agreement, task accuracy of each, logit error, per-layer spike agreement, and
the first (population, step) where a spike differs. Tolerances are declared up front;
`failures` lists each criterion that did not hold, word for word.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile.arguments import check_real
from snncompile.errors import (
    USER_CODE_ERRORS,
    SignalExit,
    UnsupportedError,
    UsageError,
    is_out_of_memory,
    user_code_failure,
)
from snncompile.reference.parts import bytes_per_input as run_bytes_per_input
from snncompile.reference.parts import parts_within_budget
from snncompile.reference.simulator import simulate
from snncompile.verify.traces import earliest_divergence, first_divergence

if TYPE_CHECKING:
    from snncompile.compiler import Compiled
    from snncompile.ir.netlist import Netlist


@dataclass(frozen=True)
class Tolerances:
    """Declared pass criteria (None switches a criterion off). All are fractions:
    max_accuracy_drop 0.01 is one point of accuracy (the CLI's --max-accuracy-drop
    takes points and divides by 100); max_logit_error is the largest |quantized - float|
    logit over the largest |float| logit (for a .nir source, its pooled outputs over the
    NIR simulation's). Its default, 0.5, is loose on purpose (the bundled models measure
    0.08-0.10): it fails a readout that saturation or a dead layer has wrecked while
    argmax still agrees (inputs of 3e38 kept 100% argmax agreement at relative error 1).
    It is the last field, so that positional calls written before it still mean what
    they meant."""

    min_argmax_agreement: float | None = 0.98
    max_accuracy_drop: float | None = 0.01
    min_spike_agreement: float | None = None
    max_lowering_error: float | None = 1e-9
    max_logit_error: float | None = 0.5

    def __post_init__(self) -> None:
        for name, high in (
            ("min_argmax_agreement", 1.0),
            ("max_accuracy_drop", 1.0),
            ("max_logit_error", math.inf),
            ("min_spike_agreement", 1.0),
            ("max_lowering_error", math.inf),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            # Stored as a Python float (a numpy scalar made the report's JSON fail); a NaN
            # criterion compares False both ways and would pass every check.
            number = check_real(value, f"tolerance {name}")
            if not 0.0 <= number <= high:
                raise UsageError(f"tolerance {name} must be in [0, {high}], got {number}")
            object.__setattr__(self, name, number)


@dataclass
class VerifyReport:
    n: int
    steps: int
    latency: int
    argmax_agreement: float
    float_accuracy: float | None
    quantized_accuracy: float | None
    accuracy_delta: float | None
    logit_max_abs_error: float
    logit_relative_error: float
    lowering_relative_error: float
    spike_agreement: dict[str, float] = field(default_factory=dict)
    spike_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    first_divergence: dict[str, Any] | None = None
    target_check: dict[str, Any] | None = None  # rung 3 (verify.targets.BackendCheck)
    events: dict[str, int] = field(default_factory=dict)
    tolerances: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    data: str = ""
    parts: int = 1  # parts of the batch run one after the other (rungs 1 and 2)
    warnings: list[str] = field(default_factory=list)
    # The float model's top-two logit margin (top1 - top2, over the largest |float
    # logit|): its median over all inputs and its largest over the inputs whose argmax
    # the quantized model changed (None without any), so that an agreement failure says
    # whether the changed predictions were near-ties of the float model.
    argmax_margins: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def top_two_margin(logits: np.ndarray) -> np.ndarray:
    """Per input, the largest logit minus the second (0 with a single class)."""
    if logits.shape[1] < 2:
        return np.zeros(logits.shape[0])
    top = np.sort(logits, axis=1)
    return top[:, -1] - top[:, -2]


def torch_reference(model: Any, x: np.ndarray, names: list[str]) -> tuple[np.ndarray, dict]:
    """Float64 PyTorch logits and the spike trains (B, L, H) of the named modules, with
    every causal S4D run by its recurrence (models.s4d.use_recurrence): the deployed
    operations, where the FFT's noise decided spikes below it."""
    import torch

    from snncompile.models.s4d import use_recurrence

    model = use_recurrence(copy.deepcopy(model).double().eval())
    spikes: dict[str, np.ndarray] = {}
    hooks = []
    for name in names:
        module = model.get_submodule(name)

        def keep(_mod, _inp, out, name=name):
            spikes[name] = out.detach().numpy().copy()

        hooks.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()
    except SignalExit:
        raise
    except USER_CODE_ERRORS as exc:
        if type(model).__module__.startswith("snncompile.") or is_out_of_memory(exc):
            raise  # ours failing is a bug (exit 1), as is running out of memory
        # The user's forward (--entry, an in-memory model) may trace, then fail on real
        # inputs: an internal error (exit 1) blamed snncompile.
        raise UnsupportedError(
            f"{type(model).__name__}.forward failed on the verify inputs ({user_code_failure(exc)})"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    return logits, spikes


def bytes_per_input(net: Netlist, steps: int) -> int:
    """Bytes rungs 1-2 hold per input: the integer run's (its spike traces) and PyTorch's
    float64 forward, which dominates. That forward holds a few values per channel and
    step in each layer (FFT buffers, neuron states, gates; the SSM kernel is built in
    parts, models.s4d.KERNEL_PART_BYTES), about as many as the netlist's populations
    other than the SSM modes have messages and inputs: counted twice. Measured peaks per
    input and step at batch 1 against this count: 6.2-10.8 KB vs 16.7 KB (the bundled
    spike-ssm, 65,536 and 16,384 steps), 73 KB vs 181 KB (spike-ssm H=256, 6 blocks,
    4,096 steps), 16 KB vs 62 KB (spiking-ssm H=128, 4 blocks, 8,192 steps)."""
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    per_tick = sum(p.size + p.input_width for p in net.populations if p.kind != "ssm")
    return 16 * net.total_ticks(steps) * per_tick + run_bytes_per_input(net, steps, spiking)


def verify_quantized(
    compiled: Compiled,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    tolerances: Tolerances | None = None,
) -> VerifyReport:
    """Compare PyTorch (float64) with the float64 and integer netlists on inputs x.

    The batch runs in equal parts within reference.parts.RUN_BUDGET_BYTES (bytes_per_input
    below), so a large --data file needs the memory of one part; every statistic is of
    the whole batch (maxima, counts and means merged exactly)."""
    tol = tolerances or Tolerances()
    net, float_net = compiled.netlist, compiled.float_netlist
    if net is None or float_net is None:
        raise UsageError("verify needs a model compiled through quantization")
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    n = int(x.shape[0])
    steps = int(x.shape[1])
    advice = "verify shorter sequences (simulate takes longer ones)"
    size = parts_within_budget(n, bytes_per_input(net, steps), steps, advice)
    tally = _Tally(spiking)
    for first in range(0, n, size):
        part = slice(first, first + size)
        tally.add(compiled, x[part], None if labels is None else labels[part], first)
    report = tally.report(n, int(x.shape[1]), net.output_latency, labels is not None)
    report.tolerances = asdict(tol)
    report.failures = _failures(report, tol)
    return report


class _Tally:
    """Rungs 1 and 2 over parts of a batch: counts, sums and maxima that merge exactly."""

    def __init__(self, spiking: list[str]) -> None:
        self.spiking = spiking
        self.agree = self.float_correct = self.quant_correct = 0
        self.max_error = self.max_lowering_error = self.max_logit = 0.0
        self.events: dict[str, int] = {}
        self.equal = dict.fromkeys(spiking, 0)  # spike values equal, per population
        self.values = dict.fromkeys(spiking, 0)
        self.float_spikes = dict.fromkeys(spiking, 0.0)
        self.quant_spikes = dict.fromkeys(spiking, 0.0)
        self.divergences: list[tuple[Any, int]] = []
        self.margins: list[np.ndarray] = []  # the float top-two margin of every input
        self.changed: list[np.ndarray] = []  # whether the quantized argmax differs
        self.parts = 0

    def add(self, compiled: Compiled, x: np.ndarray, labels: np.ndarray | None, first: int) -> None:
        ref_logits, ref_spikes = torch_reference(compiled.model, x, self.spiking)
        lowered = simulate(compiled.float_netlist, x)  # type: ignore[arg-type]
        quant = simulate(compiled.netlist, x, record=self.spiking)  # type: ignore[arg-type]
        self.parts += 1
        same = ref_logits.argmax(1) == quant.logits.argmax(1)
        self.agree += int(np.sum(same))
        self.margins.append(top_two_margin(ref_logits))
        self.changed.append(~same)
        if labels is not None:
            self.float_correct += int(np.sum(ref_logits.argmax(1) == labels))
            self.quant_correct += int(np.sum(quant.logits.argmax(1) == labels))
        # ndarray.max, not max(): a NaN logit (a float model overflowing) must propagate.
        self.max_error = float(np.abs(quant.logits - ref_logits).max(initial=self.max_error))
        self.max_lowering_error = float(
            np.abs(lowered.logits - ref_logits).max(initial=self.max_lowering_error)
        )
        self.max_logit = float(np.abs(ref_logits).max(initial=self.max_logit))
        for key, count in quant.events.items():
            self.events[key] = self.events.get(key, 0) + int(count)
        for name in self.spiking:
            expected, actual = ref_spikes[name], quant.traces[name]
            self.equal[name] += int(np.count_nonzero(expected == actual))
            self.values[name] += int(expected.size)
            self.float_spikes[name] += float(expected.sum())
            self.quant_spikes[name] += float(actual.sum())
        spikes = {name: quant.traces[name] for name in self.spiking}
        divergence = first_divergence(ref_spikes, spikes, self.spiking)
        if divergence is not None:
            self.divergences.append((divergence, first))

    def report(self, n: int, steps: int, latency: int, labelled: bool) -> VerifyReport:
        float_acc = quant_acc = delta = None
        if labelled:
            float_acc, quant_acc = self.float_correct / n, self.quant_correct / n
            # From the counts: the difference of the two rounded fractions read a drop of
            # 2 in 200 inputs as 0.010000000000000009, failing --max-accuracy-drop 1.0
            # ("accuracy drop 1.00 points > 1"); one division rounds as 1.0 / 100 does.
            delta = (self.quant_correct - self.float_correct) / n
        divergence = earliest_divergence(self.divergences, self.spiking)
        scale = self.max_logit
        margins = np.concatenate(self.margins) if self.margins else np.zeros(0)
        changed = np.concatenate(self.changed) if self.changed else np.zeros(0, dtype=bool)
        return VerifyReport(
            n=n,
            steps=steps,
            latency=latency,
            argmax_agreement=self.agree / n,
            float_accuracy=float_acc,
            quantized_accuracy=quant_acc,
            accuracy_delta=delta,
            logit_max_abs_error=self.max_error,
            logit_relative_error=_relative(self.max_error, scale),
            lowering_relative_error=_relative(self.max_lowering_error, scale),
            events=self.events,
            spike_agreement={k: self.equal[k] / self.values[k] for k in self.spiking},
            spike_rates={
                k: {
                    "float": self.float_spikes[k] / self.values[k],
                    "quantized": self.quant_spikes[k] / self.values[k],
                }
                for k in self.spiking
            },
            first_divergence=None if divergence is None else divergence.to_dict(),
            parts=self.parts,
            argmax_margins={
                "median": _relative(float(np.median(margins)), scale) if margins.size else None,
                "changed_max": (
                    _relative(float(margins[changed].max()), scale) if changed.any() else None
                ),
            },
        )


def _relative(error: float, scale: float) -> float:
    """error / scale; where every float logit is 0, any error is infinitely large (it
    read 0, and a silent float model passed whatever the quantized one said)."""
    if scale:
        return error / scale
    return math.inf if error else 0.0


def below(value: float, bound: float) -> str:
    """`value`, under `bound`, to 4 decimals unless those read as the bound or more
    ("spike agreement 1.0000 < 1.0" of 0.99999, helper-87): then every digit."""
    text = f"{value:.4f}"
    return repr(float(value)) if float(text) >= bound else text


def logit_error_failure(error: float, bound: float | None, noun: str = "logit") -> list[str]:
    """The failed max_logit_error criterion, or nothing; a NaN error fails too. `noun`
    names the values compared (a .nir source's are its pooled outputs)."""
    if bound is None or error <= bound:
        return []
    return [f"{noun} error {error:.4g} of the largest float {noun} > {bound}"]


def _failures(report: VerifyReport, tol: Tolerances) -> list[str]:
    failures = []
    if tol.min_argmax_agreement is not None and report.argmax_agreement < tol.min_argmax_agreement:
        margins = report.argmax_margins
        # Whether the changed predictions were near-ties of the float model (a few
        # 1e-4 of the largest logit on a barely trained model) or clear decisions.
        why = (
            " (the float model's top-two logit margin on the "
            f"{round((1 - report.argmax_agreement) * report.n)} changed input(s): "
            f"at most {margins['changed_max']:.2g} of the largest logit; median over all "
            f"inputs {margins['median']:.2g})"
            if margins.get("changed_max") is not None
            else ""
        )
        failures.append(
            f"argmax agreement {below(report.argmax_agreement, tol.min_argmax_agreement)} < "
            f"{tol.min_argmax_agreement}{why}"
        )
    if (
        tol.max_accuracy_drop is not None
        and report.accuracy_delta is not None
        # A drop equal to the tolerance passes: --max-accuracy-drop 0.7 is 0.7 / 100 =
        # 0.006999999999999999, below 7 inputs in 1000 (helper-87); the slack is far
        # below one input in any batch.
        and -report.accuracy_delta > tol.max_accuracy_drop * (1 + 1e-9)
    ):
        failures.append(
            # In points, as --max-accuracy-drop takes it (the report's own table too).
            f"accuracy drop {-100 * report.accuracy_delta:.2f} points > "
            f"{100 * tol.max_accuracy_drop:g} (float {report.float_accuracy:.2%}, "
            f"quantized {report.quantized_accuracy:.2%})"
        )
    failures += logit_error_failure(report.logit_relative_error, tol.max_logit_error)
    if tol.min_spike_agreement is not None:
        for name, value in report.spike_agreement.items():
            if value < tol.min_spike_agreement:
                failures.append(
                    f"spike agreement of {name} {below(value, tol.min_spike_agreement)} < "
                    f"{tol.min_spike_agreement}"
                )
    if (  # written so that a NaN error fails too
        tol.max_lowering_error is not None
        and not report.lowering_relative_error <= tol.max_lowering_error
    ):
        failures.append(
            f"lowering error {report.lowering_relative_error:.3g} > {tol.max_lowering_error}"
        )
    return failures
