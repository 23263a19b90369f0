"""Frontends: a PyTorch model (or checkpoint) -> the float IR Graph."""

from __future__ import annotations

from snncompile.frontend.torch_trace import trace, trace_checkpoint
from snncompile.frontend.user_model import load_user_model

__all__ = ["load_user_model", "trace", "trace_checkpoint"]
