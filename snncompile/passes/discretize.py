"""discretize_ssm: every continuous-time S4D node becomes the discrete SSM it runs as
(ZOH or bilinear, as S4D.discretize computes it, in complex128; u_shift = 0)."""

from __future__ import annotations

from snncompile.ir import ops
from snncompile.ir.discretize import discretize_s4d
from snncompile.ir.graph import Graph
from snncompile.passes.base import rebuild, register


@register
class DiscretizeSSM:
    name = "discretize_ssm"
    description = "S4D (continuous A, B, dt) -> SSM (a_bar, b_bar), ZOH or bilinear"

    def match(self, graph: Graph) -> bool:
        return any(isinstance(node.op, ops.S4D) for node in graph)

    def run(self, graph: Graph) -> Graph:
        new_ops: dict[str, ops.Op] = {
            node.name: discretize_s4d(node.op) for node in graph if isinstance(node.op, ops.S4D)
        }
        return rebuild(graph, ops=new_ops)
