"""The Python API behind the CLI: one function per user-visible job."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snncompile.errors import CorruptInputError, UsageError
from snncompile.inspection import (  # noqa: F401  (re-exported: the API is one module)
    inspect_artifact,
    inspect_checkpoint,
    inspect_float_artifact,
    inspect_nir,
    inspect_path,
)

if TYPE_CHECKING:
    from snncompile.data import Task
    from snncompile.models.backbone import SequenceModel
    from snncompile.train import History, TrainSettings
    from snncompile.verify.nir import NirVerifyReport
    from snncompile.verify.quantized import VerifyReport


@dataclass(frozen=True)
class EvaluationReport:
    """What `snncompile evaluate` and `train` report about a checkpoint."""

    path: str
    family: str
    task: str
    accuracy: float
    loss: float
    spike_rates: dict[str, float]
    n: int
    recorded_accuracy: float | None = None
    train_seconds: float | None = None  # set by train; evaluate trains nothing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _task_args(meta: dict[str, Any]) -> dict[str, Any]:
    return dict(meta.get("task_args") or {})


def _rebuild_task(origin: str | Path, meta: dict[str, Any]) -> Any:
    """The bundled task a checkpoint's metadata names, or a UsageError naming `origin`
    (load_checkpoint checked task_args already; generation may still refuse them)."""
    from snncompile.data import load_task

    try:
        return load_task(meta["task"], **_task_args(meta))
    except UsageError as exc:
        raise UsageError(f"{origin}: cannot rebuild its task {meta['task']!r}: {exc}") from None


def train_checkpoint(
    *,
    family: str,
    task_name: str,
    output: str | Path,
    epochs: int = 30,
    width: int = 64,
    depth: int = 2,
    state_size: int = 64,
    batch_size: int = 64,
    lr: float = 1e-2,
    weight_decay: float = 0.01,
    dropout: float = 0.0,
    prenorm: bool = False,
    pooling: str = "mean",
    seed: int = 0,
    listops_length: int = 128,
    listops_depth: int = 4,
    calib_size: int = 32,
    neuron_method: str | None = None,
    progress: bool = True,
    command: str = "",
) -> EvaluationReport:
    """Train a `family` model on a bundled task, evaluate it, save it with a calibration batch.

    neuron_method: how spike-ssm's reset-refractory neurons compute in training (one of
    ResetRefractoryNeuron's methods, default "pmbc"; the same spikes, so the same kind of
    model; the gradients agree to rounding, so the weights are not those of another
    method). Given for another family it is refused: it would change nothing."""
    import torch

    from snncompile import __version__
    from snncompile.checkpoint import check_checkpoint_path, save
    from snncompile.data import load_task
    from snncompile.models.backbone import ModelConfig, build_model
    from snncompile.train import calibration_batch, evaluate

    # Everything that can be refused is refused before the minutes of training.
    check_checkpoint_path(output, what="-o")  # a checkpoint is re-made, nothing else
    for name, value, low, high in (
        ("--width", width, 1, 1 << 14),
        ("--depth", depth, 1, 256),
        ("--state-size", state_size, 1, 1 << 14),
    ):
        if not low <= value <= high:  # beyond these a model exhausts memory before training
            raise UsageError(f"{name} must be in [{low}, {high}], got {value}")
    if calib_size < 1:
        raise UsageError(
            f"--calib-size must be at least 1 (export calibrates on it), got {calib_size}"
        )
    settings = _train_settings(epochs, batch_size, lr, weight_decay, seed)
    if not 0 <= dropout < 1:  # named as the option (ModelConfig names its field)
        raise UsageError(f"--dropout must be in [0, 1), got {dropout}")
    task_args = {"length": listops_length, "depth": listops_depth} if task_name == "listops" else {}
    try:
        task = load_task(task_name, **task_args)  # an unknown task is named first
    except UsageError as exc:
        if task_name != "listops":
            raise
        raise UsageError(
            f"{exc} (--listops-length {listops_length}, --listops-depth {listops_depth})"
        ) from None
    if task_name != "listops" and (listops_length, listops_depth) != (128, 4):
        raise UsageError(f"listops_length and listops_depth apply to listops, not {task_name}")
    if calib_size > len(task.train.labels):  # it was cut to the training set silently
        raise UsageError(
            f"--calib-size {calib_size} is more than the {len(task.train.labels)} training "
            f"inputs of {task_name}"
        )
    torch.manual_seed(seed)
    config = ModelConfig(
        family=family,
        d_input=task.d_input,
        d_output=task.n_classes,
        d_model=width,
        n_layers=depth,
        d_state=state_size,
        dropout=dropout,
        prenorm=prenorm,
        pooling=pooling,
    )
    neuron_method = _check_neuron_method(neuron_method, family)  # after ModelConfig's checks
    model = build_model(config)
    _set_neuron_method(model, neuron_method)
    history = _train_with_progress(model, task, settings, progress)
    result = evaluate(model, task.test, task.featurize)
    meta = {
        "task": task_name,
        "task_args": task_args,
        "test_accuracy": result.accuracy,
        "test_n": result.n,
        "spike_rates": result.spike_rates,
        "train": asdict(settings),
        "neuron_method": neuron_method,
        "train_seconds": round(history.seconds, 1),
        "command": command,
        "snncompile_version": __version__,
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        # The weights are reproducible only with both: torch's float sums change order
        # with its vector kernels (AVX2, AVX512, ...) and its thread count.
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    save(model, output, calibration=calibration_batch(task, calib_size, seed), meta=meta)
    return EvaluationReport(
        path=str(output),
        family=family,
        task=task_name,
        accuracy=result.accuracy,
        loss=result.loss,
        spike_rates=result.spike_rates,
        n=result.n,
        recorded_accuracy=result.accuracy,
        train_seconds=history.seconds,
    )


@dataclass(frozen=True)
class FinetuneReport:
    """What `snncompile finetune` did: accuracy before and after, the weights it fitted."""

    path: str
    family: str
    task: str
    weight_bits: int
    accuracy_before: float
    accuracy: float
    spike_rates: dict[str, float]
    n: int
    parameters: list[str]
    train_seconds: float
    export_weight_rounding: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune_checkpoint(
    model: str | Path,
    output: str | Path,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    weight_bits: int = 8,
    seed: int = 0,
    progress: bool = True,
    command: str = "",
) -> FinetuneReport:
    """Fine-tune a checkpoint with the encoder's, GLU projections' and decoder's weights
    on export's weight_bits grid (snncompile/finetune.py) on the task it was trained on,
    and save it, those weights on the grid, with its calibration batch."""
    import torch

    from snncompile import __version__
    from snncompile.checkpoint import check_checkpoint_path, load_checkpoint, save
    from snncompile.finetune import snap_to_grid, weights_on_grid
    from snncompile.quantize.quantize import QuantConfig
    from snncompile.train import evaluate

    check_checkpoint_path(output, what="-o")
    if Path(output).exists() and Path(model).exists() and os.path.samefile(output, model):
        # As export and simulate refuse their input as -o: the trained model would be gone.
        raise UsageError(f"-o {output} is MODEL itself; write the fine-tuned model to a new file")
    settings = _train_settings(epochs, batch_size, lr, weight_decay, seed)
    try:
        QuantConfig(weight_bits=weight_bits)  # export's rule for the width
    except UsageError as exc:
        raise UsageError(str(exc).replace("weight_bits", "--weight-bits")) from None
    ckpt = load_checkpoint(model)
    task = _checkpoint_task(model, ckpt)
    _refuse_integer_undeployable(model, ckpt)
    before = evaluate(ckpt.model, task.test, task.featurize)
    _set_neuron_method(ckpt.model, _recorded_neuron_method(ckpt))
    torch.manual_seed(seed)
    with weights_on_grid(ckpt.model, weight_bits) as parameters:
        history = _train_with_progress(ckpt.model, task, settings, progress)
    snap_to_grid(ckpt.model, weight_bits)
    result = evaluate(ckpt.model, task.test, task.featurize)
    rounding = _export_weight_rounding(ckpt, weight_bits)
    meta = dict(ckpt.meta)
    meta.update(test_accuracy=result.accuracy, test_n=result.n, spike_rates=result.spike_rates)
    meta["finetune"] = {
        "weight_bits": weight_bits,
        "parameters": parameters,
        "test_accuracy_before": before.accuracy,
        "export_weight_rounding": rounding,
        "train": asdict(settings),
        "train_seconds": round(history.seconds, 1),
        "command": command,
        "snncompile_version": __version__,
        "torch_version": str(torch.__version__),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    if isinstance(ckpt.meta.get("finetune"), dict):  # fine-tuned before: keep that record
        meta["finetune"]["earlier"] = ckpt.meta["finetune"]
    save(ckpt.model, output, calibration=ckpt.calibration, meta=meta)
    return FinetuneReport(
        path=str(output),
        family=ckpt.config.family,
        task=task.name,
        weight_bits=weight_bits,
        accuracy_before=before.accuracy,
        accuracy=result.accuracy,
        spike_rates=result.spike_rates,
        n=result.n,
        parameters=parameters,
        train_seconds=history.seconds,
        export_weight_rounding=rounding,
    )


def _export_weight_rounding(ckpt: Any, weight_bits: int) -> dict[str, Any]:
    """What export's weight rounding still loses in the fine-tuned model, compiled with its
    calibration batch at the default widths but `weight_bits`: {"largest_relative_rms_error",
    "synapse"}, 0 where every synapse is exact; or {"not_measured": why}. A bias or constant
    finer than one unit of its destination's input keeps an error no grid of its own
    removes (export floors it to whole units), as a folded BatchNorm's shift does."""
    from snncompile.compiler import compile_model
    from snncompile.errors import SnnCompileError
    from snncompile.quantize.quantize import QuantConfig

    if ckpt.calibration is None:
        return {"not_measured": "the checkpoint embeds no calibration batch"}
    try:
        compiled = compile_model(
            ckpt.model,
            input_size=ckpt.config.d_input,
            calibration=ckpt.calibration.double().numpy(),
            config=QuantConfig(weight_bits=weight_bits),
        )
    except SnnCompileError as exc:  # export at other options may still take it
        return {"not_measured": f"export at the default widths refuses it: {exc}"}
    errors = {name: s["relative_rms_error"] for name, s in compiled.report.synapses.items()}
    worst = max(errors, key=lambda name: errors[name])
    return {"largest_relative_rms_error": errors[worst], "synapse": worst}


