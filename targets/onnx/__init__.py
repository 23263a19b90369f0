"""The ONNX target: one time step of the integer netlist as an ONNX graph (streaming).

    from snncompile.targets.onnx import build_step_model, run_onnx
    model = build_step_model(net)       # onnx.ModelProto, state in -> state out
    result = run_onnx(net, x)           # onnxruntime over whole sequences: a SimResult

One call is one model step (one token); for a time-multiplexed netlist (ticks_per_step
T > 1) the graph unrolls the call's T ticks (graph.py).

`snncompile export model.pt --target onnx -o OUT` writes the artifact with model.onnx;
`snncompile simulate OUT --input x.npy --backend onnx` runs it. `--target onnx --float`
exports the float PyTorch model instead (export_float; only that function imports
torch). docs/targets.md, "## onnx", gives the graph's interface and how each rounding
maps to ONNX ops.
"""

from snncompile.targets.onnx.float_model import (
    CHECK_SEQUENCES as FLOAT_CHECK_SEQUENCES,
)
from snncompile.targets.onnx.float_model import (
    CHECK_STEPS as FLOAT_CHECK_STEPS,
)
from snncompile.targets.onnx.float_model import (
    FloatSession,
    check_float_output,
    export_float,
    is_float_artifact,
    open_onnx_artifact,
    read_float_manifest,
    run_float,
)
from snncompile.targets.onnx.graph import StepInterface, build_step_model, read_interface
from snncompile.targets.onnx.runner import StepSession, run_onnx
from snncompile.targets.onnx.target import (
    FILES,
    Build,
    check_artifact,
    check_options,
    prepare,
    summarize_artifact,
)

__all__ = [
    "FILES",
    "FLOAT_CHECK_SEQUENCES",
    "FLOAT_CHECK_STEPS",
    "Build",
    "FloatSession",
    "StepInterface",
    "StepSession",
    "build_step_model",
    "check_artifact",
    "check_float_output",
    "check_options",
    "export_float",
    "is_float_artifact",
    "open_onnx_artifact",
    "prepare",
    "read_float_manifest",
    "read_interface",
    "run_float",
    "run_onnx",
    "summarize_artifact",
]
