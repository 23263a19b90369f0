"""Load a user's own PyTorch module: code from an importable factory, weights from a file.

The entry is "package.module:factory". The module is imported (it is the user's code,
which they chose to run), factory() is called with no arguments and must return an
nn.Module, and the weights are read with torch.load(weights_only=True): the weights
file never runs code.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snncompile.checkpoint import check_float_dtype, read_torch_file
from snncompile.errors import (
    USER_CODE_ERRORS,
    CorruptInputError,
    SignalExit,
    UsageError,
    user_code_failure,
)

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_ENTRY = re.compile(rf"^({_DOTTED}):({_DOTTED})$")
_MISSING = object()


def _split_entry(entry: str) -> tuple[str, str]:
    match = _ENTRY.match(entry.strip()) if isinstance(entry, str) else None
    if match is None:
        raise UsageError(
            f"model entry {entry!r} is malformed; expected 'package.module:factory' "
            "(a factory that takes no arguments and returns an nn.Module)"
        )
    return match.group(1), match.group(2)


def _import(module_name: str) -> Any:
    # A console script does not put the working directory on sys.path, but the user's
    # model module usually lives there; look there too, for this import only.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        with _user_code(f"importing {module_name!r}", keep=(ModuleNotFoundError,)):
            return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_module_or_package(exc.name, module_name):
            raise UsageError(f"cannot import model module {module_name!r}: {exc}") from None
        raise UsageError(f"importing {module_name!r} failed: {exc}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _is_module_or_package(name: str, module_name: str) -> bool:
    """Whether `name` is `module_name` or a package of it ("a" or "a.b" of "a.b.c"). A
    module that merely starts with `name` ("ne" of "net") imports it: "cannot import
    model module 'net'" blamed the wrong one."""
    return module_name == name or module_name.startswith(name + ".")


@contextlib.contextmanager
def _user_code(what: str, keep: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run the user's code: whatever it raises but `keep` is one UsageError, "{what}
    failed: ...". A sys.exit() there ended export with exit 0, having printed nothing."""
    try:
        yield
    except (SignalExit, *keep):  # a SIGTERM's exit is no failure of the user's code
        raise
    except USER_CODE_ERRORS as exc:
        raise UsageError(f"{what} failed: {user_code_failure(exc)}") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    payload = read_torch_file(path, "weights file")
    # Accept a bare state_dict or a dict holding one (as training scripts often save).
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not payload:
        raise CorruptInputError(f"{path}: does not hold a state_dict (a dict of tensors)")
    for name, tensor in payload.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CorruptInputError(f"{path}: state_dict entry {name!r} is not a tensor")
        check_float_dtype(path, f"parameter {name!r}", tensor)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CorruptInputError(f"{path}: parameter {name!r} holds a non-finite value")
    return payload


def load_user_model(entry: str, state_dict_path: str | os.PathLike[str]) -> nn.Module:
    """Build the user's model with `entry` ("package.module:factory") and load its weights.

    Returns the model in eval mode. UsageError: malformed entry, import failure, factory
    missing, failing or not returning an nn.Module, anything else the user's code raises
    (a sys.exit() too) in the lookup, its load_state_dict or eval. CorruptInputError:
    weights missing, unreadable, unsafe, or not fitting the model (torch's RuntimeError).
    """
    module_name, attr_path = _split_entry(entry)
    target: Any = _import(module_name)
    for part in attr_path.split("."):
        # A module's __getattr__ (lazy attributes) may raise anything: it was exit 1, a bug.
        with _user_code(f"looking up {attr_path!r} in {module_name!r}"):
            target = getattr(target, part, _MISSING)
        if target is _MISSING:
            raise UsageError(f"{module_name!r} has no attribute {attr_path!r} (entry {entry!r})")
    if not callable(target):
        raise UsageError(f"{entry!r} is not callable; it must be a factory returning an nn.Module")
    with _user_code(f"{entry}()"):
        model = target()
    if not isinstance(model, nn.Module):
        raise UsageError(f"{entry}() returned a {type(model).__name__}, not a torch.nn.Module")
    path = Path(state_dict_path)
    state_dict = _read_state_dict(path)
    # The model's own load_state_dict or eval() (overridden, or its hooks) may raise
    # anything else: it was exit 1, a bug.
    try:
        with _user_code(f"loading {path} into {entry}()'s model", keep=(RuntimeError,)):
            model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # torch's: missing, unexpected or misshapen tensors
        detail = " ".join(str(exc).split())[:300]
        raise CorruptInputError(f"{path}: weights do not fit {entry}() ({detail})") from None
    with _user_code(f"{entry}()'s model.eval()"):
        return model.eval()