def _recorded_neuron_method(ckpt: Any) -> str | None:
    """The method spike-ssm's neurons were trained with, when the metadata names a valid
    one (the spikes are the same either way; it decides the speed and the rounding)."""
    from snncompile.models.neurons.reset_refractory import METHODS

    method = ckpt.meta.get("neuron_method")
    return method if ckpt.config.family == "spike-ssm" and method in METHODS else None


def _refuse_integer_undeployable(path: str | Path, ckpt: Any) -> None:
    """UnsupportedError when no integer target takes the model: its weights would be fitted
    to a grid nothing uses (the s4d baseline's GELU, GSU)."""
    from snncompile.errors import UnsupportedError
    from snncompile.frontend.torch_trace import trace
    from snncompile.support import verdicts

    graph = trace(ckpt.model, ckpt.config.d_input, source=str(path))
    found = verdicts(ckpt.config.family, graph)
    verdict = found["reference"]
    if not verdict["ok"]:
        takers = [label for label, taken in found.items() if taken["ok"]]
        raise UnsupportedError(
            f"{path}: no integer target takes {', '.join(verdict['nodes'])} "
            f"({', '.join(verdict['missing'])}), so there is no weight grid to fine-tune "
            f"for; it goes to {', '.join(takers) or 'no target'}"
        )


