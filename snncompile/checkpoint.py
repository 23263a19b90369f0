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

import io
import math
import os
import pickle
import pickletools
import re
import textwrap
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from snncompile.arguments import as_float, check_optional_dict, check_path, is_integral, is_real
from snncompile.data import TASKS, check_task_args, task_shape
from snncompile.errors import ArgumentTypeError, CorruptInputError, UsageError
from snncompile.ir.serialize import HDF5_SIGNATURE, is_version
from snncompile.models.backbone import ModelConfig, SequenceModel, build_model
from snncompile.outputs import check_writable, write_file

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


# How deep save() lets meta nest. Pickling recurses once per level, in torch.save and in
# the checks of save and load, against Python's recursion limit (1000): 10**5 levels were
# a RecursionError (exit 1), and nesting near the limit could be written by a shallow
# caller and then fail to load in a deeper one. 100 is far more than any record needs
# (each `snncompile finetune` of a file adds one, keeping the earlier record inside).
MAX_META_DEPTH = 100


def _check_meta(
    value: Any,
    where: str = "meta",
    *,
    depth_limit: int | None = None,
    _depth: int = 0,
    _above: frozenset[int] = frozenset(),
) -> None:
    """Metadata must survive weights_only loading: primitives, lists and str-keyed dicts,
    a tree (a container holding itself is refused) at most `depth_limit` deep."""
    # Exact types: a str subclass (e.g. torch's TorchVersion) pickles as its class and
    # would make the file unreadable under weights_only loading.
    if type(value) is int and len(pickle.encode_long(value)) > 255:
        # Pickled with LONG4, which torch's weights_only loader does not take: the file
        # was written and then refused by load as corrupt.
        raise UsageError(
            f"{where} is an integer of {value.bit_length()} bits; a checkpoint holds "
            "integers of up to 255 bytes"
        )
    if type(value) in _PRIMITIVES:
        return
    if not isinstance(value, (list, tuple, dict)):
        raise UsageError(
            f"{where} holds a {type(value).__name__}; only str/int/float/bool/None/list/dict"
        )
    if id(value) in _above:  # it recursed until Python's RecursionError (exit 1)
        raise UsageError(f"{where} refers back to a container it is in; meta must be a tree")
    if depth_limit is not None and _depth >= depth_limit:
        raise UsageError(f"meta is nested more than {depth_limit} levels deep")
    above = _above | {id(value)}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise UsageError(f"{where} keys must be strings, got {key!r}")
        items = [(f"{where}.{key}", item) for key, item in value.items()]
    else:
        items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    for inner, item in items:
        _check_meta(item, inner, depth_limit=depth_limit, _depth=_depth + 1, _above=above)


