"""The compile pipeline as named steps: trace -> passes -> lower -> quantize.

    compile_model("model.pt")                        # a checkpoint (calibration embedded)
    compile_model(model, input_size=1, calibration=x)
    compile_model("model.pt", stop_after="lower")    # stop after a named step or pass

Each step is a pure function of the previous one's output; `Compiled` keeps every
intermediate so inspect, verify and the targets can use the stage they need.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile.arguments import check_callback, check_integer, check_path, check_real
from snncompile.errors import ArgumentTypeError, CorruptInputError, UsageError
from snncompile.ir.ops import blame_model_values
from snncompile.ir.serialize import (
    HDF5_SIGNATURE,
    UNREADABLE_MEMBER,
    check_npy_layouts,
    unpacked_bytes,
)

if TYPE_CHECKING:
    from torch import nn

    from snncompile.ir.graph import Graph
    from snncompile.ir.netlist import Netlist
    from snncompile.quantize.quantize import QuantConfig, QuantReport

STEPS = ("trace", "passes", "lower", "quantize")


@dataclass
class Compiled:
    """Every stage the pipeline reached (None for those after `stop_after`)."""

    model: nn.Module | None  # None for a NIR graph
    graph: Graph
    float_netlist: Netlist | None = None
    netlist: Netlist | None = None
    report: QuantReport | None = None
    calibration: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stopped_after: str = "quantize"
    traced: Graph | None = None  # the graph before the passes (the nir target exports it)


def step_names() -> list[str]:
    """The names --stop-after accepts: the steps, and every graph pass by name."""
    from snncompile.passes import DEFAULT_ORDER

    return ["trace", *DEFAULT_ORDER, "passes", "lower", "quantize"]


def load_model(
    source: str | os.PathLike[str] | nn.Module,
    *,
    entry: str | None = None,
    input_size: int | None = None,
) -> tuple[nn.Module, int, np.ndarray | None, dict[str, Any]]:
    """(model in eval mode, input width, embedded calibration or None, checkpoint meta).
    input_size: the width of an in-memory or --entry model's input (default: its
    config.d_input, else the in_features of its first nn.Linear); a checkpoint says its own."""
    from torch import nn

    if isinstance(source, nn.Module):
        from snncompile.frontend.torch_trace import copy_model

        family = getattr(getattr(source, "config", None), "family", None)
        meta = {"family": family} if isinstance(family, str) else {}  # the manifest's source
        model = copy_model(source).eval()  # the caller's model keeps its training mode
        width = input_size if input_size is not None else _input_width(model)  # traced: checked
        return model, width, None, meta
    path = Path(source)
    if entry is not None:
        from snncompile.frontend.user_model import load_user_model

        model = load_user_model(entry, path)
        width = input_size if input_size is not None else _input_width(model)
        return model.eval(), width, None, {"entry": entry, "weights": str(path)}
    if input_size is not None:
        raise UsageError(
            "input_size applies to an in-memory or --entry model; a checkpoint has its own"
        )
    from snncompile.checkpoint import load_checkpoint, recorded_finetune

    ckpt = load_checkpoint(path)
    calibration = None if ckpt.calibration is None else ckpt.calibration.double().numpy()
    # Only what the pipeline reads: the rest of a checkpoint's meta is the user's (a
    # "warnings" or "nir_file" key there must not become the compiler's own).
    meta = {key: ckpt.meta[key] for key in ("task", "task_args") if key in ckpt.meta}
    meta.update(family=ckpt.config.family, checkpoint=str(path))
    finetuned = recorded_finetune(ckpt.meta)
    if finetuned is not None:
        meta["finetune_weight_bits"] = finetuned["weight_bits"]
    return ckpt.model.eval(), ckpt.config.d_input, calibration, meta


def _finetune_mismatch(meta: dict[str, Any], weight_bits: int) -> str | None:
    """A warning when a fine-tuned checkpoint is compiled at other weight widths than it
    was fitted to: coarser rounds its weights again, finer deploys it wider than needed."""
    fitted = meta.get("finetune_weight_bits")
    if fitted is None or fitted == weight_bits:
        return None
    effect = (
        "its weights are rounded again, losing what fine-tuning fitted"
        if weight_bits < fitted
        else "its weights are exact but wider than the grid they sit on"
    )
    return (
        f"the model was fine-tuned for --weight-bits {fitted} and is compiled at "
        f"{weight_bits}: {effect} (--weight-bits {fitted} compiles it as fitted)"
    )


def _input_width(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "d_input"):
        return int(config.d_input)
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    raise UsageError("cannot tell the model's input width; pass input_size to compile_model")


# Input files are read whole; past this (unpacked) size a file is refused before reading
# rather than exhausting memory (a small .npz of zeros can unpack to gigabytes).
MAX_ARRAY_FILE_BYTES = 1 << 31


def read_array_file(path: str | os.PathLike[str], *, what: str) -> dict[str, np.ndarray]:
    """Arrays from .npy (key "x") or .npz, never unpickling; CorruptInputError otherwise,
    UsageError for a file that unpacks to more than MAX_ARRAY_FILE_BYTES."""
    path = Path(path)
    if not path.exists():
        raise CorruptInputError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise CorruptInputError(f"{what} file {path} is not a regular file")
    try:
        unpacked = unpacked_bytes(path)
        if unpacked > MAX_ARRAY_FILE_BYTES:
            raise UsageError(
                f"{what} file {path} holds {unpacked:,} bytes of arrays, more than the "
                f"limit of {MAX_ARRAY_FILE_BYTES:,}: split the inputs into files"
            )
        with path.open("rb") as file:
            head = file.read(6)
        is_zip = zipfile.is_zipfile(path)
        # numpy takes any other file for a pickle and says so ("pickled data"), text too.
        if head.startswith(b"PK") and not is_zip:  # a cut-off .npz
            raise CorruptInputError(f"{what} file {path} is a truncated or damaged .npz")
        if head != b"\x93NUMPY" and not is_zip:
            raise CorruptInputError(
                f"{what} file {path} is neither .npy nor .npz (it starts with {head!r})"
            )
        check_npy_layouts(path, f"{what} file {path}", is_zip)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded:  # members load lazily: their errors surface here
            arrays = {key: loaded[key] for key in loaded.files}
        for key, value in arrays.items():  # numpy hands a member that is no .npy as bytes
            if not isinstance(value, np.ndarray):
                raise CorruptInputError(f"{what} file {path}: member {key!r} is not a .npy array")
        return arrays
    except ValueError as exc:
        raise CorruptInputError(f"{what} file {path} is not a plain numpy array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, *UNREADABLE_MEMBER) as exc:
        reason = str(exc) or type(exc).__name__
        raise CorruptInputError(f"{what} file {path} is unreadable ({reason})") from None
    # A MemoryError passes: every header was checked against its bytes, so it is the
    # machine running out (the CLI's exit 1), not a damaged file.


def read_sequences(
    path: str | os.PathLike[str], *, what: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(x, every array of the file) from the .npy/.npz inputs of --input, --data and
    --calib alike: x is a .npy's array, an .npz's array named x or else its only array
    besides labels y. Not yet validated (check_inputs)."""
    arrays = read_array_file(path, what=what)
    others = [name for name in arrays if name != "y"]
    if "x" not in arrays and len(others) != 1:  # readable, but which array? usage, not corrupt
        raise UsageError(
            f"{what} {path}: an .npz needs an array named x, or a single array (and "
            "optionally labels y)"
        )
    return arrays["x"] if "x" in arrays else arrays[others[0]], arrays


