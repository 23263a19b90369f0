"""Which target takes which graph op and which model family, read off the registries.

    matrix = support_matrix()   # what `snncompile targets` prints

Nothing here is a hand-kept table: the op kinds come from tracing a small model of every
family in snncompile.models.FAMILIES, the graph passes say what each traced op becomes,
the lowering registry says which ops become compartments, and the target registry says
what each target takes (targets.Target.takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snncompile.targets import TARGETS, Target


@dataclass(frozen=True)
class TracedOp:
    """One node of a traced family model: its kind as traced and as the passes leave it
    (None when a pass folded it away)."""

    family: str
    node: str
    kind: str
    label: str  # kind, with the module name for an opaque op
    after_passes: Any  # the Op the passes left in its place, or None


def graph_ops(family: str, graph: Any) -> list[TracedOp]:
    """The TracedOps of one traced graph (what the passes make of each node)."""
    from snncompile.passes import run_passes

    after = {node.name: node.op for node in run_passes(graph)}
    found = []
    for node in graph:
        label = node.op.kind
        if node.op.kind == "opaque":
            label = f"opaque ({node.op.module.rsplit('.', 1)[-1]})"
        elif node.op.kind == "activation":
            label = f"activation ({node.op.function})"
        found.append(TracedOp(family, node.name, node.op.kind, label, after.get(node.name)))
    return found


def verdicts(family: str, graph: Any) -> dict[str, dict[str, Any]]:
    """label -> {"ok": bool, "missing": [op labels], "nodes": [node names]} for every
    target column."""
    traced = graph_ops(family, graph)
    out = {}
    for label, target, float_model in columns():
        refused = [op for op in traced if not takes(target, op, float_model=float_model)]
        out[label] = {
            "ok": not refused,
            "missing": sorted({op.label for op in refused}),
            "nodes": [op.node for op in refused],
        }
    return out


def traced_family_ops() -> list[TracedOp]:
    """Trace a minimal model of every family (with prenorm, so BatchNorm appears)."""
    from snncompile.frontend.torch_trace import trace
    from snncompile.models.backbone import FAMILIES, ModelConfig, build_model

    found = []
    for family in FAMILIES:
        config = ModelConfig(
            family=family, d_input=1, d_output=2, d_model=4, d_state=4, n_layers=1, prenorm=True
        )
        found += graph_ops(family, trace(build_model(config).eval(), 1))
    return found


def _op_kinds(target: Target) -> frozenset[str]:
    return frozenset(target.load().supported_ops())  # type: ignore[union-attr]


def takes(target: Target, op: TracedOp, *, float_model: bool = False) -> bool:
    """Whether `target` (with --float when float_model) can express this traced op."""
    if target.takes == "float-model" or float_model:
        return True
    if target.takes == "ops":  # these targets write the traced graph, before the passes
        return op.kind in _op_kinds(target)
    if op.after_passes is None:
        return True  # folded into a neighbour by a pass: costs nothing in a netlist
    from snncompile.lower.lower import lowers

    return lowers(op.after_passes)


def columns() -> list[tuple[str, Target, bool]]:
    """(label, target, float_model): one per target, plus "<name> --float" for a target
    that takes the float option."""
    cols = []
    for name, target in TARGETS.items():
        cols.append((name, target, False))
        if "float" in target.options:
            cols.append((f"{name} --float", target, True))
    return cols


def support_matrix() -> dict[str, Any]:
    """{"targets": label -> summary, "ops": op label -> {label: bool},
    "families": family -> {label: {"ok": bool, "missing": [op labels]}}}."""
    traced = traced_family_ops()
    cols = columns()
    ops: dict[str, dict[str, bool]] = {}
    families: dict[str, dict[str, dict[str, Any]]] = {}
    for op in traced:
        row = ops.setdefault(op.label, {label: True for label, _, _ in cols})
        fam = families.setdefault(
            op.family, {label: {"ok": True, "missing": []} for label, _, _ in cols}
        )
        for label, target, float_model in cols:
            if takes(target, op, float_model=float_model):
                continue
            row[label] = False
            fam[label]["ok"] = False
            if op.label not in fam[label]["missing"]:
                fam[label]["missing"].append(op.label)
    summaries = {}
    for label, target, float_model in cols:
        summaries[label] = (
            "the float PyTorch model, one step at a time (any causal snncompile sequence model, "
            "checked against its own forward)"
            if float_model
            else target.summary
        )
    return {"targets": summaries, "ops": ops, "families": families}


def targets_taking(kind: str) -> list[str]:
    """The target labels (as in the matrix) that take a graph op of `kind`."""
    from snncompile.lower.lower import LOWERED_KINDS

    names = []
    for label, target, float_model in columns():
        if (
            float_model
            or target.takes == "float-model"
            or (target.takes == "netlist" and kind in LOWERED_KINDS)
            or (target.takes == "ops" and kind in _op_kinds(target))
        ):
            names.append(label)
    return names
