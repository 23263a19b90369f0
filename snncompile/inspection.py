"""inspect: what an artifact, a .nir graph or a checkpoint holds, as one dict per kind
(the CLI prints it, or its JSON). Reading is checked as for compiling or simulating: a
tampered artifact or an edited file is refused the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def inspect_path(path: str | Path) -> dict[str, Any]:
    """Describe an artifact directory, a .nir graph or a checkpoint (see the functions below)."""
    from snncompile.arguments import check_path
    from snncompile.frontend.nir_compile import is_nir_source

    check_path(path, "path", reading=True)
    if is_nir_source(path):
        return inspect_nir(path)
    if not Path(path).is_dir():
        return inspect_checkpoint(path)
    from snncompile.targets.onnx.float_model import is_float_artifact

    return inspect_float_artifact(path) if is_float_artifact(path) else inspect_artifact(path)


def inspect_nir(path: str | Path) -> dict[str, Any]:
    """The nodes of a .nir graph (flattened), the dt it states and whether snncompile
    wrote it. (Every node type nir 1.0.8 can read is one the importer takes.)"""
    import numpy as np

    from snncompile.arguments import check_path
    from snncompile.frontend.nir_graph import load_flat
    from snncompile.frontend.nir_import import resolve_dt
    from snncompile.frontend.nir_snncompile import read_snncompile_nir

    check_path(path, "path", reading=True)
    # Ours first, as export reads it: an edited file of ours is refused by its own check
    # (exit 6), where the generic one called a dropped edge unsupported (exit 4).
    ours = read_snncompile_nir(path)
    flat = load_flat(path)
    nodes = [
        {
            "name": name,
            "type": type(node).__name__,
            "parameters": int(
                sum(np.size(v) for v in vars(node).values() if isinstance(v, np.ndarray))
            ),
        }
        for name, node in flat.nodes.items()
    ]
    # Ours states the step its NIR time constants assume (the model may be discrete-time;
    # decoding checked it); another tool's dt is checked as export checks it.
    if ours is not None:
        dt = flat.metadata["snncompile_dt_s"]
    else:
        dt = resolve_dt(None, flat.metadata, str(path)) if "dt" in flat.metadata else None
    return {
        "kind": "nir",
        "path": str(path),
        "written_by_snncompile": ours is not None,
        "dt_s": None if dt is None else float(np.asarray(dt).item()),
        "input": flat.input,
        "output": flat.output,
        "edges": len(flat.edges),
        "nodes": nodes,
        "warnings": list(flat.warnings),
    }


def inspect_float_artifact(path: str | Path) -> dict[str, Any]:
    """The manifest of an `--target onnx --float` export (it has no netlist to describe)."""
    from snncompile.targets.onnx.float_model import read_float_manifest

    manifest = read_float_manifest(path)
    return {
        "kind": "float-artifact",
        "path": str(path),
        "manifest": {k: v for k, v in manifest.items() if k != "files"},
        "files": sorted(manifest["files"]),
    }


def inspect_artifact(path: str | Path) -> dict[str, Any]:
    """Populations, synapses, counts and manifest of an artifact (does not import torch)."""
    from snncompile.artifact import POPULATION_NUMBERS, read_artifact
    from snncompile.targets import TARGETS

    art = read_artifact(path)
    net, report, manifest = art.netlist, art.report, art.manifest
    pop_report = report.get("populations", {})
    latency = net.latency()
    populations = []
    for pop in net.populations:
        noted = pop_report.get(pop.name, {})
        row = {"name": pop.name, "kind": pop.kind, "size": pop.size, "latency": latency[pop.name]}
        populations.append({**row, **{k: noted[k] for k in POPULATION_NUMBERS if k in noted}})
    synapses = [
        {
            "name": syn.name,
            "src": syn.src,
            "dst": syn.dst,
            "shape": list(syn.shape),
            "weight_exp": syn.weight_exp,
            "delay": syn.delay,
        }
        for syn in net.synapses
    ]
    info: dict[str, Any] = {
        "kind": "artifact",
        "path": str(art.path),
        "manifest": {k: v for k, v in manifest.items() if k != "files"},
        "files": sorted(manifest.get("files", {})),
        "numeric": net.numeric,
        "formats": net.formats.to_dict(),
        "output_latency": net.output_latency,
        "ticks_per_step": net.ticks_per_step,
        "counts": net.counts(),
        "populations": populations,
        "synapses": synapses,
    }
    spec = TARGETS.get(manifest.get("target"))  # type: ignore[arg-type]
    if spec is not None and spec.module is not None:
        info[spec.name] = spec.load().summarize_artifact(art.path)  # hash-checked already
    return info


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """Layers (traced graph nodes), family, task, accuracy, calibration, and whether each
    target can take the model (and why not)."""
    from snncompile.checkpoint import load_checkpoint, recorded_accuracy, recorded_finetune
    from snncompile.errors import UnsupportedError
    from snncompile.frontend.torch_trace import trace
    from snncompile.ir.ops import blame_model_values
    from snncompile.support import columns

    ckpt = load_checkpoint(path)
    layers: list[dict[str, Any]] = []
    try:
        graph = trace(ckpt.model, ckpt.config.d_input, source=str(path))
    except UnsupportedError as exc:
        targets = {label: {"ok": False, "why": str(exc)} for label, _, _ in columns()}
    else:
        layers = graph.summary()
        with blame_model_values(path):  # the passes and lowering run on the file's values
            targets = _target_verdicts(ckpt, graph)
    calibration = None if ckpt.calibration is None else list(ckpt.calibration.shape)
    return {
        "kind": "checkpoint",
        "path": str(path),
        "family": ckpt.config.family,
        "task": ckpt.meta.get("task"),
        "accuracy": recorded_accuracy(ckpt.meta),
        "finetune": recorded_finetune(ckpt.meta),
        "parameters": int(sum(p.numel() for p in ckpt.model.parameters())),
        "calibration_shape": calibration,
        "config": ckpt.config.to_dict(),
        "layers": layers,
        "targets": targets,
    }


def _target_verdicts(ckpt: Any, graph: Any) -> dict[str, dict[str, Any]]:
    """Whether each target (support.columns) takes the traced model, and why (not)."""
    from snncompile.lower.lower import lower
    from snncompile.passes import run_passes
    from snncompile.support import columns, verdicts

    compartments = None
    targets: dict[str, dict[str, Any]] = {}
    found = verdicts(ckpt.config.family, graph)
    takers = [label for label, verdict in found.items() if verdict["ok"]]
    for label, verdict in found.items():
        target = next(t for name, t, _ in columns() if name == label)
        if not verdict["ok"]:
            why = "no " + ("NIR encoding" if target.takes == "ops" else "compartment")
            why += f" for {', '.join(verdict['nodes'])} ({', '.join(verdict['missing'])})"
            why += "; " + (f"it goes to {', '.join(takers)}" if takers else "no target takes it")
            targets[label] = {"ok": False, "why": why}
            continue
        if label.endswith("--float"):
            why = "the float model, one step at a time"
        elif target.takes == "ops":
            why = "every op has a NIR encoding"
        else:
            if compartments is None:
                counts = lower(run_passes(graph)).counts()
                compartments = sum(n for kind, n in counts.items() if kind != "synapses")
            why = f"every layer lowers to compartments ({compartments} compartments)"
            if label == "loihi2":
                why += "; the design-rule check runs at export"
            if ckpt.calibration is None:
                why += "; no calibration data embedded: export needs --calib FILE"
        targets[label] = {"ok": True, "why": why}
    return targets