def _train_settings(
    epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int
) -> TrainSettings:
    """TrainSettings of `train` and `finetune`, a bad value named as its option
    (TrainSettings names its fields), before the minutes of training."""
    from snncompile.train import TrainSettings

    for name, value, ok, rule in (
        ("--epochs", epochs, epochs >= 1, "at least 1"),
        ("--batch-size", batch_size, batch_size >= 1, "at least 1"),
        ("--lr", lr, 0 < lr < math.inf, "positive and finite"),  # NaN fails each
        ("--weight-decay", weight_decay, 0 <= weight_decay < math.inf, "non-negative"),
        ("--seed", seed, 0 <= seed <= 2**32 - 1, f"in [0, {2**32 - 1}]"),
    ):
        if not ok:
            raise UsageError(f"{name} must be {rule}, got {value}")
    return TrainSettings(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed
    )


def _check_neuron_method(method: str | None, family: str) -> str | None:
    """The method spike-ssm trains with (None for families without that neuron)."""
    from snncompile.models.neurons.reset_refractory import METHODS

    if method is not None and method not in METHODS:
        raise UsageError(f"--neuron-method must be one of {', '.join(METHODS)}, got {method!r}")
    if family != "spike-ssm":
        if method is not None:  # even "pmbc": accepting it would say it did something
            raise UsageError(f"--neuron-method applies to --family spike-ssm, not {family}")
        return None
    return method or "pmbc"


