"""The NIR source of the compile pipeline: load, default calibration, float-vs-quantized
spike agreement (rung 2 for imported graphs).

    graph, width, calibration, meta = load_nir_source("net.nir", dt=1e-4, reset="zero")
    agreement = spike_agreement("net.nir", compiled, x)   # per population
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


def spike_agreement(
    source: str | os.PathLike[str] | Any,
    net: Any,
    x: np.ndarray,
    *,
    dt: float | None = None,
    reset: str = "zero",
) -> dict[str, dict[str, float]]:
    """Per spiking population of `net` (a float64 or int netlist compiled from `source`):
    the fraction of (sample, step, neuron) spike values equal to the float NIR simulation
    on inputs x (B, L, n_in), and both spike rates."""
    from snncompile.frontend.nir_sim import simulate_nir
    from snncompile.reference.simulator import simulate

    # Graded (I, LI, CubaLI) traces are in integer units in int netlists: spikes only.
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    dt = dt if dt is not None else net.dt_s
    oracle = simulate_nir(source, x, dt=dt, reset=reset, record=spiking)
    names = [name for name in spiking if name in oracle]
    result = simulate(net, x, record=names)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        want, got = oracle[name], result.traces[name]
        out[name] = {
            "agreement": float(np.mean(want == got)),
            "rate_float": float(want.mean()),
            "rate_compiled": float(got.mean()),
        }
    return out
