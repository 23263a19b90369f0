"""Checks of the Python API's arguments, run at each entry point before any work starts.

    out = check_path(output, "output")              # str or os.PathLike, returned as given
    epochs = check_integer(epochs, "epochs")        # an int; bool and 2.0 refused
    lr = check_real(lr, "lr")                       # a float; its range is checked by the caller
    overwrite = check_flag(overwrite, "overwrite")

Python's convention makes an argument of the wrong type a TypeError; the project's makes
every error a SnnCompileError carrying its exit code. ArgumentTypeError is both (exit 2).
Its messages name the Python parameter: the CLI passes values of the right types, so only
a caller from Python sees them. A value of the right type out of its range stays a plain
UsageError, named as the CLI option when the CLI shares the check.
"""

from __future__ import annotations

import numbers
import os
import reprlib
from typing import Any

import numpy as np

from snncompile.errors import ArgumentTypeError, UsageError

_SHOWN_BY_VALUE = (str, bytes, int, float, complex, bool, type(None))


def describe(value: object) -> str:
    """`value` for a one-line message: a short repr of a plain value (with its type where
    the repr does not say it), else the type alone (a model's repr is many lines)."""
    if isinstance(value, _SHOWN_BY_VALUE):
        shown = reprlib.repr(value)
        if type(value) in (int, float, str, bool, type(None)):
            return shown
        return f"{shown} ({type(value).__name__})"
    return f"a {type(value).__name__}"


def check_path(value: Any, name: str, *, reading: bool = False) -> Any:
    """`value` unchanged if it is a path: a str, or an os.PathLike giving one (bytes
    paths are refused: every message would show them as b'...'). reading: the path
    names an input, and an empty one is refused (Path("") is ".", which was then
    reported as "not a file"); an output's empty path is refused by
    outputs.check_writable, which names the option."""
    path = value
    if isinstance(value, os.PathLike):
        path = value.__fspath__()
    if not isinstance(path, str):
        raise ArgumentTypeError(
            f"{name} must be a path (a str or os.PathLike), got {describe(value)}"
        )
    if reading and not path:
        raise UsageError(f"{name} is empty: name the file to read")
    return value


def is_integral(value: object) -> bool:
    """Any integral number, numpy's too, but not a bool (True is 1 to Python, not a
    count) and not a float, even 2.0 (as ModelConfig refuses it)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Integral)


def is_real(value: object) -> bool:
    """Any real number, numpy's too, but not a bool (a complex, a str or None are not)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)


def as_float(value: numbers.Real) -> float:
    """A real number as a float; an int past float64's range is +-inf (float() raises)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def check_integer(value: Any, name: str) -> int:
    """`value` as an int if `is_integral`."""
    if not is_integral(value):
        raise ArgumentTypeError(f"{name} must be an integer, got {describe(value)}")
    return int(value)


def check_real(value: Any, name: str) -> float:
    """`value` as a float if `is_real`. NaN and infinities pass: the caller's range check
    refuses them, naming the option as the CLI does (every comparison with NaN is False)."""
    if not is_real(value):
        raise ArgumentTypeError(f"{name} must be a real number, got {describe(value)}")
    return as_float(value)


def check_flag(value: Any, name: str) -> bool:
    """`value` as a bool: True or False only ("no" is truthy, and replaced files)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_text(value: Any, name: str) -> str:
    """`value` if it is a str (a target or backend name given a list failed as
    "unhashable type" where it was looked up)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a str, got {describe(value)}")
    return value


def check_callback(value: Any, name: str) -> None:
    """None or a callable (a progress callback of 5 was "'int' object is not callable"
    midway through the work)."""
    if value is not None and not callable(value):
        raise ArgumentTypeError(f"{name} must be callable or None, got {describe(value)}")


def check_optional_dict(value: Any, name: str) -> dict[str, Any]:
    """`value` as a dict ({} for None): a list or a str failed deep inside (dict(...),
    .items())."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArgumentTypeError(f"{name} must be a dict, got {describe(value)}")
    return value
