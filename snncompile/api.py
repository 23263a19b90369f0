"""The Python API behind the CLI: one function per user-visible job."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snncompile.api_train import (  # noqa: F401  (re-exported: the API is one module)
    EvaluationReport,
    FinetuneReport,
    evaluate_checkpoint,
    finetune_checkpoint,
    train_checkpoint,
)
from snncompile.arguments import (
    check_callback,
    check_flag,
    check_integer,
    check_optional_dict,
    check_path,
    check_text,
    describe,
)
from snncompile.errors import ArgumentTypeError, CorruptInputError, UsageError
from snncompile.inspection import (  # noqa: F401  (re-exported)
    inspect_artifact,
    inspect_checkpoint,
    inspect_float_artifact,
    inspect_nir,
    inspect_path,
)

if TYPE_CHECKING:
    from snncompile.verify.nir import NirVerifyReport
    from snncompile.verify.quantized import Tolerances, VerifyReport


DATA_SPLITS = ("test", "train", "calibration")


def write_task_data(
    model: str | Path,
    output: str | Path,
    *,
    split: str = "test",
    limit: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the `split` of the bundled task `model` (a checkpoint) was trained on as an
    .npz of inputs x (B, L, d_input) float32, as the model takes them, and labels y
    (int64): the file simulate --input and verify --data read. split "calibration"
    writes the checkpoint's embedded calibration batch instead, x alone in float64 (what
    export calibrates on without --calib, so `export --calib` of that file, e.g. for the
    model's NIR export read back, quantizes alike). An existing `output` is replaced
    only with `overwrite`, and only if it holds x and y, or x, alone. Returns what was
    written."""
    import numpy as np

    from snncompile.checkpoint import checkpoint_task, load_checkpoint
    from snncompile.outputs import check_writable, write_npz

    check_path(model, "model", reading=True)
    check_path(output, "output")
    overwrite = check_flag(overwrite, "overwrite")
    if limit is not None:
        limit = check_integer(limit, "limit")
    if check_text(split, "split") not in DATA_SPLITS:
        raise UsageError(f"--split must be test, train or calibration, got {split!r}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    out = check_writable(output, file=True)
    if out.suffix != ".npz":
        raise UsageError(
            f"-o {out}: name an .npz file (it holds the inputs x and, but for --split "
            "calibration, the labels y)"
        )
    _check_data_replaceable(out, overwrite)
    ckpt = load_checkpoint(model)
    if split == "calibration":
        if ckpt.calibration is None:
            raise UsageError(
                f"{model} holds no calibration batch (snncompile.save writes one when given "
                "calibration=)"
            )
        # float64, as export reads it (a bfloat16 batch has no numpy dtype; helper-73)
        x = ckpt.calibration.double().numpy()[:limit]
        write_npz(out, {"x": x})
        return {"path": str(out), "task": None, "split": split, "x": list(x.shape), "y": []}
    task = checkpoint_task(model, ckpt)
    part = task.test if split == "test" else task.train
    n = len(part.labels) if limit is None else min(limit, len(part.labels))
    x = np.asarray(task.featurize(part.inputs[:n]), dtype=np.float32)
    y = np.asarray(part.labels[:n], dtype=np.int64)
    write_npz(out, {"x": x, "y": y})
    return {"path": str(out), "task": task.name, "split": split, "x": list(x.shape), "y": [n]}


def _check_data_replaceable(out: Path, overwrite: bool) -> None:
    """-o replaces an existing file only with --overwrite, and only an .npz of x and y,
    or x, alone (what `data` writes): never a file of another kind."""
    from snncompile.outputs import npz_member_names

    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise UsageError(f"-o {out} exists; pass --overwrite to replace it")
    if out.is_symlink() or npz_member_names(out) not in ({"x.npy", "y.npy"}, {"x.npy"}):
        raise UsageError(
            f"-o {out} is not an .npz of x and y, or x, alone (as data writes); not "
            "replacing it (remove it or name another file)"
        )


def verification_data(
    data: str | Path | None,
    meta: dict[str, Any],
    calibration: Any,
    width: int,
    classes: int,
    limit: int | None,
    calibration_origin: str = "the embedded calibration batch",
) -> tuple[Any, Any, str]:
    """(inputs, labels or None, where they came from) for `verify`.

    --data FILE (as simulate's --input: a .npy of inputs (batch, steps, width) or one
    sequence (steps, width), or an .npz with `x` and optional labels `y`), or from Python
    an array of inputs or a tuple (inputs, labels), wins; else the test
    split of the bundled task the checkpoint was trained on; else the calibration batch
    (named `calibration_origin` in the report).
    """
    import numpy as np

    from snncompile.checkpoint import rebuild_task, task_misfit
    from snncompile.compiler import check_inputs
    from snncompile.data import TASKS
    from snncompile.simulate import check_labeled_inputs, load_inputs

    if isinstance(data, tuple) and len(data) == 2:  # from Python: (inputs, labels)
        x, labels = check_labeled_inputs(data[0], data[1], width, classes, what="data")
        source = "the given inputs"
    elif isinstance(data, np.ndarray):
        x, labels = check_labeled_inputs(data, None, width, classes, what="data")
        source = "the given inputs"
    elif data is not None:
        x, labels = load_inputs(data, width, classes, what="--data")
        source = str(data)
    else:
        if meta.get("task") in TASKS:  # another name is a task of the user's own
            origin = meta.get("checkpoint", "the checkpoint")
            misfit = task_misfit(width, classes, meta["task"])
            if misfit is not None:
                raise CorruptInputError(f"{origin}: {misfit}")
            task = rebuild_task(origin, meta)
            x, labels = task.featurize(task.test.inputs), np.asarray(task.test.labels)
            source = f"{meta['task']} test split"
        elif calibration is not None:
            x, labels, source = calibration, None, calibration_origin
        else:
            raise UsageError("no data to verify on: pass --data FILE")
        x = check_inputs(np.asarray(x), width, what="the verification inputs")
    if limit is not None:
        x = x[:limit]
        labels = None if labels is None else labels[:limit]
    return x, labels, source


def _data_argument(data: Any) -> Any:
    """`data` as verification_data takes it: a path, a numpy array or (inputs, labels)
    of arrays. Torch tensors and nested lists become arrays (compiler.as_array, as for
    calibration batches); anything else is an ArgumentTypeError (an int failed in
    os.fspath, as if it were a file name)."""
    from snncompile.compiler import as_array

    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        return check_path(data, "data", reading=True)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ArgumentTypeError(
                f"data as a tuple must be (inputs, labels), got {len(data)} items"
            )
        inputs, labels = data
        labels = None if labels is None else as_array(labels, "data's labels")
        return as_array(inputs, "data's inputs"), labels
    if not (isinstance(data, list) or hasattr(data, "__array__")):  # tensors have it
        raise ArgumentTypeError(
            "data must be a .npy/.npz path, an array of inputs (numpy, torch, nested "
            f"lists) or a tuple (inputs, labels), got {describe(data)}"
        )
    return as_array(data, "data")


def verify_model(
    source: Any,
    *,
    data: Any = None,
    target: str = "reference",
    tolerances: Tolerances | None = None,
    config: Any = None,
    calibration: Any = None,
    entry: str | None = None,
    limit: int | None = None,
    dt: float | None = None,
    reset: str = "zero",
    on_step: Callable[[str], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> VerifyReport | NirVerifyReport:
    """Compile `source` and verify it: rung 1 (lowering exact) and rung 2 (float vs
    quantized reference, against tolerances); for a target other than the reference also
    rung 3, the target's run of the integer netlist vs the reference's, which must be
    equal in every value. A .nir source (imported at `dt` with `reset`) is checked against
    snncompile's float simulation of the NIR graph instead of PyTorch (verify.nir).

    on_step(name) is called as each step starts: the compiler's steps, then "verify"
    (rungs 1-2) and "verify-target" (rung 3); on_progress(fraction) as rung 3's target
    runs advance. data: a .npy/.npz file as --data takes it, or an array of inputs
    (numpy, a torch tensor or nested lists), or a tuple (inputs, labels) of such.
    Returns a VerifyReport (a NirVerifyReport for a .nir source); it does not raise when
    a check fails (the CLI turns `report.failures` into exit code 3).
    """
    from snncompile.compiler import check_source, compile_model
    from snncompile.frontend.nir_compile import is_nir_source
    from snncompile.simulate import BACKENDS, saturation_warning
    from snncompile.verify.quantized import Tolerances, verify_quantized
    from snncompile.verify.targets import check_backend

    check_source(source)
    data = _data_argument(data)
    check_callback(on_step, "on_step")
    check_callback(on_progress, "on_progress")
    if tolerances is not None and not isinstance(tolerances, Tolerances):
        raise ArgumentTypeError(f"tolerances must be a Tolerances, got {type(tolerances).__name__}")
    if limit is not None:
        limit = check_integer(limit, "limit")
    check_text(target, "target")
    check_text(reset, "reset")
    if entry is not None:
        check_text(entry, "entry")
    if target not in BACKENDS:
        raise UsageError(f"verify --target {target!r}: choose from {', '.join(BACKENDS)}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be a positive number of inputs, got {limit!r}")
    step = on_step or (lambda name: None)
    if is_nir_source(source):
        if entry is not None:  # as export refuses it (compile_model)
            raise UsageError("--entry applies to PyTorch models, not to a .nir graph")
        report, x, compiled = _verify_nir(
            source, data, tolerances, config, calibration, limit, dt, reset, step
        )
    else:
        if dt is not None or reset != "zero":
            raise UsageError("--dt and --reset apply to .nir sources only")
        compiled = compile_model(
            source, entry=entry, calibration=calibration, config=config, on_step=step
        )
        width = compiled.netlist.input.size
        x, labels, origin = verification_data(
            data,
            compiled.meta,
            compiled.calibration,
            width,
            compiled.netlist.readout.size,
            limit,
            calibration_origin=(
                "the embedded calibration batch"
                if calibration is None
                else "the calibration inputs"
            ),
        )
        step("verify")
        report = verify_quantized(compiled, x, labels, tolerances)
        report.data = origin
        report.warnings[:0] = _compiler_warnings(compiled)
        if data is None and labels is None:
            report.warnings.append(_calibration_only_warning(compiled.meta.get("task"), origin))
    calibration_steps = None if compiled.calibration is None else compiled.calibration.shape[1]
    warning = saturation_warning(report.events, int(x.shape[1]), calibration_steps)
    if warning is not None:
        report.warnings.append(warning)
    if target != "reference":
        step("verify-target")
        check = check_backend(compiled.netlist, x, target, progress=on_progress)
        report.target_check = check.to_dict()
        if not check.exact:
            report.failures.append(f"reference vs {target} not exact: {check.divergence}")
    return report


def _compiler_warnings(compiled: Any) -> list[str]:
    """What export says of the compiled network besides its report (reading the file, a
    finetune mismatch, inputs rounded away) and in it (populations calibration never
    moved, what quantize made coarser than the options asked), for verify to say too."""
    from snncompile.quantize.quantize import precision_notes, silent_in_calibration_warnings

    populations = compiled.report.populations
    return [
        *compiled.meta.get("warnings", []),
        *silent_in_calibration_warnings(populations),
        *(f"{label} {text}" for label, text in precision_notes(populations)),
    ]


def _calibration_only_warning(task: Any, origin: str) -> str:
    """Why verify ran on the inputs the scales were set from, and what to pass instead."""
    why = f"its task {task!r} is not a bundled one" if task else "the model names no task"
    return (
        f"verified on {origin}, the inputs the quantization was calibrated on ({why}): "
        "pass --data FILE to verify on held-out inputs"
    )


# Tolerances fields that judge PyTorch logits; a .nir source has none to judge.
LOGIT_CRITERIA = ("min_argmax_agreement", "max_accuracy_drop")


def logit_criterion_refused(name: str) -> UsageError:
    """The refusal of a LOGIT_CRITERIA tolerance for a .nir source."""
    option = "--" + name.replace("_", "-")
    return UsageError(
        f"{option} applies to PyTorch sources: a .nir source is checked by its outputs' "
        "error (--max-logit-error) and spike agreement (--min-spike-agreement)"
    )


def _verify_nir(source, data, tolerances, config, calibration, limit, dt, reset, step) -> tuple:
    """Rungs 1-2 for a .nir source: (report, the inputs, the compiled network)."""
    from snncompile.compiler import compile_model
    from snncompile.frontend.nir_compile import DEFAULT_CALIB_RATE
    from snncompile.frontend.nir_snncompile import is_snncompile_nir
    from snncompile.verify.nir import default_inputs, verify_nir
    from snncompile.verify.quantized import Tolerances

    if is_snncompile_nir(source):  # its oracle would be our own encoding of itself
        raise UsageError(
            f"{source} was written by snncompile: verify the model it was exported from"
        )
    defaults = Tolerances()
    for name in LOGIT_CRITERIA:  # from Python a default value cannot be told from none
        if tolerances is not None and getattr(tolerances, name) != getattr(defaults, name):
            raise logit_criterion_refused(name)
    compiled = compile_model(
        source, calibration=calibration, config=config, dt=dt, reset=reset, on_step=step
    )
    width = compiled.netlist.input.size
    if data is not None:
        classes = compiled.netlist.readout.size
        x, labels, origin = verification_data(data, {}, None, width, classes, limit)
        labeled = origin
    else:
        labels = None
        x, origin = default_inputs(width, DEFAULT_CALIB_RATE)
        if limit is not None:
            x = x[:limit]
    if limit is not None:
        origin = f"{origin}, first {limit}"
    tolerances = tolerances if tolerances is not None else Tolerances()
    step("verify")
    report = verify_nir(
        compiled,
        x,
        origin,
        min_spike_agreement=tolerances.min_spike_agreement,
        max_output_error=tolerances.max_logit_error,
    )
    # What reading the file found (nir's type check, a declared shape replaced), as
    # export and inspect print it: verify said nothing of it.
    report.warnings[:0] = _compiler_warnings(compiled)
    if labels is not None:  # the checkpoint path reports an accuracy from them
        report.warnings.append(
            f"the labels in {labeled} are not used: a .nir source has no accuracy here, it "
            "is checked by its outputs' error and spike agreement"
        )
    return report, x, compiled


@dataclass
class ExportResult:
    """What `export` did: the pipeline's stages, and the artifact unless it stopped early."""

    compiled: Any
    path: Path | None = None
    report: dict[str, Any] | None = None
    target_summary: dict[str, Any] | None = None  # loihi2: cores, chips, energy estimate


def export_model(
    source: Any,
    out_dir: str | Path | None = None,
    *,
    target: str = "reference",
    entry: str | None = None,
    calibration: Any = None,
    config: Any = None,
    stop_after: str | None = None,
    overwrite: bool = False,
    on_step: Any = None,
    target_config: str | Path | None = None,
    dt: float | None = None,
    reset: str = "zero",
    target_options: dict[str, Any] | None = None,
    float_export: bool = False,
) -> ExportResult:
    """Compile `source` and write the artifact to `out_dir` (nothing when stop_after).

    A .nir source is imported at `dt` seconds (required unless its metadata states dt)
    with `reset` "zero", "subtract" or "subtract-delayed" (docs/nir.md).

    target "loihi2" maps the network on cores and runs the design-rule check before
    writing anything (HardwareRuleError, exit 5, lists every violation); target_config
    is a TOML file overriding entries of its target description. target_options: more
    options of the target by name (e.g. {"nir_ssm": "euler"} for nir). float_export (target
    "onnx" only) exports the float PyTorch model one step at a time instead of the integer
    netlist, checked against PyTorch (EquivalenceError, exit 3, writes nothing).
    """
    import json

    from snncompile.artifact import check_output_dir, write_artifact
    from snncompile.compiler import check_source, compile_model
    from snncompile.targets import TARGETS, get_target

    check_source(source)
    if out_dir is not None:
        check_path(out_dir, "out_dir")
    if target_config is not None:
        check_path(target_config, "target_config", reading=True)
    target_options = check_optional_dict(target_options, "target_options")
    for key in target_options:
        check_text(key, "a key of target_options")
    check_text(target, "target")
    check_text(reset, "reset")
    for value, name in ((entry, "entry"), (stop_after, "stop_after")):
        if value is not None:
            check_text(value, name)
    overwrite = check_flag(overwrite, "overwrite")
    float_export = check_flag(float_export, "float_export")
    check_callback(on_step, "on_step")
    spec = get_target(target)
    module = spec.load()
    options: dict[str, Any] = {"target_config": target_config} if target_config else {}
    options.update({k: v for k, v in target_options.items() if v is not None})
    if float_export:
        options["float"] = True
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takers = [t.name for t in TARGETS.values() if set(unknown) <= set(t.options)]
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        where = f"; it applies to --target {' or '.join(takers)}" if takers else ""
        raise UsageError(f"{flags} does not apply to --target {target}{where}")
    parsed = module.check_options(options) if module is not None else None  # fail early
    if out_dir is not None and stop_after is None:
        _check_source_outside(source, out_dir)
    if float_export:
        _check_float_options(source, config, stop_after, dt, reset)
        return _export_float(source, out_dir, module, entry, calibration, overwrite)
    if stop_after is None:
        if out_dir is None:
            raise UsageError("export needs an output directory (-o OUT)")
        check_output_dir(out_dir, overwrite)  # fail before the slow part
    compiled = compile_model(
        source,
        entry=entry,
        calibration=calibration,
        config=config,
        stop_after=stop_after,
        on_step=on_step,
        dt=dt,
        reset=reset,
        check_traced=getattr(module, "check_traced", None),
    )
    if stop_after is not None:
        return ExportResult(compiled)
    extra_files = extra_manifest = None
    if module is not None:
        if on_step is not None:
            on_step(target)
        build = module.prepare(compiled, parsed)  # target checks raise before any writing
        extra_files, extra_manifest = build.files(), build.manifest()
    if on_step is not None:
        on_step("write")
    path = write_artifact(
        compiled,
        out_dir,  # type: ignore[arg-type]
        target=target,
        extra_files=extra_files,
        extra_manifest=extra_manifest,
        overwrite=overwrite,
    )
    report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    summary = module.summarize_artifact(path) if module is not None else None
    return ExportResult(compiled, path, report, summary)


def _check_source_outside(source: object, out_dir: str | os.PathLike[str]) -> None:
    """UsageError when -o is, or holds, the model file being exported: --overwrite would
    replace the directory, deleting the source (a re-export of an artifact's model.nir
    into that artifact left a manifest naming a file that was gone)."""
    if not isinstance(source, (str, os.PathLike)) or not os.fspath(out_dir):
        return  # an empty -o is refused as such (outputs.check_writable), not as ".'s"
    model, out = Path(source).resolve(), Path(out_dir).resolve()
    if model == out or out in model.parents:
        raise UsageError(f"-o {out_dir} holds the model being exported ({source}); write elsewhere")


def _check_float_options(
    source: Any, config: Any, stop_after: str | None, dt: float | None, reset: str
) -> None:
    """--float exports a PyTorch model as it is: options of the integer pipeline or of a
    NIR import are refused rather than silently ignored."""
    from snncompile.frontend.nir_compile import is_nir_source

    if is_nir_source(source):
        raise UsageError(
            "--float exports a PyTorch model; a .nir graph goes to the netlist targets "
            "(drop --float)"
        )
    ignored = [
        flag
        for flag, given in (
            ("--stop-after", stop_after is not None),
            ("the quantization options (bit widths, --netx-weights)", config is not None),
            ("--dt", dt is not None),
            ("--reset", reset != "zero"),
        )
        if given
    ]
    if ignored:
        raise UsageError(
            f"--float takes the model as it is, without the integer pipeline: "
            f"{', '.join(ignored)} cannot be used with it"
        )


def _export_float(
    source: Any,
    out_dir: str | Path | None,
    module: Any,
    entry: str | None,
    calibration: Any,
    overwrite: bool,
) -> ExportResult:
    """`export --target onnx --float`: the float model's step graph (no netlist)."""
    import json

    from snncompile.compiler import calibration_inputs, load_model

    if out_dir is None:
        raise UsageError("export needs an output directory (-o OUT)")
    module.check_float_output(out_dir, overwrite)  # fail before the slow part
    model, width, embedded, meta = load_model(source, entry=entry)
    x = calibration_inputs(embedded, calibration, width, purpose="the float export is checked on")
    path = module.export_float(
        model,
        x[: module.FLOAT_CHECK_SEQUENCES, : module.FLOAT_CHECK_STEPS],
        out_dir,
        overwrite=overwrite,
        meta=meta,
    )
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return ExportResult(None, path, manifest, None)