def check_inputs(x: np.ndarray, width: int, *, what: str, steps: int | None = None) -> np.ndarray:
    """Validate model inputs (B, L, width) of a real dtype, or bool spikes (0 and 1); one
    sequence (L, width) is a batch of one. UsageError names the problem (and the shape
    as given, not as a batch of one). `steps` keeps the first steps (simulate --steps),
    cut before the float64 copy: a 1 GB bool file is 8 GB as float64."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "bfiu":
        kind = getattr(x, "dtype", type(x))
        raise UsageError(f"{what} must be a real numeric array, got {kind}")
    given = x.shape
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != width or x.shape[0] == 0 or x.shape[1] == 0:
        raise UsageError(
            f"{what} must have shape (batch, steps, {width}) or (steps, {width}), got {given}"
        )
    if steps is not None:
        if not 0 < steps <= x.shape[1]:
            raise UsageError(f"--steps must be in [1, {x.shape[1]}], got {steps}")
        x = x[:, :steps]
    from snncompile.reference.simulator import finite_float64

    return finite_float64(x, what)


def calibration_inputs(
    embedded: np.ndarray | None, given: Any, width: int, *, purpose: str
) -> np.ndarray:
    """The inputs to calibrate or check on: `given` (--calib) if any, else the embedded
    batch, validated as (batch, steps, width); UsageError saying `purpose` if neither."""
    x = embedded if given is None else given
    if x is None:
        raise UsageError(
            f"{purpose} calibration inputs and the model embeds none; "
            "pass --calib FILE, or calibration= from Python (inputs of shape "
            "(batch, steps, inputs) or (steps, inputs))"
        )
    # Named as the CLI's option and the API's argument when given, so either user sees
    # which input is wrong (an embedded batch that does not fit is the checkpoint's).
    what = "the embedded calibration batch" if given is None else "calibration data (--calib)"
    return check_inputs(as_array(x, what), width, what=what)


def as_array(value: Any, what: str) -> np.ndarray:
    """`value` (a numpy array, a torch tensor, nested lists) as a numpy array; UsageError
    naming `what` when it cannot be one (a ragged list was numpy's ValueError, a tensor
    on the meta device torch's TypeError, exit 1)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if type(value).__module__.startswith("torch"):  # torch is imported if it is one
            import torch

            if isinstance(value, torch.Tensor):
                if value.device.type == "meta":
                    raise UsageError(f"{what} is a meta-device tensor, which holds no values")
                value = value.detach().cpu()
                if value.layout != torch.strided:  # sparse
                    value = value.to_dense()
                if value.dtype == torch.bfloat16:  # numpy has no bfloat16
                    value = value.float()
                return value.numpy()
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UsageError(f"{what} cannot be made an array of numbers ({reason})") from None


def check_source(source: object) -> None:
    """ArgumentTypeError unless `source` is a path or an nn.Module (a source of 42 failed
    in pathlib); UsageError for an empty path (Path("") is ".", "not a file")."""
    _refuse_nir_graph_object(source)
    if isinstance(source, (str, os.PathLike)):
        check_path(source, "source", reading=True)
        return
    from torch import nn  # only for a source that is not a path: a .nir needs no torch

    if not isinstance(source, nn.Module):
        raise ArgumentTypeError(
            f"source must be a path or an nn.Module, got {type(source).__name__}"
        )


def _check_source_and_config(source: object, config: object) -> None:
    """ArgumentTypeError for arguments of the wrong kind (they failed deep inside: a dict
    config as "'dict' object has no attribute 'formats'", a source of 42 in pathlib)."""
    from snncompile.quantize.quantize import QuantConfig

    check_source(source)
    if config is not None and not isinstance(config, QuantConfig):
        raise ArgumentTypeError(f"config must be a QuantConfig, got {type(config).__name__}")


def _refuse_nir_graph_object(source: object) -> None:
    """A NIR graph reaches the compiler as a .nir path: an in-memory nir.NIRGraph (what
    snnTorch's and Norse's exports return) was refused as "--dt applies to .nir sources
    only", or without dt as a TypeError."""
    if type(source).__name__ == "NIRGraph" and type(source).__module__.startswith("nir"):
        raise UsageError(
            "an in-memory NIR graph: write it with nir.write('net.nir', graph) and compile "
            "the path (snncompile.frontend.nir_import.import_nir takes the graph itself)"
        )


def _refuse_nir_not_named_so(source: object) -> None:
    """With --dt given, an HDF5 file of another name is a NIR graph the name hid (without
    it, the checkpoint reader names the file's kind, exit 6)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        with open(source, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                raise UsageError(
                    f"{source} is an HDF5 file: a NIR graph is read as one when its name "
                    "ends in .nir"
                )


def _source_name(source: object) -> str | None:
    """The file a model came from (named in errors about its values), None in memory."""
    return str(source) if isinstance(source, (str, os.PathLike)) else None


# the calibration origin recorded when the caller passed inputs (CLI or Python)
CALIBRATION_GIVEN = "given (--calib, or calibration= from Python)"


def compile_model(
    source: str | os.PathLike[str] | nn.Module,
    *,
    entry: str | None = None,
    input_size: int | None = None,
    calibration: np.ndarray | None = None,
    config: QuantConfig | None = None,
    stop_after: str | None = None,
    on_step: Callable[[str], None] | None = None,
    dt: float | None = None,
    reset: str = "zero",
    check_traced: Callable[[Graph], None] | None = None,
) -> Compiled:
    """Run the pipeline on a checkpoint path, a user module (entry + state dict), a model,
    or a NIR graph (a .nir path: step "trace" is the import at `dt` seconds with `reset`;
    calibration defaults to Bernoulli spikes, see snncompile.frontend.nir_compile).

    input_size: the input width of an in-memory or --entry model (see load_model);
    on_step(name) is called as each step starts (the CLI shows it as progress);
    check_traced(graph) right after tracing (a target refusing ops before the slow steps).
    """
    from snncompile.lower.lower import lower
    from snncompile.passes import DEFAULT_ORDER, run_passes
    from snncompile.quantize.quantize import QuantConfig, quantize

    _check_source_and_config(source, config)
    if input_size is not None:
        check_integer(input_size, "input_size")  # its value is checked by trace
    if dt is not None:
        dt = check_real(dt, "dt")  # its value is checked by the NIR import
    check_callback(on_step, "on_step")
    check_callback(check_traced, "check_traced")
    names = step_names()
    if stop_after is not None and stop_after not in names:
        raise UsageError(f"unknown step {stop_after!r}; steps: {', '.join(names)}")
    step = on_step or (lambda name: None)
    step("load")
    from snncompile.frontend.nir_compile import is_nir_source, load_nir_source
    from snncompile.frontend.nir_graph import naming_file

    nir_file = source if is_nir_source(source) else None  # named in each refusal below
    if nir_file is not None:
        if input_size is not None:
            raise UsageError("input_size applies to PyTorch models; a .nir graph has its own")
        if entry is not None:
            raise UsageError("--entry applies to PyTorch models, not to a .nir graph")
        step("trace")
        model = None
        with blame_model_values(
            _source_name(source)
        ):  # e.g. Scale nodes multiplying past float64's range
            graph, width, embedded, meta = load_nir_source(source, dt=dt, reset=reset)
    else:
        if dt is not None or reset != "zero":
            _refuse_nir_not_named_so(source)
            raise UsageError("--dt and --reset apply to .nir sources only")
        from snncompile.frontend.torch_trace import trace

        model, width, embedded, meta = load_model(source, entry=entry, input_size=input_size)
        step("trace")
        graph = trace(model, width, source=_source_name(source))
    if check_traced is not None:
        with naming_file(nir_file):
            check_traced(graph)
    done = Compiled(model=model, graph=graph, meta=meta, stopped_after="trace", traced=graph)
    if stop_after == "trace":
        return done
    pass_stop = stop_after if stop_after in DEFAULT_ORDER else None
    step("passes")
    with naming_file(nir_file), blame_model_values(_source_name(source)):
        done.graph = run_passes(graph, stop_after=pass_stop)
    done.stopped_after = pass_stop or "passes"
    if stop_after in (*DEFAULT_ORDER, "passes"):
        return done
    cfg = config or QuantConfig()
    step("lower")
    with naming_file(nir_file), blame_model_values(_source_name(source)):
        done.float_netlist = lower(done.graph, formats=cfg.formats())
    done.stopped_after = "lower"
    if stop_after == "lower":
        return done
    calib = calibration_inputs(embedded, calibration, width, purpose="quantization needs")
    done.calibration = calib
    if calibration is not None:
        done.meta["calibration_origin"] = CALIBRATION_GIVEN
    else:  # a .nir source's default batch says what it is; a checkpoint embeds its own
        done.meta["calibration_origin"] = meta.get("calibration_default", "embedded")
    mismatch = _finetune_mismatch(meta, cfg.weight_bits)  # of weights about to be rounded
    if mismatch is not None:
        done.meta.setdefault("warnings", []).append(mismatch)
    step("quantize")
    done.netlist, done.report = quantize(done.float_netlist, calib, cfg)
    lost = _inputs_lost(done.report.synapses, done.netlist.input.size, cfg.weight_bits)
    if lost:
        done.meta.setdefault("warnings", []).extend(lost)
    done.stopped_after = "quantize"
    return done


def _inputs_lost(synapses: dict[str, dict[str, Any]], width: int, weight_bits: int) -> list[str]:
    """Warnings for input channels whose every weight in a synapse rounded to 0 (an input
    on a scale far below the others': its information is gone, verify's rung 2 would
    show it), one per synapse."""
    out = []
    for name, note in synapses.items():
        lost = note.get("inputs_rounded_to_zero")
        if not lost:
            continue
        shown = ", ".join(map(str, lost[:8])) + (", ..." if len(lost) > 8 else "")
        out.append(
            f"input channel{'s' if len(lost) > 1 else ''} {shown} (of {width}) "
            f"{'reach' if len(lost) > 1 else 'reaches'} nothing through synapse {name!r}: "
            f"every weight from {'them' if len(lost) > 1 else 'it'} "
            f"rounds to 0 on the grid the synapse's largest weights set at --weight-bits "
            f"{weight_bits} (inputs on scales far apart: scale them alike, or more "
            "--weight-bits)"
        )
    return out
