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


def traced_family_ops() -> list[TracedOp]:
    """Trace a minimal model of every family (with prenorm, so BatchNorm appears)."""
    from snncompile.frontend.torch_trace import trace
    from snncompile.models.backbone import FAMILIES, ModelConfig, build_model
    from snncompile.passes import run_passes

    found = []
    for family in FAMILIES:
        config = ModelConfig(
            family=family, d_input=1, d_output=2, d_model=4, d_state=4, n_layers=1, prenorm=True
        )
        graph = trace(build_model(config).eval(), 1)
        after = {node.name: node.op for node in run_passes(graph)}
        for node in graph:
            label = node.op.kind
            if node.op.kind == "opaque":
                label = f"opaque ({node.op.module.rsplit('.', 1)[-1]})"
            elif node.op.kind == "activation":
                label = f"activation ({node.op.function})"
            found.append(TracedOp(family, node.name, node.op.kind, label, after.get(node.name)))
    return found


def takes(target: Target, op: TracedOp) -> bool:
    """Whether `target` can express this traced op."""
    if target.takes == "float-model":
        return True
    if op.after_passes is None:
        return True  # folded into a neighbour by a pass: costs nothing anywhere
    if target.takes == "ops":
        return op.after_passes.kind in target.op_kinds
    from snncompile.lower.lower import lowers

    return lowers(op.after_passes)


def support_matrix() -> dict[str, Any]:
    """{"targets": name -> summary, "ops": label -> {target: bool},
    "families": family -> {target: {"ok": bool, "missing": [op labels]}}}."""
    traced = traced_family_ops()
    ops: dict[str, dict[str, bool]] = {}
    families: dict[str, dict[str, dict[str, Any]]] = {}
    for op in traced:
        row = ops.setdefault(op.label, dict.fromkeys(TARGETS, True))
        fam = families.setdefault(
            op.family, {name: {"ok": True, "missing": []} for name in TARGETS}
        )
        for name, target in TARGETS.items():
            if takes(target, op):
                continue
            row[name] = False
            fam[name]["ok"] = False
            if op.label not in fam[name]["missing"]:
                fam[name]["missing"].append(op.label)
    return {
        "targets": {name: target.summary for name, target in TARGETS.items()},
        "ops": ops,
        "families": families,
    }


def targets_taking(kind: str) -> list[str]:
    """The registered targets that take a graph op of `kind` as the passes leave it."""
    from snncompile.lower.lower import LOWERED_KINDS

    names = []
    for name, target in TARGETS.items():
        if (
            target.takes == "float-model"
            or (target.takes == "netlist" and kind in LOWERED_KINDS)
            or (target.takes == "ops" and kind in target.op_kinds)
        ):
            names.append(name)
    return names
