"""The NIR target: the network as a NIR 1.0.8 graph (model.nir) for other SNN frameworks,
plus snncompile's usual artifact files, so `simulate` and `inspect` work on it too.

    from snncompile.targets.nir import encode_graph, prepare
    nir_graph = encode_graph(compiled.traced)         # a nir.NIRGraph
    build = prepare(compiled)                          # what export --target nir writes

`snncompile export model.pt --target nir -o OUT` writes OUT/model.nir beside the netlist,
graph, report and manifest (sha256 of every file). What each op becomes, the metadata
keys, and what a consumer that ignores the metadata computes: docs/targets.md, "## nir".
Reading a snncompile-written file back: snncompile.frontend.nir_snncompile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile.arguments import check_real
from snncompile.errors import CorruptInputError, MissingDependencyError, UsageError
from snncompile.outputs import write_through_memory

from .codec import (
    DEFAULT_DT_S,
    FORMAT,
    PER_STEP_READ,
    SSM_FORMS,
    check_exportable,
    decode_graph,
    encode_graph,
    graph_difference,
    is_ours,
    nir_name,
    s4d_continuous,
    s4d_euler,
    supported_ops,
)
from .imported import imported_from_nir

if TYPE_CHECKING:
    from snncompile.compiler import Compiled
    from snncompile.ir.graph import Graph

TARGET = "nir"
FILES = ("model.nir",)
# Ops a consumer without our metadata computes differently (docs/targets.md says how).
LOSSY = {
    "s4d": "forward Euler instead of the ZOH/bilinear rule",
    "glu": "y = a (the gate is metadata only)",
    "pool": "mean: a running sum to divide by the number of steps",
    "lif": "spike test v > threshold instead of >=",
}


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise MissingDependencyError(
            "the nir target needs the `nir` package (pip install nir)"
        ) from None
    return nir


@dataclass
class Build:
    """The NIR graph of one compiled network, ready to be written."""

    nir_graph: Any
    graph: Graph
    dt_s: float
    ssm_form: str = "continuous"

    def files(self) -> dict[str, Callable[[Path], None]]:
        # HDF5 in memory first: on a failed disk write h5py crashed the process
        return {
            "model.nir": lambda path: write_through_memory(
                path, lambda stream: _nir().write(stream, self.nir_graph)
            )
        }

    def manifest(self) -> dict[str, Any]:
        # A last-step pool is exact without metadata (read at the last step); a mean is
        # not, except in a graph imported from NIR, where it is written per step.
        per_step = imported_from_nir(self.graph)
        kinds = sorted(
            {
                node.op.kind
                for node in self.graph
                if not (_last_step_pool(node.op) or (per_step and node.op.kind == "pool"))
            }
        )
        return {
            "nir": {
                "file": "model.nir",
                "nir_version": _nir().version,
                "dt_s": self.dt_s,
                "ssm_form": self.ssm_form,
                "nodes": len(self.nir_graph.nodes),
                "lossy_without_metadata": _lossy(kinds, self.ssm_form),
            }
        }


def _last_step_pool(op: Any) -> bool:
    from snncompile.ir.ops import Pool

    return isinstance(op, Pool) and op.mode == "last"


def _lossy(kinds: list[str], ssm_form: str) -> dict[str, str]:
    lossy = {k: LOSSY[k] for k in kinds if k in LOSSY}
    if ssm_form == "euler" and "s4d" in lossy:
        lossy["s4d"] = "a consumer discretizing exactly (ZOH) instead of Euler gets exp(dt A')"
    return lossy


@dataclass(frozen=True)
class Options:
    """What `export --target nir` takes: the SSM form (see SSM_FORMS) and the step
    duration the file states (None: the graph's dt_s, else DEFAULT_DT_S)."""

    ssm_form: str = "continuous"
    dt_s: float | None = None


def check_options(options: dict[str, Any]) -> Options:
    """`options["nir_ssm"]` (default "continuous") and `options["nir_dt"]` (seconds, > 0)."""
    unknown = sorted(set(options) - {"nir_ssm", "nir_dt"})
    if unknown:
        raise UsageError(f"the nir target does not take {', '.join(unknown)}")
    form = options.get("nir_ssm") or "continuous"
    if form not in SSM_FORMS:
        raise UsageError(f"unknown NIR SSM form {form!r}; forms: {', '.join(SSM_FORMS)}")
    dt = options.get("nir_dt")
    if dt is not None:
        dt = check_real(dt, "target_options['nir_dt']")
        if not (math.isfinite(dt) and dt > 0):
            raise UsageError(f"--nir-dt must be a positive number of seconds, got {dt:g}")
    return Options(ssm_form=form, dt_s=dt)


def _quantization_meta(compiled: Compiled) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-node and graph metadata with the quantization the compiled netlist chose."""
    net, report = compiled.netlist, compiled.report
    if net is None or report is None:
        return {}, {}
    per_node = {
        name: {"quantization": json.dumps(entry, default=float)}
        for name, entry in report.populations.items()
    }
    graph = {
        "snncompile_quantization": json.dumps(
            {
                "numeric": net.numeric,
                "formats": net.formats.to_dict(),
                "input_scale": net.input_scale,
                "output_scale": net.output_scale,
                "config": report.config,
                "synapses": report.synapses,
                "note": "scales of the integer netlist compiled from this graph; per node "
                "under metadata snncompile.quantization (population of the same name)",
            },
            default=float,
        )
    }
    return per_node, graph


# export asks before the passes, lowering and quantization: a GSU model would otherwise
# fail at lowering, with a message about the netlist targets.
check_traced = check_exportable


def prepare(compiled: Compiled, parsed: Options | None = None) -> Build:
    """Encode the graph before the passes (the trained ops: S4D with its continuous A, B
    and dt; thresholds unfolded) and check that it decodes to itself. Writes nothing.
    parsed: the SSM form and stated dt from check_options (default Options())."""
    _nir()
    options = parsed or Options()
    graph = compiled.traced if compiled.traced is not None else compiled.graph
    check_exportable(graph)
    per_node, graph_meta = _quantization_meta(compiled)
    dt = options.dt_s or graph.dt_s or DEFAULT_DT_S
    nir_graph = encode_graph(
        graph,
        dt_s=dt,
        node_extra=per_node,
        graph_extra=graph_meta,
        ssm_form=options.ssm_form,
    )
    if options.dt_s is not None:
        _check_normal_at(nir_graph, options.dt_s)
    difference = graph_difference(graph, decode_graph(nir_graph))
    if difference is not None:  # a bug in the codec, not in the user's model
        raise RuntimeError(f"NIR encoding does not round-trip: {difference}")
    return Build(nir_graph=nir_graph, graph=graph, dt_s=dt, ssm_form=options.ssm_form)


def _check_normal_at(nir_graph: Any, dt: float) -> None:
    """UsageError when a NIR parameter at the --nir-dt asked for is infinite or subnormal:
    time constants scale with dt and rates with 1/dt, and a consumer computing with a
    parameter that lost its precision would not compute our model (the metadata would
    still round-trip, which is why the codec's own check does not see it)."""
    from .plain import flatten

    for name, node in flatten(nir_graph)[0].items():
        for field, value in vars(node).items():
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                continue
            magnitude = np.abs(value[value != 0])
            if not np.all(np.isfinite(magnitude)) or np.any(magnitude < np.finfo(value.dtype).tiny):
                raise UsageError(
                    f"--nir-dt {dt:g}: the NIR parameter {name}.{field} leaves the normal "
                    f"range of {value.dtype} at this dt; choose a dt nearer {DEFAULT_DT_S:g} s"
                )


def _float_or_nan(value: Any) -> float:
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return float("nan")


def _op_of(node: Any) -> str:
    """The snncompile op a NIR node's metadata names, "?" if none."""
    meta = getattr(node, "metadata", None)
    ours = meta.get("snncompile") if isinstance(meta, dict) else None
    return str(ours.get("op", "?")) if isinstance(ours, dict) else "?"


def _per_step(node: Any) -> bool:
    """Whether a NIR node is a pool written as its graph's per-step Output."""
    meta = getattr(node, "metadata", None)
    ours = meta.get("snncompile") if isinstance(meta, dict) else None
    read = ours.get("read") if isinstance(ours, dict) else None
    read = read.decode() if isinstance(read, bytes) else read
    return read == PER_STEP_READ


def _read_artifact_graph(file: Path) -> tuple[Any, Graph | None]:
    """(the NIR graph in file, read with type checking; the Graph its snncompile metadata
    holds, None if it has none), checked as a re-import checks it (CorruptInputError)."""
    try:
        nir_graph = _nir().read(file, type_check=True)
    except Exception as exc:  # nir raises bare ValueError/KeyError/OSError on bad files
        raise CorruptInputError(f"{file}: not a readable NIR graph ({exc})") from None
    if not is_ours(nir_graph):
        return nir_graph, None
    try:
        return nir_graph, decode_graph(nir_graph)
    except CorruptInputError as exc:
        raise CorruptInputError(f"{file}: {exc}") from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise CorruptInputError(f"{file}: malformed snncompile metadata ({detail})") from None


def check_artifact(path: str | Path, netlist: Any) -> None:
    """model.nir (what another framework imports) holds the graph the artifact was
    compiled from: decoded and run through the passes it is graph.json exactly (what was
    lowered to the netlist that simulate and verify run). A graph swapped in and rehashed
    into the manifest would hand on something verify never checked."""
    from snncompile.ir.ops import blame_model_values
    from snncompile.ir.serialize import load_graph
    from snncompile.passes import run_passes

    file = Path(path) / "model.nir"
    _, traced = _read_artifact_graph(file)
    if traced is None:
        raise CorruptInputError(f"{file}: has no snncompile metadata (export writes it)")
    with np.errstate(all="ignore"), blame_model_values(file):  # edited values: exit 6
        after_passes = run_passes(traced)
    # Within rounding: the passes' exp differs across CPUs (codec.REDERIVED_RTOL).
    difference = graph_difference(load_graph(path), after_passes, rederived=True)
    if difference is not None:
        raise CorruptInputError(
            f"{file}: is not the graph of graph.json ({difference}; edited after export, "
            "or written by another snncompile version: export again)"
        )


def summarize_artifact(path: str | Path) -> dict[str, Any]:
    """Nodes, dt and lossy ops of the artifact's model.nir (read with type checking)."""
    from nir.serialization import read_version

    file = Path(path) / "model.nir"
    nir_graph, _ = _read_artifact_graph(file)
    meta = nir_graph.metadata
    kinds: dict[str, int] = {}
    for node in nir_graph.nodes.values():
        kind = type(node).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
    # A pool written per step (a graph imported from NIR) is exact without metadata.
    ops = [_op_of(node) for node in nir_graph.nodes.values() if not _per_step(node)]
    return {
        "file": "model.nir",
        "nir_version": read_version(file),
        "dt_s": _float_or_nan(meta.get("snncompile_dt_s")),
        "written_by_snncompile": is_ours(nir_graph),
        "nir_nodes": kinds,
        "ssm_form": str(meta.get("snncompile_ssm_form", "continuous")),
        "lossy_without_metadata": _lossy(sorted(set(ops)), str(meta.get("snncompile_ssm_form"))),
    }


__all__ = [
    "DEFAULT_DT_S",
    "FILES",
    "FORMAT",
    "LOSSY",
    "SSM_FORMS",
    "TARGET",
    "Build",
    "Options",
    "check_artifact",
    "check_exportable",
    "check_options",
    "check_traced",
    "decode_graph",
    "encode_graph",
    "graph_difference",
    "is_ours",
    "nir_name",
    "prepare",
    "s4d_continuous",
    "s4d_euler",
    "summarize_artifact",
    "supported_ops",
]
