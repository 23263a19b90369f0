"""fold_batchnorm: an eval-mode BatchNorm is the per-channel affine y = scale x + shift
(scale = weight / sqrt(var + eps), shift = bias - mean scale). Fold it away:

1. into the previous Linear, if this affine is that Linear's only consumer:
       W' = scale W (rows),  b' = scale b + shift;
2. else into the next node, if that node is the affine's only consumer and is
   - a Linear:  W' = W scale (columns),  b' = W shift + b;
   - an SSM:    b_bar' = scale b_bar,  d' = scale d,  u_shift' = (u_shift + shift) / scale
                (needs every scale != 0): scale (x + (u_shift + shift)/scale) = the old u;
   - an S4D:    discretized on the spot (the shift needs SSM.u_shift), then as an SSM;
3. else it stays, as a ChannelAffine.

Default pass order runs discretize_ssm first, so case 2 meets SSMs; the S4D case makes
this pass correct on its own too. Folds repeat until none applies (BN after BN folds).
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import ops
from snncompile.ir.discretize import discretize_s4d
from snncompile.ir.graph import Graph, Node
from snncompile.passes.base import rebuild, register, sole_consumer


def _into_previous(graph: Graph, node: Node, affine: ops.ChannelAffine) -> Graph | None:
    producer = graph.node(node.inputs[0])
    if not isinstance(producer.op, ops.Linear) or sole_consumer(graph, producer.name) is None:
        return None
    scale, shift = affine.scale, affine.shift
    linear = ops.Linear(
        weight=producer.op.weight * scale[:, None], bias=producer.op.bias * scale + shift
    )
    alias = {node.name: producer.name}
    return rebuild(graph, ops={producer.name: linear}, drop=alias, alias=alias)


def _into_next(graph: Graph, node: Node, affine: ops.ChannelAffine) -> Graph | None:
    consumer = sole_consumer(graph, node.name)
    if consumer is None:
        return None
    scale, shift = affine.scale, affine.shift
    op = consumer.op
    folded: ops.Op
    if isinstance(op, ops.Linear):
        folded = ops.Linear(weight=op.weight * scale[None, :], bias=op.weight @ shift + op.bias)
    elif isinstance(op, (ops.SSM, ops.S4D)):
        if np.any(scale == 0):
            return None  # the shift cannot move behind a zero scale
        ssm = discretize_s4d(op) if isinstance(op, ops.S4D) else op
        folded = ops.SSM(
            a_bar=ssm.a_bar,
            b_bar=ssm.b_bar * scale[:, None],
            c=ssm.c,
            d=ssm.d * scale,
            u_shift=(ssm.u_shift + shift) / scale,
        )
    else:
        return None
    alias = {node.name: node.inputs[0]}
    return rebuild(graph, ops={consumer.name: folded}, drop=alias, alias=alias)


def _fold_one(graph: Graph) -> Graph | None:
    for node in graph:
        if isinstance(node.op, ops.ChannelAffine):
            folded = _into_previous(graph, node, node.op) or _into_next(graph, node, node.op)
            if folded is not None:
                return folded
    return None


def _as_affine(graph: Graph) -> Graph:
    new_ops: dict[str, ops.Op] = {
        node.name: node.op.as_affine() for node in graph if isinstance(node.op, ops.BatchNorm)
    }
    return rebuild(graph, ops=new_ops) if new_ops else graph


@register
class FoldBatchNorm:
    name = "fold_batchnorm"
    description = "fold BatchNorm into the Linear before it or the Linear/SSM after it"

    def match(self, graph: Graph) -> bool:
        if any(isinstance(node.op, ops.BatchNorm) for node in graph):
            return True
        return _fold_one(graph) is not None

    def run(self, graph: Graph) -> Graph:
        graph = _as_affine(graph)
        while (folded := _fold_one(graph)) is not None:
            graph = folded
        return graph
