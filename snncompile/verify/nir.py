"""Verification of a network imported from NIR: the three rungs without a PyTorch model.

The oracle is snncompile's own float simulation of the NIR equations at the import's dt
(frontend.nir_sim, written from the NIR node definitions, not through the netlist):

1. lowering is exact: the float64 netlist spikes exactly as the NIR simulation, in every
   spiking population at every step (any difference fails);
2. quantization is measured: per spiking population, the fraction of spike values the
   quantized reference shares with the NIR simulation, both spike rates, and the first
   diverging population and step; `min_spike_agreement` is the declared tolerance;
3. a target other than the reference runs the integer netlist exactly as the reference
   (verify.targets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snncompile.verify.traces import first_divergence

# Default verification inputs: Bernoulli spikes on every input at the calibration's rate,
# from another seed than the calibration's, so verify does not test on calibration data.
DEFAULT_SHAPE = (16, 64)
DEFAULT_SEED = 1


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
    warnings: list[str] = field(default_factory=list)  # e.g. saturation past the calibration

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def verify_nir(
    compiled: Any,
    x: np.ndarray,
    data: str,
    *,
    min_spike_agreement: float | None = None,
) -> NirVerifyReport:
    """Rungs 1 and 2 for a compiled NIR source on inputs x (B, L, n_in)."""
    from snncompile.frontend.nir_sim import simulate_nir
    from snncompile.reference.simulator import simulate

    net, float_net, meta = compiled.netlist, compiled.float_netlist, compiled.meta
    reset = meta.get("reset", "zero")
    oracle = simulate_nir(meta["nir_file"], x, dt=meta["dt_s"], reset=reset)
    spiking = [p.name for p in net.populations if p.compartment.spiking and p.name in oracle]
    lowered = simulate(float_net, x, record=spiking)
    quant = simulate(net, x, record=spiking)
    report = NirVerifyReport(
        source=meta["nir_file"],
        n=int(x.shape[0]),
        steps=int(x.shape[1]),
        latency=net.output_latency,
        ticks_per_step=net.ticks_per_step,
        dt_s=float(meta["dt_s"]),
        reset=reset,
        data=data,
        events=quant.events,
        tolerances={"min_spike_agreement": min_spike_agreement},
    )
    expected = {name: oracle[name] for name in spiking}
    for name in spiking:
        report.lowering_agreement[name] = float(np.mean(lowered.traces[name] == oracle[name]))
        report.spike_agreement[name] = float(np.mean(quant.traces[name] == oracle[name]))
        report.spike_rates[name] = {
            "float": float(oracle[name].mean()),
            "quantized": float(quant.traces[name].mean()),
        }
    divergence = first_divergence(expected, {n: quant.traces[n] for n in spiking}, spiking)
    report.first_divergence = None if divergence is None else divergence.to_dict()
    lowering = first_divergence(expected, {n: lowered.traces[n] for n in spiking}, spiking)
    if lowering is not None:
        report.failures.append(f"lowering not exact: {lowering.describe()}")
    if min_spike_agreement is not None:
        for name, value in report.spike_agreement.items():
            if value < min_spike_agreement:
                report.failures.append(
                    f"spike agreement of {name} {value:.4f} < {min_spike_agreement}"
                )
    return report
