"""The registry side of the ONNX target: options, prepare (build + check), summaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile.errors import CorruptInputError, EquivalenceError, UsageError

from .graph import OPSET, build_step_model, read_interface

if TYPE_CHECKING:
    import onnx

    from snncompile.compiler import Compiled

FILES = ("model.onnx",)
# Calibration sequences run through onnxruntime at export to check the written graph,
# and their first steps at most: the check records every value on both sides (a 20,000-
# step calibration took 1.2 GB more and 40 s; the graph is one step, the same each step).
EXPORT_CHECK_SEQUENCES = 4
EXPORT_CHECK_STEPS = 256


@dataclass
class Build:
    """The step model of one compiled network, checked, ready to be written."""

    model: onnx.ModelProto
    checked_sequences: int
    checked_steps: int = 0

    def files(self) -> dict[str, Callable[[Path], None]]:
        data = self.model.SerializeToString()
        return {"model.onnx": lambda path: path.write_bytes(data)}

    def manifest(self) -> dict[str, Any]:
        iface = read_interface(self.model)
        return {
            "onnx": {
                "opset": OPSET,
                "numeric": "int64",
                "states": len(iface.states),
                "event_sites": len(iface.event_sites),
                "ticks_per_step": iface.ticks_per_step,
                "export_check": {
                    "sequences": self.checked_sequences,
                    "steps": self.checked_steps,
                    "criterion": (
                        "readout, every message, state and summed input equal to the reference"
                    ),
                },
            }
        }


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The onnx target takes `float` (export the float PyTorch model instead)."""
    unknown = sorted(set(options) - {"float"})
    if unknown:
        raise UsageError(f"the onnx target does not take {', '.join(unknown)}")
    return {"float": bool(options.get("float", False))}


def prepare(compiled: Compiled, parsed: dict[str, Any] | None = None) -> Build:
    """Build the step graph and check it against the reference on calibration inputs.

    EquivalenceError (exit 3, nothing written) names the first diverging population.
    """
    from snncompile.reference.simulator import simulate
    from snncompile.verify.traces import compare_runs

    from .runner import StepSession, run_onnx

    net = compiled.netlist
    if net is None:
        raise UsageError("the onnx target needs the quantized netlist (pipeline stopped early)")
    model = build_step_model(net)
    calib = compiled.calibration
    n = steps = 0
    if calib is not None:
        x = np.asarray(calib)[:EXPORT_CHECK_SEQUENCES, :EXPORT_CHECK_STEPS]
        n, steps = int(x.shape[0]), int(x.shape[1])
        expected = simulate(net, x, record=True, record_internals=True)
        session = StepSession(model.SerializeToString())
        actual = run_onnx(session, x, record=True, record_internals=True)
        difference = compare_runs(expected, actual, [p.name for p in net.populations])
        if difference is not None:
            raise EquivalenceError(f"onnx step graph differs from the reference: {difference}")
    return Build(model=model, checked_sequences=n, checked_steps=steps)


def check_artifact(path: str | Path, netlist: Any) -> None:
    """model.onnx is exactly the step graph of netlist.npz (the build is deterministic and
    takes milliseconds): its interface metadata, edited and rehashed, changed logits with
    exit 0, and a graph edit would run something verify never checked."""
    file = Path(path) / "model.onnx"
    if file.read_bytes() != build_step_model(netlist).SerializeToString():
        raise CorruptInputError(
            f"{file}: is not the step graph of netlist.npz (edited after export, or written "
            "by another snncompile version: export again)"
        )


def summarize_artifact(path: str | Path) -> dict[str, Any]:
    """Interface summary of the artifact's model.onnx (for inspect and export)."""
    import onnx

    file = Path(path) / "model.onnx"
    try:
        model = onnx.load(str(file))
    except Exception as exc:  # onnx raises DecodeError and others: all mean unreadable
        raise CorruptInputError(f"{file}: unreadable ONNX model ({exc})") from None
    try:
        iface = read_interface(model)
    except CorruptInputError as exc:
        raise CorruptInputError(f"{file}: {exc}") from None
    return {
        "file": "model.onnx",
        "opset": OPSET,
        "inputs": ["x", "in_window", *iface.states],
        "outputs": ["readout", "events", "next:<state>", "msg:<population>", "in:<population>"],
        "states": len(iface.states),
        "state_values": int(sum(int(np.prod(s)) for s in iface.states.values())),
        "output_latency": iface.output_latency,
        "ticks_per_step": iface.ticks_per_step,
        # Calls after the input's L (one call per model step of ticks_per_step ticks).
        "extra_calls": iface.output_latency // iface.ticks_per_step,
        "nodes": len(model.graph.node),
        "bytes": file.stat().st_size,
    }
