"""The API's training jobs: train, finetune and evaluate a checkpoint (re-exported by
snncompile.api, where the CLI's other jobs are)."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snncompile.arguments import check_flag, check_integer, check_path, check_real, check_text
from snncompile.errors import CorruptInputError, UsageError

if TYPE_CHECKING:
    from snncompile.data import Task
    from snncompile.models.backbone import SequenceModel
    from snncompile.train import History, TrainSettings


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
    # The training's duration: measured by train; evaluate gives what the checkpoint
    # recorded (None if it recorded none), as it does for the accuracy.
    train_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    # Everything that can be refused is refused before the minutes of training: first
    # the types (from Python), then the values.
    check_path(output, "output")
    check_text(command, "command")
    check_text(task_name, "task_name")
    width, depth, state_size, calib_size, listops_length, listops_depth = (
        check_integer(value, name)
        for value, name in (
            (width, "width"),
            (depth, "depth"),
            (state_size, "state_size"),
            (calib_size, "calib_size"),
            (listops_length, "listops_length"),
            (listops_depth, "listops_depth"),
        )
    )
    dropout = check_real(dropout, "dropout")
    prenorm, progress = check_flag(prenorm, "prenorm"), check_flag(progress, "progress")
    epochs, batch_size, lr, weight_decay, seed = _train_types(
        epochs, batch_size, lr, weight_decay, seed
    )
    check_checkpoint_path(output, what="-o")  # a checkpoint is re-made, nothing else
    for name, value, low, high in (
        ("--width", width, 1, 1 << 14),
        ("--depth", depth, 1, 256),
        ("--state-size", state_size, 2, 1 << 14),
    ):
        if not low <= value <= high:  # beyond these a model exhausts memory before training
            raise UsageError(f"{name} must be in [{low}, {high}], got {value}")
    if state_size % 2:  # named as the option (S4D names its d_state)
        raise UsageError(f"--state-size must be even (N/2 complex modes), got {state_size}")
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
    from snncompile.checkpoint import check_checkpoint_path, checkpoint_task, load_checkpoint, save
    from snncompile.finetune import snap_to_grid, weights_on_grid
    from snncompile.quantize.quantize import QuantConfig
    from snncompile.train import evaluate

    check_path(model, "model", reading=True)
    check_path(output, "output")
    check_text(command, "command")
    epochs, batch_size, lr, weight_decay, seed = _train_types(
        epochs, batch_size, lr, weight_decay, seed
    )
    weight_bits = check_integer(weight_bits, "weight_bits")
    progress = check_flag(progress, "progress")
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
    task = checkpoint_task(model, ckpt)
    _refuse_integer_undeployable(model, ckpt)
    before = _evaluate_stored(model, ckpt.model, task)
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


# An --epochs of 10**20 was taken and trained until killed, where --width and --depth
# have caps. 10,000 epochs are over 300 times the default (30): of sdigits, half an hour
# at the smallest model (0.15 s an epoch) and 11 hours at the default size (4 s), on the
# 2-core machine of 2026-12-07. It also keeps AdamW's step count exact: torch keeps it
# in float32, exact to 2**24 = 16.8 M steps, and 10,000 epochs of sdigits at
# --batch-size 1 are 14.4 M (past 2**24 the count stops going up).
MAX_EPOCHS = 10_000


def _train_types(
    epochs: Any, batch_size: Any, lr: Any, weight_decay: Any, seed: Any
) -> tuple[int, int, float, float, int]:
    """The training settings of `train` and `finetune` from Python checked for their
    types (ArgumentTypeError naming the parameter): a float epochs was a TypeError from
    range(), a str lr one from a comparison, epochs=True one epoch."""
    return (
        check_integer(epochs, "epochs"),
        check_integer(batch_size, "batch_size"),
        check_real(lr, "lr"),
        check_real(weight_decay, "weight_decay"),
        check_integer(seed, "seed"),
    )


def _train_settings(
    epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int
) -> TrainSettings:
    """TrainSettings of `train` and `finetune`, a bad value named as its option
    (TrainSettings names its fields), before the minutes of training (_train_types
    checked the types)."""
    from snncompile.train import TrainSettings

    for name, value, ok, rule in (
        ("--epochs", epochs, epochs >= 1, "at least 1"),
        ("--epochs", epochs, epochs <= MAX_EPOCHS, f"at most {MAX_EPOCHS}"),
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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # On stderr and on a terminal only, as export's spinner: on stdout the bar's last
    # frame was printed into a pipe or file ahead of the "saved ..." line (helper-84).
    console = Console(stderr=True)
    if not (console.is_terminal or console.is_jupyter):
        return train(model, task, settings)

    n_batches = math.ceil(len(task.train.labels) / settings.batch_size) * settings.epochs
    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task("train", total=n_batches, status="")

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            bar.update(job, status=f"epoch {epoch + 1}: loss {loss:.3f}, test acc {acc:.2%}")

        return train(model, task, settings, on_epoch=on_epoch, on_batch=lambda: bar.advance(job))


def _evaluate_stored(path: str | os.PathLike[str], model: Any, task: Any) -> Any:
    """train.evaluate of a model as a file stored it, on its own task's test split: a
    model that refuses its own values there (a neuron's input of inf from weights of
    3e38) is a fault of the file, named as such, not a usage error (helper-76)."""
    from snncompile.train import evaluate

    try:
        return evaluate(model, task.test, task.featurize)
    except UsageError as exc:
        raise CorruptInputError(
            f"{path}: its model fails on its task's test split ({exc})"
        ) from None


def evaluate_checkpoint(path: str | Path) -> EvaluationReport:
    """Evaluate a checkpoint on the test split of the task recorded in its metadata."""
    from snncompile.checkpoint import (
        checkpoint_task,
        load_checkpoint,
        recorded_accuracy,
        recorded_train_seconds,
    )

    check_path(path, "path", reading=True)
    ckpt = load_checkpoint(path)
    task = checkpoint_task(path, ckpt)
    result = _evaluate_stored(path, ckpt.model, task)
    return EvaluationReport(
        path=str(path),
        family=ckpt.config.family,
        task=task.name,
        accuracy=result.accuracy,
        loss=result.loss,
        spike_rates=result.spike_rates,
        n=result.n,
        recorded_accuracy=recorded_accuracy(ckpt.meta),
        train_seconds=recorded_train_seconds(ckpt.meta),
    )
