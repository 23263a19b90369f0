"""The float ONNX export (`--target onnx --float`) and opening ONNX artifacts of both kinds.

The float export is the way out for models the integer netlist cannot express (e.g. the
GSU family): the PyTorch model itself, one time step with explicit state, exported with
torch.onnx (TorchScript exporter) and checked against the model's own forward over whole
sequences before anything is written.

    export_float(model, x_check, "out.onnx-float")     # EquivalenceError: nothing written
    run_float(FloatSession.from_file("out/model.onnx"), x)

Only export_float imports torch, and only when called; it takes the model as an object
(duck-typed: encoder, blocks with ssm/norm/act/mix, decoder, config.pooling), so this
target does not import snncompile's models or frontend. Artifact layout: docs/formats.md,
"ONNX float artifact".
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from snncompile import __version__
from snncompile.errors import CorruptInputError, EquivalenceError, UnsupportedError, UsageError
from snncompile.ir.serialize import is_version, parse_json, peek_json_object
from snncompile.outputs import write_directory, write_npz
from snncompile.reference.simulator import SimResult, check_run_input

from .interface_json import interface_from_json

FLOAT_FORMAT = "snncompile-onnx-float"
FLOAT_VERSION = 1
FLOAT_FILES = ("model.onnx", "check.npz")
FLOAT_INTERFACE_KEY = "snncompile.float_interface"
RELATIVE_TOLERANCE = 1e-5
CHECK_SEQUENCES = 32  # calibration sequences streamed through onnxruntime at export,
CHECK_STEPS = 256  # their first steps at most (a one-step graph: the same at every step)
OPSET = 17
# float64 exports are exact to ~1e-16 where onnxruntime 1.23 has the kernels, but its CPU
# provider lacks float64 Softplus, Conv and Erf (measured), so only float32 is offered on
# the command line; the API takes dtype="float64" for models without those ops.
DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class FloatInterface:
    """The float step graph's tensors.

    inputs:  "u" (batch, input_size) in `dtype`; every name in `states` (batch, *shape).
    outputs: "logits" (batch, output_size): the model's output for the steps seen so far
             (mean pooling: the mean over them; last: this step's); "next:" + each state;
             "spikes:" + each name in `spiking` (batch, H): that neuron layer's output (a
             GSU's: its ternary activations, -1, 0 or 1).
    """

    input_size: int
    output_size: int
    dtype: str
    pooling: str
    states: dict[str, list[int]]
    spiking: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


# How interface_json checks each FloatInterface field.
_FLOAT_FIELD_KINDS = {
    "input_size": "count",
    "output_size": "count",
    "dtype": "name",
    "pooling": "name",
    "states": "shapes",
    "spiking": "names",
}


# ---- the export (torch) ----------------------------------------------------------------


def _step_module(model: Any, dtype: Any) -> tuple[Any, dict[str, list[int]], list[str]]:
    """A torch module for one step with flat state tensors, and the state shapes.

    The SSM's complex state is kept as two real tensors (ONNX has no complex type):
    re' = ar re - ai im + br u, im' = ai re + ar im + bi u, y = 2 sum(cr re' - ci im') + D u,
    which is S4D.step written out in real arithmetic.
    """
    import torch
    from torch import nn

    missing = [a for a in ("encoder", "blocks", "decoder", "config") if not hasattr(model, a)]
    if missing:
        raise UnsupportedError(
            f"--float exports snncompile sequence models (encoder, blocks, decoder, config); "
            f"{type(model).__name__} has no {', '.join(missing)}"
        )
    blocks = list(model.blocks)
    for i, block in enumerate(blocks):
        if getattr(block.ssm, "bidirectional", False):
            raise UnsupportedError(
                f"blocks.{i}.ssm is bidirectional (non-causal): it has no step mode to export"
            )
    h = model.config.d_model
    states: dict[str, list[int]] = {}
    act_counts = []
    for i, block in enumerate(blocks):
        modes = int(block.ssm.n_modes)
        states[f"state:blocks.{i}.ssm.re"] = [h, modes]
        states[f"state:blocks.{i}.ssm.im"] = [h, modes]
        act_state = block.init_state(1, dtype=dtype, device=None)[1]
        act_counts.append(len(act_state))
        for k, tensor in enumerate(act_state):
            states[f"state:blocks.{i}.act.{k}"] = list(tensor.shape[1:])
    _plain_layer_norms(model)
    # Neuron layers (their own step()) and GSUs (ternary activations): their spikes are
    # outputs too, for spike rates (a GSU artifact said "non-spiking").
    ternary = {i for i, b in enumerate(blocks) if hasattr(b.act, "ternary_activations")}
    spiking = [
        f"blocks.{i}.act" for i, b in enumerate(blocks) if hasattr(b.act, "step") or i in ternary
    ]
    pooling = model.config.pooling
    if pooling == "mean":
        states["state:pool.sum"] = [h]
        states["state:pool.count"] = [1]

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            with torch.no_grad():
                for i, block in enumerate(blocks):
                    a_bar, b_bar, c = block.ssm.discretize()
                    c0 = c[0] if c.dim() == 3 else c
                    parts = {
                        "ar": a_bar.real, "ai": a_bar.imag, "br": b_bar.real,
                        "bi": b_bar.imag, "cr": c0.real, "ci": c0.imag,
                    }  # fmt: skip
                    for name, value in parts.items():
                        self.register_buffer(f"b{i}_{name}", value.to(dtype).contiguous())

        def forward(self, u: torch.Tensor, *flat: torch.Tensor):
            it = iter(flat)
            x = self.model.encoder(u)
            new: list[torch.Tensor] = []
            spikes: list[torch.Tensor] = []
            for i, block in enumerate(blocks):
                p = {k: getattr(self, f"b{i}_{k}") for k in ("ar", "ai", "br", "bi", "cr", "ci")}
                re, im = next(it), next(it)
                act_state = tuple(next(it) for _ in range(act_counts[i]))
                v = block.norm(x)
                drive = v.unsqueeze(-1)
                re2 = p["ar"] * re - p["ai"] * im + p["br"] * drive
                im2 = p["ai"] * re + p["ar"] * im + p["bi"] * drive
                y = 2 * (p["cr"] * re2 - p["ci"] * im2).sum(-1) + block.ssm.D * v
                if i in ternary:
                    spikes.append(block.act.ternary_activations(y))
                    a = block.act(y)
                elif f"blocks.{i}.act" in spiking:
                    a, act_state = block.act.step(y, act_state)
                    spikes.append(a)
                else:
                    a = block.act(y)
                x = x + block.mix(a)
                new += [re2, im2, *act_state]
            if pooling == "mean":
                total, count = next(it) + x, next(it) + 1
                new += [total, count]
                pooled = total / count
            else:
                pooled = x
            return (self.model.decoder(pooled), *new, *spikes)

    # eval(): a fresh Module is in training mode, and torch.onnx.export restores the
    # exported module's mode afterwards, recursively, which would switch `model` (e.g. the
    # LIF's SDN training path) into training mode for the check below.
    return Step().eval(), states, spiking


def _plain_layer_norms(model: Any) -> None:
    """Replace (in `model`, export_float's copy) every nn.LayerNorm by its formula in
    plain ops, centred first as PyTorch's kernel is. onnxruntime's LayerNormalization
    refuses a normalized size of 1 when it runs ("Size of X.shape[axis:] must be larger
    than 1"), so a GSU of d_model 1 exported but could not run (exit 6); and it is less
    accurate than PyTorch's where the mean is large against the spread (a GSU of 2 or 3
    channels: logit errors of 1.3e-4 to 3e-4 against PyTorch, export's check failed,
    exit 3; with the formula 1e-7 to 5.5e-6). Over one element x - mean is exactly 0 and
    the output is the bias, in PyTorch's kernel and in the formula alike."""
    from torch import nn

    class PlainLayerNorm(nn.Module):
        def __init__(self, norm: nn.LayerNorm) -> None:
            super().__init__()
            self.norm = norm
            self.dims = tuple(range(-len(norm.normalized_shape), 0))

        def forward(self, x: Any) -> Any:
            centred = x - x.mean(self.dims, keepdim=True)
            var = (centred * centred).mean(self.dims, keepdim=True)
            y = centred / (var + self.norm.eps).sqrt()
            if self.norm.weight is not None:
                y = y * self.norm.weight
            if self.norm.bias is not None:
                y = y + self.norm.bias
            return y

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.LayerNorm):
                setattr(module, name, PlainLayerNorm(child))


def export_float(
    model: Any,
    x_check: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    overwrite: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Export `model` (eval mode) one step at a time as ONNX and check it, then write.

    x_check (B, L, d_in): inputs for the check; onnxruntime streams them step by step and
    its final logits must equal model(x) (the PyTorch forward over the whole sequence,
    its S4D layers run by their recurrence, models.s4d.use_recurrence: the FFT's noise
    decided Heaviside spikes where the output decays below it) to RELATIVE_TOLERANCE of
    the largest logit, else EquivalenceError and nothing is written.
    """
    import io

    import torch

    if dtype not in DTYPES:
        raise UsageError(f"float export dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = check_float_output(out_dir, overwrite)
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    import copy

    model = copy.deepcopy(model).eval().to(torch_dtype)  # the caller's model stays as it was
    # The check's side: _step_module swaps this copy's LayerNorms for their formula, and
    # the check compared that formula with itself (helper-87).
    reference = copy.deepcopy(model)
    step, states, spiking = _step_module(model, torch_dtype)
    iface = FloatInterface(
        input_size=int(model.config.d_input),
        output_size=int(model.config.d_output),
        dtype=dtype,
        pooling=str(model.config.pooling),
        states=states,
        spiking=spiking,
    )
    names = list(states)
    spike_outputs = [f"spikes:{name}" for name in spiking]
    example_u = torch.zeros(2, iface.input_size, dtype=torch_dtype)
    example_states = [torch.zeros(2, *shape, dtype=torch_dtype) for shape in states.values()]
    buffer = io.BytesIO()
    outputs = ["logits", *_next(names), *spike_outputs]
    dynamic = {name: {0: "batch"} for name in ["u", *names, *outputs]}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-side checks and the GSU's activity statistic;
        # whatever it froze, the equivalence check below is what decides.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            (example_u, *example_states),
            buffer,
            input_names=["u", *names],
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
        )
    import onnx

    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {FLOAT_INTERFACE_KEY: iface.to_json()})
    onnx.checker.check_model(proto)
    model_bytes = proto.SerializeToString()

    x = np.asarray(x_check, dtype=DTYPES[dtype])
    from snncompile.models.s4d import use_recurrence

    use_recurrence(reference)
    overflowed = (
        f"the {dtype} model overflowed on the check inputs (largest input magnitude "
        f"{float(np.abs(x).max()):.3g})"
    )
    with torch.no_grad():
        try:
            expected = reference(torch.from_numpy(x)).double().numpy()
        except UsageError as exc:  # the inputs were checked: a neuron refusing inf or NaN
            raise UsageError(f"{overflowed}: {exc}") from None
    if not np.isfinite(expected).all():  # logits no check can compare
        raise UsageError(f"{overflowed}: its logits hold inf or NaN")
    actual = run_float(_session_or_refusal(model_bytes, dtype), x).logits
    error = _relative_error(actual, expected)
    described = "the PyTorch model's forward over each whole sequence, S4D by its recurrence"
    missed = None  # the error against the dtype's own forward where float64 decided
    if not error <= RELATIVE_TOLERANCE and dtype != "float64":
        # The float32 PyTorch run is an approximation of the model too: a GSU's ternary
        # threshold (0.15 of the largest |y|) or a spike decided by its last bits flips
        # it alone, 3.7e-05 from a float32 step graph that is within 1.8e-06 of the
        # float64 forward (3 GSU blocks, prenorm, last-step pooling; helper-98). The
        # float64 forward of the same weights decides then.
        with torch.no_grad():
            exact = reference.double()(torch.from_numpy(x).double()).numpy()
        exact_error = _relative_error(actual, exact)
        if exact_error <= RELATIVE_TOLERANCE:
            missed, expected, error = error, exact, exact_error
            described = f"{described}, in float64 (the {dtype} forward differed by rounding)"
        else:
            raise EquivalenceError(
                f"float ONNX export differs from PyTorch: max relative logit error "
                f"{error:.3g} ({dtype} forward), {exact_error:.3g} (float64) > "
                f"{RELATIVE_TOLERANCE:g} on {x.shape[0]} sequence(s) of {x.shape[1]} steps"
            )
    check = {
        "reference": described,
        "sequences": int(x.shape[0]),
        "steps": int(x.shape[1]),
        "max_relative_error": error,
        "tolerance": RELATIVE_TOLERANCE,
        "criterion": "max |onnx - torch| / max |torch| over the final logits",
    }
    if missed is not None:
        check[f"{dtype}_forward_relative_error"] = missed
    if not error <= RELATIVE_TOLERANCE:
        raise EquivalenceError(
            f"float ONNX export differs from PyTorch: max relative logit error {error:.3g} > "
            f"{RELATIVE_TOLERANCE:g} on {x.shape[0]} sequence(s) of {x.shape[1]} steps"
        )
    manifest = {
        "format": FLOAT_FORMAT,
        "version": FLOAT_VERSION,
        "target": "onnx",
        "numeric": dtype,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": {
            "snncompile": __version__,
            "numpy": np.__version__,
            "torch": str(torch.__version__),
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "source": {k: v for k, v in (meta or {}).items() if k in ("checkpoint", "family", "task")},
        "input_size": iface.input_size,
        "output_size": iface.output_size,
        "output_latency": 0,
        "interface": json.loads(iface.to_json()),
        "check": check,
    }
    writers = {
        "model.onnx": lambda path: path.write_bytes(model_bytes),
        "check.npz": lambda path: write_npz(path, {"x": x, "logits": expected}),
    }
    return _write_dir(out, writers, manifest, overwrite)


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| over max |expected| (the check's criterion)."""
    scale = float(np.abs(expected).max())
    return float(np.abs(actual - expected).max()) / max(scale, np.finfo(np.float64).tiny)


def check_float_output(out_dir: str | os.PathLike[str], overwrite: bool) -> Path:
    """artifact.check_output_dir: --overwrite replaces any export (float or not) that
    holds only the files its manifest lists."""
    from snncompile.artifact import check_output_dir

    return check_output_dir(out_dir, overwrite)


def _next(names: list[str]) -> list[str]:
    return [f"next:{name}" for name in names]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_dir(out: Path, writers: dict, manifest: dict[str, Any], overwrite: bool) -> Path:
    """Write the files and the manifest (with their sha256) atomically into `out`."""

    def fill(tmp: Path) -> None:
        for name, writer in writers.items():
            writer(tmp / name)
        manifest["files"] = {name: _sha256(tmp / name) for name in writers}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")

    return write_directory(out, fill, overwrite=overwrite)


# ---- running (no torch) ----------------------------------------------------------------


def _check_against_graph(iface: FloatInterface, proto: Any) -> None:
    """The interface describes the graph it is stored in (a float export has no netlist
    to compare with): tensor names, shapes and dtype; CorruptInputError naming the first
    disagreement (an edited interface gave onnxruntime errors, exit 1)."""
    from onnx import TensorProto

    where = "FloatInterface metadata"
    if iface.dtype not in DTYPES:
        raise CorruptInputError(f"{where}: dtype {iface.dtype!r} is not one of {', '.join(DTYPES)}")
    if iface.pooling not in ("mean", "last"):
        raise CorruptInputError(f"{where}: pooling {iface.pooling!r} is not mean or last")

    def dims(value: Any) -> list[int]:
        return [d.dim_value for d in value.type.tensor_type.shape.dim[1:]]

    inputs = {v.name: v for v in proto.graph.input}
    outputs = {v.name: v for v in proto.graph.output}
    want_in = {"u": [iface.input_size], **iface.states}
    want_out = {"logits": [iface.output_size], **{f"next:{n}": s for n, s in iface.states.items()}}
    if set(inputs) != set(want_in) or not set(want_out) <= set(outputs):
        raise CorruptInputError(f"{where}: its states or outputs are not the graph's")
    if set(outputs) - set(want_out) != {f"spikes:{n}" for n in iface.spiking}:
        raise CorruptInputError(f"{where}: its spiking layers are not the graph's")
    for name, shape in want_in.items():
        if dims(inputs[name]) != list(shape):
            raise CorruptInputError(
                f"{where}: {name} has shape {shape}, the graph's {dims(inputs[name])}"
            )
    if dims(outputs["logits"]) != [iface.output_size]:
        raise CorruptInputError(f"{where}: output_size is not the graph's")
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[iface.dtype]
    if inputs["u"].type.tensor_type.elem_type != elem:
        raise CorruptInputError(f"{where}: dtype {iface.dtype} is not the graph's")


def _session_or_refusal(model_bytes: bytes, dtype: str) -> FloatSession:
    """FloatSession, with onnxruntime's missing kernel (its CPU provider has no float64
    Softplus, Conv or Erf) as UnsupportedError naming the op, not a bare NotImplemented."""
    try:
        return FloatSession(model_bytes)
    except Exception as exc:  # onnxruntime's pybind error classes
        found = re.search(r"implementation for (\w+)\(\d+\) node with name '([^']*)'", str(exc))
        if not found or not type(exc).__module__.startswith("onnxruntime"):
            raise
        op, node = found.groups()
        raise UnsupportedError(
            f"onnxruntime has no {dtype} kernel for {op} (node {node}); export this model as "
            "float32"
        ) from None


class FloatSession:
    """A float step model in onnxruntime, with its interface."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        import onnx

        from .runner import session_for

        proto = onnx.load_from_string(model_bytes)
        props = {p.key: p.value for p in proto.metadata_props}
        if FLOAT_INTERFACE_KEY not in props:
            raise CorruptInputError("the ONNX model has no snncompile float interface")
        self.interface = interface_from_json(
            FloatInterface, props[FLOAT_INTERFACE_KEY], _FLOAT_FIELD_KINDS
        )
        _check_against_graph(self.interface, proto)
        self.session = session_for(model_bytes, threads)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FloatSession:
        from .runner import load_session

        return load_session(cls, path)


def run_float(
    session: FloatSession, x: np.ndarray, progress: Callable[[float], None] | None = None
) -> SimResult:
    """Stream x (B, L, d_in) through the float step graph; logits after the last step
    (progress: called with the fraction done after each step).

    readout holds the same logits (a float export has no integer readout); spike rates
    per neuron layer (fraction of nonzero outputs); no traces or events; latency is 0
    (no synapse hops in the float model).
    """
    from .runner import run_session

    iface = session.interface
    x = check_run_input(x, iface.input_size)
    dtype = DTYPES[iface.dtype]
    largest = float(np.abs(x).max())
    if largest > np.finfo(dtype).max:  # the cast would make it inf, the logits NaN
        raise UsageError(f"input value {largest:.3g} is beyond the model's {iface.dtype} range")
    x = np.ascontiguousarray(x, dtype=dtype)
    batch = x.shape[0]
    names = list(iface.states)
    feeds = {n: np.zeros((batch, *s), dtype) for n, s in iface.states.items()}
    outputs = ["logits", *_next(names), *(f"spikes:{n}" for n in iface.spiking)]
    logits = np.zeros((batch, iface.output_size))
    active = dict.fromkeys(iface.spiking, 0)
    seen = dict.fromkeys(iface.spiking, 0)
    for t in range(x.shape[1]):
        feeds["u"] = x[:, t]
        values = run_session(session.session, outputs, feeds)
        logits = values[0]
        feeds.update(zip(names, values[1 : 1 + len(names)], strict=True))
        for name, spikes in zip(iface.spiking, values[1 + len(names) :], strict=True):
            active[name] += int(np.count_nonzero(spikes))
            seen[name] += spikes.size
        if progress is not None:
            progress((t + 1) / x.shape[1])
    logits = np.asarray(logits, dtype=np.float64)
    overflowed = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if overflowed.size:  # the float model's arithmetic overflowed: no answer to report
        raise UsageError(
            f"the {iface.dtype} model overflowed on {overflowed.size} input(s) (first: input "
            f"{overflowed[0]}, largest input magnitude {largest:.3g}): its logits are NaN or inf"
        )
    rates = {name: n / seen[name] for name, n in active.items()}
    return SimResult(logits=logits, readout=logits.copy(), steps=int(x.shape[1]), spike_rates=rates)


# ---- opening an artifact for simulate --backend onnx ----------------------------------


def open_onnx_artifact(path: str | os.PathLike[str]) -> tuple[Any, int, int]:
    """(runnable source for run_onnx, input width, output latency) of an artifact.

    A float export (manifest format snncompile-onnx-float) gives a FloatSession after its
    hashes are checked; any other artifact goes through read_artifact and gives the
    integer step graph (its model.onnx, or one built from its netlist).
    """
    from .runner import _resolve

    path = Path(path)
    if is_float_artifact(path):
        read_float_manifest(path)  # hash-checked before onnxruntime reads anything
        session = FloatSession.from_file(path / "model.onnx")
        return session, session.interface.input_size, 0
    session = _resolve(path)
    return session, session.interface.input_size, session.interface.output_latency


def is_float_artifact(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory whose manifest says it is a float export."""
    data = peek_json_object(Path(path) / "manifest.json")
    return data is not None and data.get("format") == FLOAT_FORMAT


def read_float_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a float export, after its version and every file's sha256 are checked."""
    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise CorruptInputError(f"{path / 'manifest.json'}: missing or not a regular file")
    try:
        data = parse_json((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptInputError(f"{path / 'manifest.json'}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FLOAT_FORMAT:
        raise CorruptInputError(f"{path / 'manifest.json'}: not a {FLOAT_FORMAT} manifest")
    _check_float_files(path, data)
    _check_float_fields(path / "manifest.json", data)
    _check_against_model(path, data)
    return data


def _check_against_model(path: Path, data: dict[str, Any]) -> None:
    """The manifest's copies of the interface (what inspect shows) are model.onnx's own,
    which its sha256 covers; the manifest itself is not hashed, and an edited input_size
    was shown by inspect while simulate ran the model's (audit41)."""
    import onnx

    model = path / "model.onnx"
    try:
        proto = onnx.load(str(model))
    except Exception as exc:  # protobuf's DecodeError and kin
        detail = type(exc).__name__
        raise CorruptInputError(f"{model}: not a usable ONNX step model ({detail})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        stored = parse_json(props[FLOAT_INTERFACE_KEY])
    except (KeyError, json.JSONDecodeError):
        raise CorruptInputError(f"{model}: holds no snncompile float interface") from None
    where = path / "manifest.json"
    if data.get("interface") != stored:
        raise CorruptInputError(f"{where}: its interface is not model.onnx's (edited after export)")
    # output_latency: a float step graph answers at the step its input arrives.
    expected = {
        "input_size": stored.get("input_size"),
        "output_size": stored.get("output_size"),
        "numeric": stored.get("dtype"),
        "output_latency": 0,
    }
    for key, value in expected.items():
        if data.get(key) != value or isinstance(data.get(key), bool):
            raise CorruptInputError(
                f"{where}: {key} is {data.get(key)!r}, model.onnx's {value!r} (edited after export)"
            )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_float_fields(where: Path, data: dict[str, Any]) -> None:
    """The entries inspect prints have the types export writes. The manifest is not
    hashed (it holds the hashes), so a hand edit is caught here, in one line, instead of
    as a TypeError while printing."""
    for key in ("interface", "check", "source", "tools"):
        if not isinstance(data.get(key, {}), dict):
            raise CorruptInputError(f"{where}: {key!r} is not an object")
    if data.get("target") != "onnx":
        raise CorruptInputError(f"{where}: target {data.get('target')!r} is not 'onnx'")
    for key in ("input_size", "output_size"):
        if not (isinstance(data.get(key), int) and not isinstance(data.get(key), bool)):
            raise CorruptInputError(f"{where}: {key!r} is not a whole number")
    if not isinstance(data.get("interface", {}).get("states", {}), dict):
        raise CorruptInputError(f"{where}: interface 'states' is not an object")
    check = data.get("check", {})
    for key in ("max_relative_error", "tolerance"):
        if key in check and not _number(check[key]):
            raise CorruptInputError(f"{where}: check {key!r} is not a number")


def _check_float_files(path: Path, manifest: dict[str, Any]) -> None:
    version = manifest.get("version")
    if not is_version(version, FLOAT_VERSION):
        raise CorruptInputError(
            f"{path / 'manifest.json'}: {FLOAT_FORMAT} version {manifest.get('version')!r} is "
            f"not supported (this snncompile reads version {FLOAT_VERSION})"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(FLOAT_FILES):
        raise CorruptInputError(
            f"{path / 'manifest.json'}: does not list exactly {', '.join(FLOAT_FILES)}"
        )
    for name in FLOAT_FILES:
        file = path / name
        if not file.is_file():
            raise CorruptInputError(f"{file}: missing (the manifest lists it)")
        if _sha256(file) != files[name]:
            raise CorruptInputError(
                f"{file}: sha256 does not match the manifest (changed after export)"
            )