def save(
    model: SequenceModel,
    path: str | os.PathLike[str],
    *,
    calibration: torch.Tensor | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (and an optional calibration batch and metadata) to `path` atomically.

    `path` may replace an earlier checkpoint, not any other file, and may not lie inside
    an snncompile artifact (check_checkpoint_path)."""
    if not isinstance(model, SequenceModel):
        raise ArgumentTypeError(
            f"save() takes a snncompile SequenceModel, got {type(model).__name__}"
        )
    check_path(path, "path")
    meta = dict(check_optional_dict(meta, "meta"))
    on_meta = [name for name, t in model.state_dict().items() if t.device.type == "meta"]
    if on_meta:  # copying them out was torch's NotImplementedError
        raise UsageError(
            f"save() model has tensors on the meta device, which hold no values "
            f"({', '.join(on_meta[:3])}); give it weights (e.g. load_state_dict) first"
        )
    check_checkpoint_path(path, what="save() path")
    _check_meta(meta, depth_limit=MAX_META_DEPTH)
    if calibration is not None:
        calibration = _calibration_tensor(calibration)
        if calibration.is_complex():  # the float32 cast would drop the imaginary part
            raise UsageError("calibration must be real, got a complex tensor")
        calibration = calibration.to(torch.float32).contiguous()
        expected = model.config.d_input
        if (
            calibration.dim() != 3
            or min(calibration.shape) < 1
            or calibration.shape[-1] != expected
        ):
            raise UsageError(
                f"calibration must be (n, L, {expected}) with n, L >= 1, "
                f"got {tuple(calibration.shape)}"
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
    _check_loadable(payload, model.config)
    # Serialized in memory first: torch's writer turns a full disk into a RuntimeError
    # ("unexpected pos"), a plain write gives the OSError that names it.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_file(path, lambda f: f.write(buffer.getbuffer()))


def _calibration_tensor(value: Any) -> torch.Tensor:
    """save()'s calibration= as a CPU tensor (not yet float32) of a tensor, an array or
    nested lists, through compiler.as_array; UsageError for what cannot be one (a ragged
    list, a dict, an object array, a meta-device or quantized tensor were torch's
    ValueError, RuntimeError, TypeError or NotImplementedError)."""
    from snncompile.compiler import as_array

    array = as_array(value, "calibration")
    if array.dtype.kind not in "biufc":  # c: refused as complex, with its own message
        raise UsageError(f"calibration must be a real numeric array, got {array.dtype}")
    return torch.as_tensor(array)


def _check_loadable(payload: dict[str, Any], config: ModelConfig) -> None:
    """UsageError where load would refuse what save is about to write (NaN weights or
    calibration, a task that is not a name, bad task_args, a module replaced or added
    after the model was built, so that its weights no longer fit its config), or where
    the commands that take its task's data would (a bundled task of another shape):
    such a file could be written but never used."""
    here = Path("<checkpoint>")
    try:
        _check_state_dict(here, payload["state_dict"], config)
        _check_shapes(here, payload["state_dict"], config)
        _check_calibration(here, payload["calibration"], config.d_input)
        meta = _check_meta_on_load(here, payload["meta"])
    except CorruptInputError as exc:
        reason = str(exc).removeprefix(f"{here}: ")
        raise UsageError(f"not saved, load would refuse it: {reason}") from None
    misfit = None
    if meta.get("task") in TASKS:
        misfit = task_misfit(config.d_input, config.d_output, meta["task"])
    if misfit is not None:
        raise UsageError(f"not saved, evaluate, verify and data would refuse it: {misfit}")


def read_torch_file(path: Path, what: str) -> Any:
    """torch.load(path, weights_only=True): tensors and plain data, never code. A missing
    file, a pickled object that would run code, or a damaged file is one
    CorruptInputError naming the file (`what` it should have been, e.g. "checkpoint")."""
    try:  # a name the system refuses (over 255 bytes) is an OSError from exists()
        if not path.exists():
            raise CorruptInputError(f"{path}: no such file")
        if not path.is_file():
            raise CorruptInputError(f"{path}: not a file")
    except OSError as exc:  # as the CLI reports an OSError naming a path (exit 6)
        raise CorruptInputError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    damaged = _member_failing_crc(path)
    if damaged is not None:
        raise CorruptInputError(f"{path}: not a readable {what} (corrupt: {damaged} is damaged)")
    try:
        with warnings.catch_warnings():  # torch warns about a bare pickle's protocol first
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        unsafe = found.group(1) if found else _first_unsafe_global(path)
        if unsafe:
            raise CorruptInputError(
                f"{path}: refused, it contains a pickled Python object ({unsafe}) "
                "that could run code on load; snncompile reads tensors and plain data only"
            ) from None
        other = _other_kind_of_file(path)
        if other is not None:
            raise CorruptInputError(f"{path}: not a {what}: {other}") from None
        opcode = re.search(r"Unsupported operand (\d+)", str(exc))
        if opcode is not None:  # a whole file torch's safe loader does not take
            raise CorruptInputError(f"{path}: not a readable {what} ({_opcode(opcode)})") from None
        raise CorruptInputError(
            f"{path}: not a readable {what} (truncated or corrupt: {type(exc).__name__})"
        ) from None


def _opcode(found: re.Match[str]) -> str:
    """What a pickle opcode torch's weights_only loader refuses holds: a 5000-digit integer
    in meta (LONG4) read as "truncated or corrupt" (helper-63)."""
    op = pickletools.code2op.get(chr(int(found.group(1)) % 256))
    name = op.name if op is not None else found.group(1)
    if name == "LONG4":
        return "it holds an integer of more than 255 bytes, which safe loading does not read"
    return f"it holds pickle opcode {name}, which safe loading does not read"


def _member_failing_crc(path: Path) -> str | None:
    """The first member of torch's zip form whose bytes do not match the CRC-32 the zip
    records (or whose header zipfile rejects), or None (also for a bare pickle, or a zip
    zipfile cannot check). torch.load does not check CRCs: a flipped byte inside a
    tensor loaded as a different weight. Nor does it refuse a member whose directory
    entry has the MS-DOS directory attribute (0x10), one flipped bit: its reader then
    skips the member's bytes and the tensor held whatever memory it was given
    (helper-76: exit 0 with weights of 1e12 and 3e-41)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            marked = (i.filename for i in archive.infolist() if i.external_attr & 0x10)
            return next(marked, None) or archive.testzip()
    # zlib.error, NotImplementedError (a compression method), RuntimeError (encrypted),
    # OSError, ...: torch.load then fails on the same member and is reported as corrupt.
    except Exception:
        return None


# A file's first bytes -> what it is, for files users pass by mistake where a checkpoint
# goes (torch's own failures say "invalid load key" or "failed finding central directory").
_MAGIC = {
    HDF5_SIGNATURE: "an HDF5 file (a NIR graph is read as one when its name ends in .nir)",
    b"\x93NUMPY": "a NumPy .npy array",
    b"{": "a JSON file",
}


def _other_kind_of_file(path: Path) -> str | None:
    """What `path` is when it is plainly not something torch.save wrote (a zip archive
    holding a data.pkl, or a bare pickle, which starts with the PROTO opcode), with where
    to pass it when it is part of an artifact; None when it could be a damaged one."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if head.startswith(b"PK\x03\x04"):
            if not zipfile.is_zipfile(path):  # a zip cut short: a damaged checkpoint
                return None
            with zipfile.ZipFile(path) as archive:
                if any(n.endswith("data.pkl") for n in archive.namelist()):
                    return None
            kind = "a zip archive without torch's data.pkl (an .npz?)"
        elif head[:1] == b"\x80":
            return None
        else:
            prefixes = (kind for magic, kind in _MAGIC.items() if head.startswith(magic))
            kind = next(prefixes, f"a file starting with {head!r}")
            if head.startswith(HDF5_SIGNATURE) and path.suffix.lower() == ".nir":
                # export, verify and inspect read it as NIR by its name and never get here;
                # "read as one when its name ends in .nir" was said of such a name
                kind = "a NIR graph (export, verify and inspect read those, not checkpoints)"
    except (OSError, ValueError, zipfile.BadZipFile):  # ValueError: a name not UTF-8
        return None
    where = ""
    if (path.parent / "manifest.json").is_file():
        # export, verify, evaluate, data and finetune refuse a directory: name who takes it
        where = f"; it is part of the artifact {path.parent} (inspect and simulate take it whole)"
    return f"torch.save writes a zip archive or a pickle, this is {kind}{where}"


def _read_payload(path: Path) -> dict[str, Any]:
    payload = read_torch_file(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CorruptInputError(f"{path}: not an snncompile checkpoint (no '{FORMAT_NAME}' tag)")
    version = payload.get("version")
    if not is_version(version, FORMAT_VERSION):
        raise CorruptInputError(
            f"{path}: checkpoint format version {version!r} is not supported "
            f"(this snncompile reads version {FORMAT_VERSION})"
        )
    return payload


# Globals torch.save writes for tensors and plain containers; anything else in a pickle is
# an object whose loading would import (and may call) code.
_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set")
_MAX_SCANNED_PICKLE_BYTES = 64 << 20


def _first_unsafe_global(path: Path) -> str | None:
    """The first non-tensor global a pickle (bare, or torch's zip form) names, read with
    pickletools (which parses opcodes and executes nothing); None if there is none or the
    file cannot be parsed. Names the refusal when torch only says "Unsupported operand"."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if member is None or archive.getinfo(member).file_size > _MAX_SCANNED_PICKLE_BYTES:
                    return None
                data = archive.read(member)
        else:
            if path.stat().st_size > _MAX_SCANNED_PICKLE_BYTES:
                return None
            data = path.read_bytes()
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            name = None
            if opcode.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            if name is not None and not name.startswith(_SAFE_GLOBAL_PREFIXES):
                return name
    except Exception:  # unparseable: the caller reports the file as corrupt
        return None
    return None


def check_checkpoint_path(path: str | os.PathLike[str], *, what: str) -> None:
    """UsageError unless a checkpoint may be written at `path`: writable, not inside an
    artifact, and not an existing file other than a checkpoint (a user's data, an
    artifact's manifest: save replaced them without a word)."""
    check_writable(path, what=what, file=True)
    if Path(path).exists() and not is_checkpoint(path):
        raise UsageError(
            f"{what} {os.fspath(path)} exists and is not an snncompile checkpoint; not replacing it"
        )


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file carrying the checkpoint format tag (read safely)."""
    try:
        _read_payload(Path(path))
    except CorruptInputError:
        return False
    return True


def _check_state_dict(path: Path, state_dict: Any, config: ModelConfig) -> None:
    """Tensors only, real and finite, and enough of them for the config (so a corrupt
    d_model cannot make the rebuild allocate gigabytes before the shapes are compared)."""
    if not isinstance(state_dict, dict):
        raise CorruptInputError(f"{path}: missing state_dict")
    for name, tensor in state_dict.items():
        if not isinstance(name, str):
            raise CorruptInputError(f"{path}: state_dict key {name!r} is not a string")
        if not isinstance(tensor, torch.Tensor):
            raise CorruptInputError(f"{path}: state_dict entry {name!r} is not a tensor")
        if tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise CorruptInputError(
                f"{path}: parameter {name!r} is a {tensor.layout}/{tensor.device.type} tensor; "
                "parameters are dense CPU tensors"
            )
        if tensor.is_quantized:  # load_state_dict's message for it was cut mid-word
            raise CorruptInputError(
                f"{path}: parameter {name!r} is a quantized {tensor.dtype} tensor; parameters "
                "are float"
            )
        if tensor.is_complex():
            raise CorruptInputError(f"{path}: parameter {name!r} is complex; parameters are real")
        _check_stores_its_values(path, f"parameter {name!r}", tensor)
        check_float_dtype(path, f"parameter {name!r}", tensor)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
            raise CorruptInputError(f"{path}: parameter {name!r} holds a non-finite value ({bad})")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            # evaluate gave NaN logits an accuracy (exit 0), export refused the graph
            bad = tensor[tensor < 0].flatten()[0].item()
            raise CorruptInputError(f"{path}: parameter {name!r} holds a negative variance ({bad})")
    stored = sum(t.numel() for t in state_dict.values())
    # Every family has the encoder, the decoder and, per block, an S4D with A (H, N/2).
    needed = config.d_model * (
        config.d_input + config.d_output + config.n_layers * max(config.d_state // 2, 1)
    )
    if needed > stored:
        raise CorruptInputError(
            f"{path}: the model config needs at least {needed} parameters, the file holds {stored}"
        )


def _check_shapes(path: Path, state_dict: dict[str, torch.Tensor], config: ModelConfig) -> None:
    """Every tensor the config's model has, with its shape, and no other, compared on a
    skeleton built on the meta device (shapes, no memory): a small file whose config asks
    for a huge model is refused here instead of after allocating it (4.7 GB for d_model
    8192 with a few stand-in tensors)."""
    try:
        with torch.device("meta"):
            skeleton = build_model(config)
    except UsageError as exc:  # a combination of valid values the model refuses
        raise CorruptInputError(f"{path}: invalid model config ({exc})") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in state_dict.items()}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    wrong = [n for n in expected if n in stored and expected[n] != stored[n]]
    parts = [f"missing {', '.join(missing[:3])}"] if missing else []
    parts += [f"unexpected {', '.join(extra[:3])}"] if extra else []
    parts += [f"{n} is {stored[n]}, the config needs {expected[n]}" for n in wrong[:2]]
    floats = skeleton.state_dict()
    parts += [
        f"{n} holds {state_dict[n].dtype} values, the model float ones"
        for n in expected
        if n in stored and floats[n].is_floating_point() and not state_dict[n].is_floating_point()
    ][:2]
    if parts:
        raise CorruptInputError(f"{path}: weights do not fit the model config ({'; '.join(parts)})")


def _check_calibration(path: Path, calibration: Any, d_input: int) -> torch.Tensor | None:
    if calibration is None:
        return None
    if not isinstance(calibration, torch.Tensor) or not calibration.is_floating_point():
        what = calibration.dtype if isinstance(calibration, torch.Tensor) else type(calibration)
        raise CorruptInputError(f"{path}: calibration batch is not a real float tensor ({what})")
    if calibration.dim() != 3 or min(calibration.shape[:2]) < 1 or calibration.shape[-1] != d_input:
        raise CorruptInputError(
            f"{path}: calibration batch must be (n, L, {d_input}), got {tuple(calibration.shape)}"
        )
    _check_stores_its_values(path, "calibration batch", calibration)
    check_float_dtype(path, "calibration batch", calibration)
    if not bool(torch.isfinite(calibration).all()):
        raise CorruptInputError(f"{path}: calibration batch holds non-finite values")
    return calibration


# The float dtypes a model's weights and inputs are kept in. torch's float8 ones lack
# isfinite and most arithmetic: a calibration batch in float8_e4m3fn was exit 1 (helper-63).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float_dtype(path: Path, what: str, tensor: torch.Tensor) -> None:
    """CorruptInputError naming `what` in `path` when the tensor is a float of a dtype
    outside FLOAT_DTYPES."""
    if tensor.is_floating_point() and tensor.dtype not in FLOAT_DTYPES:
        kept = ", ".join(str(dtype).removeprefix("torch.") for dtype in FLOAT_DTYPES)
        raise CorruptInputError(
            f"{path}: {what} is {str(tensor.dtype).removeprefix('torch.')}; checkpoints keep "
            f"floats as {kept}"
        )


def _check_stores_its_values(path: Path, what: str, tensor: torch.Tensor) -> None:
    """CorruptInputError for a tensor whose storage is smaller than its values (a stride-0
    view: `expand`). save writes whole tensors; a 180 KB file holding one expanded to
    10^12 values ran out of memory on the first operation on it (exit 1, not 6)."""
    stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    if tensor.numel() * tensor.element_size() > stored:
        raise CorruptInputError(
            f"{path}: {what} of shape {tuple(tensor.shape)} stores {stored:,} bytes for its "
            f"{tensor.numel():,} values (an expanded view; checkpoints hold whole tensors)"
        )


def recorded_accuracy(meta: dict[str, Any]) -> float | None:
    """meta's test_accuracy when it is one (a fraction in [0, 1]), else None: it is only
    reported, so a NaN or 10**400 there means "not known", not a broken checkpoint."""
    return _fraction(meta.get("test_accuracy"))


def recorded_train_seconds(meta: dict[str, Any]) -> float | None:
    """meta's train_seconds when it is a finite number >= 0 (train writes it), else None."""
    seconds = _finite(meta.get("train_seconds"))
    return seconds if seconds is not None and seconds >= 0 else None


def _fraction(value: Any) -> float | None:
    """`value` when it is a number in [0, 1], else None."""
    number = _finite(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (not a bool), else None: meta
    values are only reported, so a NaN or 10**400 there is "not known"."""
    if not is_real(value):
        return None
    number = as_float(value)  # an int past float64's range is inf (math.isfinite raised)
    return number if math.isfinite(number) else None


def recorded_finetune(meta: dict[str, Any]) -> dict[str, Any] | None:
    """{"weight_bits", "accuracy_before"} when `snncompile finetune` made the file (meta's
    finetune with an integer weight_bits; accuracy_before None unless a fraction), else
    None: like test_accuracy it is only reported."""
    record = meta.get("finetune")
    if not isinstance(record, dict):
        return None
    bits = record.get("weight_bits")
    if not is_integral(bits):
        return None
    return {
        "weight_bits": int(bits),
        "accuracy_before": _fraction(record.get("test_accuracy_before")),
    }


def rebuild_task(origin: str | os.PathLike[str], meta: dict[str, Any]) -> Any:
    """The bundled task a checkpoint's metadata names, or a UsageError naming `origin`
    (load_checkpoint checked task_args already; generation may still refuse them)."""
    from snncompile.data import load_task

    try:
        return load_task(meta["task"], **dict(meta.get("task_args") or {}))
    except UsageError as exc:
        raise UsageError(f"{origin}: cannot rebuild its task {meta['task']!r}: {exc}") from None


def checkpoint_task(path: str | os.PathLike[str], ckpt: Checkpoint) -> Any:
    """The bundled Task a loaded checkpoint was trained on (its metadata's task and
    task_args); UsageError if it names none or one of the user's own, or generating it
    is refused; CorruptInputError if the model does not fit it."""
    task_name = ckpt.meta.get("task")
    if not isinstance(task_name, str):  # a valid file (save takes any meta): not exit 6
        raise UsageError(f"{path}: its metadata names no bundled task to take data from")
    if task_name not in TASKS:  # a task of the user's own is valid too (docs/formats.md)
        raise UsageError(
            f"{path}: its task {task_name!r} is not a bundled one ({', '.join(TASKS)}); "
            "there is no data to take from it"
        )
    misfit = task_misfit(ckpt.config.d_input, ckpt.config.d_output, task_name)
    if misfit is not None:  # found before a listops generation of up to a minute
        raise CorruptInputError(f"{path}: {misfit}")
    return rebuild_task(path, ckpt.meta)


def task_misfit(d_input: int, d_output: int, task_name: str) -> str | None:
    """Why a model of d_input inputs and d_output outputs cannot run bundled task
    `task_name`, or None (checked before the task's data is made)."""
    task_input, n_classes = task_shape(task_name)
    if (d_input, d_output) == (task_input, n_classes):
        return None
    return (
        f"model shape (d_input {d_input}, d_output {d_output}) does not match "
        f"task {task_name!r} (d_input {task_input}, {n_classes} classes)"
    )


def _check_meta_on_load(path: Path, meta: Any) -> dict[str, Any]:
    """meta is a dict; a bundled task's task_args (verify and evaluate load it) are valid."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CorruptInputError(f"{path}: meta is a {type(meta).__name__}, not a dict")
    try:  # what save takes (docs/formats.md): a tensor or a set there loaded as if it were
        _check_meta(meta)
    except UsageError as exc:
        raise CorruptInputError(f"{path}: {exc}") from None
    except RecursionError:
        raise CorruptInputError(f"{path}: meta is nested too deep") from None
    task = meta.get("task")
    if task is not None and not isinstance(task, str):  # it picks verify's data
        raise CorruptInputError(f"{path}: meta task {task!r} is not a name")
    args = meta.get("task_args")
    if meta.get("task") in TASKS and args is not None:  # other tasks are the user's own
        if not isinstance(args, dict):
            raise CorruptInputError(f"{path}: meta task_args {args!r} are not valid")
        try:
            check_task_args(**args)
        except TypeError:  # a keyword check_task_args does not take
            raise CorruptInputError(f"{path}: meta task_args {args!r} are not valid") from None
        except UsageError as exc:
            raise CorruptInputError(f"{path}: meta task_args: {exc}") from None
    return meta


def _check_forward(path: Path, model: SequenceModel, d_input: int) -> None:
    """A two-step forward on zeros: values a module checks only when it runs (a fixed
    neuron decay beta >= 1) are the file's fault, named here rather than mid-evaluation."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, 2, d_input))
    except UsageError as exc:
        raise CorruptInputError(f"{path}: holds values the model refuses ({exc})") from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint safely and rebuild its model (eval mode).

    Anything in the file that is not what `save` writes is CorruptInputError naming the
    file, before the model is built.
    """
    path = Path(check_path(path, "path", reading=True))
    payload = _read_payload(path)
    if not isinstance(payload.get("config"), dict):
        raise CorruptInputError(f"{path}: invalid model config (not a dict)")
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
    except (TypeError, UsageError) as exc:
        raise CorruptInputError(f"{path}: invalid model config ({exc})") from None
    if payload.get("family") != config.family:
        raise CorruptInputError(
            f"{path}: family {payload.get('family')!r} disagrees with the config's "
            f"{config.family!r}"
        )
    state_dict = payload.get("state_dict")
    _check_state_dict(path, state_dict, config)
    _check_shapes(path, state_dict, config)
    calibration = _check_calibration(path, payload.get("calibration"), config.d_input)
    meta = _check_meta_on_load(path, payload.get("meta"))
    try:
        model = build_model(config)
    except UsageError as exc:  # a combination of valid values the model refuses
        raise CorruptInputError(f"{path}: invalid model config ({exc})") from None
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = textwrap.shorten(str(exc), 200, placeholder=" ...")
        raise CorruptInputError(f"{path}: weights do not fit the model config ({detail})") from None
    model.eval()
    _check_forward(path, model, config.d_input)
    return Checkpoint(model=model, config=config, calibration=calibration, meta=meta, path=path)


def load(path: str | os.PathLike[str]) -> SequenceModel:
    """Rebuild the model stored at `path` (eval mode). See `load_checkpoint` for the rest."""
    return load_checkpoint(path).model
