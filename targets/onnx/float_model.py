"""Opening ONNX artifacts for `simulate --backend onnx` (integer step graphs for now)."""

from __future__ import annotations

import os
from typing import Any


def open_onnx_artifact(path: str | os.PathLike[str]) -> tuple[Any, int, int]:
    """(runnable source for run_onnx, input width, output latency) of an artifact."""
    from .runner import _resolve

    session = _resolve(path)
    return session, session.interface.input_size, session.interface.output_latency
