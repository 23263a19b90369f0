"""Run a compiled artifact on inputs from a file, without torch (`snncompile simulate`).

    summary = simulate_artifact("model.ref", "x.npy", backend="reference", output="out.npz")

The artifact's hashes are checked on load (a tampered file is refused). Inputs are a
.npy of shape (batch, steps, inputs) or (steps, inputs), or an .npz holding `x` (and
optionally labels `y`, which add an accuracy to the summary).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import ArgumentTypeError, MissingDependencyError, UsageError
from snncompile.outputs import check_writable, npz_member_names, write_npz


@dataclass
class SimulationSummary:
    """What `simulate` prints and returns."""

    artifact: str
    backend: str
    n: int
    steps: int
    latency: int
    predictions: list[int]
    spike_rates: dict[str, float]
    # None for a float graph (`export --float`): it has no integer widths to leave
    saturation_events: dict[str, int] | None
    steps_per_second: float
    seconds: float
    accuracy: float | None = None
    output: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Simulation steps (ticks) per model step: > 1 for a time-multiplexed netlist, whose
    # latency and steps_per_second then count ticks.
    ticks_per_step: int = 1
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_inputs(
    path: str | os.PathLike[str],
    width: int,
    classes: int,
    *,
    what: str = "--input",
    steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs (B, L, width) float64, labels or None) from a .npy/.npz file
    (compiler.read_sequences); an .npz may add labels y, class indices in [0, classes)."""
    from snncompile.compiler import read_sequences

    x, arrays = read_sequences(path, what=what)
    return check_labeled_inputs(x, arrays.get("y"), width, classes, what=what, steps=steps)


def check_labeled_inputs(
    x: Any, labels: Any, width: int, classes: int, *, what: str, steps: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs (B, L, width) float64, labels or None) from arrays: inputs as
    compiler.check_inputs takes them (their first `steps`), labels class indices in
    [0, classes), one each."""
    from snncompile.compiler import check_inputs

    x = check_inputs(np.asarray(x), width, what=what, steps=steps)
    if labels is None:
        return x, None
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise UsageError(f"{what} labels y must be integers of shape ({x.shape[0]},)")
    if labels.size and not 0 <= labels.min() <= labels.max() < classes:
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise UsageError(
            f"{what} label {bad} is not a class of this model (classes 0 to {classes - 1})"
        )
    return x, labels


Progress = Callable[[float], None] | None


def steps_not_run_warnings(net: Any, steps: int, spike_rates: dict[str, float]) -> list[str]:
    """One line per spiking population later than the readout (a neuron of a loop through
    several neurons; docs/nir.md): its last model steps come after the run's last tick,
    so its traces hold zeros there and its spike rate counts them as silent."""
    run = net.steps_run(steps)
    return [
        f"{name} runs later than the readout: the last {steps - run[name]} of its {steps} "
        "model steps come after the run's last tick (not run; its trace holds 0 there and "
        "its spike rate counts them)"
        for name in spike_rates
        if run.get(name, steps) < steps
    ]


def saturation_warning(
    events: dict[str, int], steps: int, calibration_steps: int | None
) -> str | None:
    """What saturation events mean for the outputs, or None without any. A mean readout
    sums every step: calibrated on C-step inputs, it clips on much longer ones."""
    total = sum(int(count) for count in events.values())
    if not total:
        return None
    where = ", ".join(name for name, count in events.items() if count)
    if calibration_steps is not None and steps > calibration_steps:
        return (
            f"{total} saturation event(s) in {where}: the network was calibrated on "
            f"{calibration_steps}-step inputs and these have {steps}; clipped values make "
            "the outputs unreliable: calibrate on inputs this long (--calib)"
        )
    return (
        f"{total} saturation event(s) in {where}: values left the range found at "
        "calibration and were clipped; the outputs may differ from the model's"
    )


def _calibration_steps(report: dict[str, Any]) -> int | None:
    """The length of the calibration inputs an artifact's report records, if it does."""
    shape = report.get("calibration", {}).get("shape") if isinstance(report, dict) else None
    if isinstance(shape, list) and len(shape) == 3 and isinstance(shape[1], int):
        return shape[1]
    return None


def _run_reference(
    net: Any, x: np.ndarray, record: bool, internals: bool, progress: Progress, sink: Any = None
) -> Any:
    from snncompile.reference.simulator import simulate, simulate_into

    if sink is None:
        return simulate(net, x, record=record, record_internals=internals, progress=progress)
    tiles, result = simulate_into(net, x, sink)
    for fraction in tiles:
        if progress is not None:
            progress(fraction)
    return result()


