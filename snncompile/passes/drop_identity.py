"""drop_identity: remove Dropout and Identity nodes (y = x at inference); each consumer
reads the removed node's input instead."""

from __future__ import annotations

from snncompile.ir import ops
from snncompile.ir.graph import Graph
from snncompile.passes.base import rebuild, register

_IDENTITIES = (ops.Dropout, ops.Identity)


@register
class DropIdentity:
    name = "drop_identity"
    description = "remove Dropout and Identity nodes, rewiring their consumers"

    def match(self, graph: Graph) -> bool:
        return any(isinstance(node.op, _IDENTITIES) for node in graph)

    def run(self, graph: Graph) -> Graph:
        alias = {node.name: node.inputs[0] for node in graph if isinstance(node.op, _IDENTITIES)}
        return rebuild(graph, drop=alias, alias=alias)
