"""fold_thresholds: give spiking neurons threshold 1 by scaling their input.

A ResetRefractory neuron (m = beta v + x, s = [m > theta], v -= (theta + rho) s) fed by
an SSM, S4D or Linear that feeds nothing else: divide that producer's output per channel
by theta (SSM/S4D: c and d; Linear: weight rows and bias), and set theta = 1,
rho = rho / theta. The membrane is then m / theta at every step, so the spikes are the
same (float rounding aside). A LIF (m = tau u + x / threshold, s = [m >= 1]) likewise:
the producer divides by the threshold, and the threshold becomes 1.

With threshold 1 a neuron's weights, threshold and refractory drop share one scale,
which is what quantization wants (DESIGN.md, numerics contract). A neuron whose
producer has other consumers (or is another kind of op) is left as it is.
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import ops
from snncompile.ir.graph import Graph
from snncompile.passes.base import rebuild, register, sole_consumer


def _threshold(op: ops.Op) -> np.ndarray | None:
    if isinstance(op, ops.ResetRefractory):
        return op.theta
    if isinstance(op, ops.LIF):
        return op.threshold
    return None


def _scaled_producer(op: ops.Op, threshold: np.ndarray) -> ops.Op | None:
    if isinstance(op, ops.SSM):
        return ops.SSM(
            a_bar=op.a_bar,
            b_bar=op.b_bar,
            c=op.c / threshold[:, None],
            d=op.d / threshold,
            u_shift=op.u_shift,
        )
    if isinstance(op, ops.S4D):
        return ops.S4D(
            log_dt=op.log_dt,
            a=op.a,
            b=op.b,
            c=op.c / threshold[:, None],
            d=op.d / threshold,
            discretization=op.discretization,
        )
    if isinstance(op, ops.Linear):
        return ops.Linear(weight=op.weight / threshold[:, None], bias=op.bias / threshold)
    return None


def _unit_neuron(op: ops.Op) -> ops.Op:
    if isinstance(op, ops.ResetRefractory):
        return ops.ResetRefractory(
            beta=op.beta, theta=np.ones_like(op.theta), rho=op.rho / op.theta
        )
    if isinstance(op, ops.LIF):
        return ops.LIF(tau=op.tau, threshold=np.ones_like(op.threshold))
    raise TypeError(f"not a neuron with a threshold: {op.kind}")


def _folds(graph: Graph) -> dict[str, ops.Op]:
    """New ops by node name, for every neuron that can fold and for its producer."""
    new_ops: dict[str, ops.Op] = {}
    for node in graph:
        threshold = _threshold(node.op)
        if threshold is None or np.all(threshold == 1.0):
            continue
        producer = graph.node(node.inputs[0])
        if sole_consumer(graph, producer.name) is not node:
            continue
        scaled = _scaled_producer(producer.op, threshold)
        if scaled is not None:
            new_ops[producer.name] = scaled
            new_ops[node.name] = _unit_neuron(node.op)
    return new_ops


@register
class FoldThresholds:
    name = "fold_thresholds"
    description = "scale SSM/Linear outputs so spiking neurons have threshold 1"

    def match(self, graph: Graph) -> bool:
        return bool(_folds(graph))

    def run(self, graph: Graph) -> Graph:
        return rebuild(graph, ops=_folds(graph))