def _run_onnx(
    net: Any, x: np.ndarray, record: bool, internals: bool, progress: Progress, sink: Any = None
) -> Any:
    """onnxruntime: a Netlist (its step graph is built), an artifact's StepSession, or a
    float export's FloatSession (logits and spike rates only)."""
    try:
        from snncompile.targets.onnx.runner import run_onnx
    except ImportError as exc:
        raise MissingDependencyError(f"the onnx backend is not available ({exc})") from None
    return run_onnx(net, x, record=record, record_internals=internals, progress=progress, sink=sink)


def _run_lava(
    net: Any, x: np.ndarray, record: bool, internals: bool, progress: Progress, sink: Any = None
) -> Any:
    try:
        from snncompile.targets.lava.runner import run_lava
    except ImportError as exc:
        raise MissingDependencyError(f"the lava backend is not available ({exc})") from None
    if record:
        return run_lava(
            net, x, record=True, record_internals=internals, progress=progress, sink=sink
        )
    # Record the spiking populations only: what the summary's spike rates need.
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    result = run_lava(net, x, record=spiking, progress=progress)
    result.traces = {}
    return result


# Backend name -> run(netlist, x, record, internals, progress, sink) -> SimResult;
# record=True traces every population that sends (aligned to model time), as the
# reference simulator does; internals adds every population's states and summed input
# (reference's record_internals); progress, if not None, is called with the fraction of
# the run done; sink (a verify.stream.TraceSink, with record=True and internals) gets
# the traces as they are made instead of the result.
BACKENDS: dict[str, Callable[..., Any]] = {
    "reference": _run_reference,
    "lava": _run_lava,
    "onnx": _run_onnx,
}


def run_backend(
    backend: str,
    net: Any,
    x: np.ndarray,
    *,
    record: bool = False,
    internals: bool = False,
    progress: Progress = None,
    sink: Any = None,
) -> Any:
    """Run the integer netlist on float inputs x (B, L, d_in) with `backend`; with a
    sink (record and internals), its traces go there as they are made (BACKENDS)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if sink is not None and not (record is True and internals):
        raise UsageError("a sink takes every trace: record=True, internals=True")
    return BACKENDS[backend](net, x, record, internals and record, progress, sink)


def run_in_parts(backend: str, source: Any, x: np.ndarray, progress: Progress = None) -> Any:
    """run_backend over equal parts of the batch x (reference.parts.part_size), merged
    into one result (reference.parts.merge_runs). No traces (simulate records none);
    progress gets the fraction of the whole batch's run done."""
    from snncompile.ir.netlist import Netlist
    from snncompile.reference.parts import merge_runs, part_progress, part_size

    n = int(x.shape[0])
    size = n  # an onnx session streams one step at a time: it holds no run's messages
    if isinstance(source, Netlist):
        # Lava records the spiking populations for the spike rates; the reference counts
        # spikes per tile and holds no trace, so its one sequence can be of any length.
        spiking = [p.name for p in source.populations if p.compartment.spiking]
        recorded = spiking if backend == "lava" else []
        size = part_size(source, n, int(x.shape[1]), recorded=recorded)
    starts = range(0, n, size)
    return merge_runs(
        [
            run_backend(
                backend, source, x[i : i + size], progress=part_progress(progress, k, len(starts))
            )
            for k, i in enumerate(starts)
        ]
    )


# What every simulate output holds (written below); -o replaces only such a file.
OUTPUT_ARRAYS = ("logits", "predictions", "readout")


def _check_replaceable(output: Path) -> None:
    """-o may replace an earlier simulate output (a rerun), never any other file: an
    existing x.npz of the user's data was silently replaced."""
    if not output.exists():
        return
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory; name the .npz file to write")
    if not {f"{key}.npy" for key in OUTPUT_ARRAYS} <= npz_member_names(output):
        raise UsageError(
            f"-o {output} exists and is not a simulate output; not replacing it "
            "(remove it or name another file)"
        )


def _check_not_an_input(output: Path, artifact: Path, inputs: Any) -> None:
    """-o must not replace the input file, nor a file of the artifact being run."""
    out = output.resolve()
    if isinstance(inputs, (str, os.PathLike)) and out == Path(inputs).resolve():
        raise UsageError(f"-o {output} is the --input file; write the outputs elsewhere")
    if out.is_relative_to(artifact.resolve()):  # also where its manifest is unreadable
        raise UsageError(f"-o {output} is inside the artifact {artifact}; write it elsewhere")