def _set_neuron_method(model: SequenceModel, method: str | None) -> None:
    from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron

    if method is None:  # a family without that neuron
        return
    for module in model.modules():
        if isinstance(module, ResetRefractoryNeuron):
            module.method = method


def _train_with_progress(
    model: SequenceModel, task: Task, settings: TrainSettings, progress: bool
) -> History:
    from snncompile.train import train

    if not progress:
        return train(model, task, settings)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    n_batches = math.ceil(len(task.train.labels) / settings.batch_size) * settings.epochs
    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as bar:
        job = bar.add_task("train", total=n_batches, status="")

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            bar.update(job, status=f"epoch {epoch + 1}: loss {loss:.3f}, test acc {acc:.2%}")

        return train(model, task, settings, on_epoch=on_epoch, on_batch=lambda: bar.advance(job))


def _checkpoint_task(path: str | Path, ckpt: Any) -> Any:
    """The bundled Task a loaded checkpoint was trained on (its metadata's task and
    task_args); UsageError if it names none or one of the user's own, or generating it
    is refused; CorruptInputError if the model does not fit it."""
    from snncompile.data import TASKS

    task_name = ckpt.meta.get("task")
    if not isinstance(task_name, str):  # a valid file (save takes any meta): not exit 6
        raise UsageError(f"{path}: its metadata names no bundled task to take data from")
    if task_name not in TASKS:  # a task of the user's own is valid too (docs/formats.md)
        raise UsageError(
            f"{path}: its task {task_name!r} is not a bundled one ({', '.join(TASKS)}); "
            "there is no data to take from it"
        )
    task = _rebuild_task(path, ckpt.meta)
    if task.d_input != ckpt.config.d_input or task.n_classes != ckpt.config.d_output:
        raise CorruptInputError(
            f"{path}: model shape (d_input {ckpt.config.d_input}, d_output "
            f"{ckpt.config.d_output}) does not match task {task_name!r}"
        )
    return task


