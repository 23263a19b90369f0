"""Argument checks shared by the model classes: one-line UsageErrors naming the argument.

The classes are public API; without these a wrong type fails deep inside torch (for
example "'<=' not supported between instances of 'str' and 'int'", or a shape mismatch
reported by a matmul) instead of saying which argument of which class is wrong.
"""

from __future__ import annotations

import math

import torch

from snncompile.errors import UsageError


def positive_int(owner: str, name: str, value: object) -> int:
    """`value` as an int >= 1 (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{owner} {name} must be a positive int, got {value!r}")
    return value


def finite_number(owner: str, name: str, value: object) -> float:
    """`value` as a finite float (bools and non-numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{owner} {name} must be a finite number, got {value!r}")
    return float(value)


_LAYOUTS = {3: "(B, L, {w})", 2: "(B, {w})"}


def check_features(owner: str, x: object, width: int, *, dims: tuple[int, ...] = (3,)) -> None:
    """x must be a floating tensor whose last dimension is `width`: a sequence (B, L, width)
    with dims (3,), one step (B, width) with dims (2,), either with (3, 2)."""
    expected = " or ".join(_LAYOUTS[d].format(w=width) for d in dims)
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"{owner} expects a tensor {expected}, got {type(x).__name__}")
    if x.dim() not in dims or x.shape[-1] != width:
        raise UsageError(f"{owner} expects x of shape {expected}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UsageError(f"{owner} expects a floating-point x, got {x.dtype}")