def simulate_artifact(
    artifact: str | os.PathLike[str],
    inputs: str | os.PathLike[str] | np.ndarray,
    *,
    backend: str = "reference",
    steps: int | None = None,
    output: str | os.PathLike[str] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_progress: Progress = None,
) -> SimulationSummary:
    """Run the artifact's integer netlist on the inputs; optionally write OUT.npz.

    backend "onnx" runs the artifact's model.onnx with onnxruntime: the integer step graph
    of an `--target onnx` export, or the float step graph of an `--target onnx --float` one.
    on_step(name) is called as each step starts: "read" (artifact and inputs), "simulate";
    on_progress(fraction) as the simulation advances (every tile, step or Lava step).
    """
    from snncompile.arguments import (
        check_callback,
        check_integer,
        check_path,
        check_text,
        describe,
    )
    from snncompile.artifact import read_artifact

    check_path(artifact, "artifact", reading=True)
    if not isinstance(inputs, np.ndarray):
        if not isinstance(inputs, (str, os.PathLike)):
            raise ArgumentTypeError(
                f"inputs must be a .npy/.npz path or a numpy array, got {describe(inputs)}"
            )
        check_path(inputs, "inputs", reading=True)
    if steps is not None:
        steps = check_integer(steps, "steps")
    if output is not None:
        check_path(output, "output")
    check_callback(on_step, "on_step")
    check_callback(on_progress, "on_progress")
    if check_text(backend, "backend") not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if output is not None:
        check_writable(output, file=True)  # before the run, not after it (an empty -o too)
        if Path(output).suffix != ".npz":
            raise UsageError(f"-o must name an .npz file, got {output}")
        _check_not_an_input(Path(output), Path(artifact), inputs)
        _check_replaceable(Path(output))
    step = on_step or (lambda name: None)
    step("read")
    source: Any
    net = None  # the integer netlist (a float export has none)
    calibration_steps = None  # (a float export has no report: it computes in float)
    from snncompile.targets.onnx.float_model import is_float_artifact

    float_export = is_float_artifact(artifact)
    if backend == "onnx" and float_export:
        from snncompile.targets.onnx.float_model import open_onnx_artifact

        source, width, latency = open_onnx_artifact(artifact)
        ticks, classes = 1, source.interface.output_size
    elif float_export:
        from snncompile.targets.onnx.float_model import read_float_manifest

        read_float_manifest(artifact)  # a damaged artifact is named as such, not as misused
        raise UsageError(
            f"{artifact} is an `export --float` (no integer netlist): "
            "simulate it with --backend onnx"
        )
    else:
        read = read_artifact(artifact)
        calibration_steps = _calibration_steps(read.report)
        net = read.netlist
        source = net
        if backend == "onnx":  # the artifact's own model.onnx when it has one
            from snncompile.targets.onnx.runner import artifact_session

            source = artifact_session(read)
        width, latency = net.input.size, net.output_latency
        ticks, classes = net.ticks_per_step, net.readout.size
    if isinstance(inputs, np.ndarray):
        from snncompile.compiler import check_inputs

        x, labels = check_inputs(inputs, width, what="inputs", steps=steps), None
    else:
        x, labels = load_inputs(inputs, width, classes, steps=steps)
    step("simulate")
    if backend == "reference":  # numba's import stays outside the timed run, as before
        from snncompile.reference import loops  # noqa: F401
    start = time.perf_counter()
    result = run_in_parts(backend, source, x, on_progress)
    seconds = time.perf_counter() - start
    predictions = result.logits.argmax(axis=1)
    summary = SimulationSummary(
        artifact=str(artifact),
        backend=backend,
        n=int(x.shape[0]),
        steps=int(x.shape[1]),
        latency=latency,
        predictions=[int(p) for p in predictions],
        spike_rates=dict(result.spike_rates),
        saturation_events=None if float_export else dict(result.events),
        steps_per_second=result.steps / seconds if seconds > 0 else float("inf"),
        seconds=seconds,
        accuracy=None if labels is None else float(np.mean(predictions == labels)),
        ticks_per_step=ticks,
    )
    warning = saturation_warning(result.events, int(x.shape[1]), calibration_steps)
    if warning is not None:
        summary.warnings.append(warning)
    if net is not None:
        summary.warnings += steps_not_run_warnings(net, int(x.shape[1]), result.spike_rates)
    if output is not None:
        out = Path(output)
        arrays = dict(zip(OUTPUT_ARRAYS, (result.logits, predictions, result.readout), strict=True))
        write_npz(out, arrays)
        summary.output = str(out)
    return summary
