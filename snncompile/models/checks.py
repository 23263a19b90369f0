"""Argument checks shared by the model classes: one-line UsageErrors naming the argument
(ArgumentTypeError, also a TypeError, for one of the wrong type).

The classes are public API; without these a wrong type fails deep inside torch (for
example "'<=' not supported between instances of 'str' and 'int'", or a shape mismatch
reported by a matmul) instead of saying which argument of which class is wrong.
"""

from __future__ import annotations

import math

import torch

from snncompile.arguments import as_float, is_integral, is_real
from snncompile.errors import ArgumentTypeError, UsageError


def positive_int(owner: str, name: str, value: object) -> int:
    """`value` as an int >= 1 if `arguments.is_integral`."""
    if not is_integral(value):
        raise ArgumentTypeError(f"{owner} {name} must be a positive int, got {value!r}")
    if value <= 0:
        raise UsageError(f"{owner} {name} must be a positive int, got {int(value)}")
    return int(value)


def finite_number(owner: str, name: str, value: object) -> float:
    """`value` as a finite float if `arguments.is_real`."""
    if not is_real(value):
        raise ArgumentTypeError(f"{owner} {name} must be a finite number, got {value!r}")
    number = as_float(value)
    if not math.isfinite(number):
        raise UsageError(f"{owner} {name} must be a finite number, got {value!r}")
    return number


def check_floating(owner: str, x: object) -> None:
    """x must be a floating-point tensor, of any shape."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{owner} expects a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise UsageError(f"{owner} expects a floating-point x, got {x.dtype}")


_LAYOUTS = {3: "(B, L, {w})", 2: "(B, {w})"}


def check_features(owner: str, x: object, width: int, *, dims: tuple[int, ...] = (3,)) -> None:
    """x must be a floating tensor whose last dimension is `width`: a sequence (B, L, width)
    with dims (3,), one step (B, width) with dims (2,), either with (3, 2)."""
    check_floating(owner, x)
    if x.dim() not in dims or x.shape[-1] != width:
        expected = " or ".join(_LAYOUTS[d].format(w=width) for d in dims)
        raise UsageError(f"{owner} expects x of shape {expected}, got {tuple(x.shape)}")
