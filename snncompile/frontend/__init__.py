"""Frontends: a PyTorch model (or checkpoint) -> the float IR Graph; a NIR file -> the same.

The PyTorch names load on first use (PEP 562): importing a NIR module of this package
(e.g. `inspect net.nir`, which must not need torch) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "trace": "snncompile.frontend.torch_trace",
    "trace_checkpoint": "snncompile.frontend.torch_trace",
    "load_user_model": "snncompile.frontend.user_model",
}

__all__ = ["load_user_model", "trace", "trace_checkpoint"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
