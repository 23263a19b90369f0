"""Activity and energy ESTIMATES for a netlist on Loihi 2, against the dense float model.

    rates = activity_rates(net, spike_rates, graded_rates)   # per sending population
    est = estimate(net, graph, steps=64, rates=rates, config=cfg)

Nothing here is measured on Loihi 2; every number is an estimate under these assumptions
(they are also written into estimate.json):

- Synaptic operations: a synapse from population `src` costs, per step, rate(src) x its
  nonzero weights (rate x fan-out summed over the source's compartments). rate(src) is
  the spike rate on the calibration data for a spiking source (QuantReport /
  report.json), and for a graded source the fraction of its messages that are nonzero on
  the calibration data (a zero message is not sent); when those were not measured, a
  graded source counts as always active. The bias population sends during the whole
  input window.
- A spike delivered through a weight is an accumulate (0.9 pJ); a graded message is a
  multiply-accumulate (4.6 pJ): the 45 nm CMOS figures the seed papers use (Horowitz,
  ISSCC 2014: a 32-bit float add, and a 32-bit float multiply plus add; the same table
  gives 0.1 and 3.1 pJ for a 32-bit integer add and multiply), not Loihi measurements.
  Configurable in loihi2.toml [energy].
- Compartment updates are counted separately as multiply-accumulates per compartment
  and step: ssm 6 (complex a z and b x), lif, cuba_lif and cuba_lif_sub 2 (u and v
  decays), reset_refractory 1 (decay), glu 2 (interpolation and gating); relays, spikes
  and the readout 0.
- Per inference = per step x the sequence length L (the input window). The latency
  tail (steps after the last input while the pipeline drains), static power, routing
  and host I/O are not counted.
- The dense model is the float Graph as traced (before the passes, which fold a
  BatchNorm into its neighbour: the PyTorch model computes it), run step by step:
  its multiply-accumulates per step (Linear: in x out; S4D/SSM: 8 real MACs per mode,
  i.e. a complex a z (4), b u (2) and Re(c z) (2), plus d u per channel; neurons: one
  leak multiply per channel, a NIR neuron two (current and voltage decays) plus one per
  nonzero weight of its recurrent loop; GLU: one gating multiply per channel;
  BatchNorm/affine: one per channel) times L, plus the ops after the time pooling once. Additions,
  comparisons and nonlinear functions (sigmoid, GELU) are not counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.ir.graph import Graph
from snncompile.ir.netlist import Netlist
from snncompile.reference.parts import part_size
from snncompile.reference.simulator import simulate

from .config import TargetConfig

# Multiplies per compartment and step (see the module docstring).
COMPARTMENT_MACS = {
    "ssm": 6,
    "lif": 2,
    "cuba_lif": 2,
    "cuba_lif_sub": 2,
    "reset_refractory": 1,
    "glu": 2,
}
# Dense float model: multiply-accumulates per channel (x channels) for elementwise ops.
_ELEMENTWISE_MACS = {"batchnorm": 1, "affine": 1, "lif": 1, "reset_refractory": 1, "glu": 1}
_FREE_OPS = {"input", "output", "dropout", "identity", "add", "pool", "heaviside", "feedback"}


def measure_graded_rates(net: Netlist, x: np.ndarray) -> dict[str, float]:
    """Fraction of nonzero messages of every graded sending population, over the input
    window of the inputs x (B, L, d_in): reference runs in parts of the batch that count
    the messages as they go (no traces: a 200,000-step calibration kept 7 GB of them)."""
    names = [
        p.name
        for p in net.populations
        if p.compartment.sends and not p.compartment.spiking and p.kind != "bias"
    ]
    batch, length = x.shape[:2]
    size = part_size(net, batch, length)
    nonzero = dict.fromkeys(names, 0.0)
    for start in range(0, batch, size):
        part = x[start : start + size]
        activity = simulate(net, part, activity=True).activity
        for name in names:
            nonzero[name] += activity[name] * part.shape[0]
    return {name: nonzero[name] / batch for name in names}


def activity_rates(
    net: Netlist,
    spike_rates: dict[str, float],
    graded_rates: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """rate and where it comes from, for every sending population."""
    out: dict[str, dict[str, Any]] = {}
    for pop in net.populations:
        if not pop.compartment.sends:
            continue
        if pop.compartment.spiking:
            rate, basis = spike_rates.get(pop.name), "spike rate on the calibration data"
            if rate is None:
                rate, basis = 1.0, "no spike rate recorded: assumed always spiking"
        elif pop.kind == "bias":
            active = bool(np.any(np.asarray(pop.params["value"]) != 0))
            rate, basis = float(active), "bias: sends its value during the input window"
        elif graded_rates is not None and pop.name in graded_rates:
            rate, basis = graded_rates[pop.name], "nonzero messages on the calibration data"
        else:
            rate, basis = 1.0, "graded, not measured: assumed always active"
        out[pop.name] = {"rate": float(rate), "basis": basis}
    return out


def dense_model_macs(graph: Graph) -> dict[str, Any]:
    """Multiply-accumulates of the float model: per step, and once (after pooling)."""
    once: set[str] = set()
    per_step = at_end = 0
    by_node: dict[str, int] = {}
    uncounted: list[str] = []
    for node in graph:
        kind = node.op.kind
        after_pool = any(i in once for i in node.inputs)
        if kind == "pool" or after_pool:
            once.add(node.name)
        if kind == "linear":
            macs = int(node.op.weight.size)
        elif kind == "sparse_linear":  # NIR import: convolutions etc. as stored weights
            macs = int(node.op.weight.nnz)
        elif kind == "euler_neuron":  # current and voltage decays, and its recurrence R y
            macs = 2 * graph.size(node.name) + int(node.op.rec_weight.nnz)
        elif kind in ("ssm", "s4d"):
            channels, modes = node.op.c.shape
            macs = channels * modes * 8 + channels
        elif kind in _ELEMENTWISE_MACS:
            macs = _ELEMENTWISE_MACS[kind] * graph.size(node.name)
        else:
            macs = 0
            if kind not in _FREE_OPS:
                uncounted.append(f"{node.name} ({kind})")
        if macs:
            by_node[node.name] = macs
            if after_pool:
                at_end += macs
            else:
                per_step += macs
    return {"per_step": per_step, "once": at_end, "by_node": by_node, "uncounted": uncounted}


def estimate(
    net: Netlist,
    graph: Graph | None,
    *,
    steps: int,
    rates: dict[str, dict[str, Any]],
    config: TargetConfig,
) -> dict[str, Any]:
    """The estimate.json dict (see the module docstring for every assumption)."""
    pj_ac, pj_mac = config.energy("pj_per_accumulate"), config.energy("pj_per_mac")
    synapses: dict[str, dict[str, Any]] = {}
    acs = macs = 0.0
    for syn in net.synapses:
        src = net.population(syn.src)
        nonzero = int(np.count_nonzero(syn.values()))
        ops = rates[syn.src]["rate"] * nonzero
        spiking = src.compartment.spiking
        acs, macs = (acs + ops, macs) if spiking else (acs, macs + ops)
        synapses[syn.name] = {
            "src": syn.src,
            "op": "accumulate" if spiking else "multiply-accumulate",
            "nonzero_weights": nonzero,
            "src_rate": rates[syn.src]["rate"],
            "ops_per_step": ops,
        }
    by_kind: dict[str, int] = {}
    for pop in net.populations:
        if COMPARTMENT_MACS.get(pop.kind):
            by_kind[pop.kind] = by_kind.get(pop.kind, 0) + COMPARTMENT_MACS[pop.kind] * pop.size
    comp_step = sum(by_kind.values())
    synaptic_pj = steps * (acs * pj_ac + macs * pj_mac)
    compartment_pj = steps * comp_step * pj_mac
    out: dict[str, Any] = {
        "label": "estimate (not a Loihi 2 measurement; assumptions below)",
        "steps_per_inference": steps,
        "assumptions": _assumptions(rates, pj_ac, pj_mac),
        "energy_model": {
            key: config.sections["energy"][key].to_dict()
            for key in ("pj_per_accumulate", "pj_per_mac")
        },
        "activity": rates,
        "synapses": synapses,
        "synaptic_ops_estimate": {
            "accumulates_per_step": acs,
            "macs_per_step": macs,
            "per_step": acs + macs,
            "accumulates_per_inference": acs * steps,
            "macs_per_inference": macs * steps,
            "per_inference": (acs + macs) * steps,
        },
        "compartment_ops_estimate": {
            "macs_per_step": comp_step,
            "macs_per_inference": comp_step * steps,
            "by_kind_per_step": by_kind,
        },
        "energy_estimate_pj": {
            "synaptic_per_inference": synaptic_pj,
            "compartment_updates_per_inference": compartment_pj,
            "total_per_inference": synaptic_pj + compartment_pj,
        },
    }
    if graph is not None:
        dense = dense_model_macs(graph)
        dense_macs = dense["per_step"] * steps + dense["once"]
        dense_pj = dense_macs * pj_mac
        out["dense_model_estimate"] = {
            "macs_per_step": dense["per_step"],
            "macs_once_after_pooling": dense["once"],
            "macs_per_inference": dense_macs,
            "energy_pj_per_inference": dense_pj,
            "by_node": dense["by_node"],
            "uncounted_ops": dense["uncounted"],
        }
        out["ratio_estimate"] = {
            "dense_energy_over_synaptic": _ratio(dense_pj, synaptic_pj),
            "dense_energy_over_total": _ratio(dense_pj, synaptic_pj + compartment_pj),
        }
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _assumptions(rates: dict[str, dict[str, Any]], pj_ac: float, pj_mac: float) -> list[str]:
    notes = [
        "every number here is an estimate, not a Loihi 2 measurement",
        f"{pj_ac} pJ per accumulate (spike x weight), {pj_mac} pJ per multiply-accumulate "
        "(graded message x weight, compartment updates, dense model): 45 nm CMOS figures "
        "used by the seed papers (Horowitz, ISSCC 2014: a 32-bit float add, and a 32-bit "
        "float multiply plus add; its 32-bit integer add and multiply are 0.1 and 3.1 pJ), "
        "not Loihi measurements",
        "synaptic ops per step = source rate x nonzero weights (rate x fan-out)",
        "per inference = per step x L input steps; the latency tail, static power, routing "
        "and host I/O are not counted",
        "dense model: multiply-accumulates of the float graph as traced, step by step; "
        "additions and nonlinear functions not counted",
    ]
    assumed = sorted(n for n, r in rates.items() if "assumed" in r["basis"])
    if assumed:
        notes.append(
            "no measured activity for " + ", ".join(assumed) + ": counted as always active"
        )
    return notes