def evaluate_checkpoint(path: str | Path) -> EvaluationReport:
    """Evaluate a checkpoint on the test split of the task recorded in its metadata."""
    from snncompile.checkpoint import load_checkpoint, recorded_accuracy
    from snncompile.train import evaluate

    ckpt = load_checkpoint(path)
    task = _checkpoint_task(path, ckpt)
    result = evaluate(ckpt.model, task.test, task.featurize)
    return EvaluationReport(
        path=str(path),
        family=ckpt.config.family,
        task=task.name,
        accuracy=result.accuracy,
        loss=result.loss,
        spike_rates=result.spike_rates,
        n=result.n,
        recorded_accuracy=recorded_accuracy(ckpt.meta),
    )


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
    (int64): the file simulate --input and verify --data read. An existing `output` is
    replaced only with `overwrite`, and only if it holds x and y alone. Returns what was
    written."""
    import numpy as np

    from snncompile.checkpoint import load_checkpoint
    from snncompile.outputs import check_writable, write_npz

    if split not in ("test", "train"):
        raise UsageError(f"--split must be test or train, got {split!r}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    out = check_writable(output, file=True)
    if out.suffix != ".npz":
        raise UsageError(f"-o {out}: name an .npz file (it holds two arrays, x and y)")
    _check_data_replaceable(out, overwrite)
    ckpt = load_checkpoint(model)
    task = _checkpoint_task(model, ckpt)
    part = task.test if split == "test" else task.train
    n = len(part.labels) if limit is None else min(limit, len(part.labels))
    x = np.asarray(task.featurize(part.inputs[:n]), dtype=np.float32)
    y = np.asarray(part.labels[:n], dtype=np.int64)
    write_npz(out, {"x": x, "y": y})
    return {"path": str(out), "task": task.name, "split": split, "x": list(x.shape), "y": [n]}


def _check_data_replaceable(out: Path, overwrite: bool) -> None:
    """-o replaces an existing file only with --overwrite, and only an .npz of x and y
    alone (what `data` writes): never a file of another kind."""
    from snncompile.outputs import npz_member_names

    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise UsageError(f"-o {out} exists; pass --overwrite to replace it")
    if out.is_symlink() or npz_member_names(out) != {"x.npy", "y.npy"}:
        raise UsageError(
            f"-o {out} is not an .npz of x and y alone (as data writes); not replacing it "
            "(remove it or name another file)"
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
            task = _rebuild_task(origin, meta)
            if (task.d_input, task.n_classes) != (width, classes):
                raise CorruptInputError(
                    f"{origin}: its task {meta['task']!r} has "
                    f"{task.d_input} input(s) and {task.n_classes} classes, the model "
                    f"{width} and {classes}"
                )
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


def verify_model(
    source: Any,
    *,
    data: Any = None,
    target: str = "reference",
    tolerances: Any = None,
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
    runs advance. data: a .npy/.npz file as --data takes it, or an array of inputs, or
    a tuple (inputs, labels).
    Returns a VerifyReport (a NirVerifyReport for a .nir source); it does not raise when
    a check fails (the CLI turns `report.failures` into exit code 3).
    """
    from snncompile.compiler import compile_model
    from snncompile.frontend.nir_compile import is_nir_source
    from snncompile.simulate import BACKENDS, saturation_warning
    from snncompile.verify.quantized import verify_quantized
    from snncompile.verify.targets import check_backend

    if target not in BACKENDS:
        raise UsageError(f"verify --target {target!r}: choose from {', '.join(BACKENDS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
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
        f"{option} applies to PyTorch sources: a .nir source is checked by spike "
        "agreement (--min-spike-agreement)"
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
        x, _, origin = verification_data(data, {}, None, width, classes, limit)
    else:
        x, origin = default_inputs(width, DEFAULT_CALIB_RATE)
        if limit is not None:
            x = x[:limit]
    if limit is not None:
        origin = f"{origin}, first {limit}"
    spike_tol = getattr(tolerances, "min_spike_agreement", None)
    step("verify")
    report = verify_nir(compiled, x, origin, min_spike_agreement=spike_tol)
    # What reading the file found (nir's type check, a declared shape replaced), as
    # export and inspect print it: verify said nothing of it.
    report.warnings[:0] = compiled.meta.get("warnings", [])
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
    from snncompile.compiler import compile_model
    from snncompile.targets import TARGETS, get_target

    spec = get_target(target)
    module = spec.load()
    options: dict[str, Any] = {"target_config": target_config} if target_config else {}
    options.update({k: v for k, v in (target_options or {}).items() if v is not None})
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
            ("the bit-width options", config is not None),
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
