"""The NIR source of the compile pipeline: load, default calibration, float-vs-quantized
spike agreement (rung 2 for imported graphs).

    graph, width, calibration, meta = load_nir_source("net.nir", dt=1e-4, reset="zero")
    agreement = spike_agreement("net.nir", compiled, x)   # per spiking NIR node
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import UsageError

# Default calibration when no --calib is given: NIR files carry no data, so the network is
# calibrated on Bernoulli spike trains (every input channel spikes with this probability
# at every step), a fixed shape and seed so that a compile is reproducible.
DEFAULT_CALIB_RATE = 0.2
DEFAULT_CALIB_SHAPE = (8, 32)  # sequences x steps
DEFAULT_CALIB_SEED = 0


def is_nir_source(source: Any) -> bool:
    """A path ending in .nir that is not a directory (an artifact may be named so)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).suffix.lower() == ".nir" and not Path(source).is_dir()


def default_calibration(width: int) -> np.ndarray:
    """Bernoulli(DEFAULT_CALIB_RATE) spikes of shape (8, 32, width), seed 0."""
    rng = np.random.default_rng(DEFAULT_CALIB_SEED)
    return (rng.random((*DEFAULT_CALIB_SHAPE, width)) < DEFAULT_CALIB_RATE).astype(np.float64)


def calibration_note() -> str:
    b, steps = DEFAULT_CALIB_SHAPE
    return (
        f"default: Bernoulli spikes p={DEFAULT_CALIB_RATE} on every input, {b} sequences x "
        f"{steps} steps, seed {DEFAULT_CALIB_SEED} (pass --calib FILE for real data)"
    )


def load_nir_source(
    source: str | os.PathLike[str], *, dt: float | None, reset: str
) -> tuple[Any, int, np.ndarray, dict[str, Any]]:
    """(Graph, input width, default calibration, meta) for compile_model.

    A file snncompile wrote (`--target nir`) is read back exactly from its metadata, with
    the dt it states; any other goes through the generic importer at `dt`.
    """
    from snncompile.frontend.nir_snncompile import read_snncompile_nir, stated_dt_s

    own = read_snncompile_nir(source)
    if own is not None:
        # The step its NIR time constants assume (what inspect shows); for a discrete-time
        # model it changes nothing, so only that value is accepted.
        stated = stated_dt_s(source)
        if dt is not None and dt != stated:
            raise UsageError(
                f"--dt {dt}: {source} was written by snncompile and states dt = {stated} s "
                "(it is read back exactly; leave --dt out)"
            )
        if reset != "zero":
            raise UsageError(f"--reset: {source} was written by snncompile and states its resets")
        width = own.input.op.size
        meta = {
            "nir_file": str(source),
            "written_by": "snncompile (read back exactly from its metadata)",
            "dt_s": own.dt_s,
            "warnings": [],
            "calibration_default": calibration_note(),
        }
        return own, width, default_calibration(width), meta
    from snncompile.frontend.nir_import import import_nir  # nir, h5py: .nir sources only

    result = import_nir(source, dt=dt, reset=reset)
    width = result.graph.input.op.size
    meta = {
        "nir_file": str(source),
        "dt_s": result.dt,
        "reset": reset,
        "input_shape": list(result.input_shape),
        "warnings": list(result.warnings),
        "calibration_default": calibration_note(),
    }
    return result.graph, width, default_calibration(width), meta


def spiking_nodes(net: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The spiking NIR nodes of a netlist compiled from NIR: node -> [(population, the
    node's neuron indices it holds)]. A node is one population of its name, or several
    when the lowering split it by its time constants (netlist meta, nir_rules.SPLIT_META)."""
    from snncompile.lower.nir_rules import SPLIT_META

    split = {
        pop: (node, np.asarray(idx, dtype=np.int64))
        for node, groups in net.meta.get(SPLIT_META, {}).items()
        for pop, idx in groups
    }
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for pop in net.populations:
        if pop.compartment.spiking:
            node, idx = split.get(pop.name, (pop.name, np.arange(pop.size)))
            out.setdefault(node, []).append((pop.name, idx))
    return out


def node_traces(
    nodes: dict[str, list[tuple[str, np.ndarray]]], traces: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each node's trace (..., node size) put together from its populations' traces (a
    node of one population's is that trace, not a copy: verify's memory budget counts
    one)."""
    out = {}
    for node, groups in nodes.items():
        first = traces[groups[0][0]]
        if len(groups) == 1:
            out[node] = first
            continue
        size = sum(idx.size for _, idx in groups)
        whole = np.empty((*first.shape[:-1], size), dtype=first.dtype)
        for pop, idx in groups:
            whole[..., idx] = traces[pop]
        out[node] = whole
    return out


def spike_agreement(
    source: str | os.PathLike[str] | Any,
    net: Any,
    x: np.ndarray,
    *,
    dt: float | None = None,
    reset: str = "zero",
) -> dict[str, dict[str, float]]:
    """Per spiking NIR node of `net` (a float64 or int netlist compiled from `source`; a
    node split into several populations counts as one): the fraction of (sample, step,
    neuron) spike values equal to the float NIR simulation on inputs x (B, L, n_in),
    and both spike rates, over the model steps the netlist runs (Netlist.steps_run)."""
    from snncompile.frontend.nir_sim import simulate_nir
    from snncompile.reference.simulator import simulate

    # Graded (I, LI, CubaLI) traces are in integer units in int netlists: spikes only.
    spiking = spiking_nodes(net)
    dt = dt if dt is not None else net.dt_s
    oracle = simulate_nir(source, x, dt=dt, reset=reset, record=list(spiking))
    nodes = {name: groups for name, groups in spiking.items() if name in oracle}
    result = simulate(net, x, record=[pop for groups in nodes.values() for pop, _ in groups])
    compiled = node_traces(nodes, result.traces)
    run = net.steps_run(x.shape[1])  # a node later than the readout: its last steps not run
    out: dict[str, dict[str, float]] = {}
    for name, groups in nodes.items():
        kept = run[groups[0][0]]
        want, got = oracle[name][:, :kept], compiled[name][:, :kept]
        out[name] = {
            "agreement": float(np.mean(want == got)),
            "rate_float": float(want.mean()),
            "rate_compiled": float(got.mean()),
        }
    return out
