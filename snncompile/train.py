"""Training and evaluation of the model zoo on the bundled tasks.

AdamW with a cosine learning-rate schedule. The S4D dynamics (log_dt, A, B) train in
their own group with lr = min(lr, 1e-3) and no weight decay, as the S4/S4D papers do:
a large step on log_dt or A destabilizes the kernel.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snncompile.data import Task
from snncompile.data.sdigits import Split
from snncompile.errors import UsageError
from snncompile.models.backbone import SequenceModel
from snncompile.models.s4d import SSM_PARAMETER_NAMES

SSM_MAX_LR = 1e-3


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        # Written so that NaN fails too (every comparison with NaN is False).
        if not (
            self.epochs > 0
            and self.batch_size > 0
            and 0 < self.lr < math.inf
            and 0 <= self.weight_decay < math.inf
        ):
            raise UsageError(
                "epochs, batch size and lr must be positive and weight decay non-negative; "
                f"got {self.epochs}, {self.batch_size}, {self.lr}, {self.weight_decay}"
            )


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    loss: float
    spike_rates: dict[str, float]
    n: int


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Split parameters into the S4D-dynamics group and the rest."""
    ssm, rest = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_ssm = ".ssm." in f".{name}" and name.rsplit(".", 1)[-1] in SSM_PARAMETER_NAMES
        (ssm if is_ssm else rest).append(param)
    return [
        {"params": rest, "lr": lr, "weight_decay": weight_decay},
        {"params": ssm, "lr": min(lr, SSM_MAX_LR), "weight_decay": 0.0},
    ]


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _features(task: Task, split: Split, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(task.featurize(split.inputs[idx])))


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    split: Split,
    featurize: Callable[[np.ndarray], np.ndarray],
    *,
    batch_size: int = 256,
) -> EvalResult:
    """Accuracy, mean cross-entropy and mean per-layer spike rates (eval mode)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    rate_sums: dict[str, float] = {}
    n = len(split.labels)
    for idx in _batches(n, batch_size, None):
        x = torch.from_numpy(np.ascontiguousarray(featurize(split.inputs[idx])))
        y = torch.from_numpy(split.labels[idx])
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
        for name, rate in model.spike_rates().items():
            rate_sums[name] = rate_sums.get(name, 0.0) + rate * len(idx)
    rates = {name: total / n for name, total in rate_sums.items()}
    return EvalResult(accuracy=correct / n, loss=loss_sum / n, spike_rates=rates, n=n)


def train(
    model: SequenceModel,
    task: Task,
    settings: TrainSettings,
    *,
    on_epoch: Callable[[int, float, float], None] | None = None,
    on_batch: Callable[[], None] | None = None,
) -> History:
    """Train `model` in place; after each epoch calls on_epoch(epoch, train_loss, test_acc)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, settings.lr, settings.weight_decay), lr=settings.lr
    )
    n = len(task.train.labels)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    history = History()
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        loss_sum = 0.0
        for idx in _batches(n, settings.batch_size, rng):
            x = _features(task, task.train, idx)
            y = torch.from_numpy(task.train.labels[idx])
            with _divergence_named(epoch, settings):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with _divergence_named(epoch, settings):
                _step(optimizer)
            scheduler.step()
            _check_not_diverged(model, loss.item(), epoch, settings)
            loss_sum += loss.item() * len(idx)
            if on_batch is not None:
                on_batch()
        history.train_loss.append(loss_sum / n)
        with _divergence_named(epoch, settings):
            history.test_accuracy.append(evaluate(model, task.test, task.featurize).accuracy)
        if on_epoch is not None:
            on_epoch(epoch, history.train_loss[-1], history.test_accuracy[-1])
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def _step(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.step(); an update too large for float32 (AdamW scales by lr / 0.1 in its
    first step, and by 1 - lr * weight_decay) is the run diverging, not a bug: torch
    raised RuntimeError ("cannot be converted to type float without overflow") for
    --lr 3e38 (helper-76)."""
    try:
        optimizer.step()
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            raise
        raise UsageError("an update too large for float32") from None


def _diverged(epoch: int, settings: TrainSettings, what: str) -> UsageError:
    advice = f"try a lower --lr (it was {settings.lr:g})"
    if settings.lr * settings.weight_decay >= 1 and settings.weight_decay > settings.lr:
        # AdamW multiplies the weights by 1 - lr * weight_decay each step; named where
        # the weight decay, not the learning rate, is the outsized one
        advice += f" or --weight-decay (it was {settings.weight_decay:g})"
    return UsageError(f"training diverged in epoch {epoch + 1} ({what}); {advice}")


def _check_not_diverged(
    model: SequenceModel, loss: float, epoch: int, settings: TrainSettings
) -> None:
    """UsageError once the loss or a weight is NaN or inf."""
    if not math.isfinite(loss):
        raise _diverged(epoch, settings, f"loss {loss}")
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise _diverged(epoch, settings, f"{name} is not finite")


@contextlib.contextmanager
def _divergence_named(epoch: int, settings: TrainSettings) -> Iterator[None]:
    """A model refusing its own values mid-training (a theta = exp(log_theta) past float32,
    a membrane of inf) is the run diverging: the user set none of those values. The
    inputs are the task's own, checked when it was made."""
    try:
        yield
    except UsageError as exc:
        raise _diverged(epoch, settings, str(exc)) from None


def calibration_batch(task: Task, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A few dozen real training inputs (featurized) to embed in the checkpoint."""
    rng = np.random.default_rng(seed)
    n = len(task.train.labels)
    idx = np.sort(rng.choice(n, size=min(size, n), replace=False))
    return _features(task, task.train, idx)
