"""Checkpoints: a plain dict of tensors and primitives, read without unpickling code.

On-disk form (torch.save of a dict; format "snncompile-checkpoint", version 1):

    format       "snncompile-checkpoint"
    version      1
    family       model family name (duplicated from config for quick inspection)
    config       ModelConfig as a dict of str/int/float/bool
    state_dict   parameter and buffer tensors
    calibration  optional float tensor (n, L, d_input): real inputs for later quantization
    meta         dict of str/int/float/bool/None/list/dict: task, accuracy, training command

`load` uses torch.load(weights_only=True): a file holding any pickled object other than
tensors and primitive containers is refused before anything from it runs.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from snncompile.errors import CorruptInputError, UsageError
from snncompile.models.backbone import ModelConfig, SequenceModel, build_model

FORMAT_NAME = "snncompile-checkpoint"
FORMAT_VERSION = 1
_PRIMITIVES = (str, int, float, bool, type(None))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (in eval mode) and what came with it."""

    model: SequenceModel
    config: ModelConfig
    calibration: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _check_meta(value: Any, where: str = "meta") -> None:
    """Metadata must survive weights_only loading: primitives, lists and str-keyed dicts."""
    # Exact types: a str subclass (e.g. torch's TorchVersion) pickles as its class and
    # would make the file unreadable under weights_only loading.
    if type(value) in _PRIMITIVES:
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_meta(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{where} keys must be strings, got {key!r}")
            _check_meta(item, f"{where}.{key}")
        return
    raise UsageError(
        f"{where} holds a {type(value).__name__}; only str/int/float/bool/None/list/dict"
    )


def save(
    model: SequenceModel,
    path: str | os.PathLike[str],
    *,
    calibration: torch.Tensor | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (and an optional calibration batch and metadata) to `path` atomically."""
    if not isinstance(model, SequenceModel):
        raise UsageError(f"save() takes a snncompile SequenceModel, got {type(model).__name__}")
    meta = dict(meta or {})
    _check_meta(meta)
    if calibration is not None:
        calibration = torch.as_tensor(calibration).detach().to("cpu", torch.float32).contiguous()
        expected = model.config.d_input
        if calibration.dim() != 3 or calibration.shape[-1] != expected:
            raise UsageError(
                f"calibration must be (n, L, {expected}), got {tuple(calibration.shape)}"
            )
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "family": model.config.family,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "calibration": calibration,
        "meta": meta,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a checkpoint is a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CorruptInputError(f"{path}: no such file")
    if not path.is_file():
        raise CorruptInputError(f"{path}: not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise CorruptInputError(
                f"{path}: refused, it contains a pickled Python object ({unsafe.group(1)}) "
                "that could run code on load; snncompile reads tensors and plain data only"
            ) from None
        raise CorruptInputError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CorruptInputError(f"{path}: not an snncompile checkpoint (no '{FORMAT_NAME}' tag)")
    version = payload.get("version")
    if version != FORMAT_VERSION:
        raise CorruptInputError(
            f"{path}: checkpoint format version {version!r} is not supported "
            f"(this snncompile reads version {FORMAT_VERSION})"
        )
    return payload


def _check_finite(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CorruptInputError(f"{path}: state_dict entry {name!r} is not a tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
            raise CorruptInputError(f"{path}: parameter {name!r} holds a non-finite value ({bad})")


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint safely and rebuild its model (eval mode)."""
    path = Path(path)
    payload = _read_payload(path)
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
    except (KeyError, TypeError, UsageError) as exc:
        raise CorruptInputError(f"{path}: invalid model config ({exc})") from None
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CorruptInputError(f"{path}: missing state_dict")
    _check_finite(path, state_dict)
    model = build_model(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CorruptInputError(f"{path}: weights do not fit the model config ({detail})") from None
    model.eval()
    calibration = payload.get("calibration")
    if calibration is not None and not isinstance(calibration, torch.Tensor):
        raise CorruptInputError(f"{path}: calibration batch is not a tensor")
    if calibration is not None and not math.isfinite(float(calibration.abs().sum())):
        raise CorruptInputError(f"{path}: calibration batch holds non-finite values")
    meta = payload.get("meta") or {}
    return Checkpoint(model=model, config=config, calibration=calibration, meta=meta, path=path)


def load(path: str | os.PathLike[str]) -> SequenceModel:
    """Rebuild the model stored at `path` (eval mode). See `load_checkpoint` for the rest."""
    return load_checkpoint(path).model
