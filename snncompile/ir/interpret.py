"""A plain float64 numpy interpreter of the float IR, for tests: each op's docstring math,
written out step by step. It is the yardstick the passes are checked against (a pass
must not change what a graph computes) and the bridge to the PyTorch model.

Values are (B, L, H) sequences; `Pool` turns one into a pooled (B, H) vector, which the
interpreter carries as a length-1 sequence so later ops need no special case.
"""

from __future__ import annotations

import math

import numpy as np

from snncompile.errors import UnsupportedError, UsageError
from snncompile.ir import ops
from snncompile.ir.discretize import discretize_s4d
from snncompile.ir.graph import Graph, Node


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Two branches so exp never overflows: 1/(1+e^-z) for z >= 0, e^z/(1+e^z) below.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


_ERF = np.frompyfunc(math.erf, 1, 1)


def _activation(function: str, x: np.ndarray) -> np.ndarray:
    if function == "gelu":
        return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64))
    if function == "gelu-tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if function == "relu":
        return np.maximum(x, 0.0)
    raise UnsupportedError(f"the interpreter has no activation {function!r}")


def _ssm(op: ops.SSM, x: np.ndarray) -> np.ndarray:
    u = x + op.u_shift
    batch, length, h = u.shape
    z = np.zeros((batch, h, op.n_modes), dtype=np.complex128)
    y = np.empty_like(u)
    for t in range(length):
        z = op.a_bar * z + op.b_bar * u[:, t, :, None]
        y[:, t] = 2 * (op.c * z).sum(-1).real + op.d * u[:, t]
    return y


def _reset_refractory(op: ops.ResetRefractory, x: np.ndarray) -> np.ndarray:
    v = np.zeros_like(x[:, 0])
    reset = op.theta + op.rho
    s = np.empty_like(x)
    for t in range(x.shape[1]):
        m = op.beta * v + x[:, t]
        s[:, t] = m > op.theta
        v = m - reset * s[:, t]
    return s


def _lif(op: ops.LIF, x: np.ndarray) -> np.ndarray:
    u = np.zeros_like(x[:, 0])
    s = np.empty_like(x)
    for t in range(x.shape[1]):
        m = op.tau * u + x[:, t] / op.threshold
        s[:, t] = m >= 1.0
        u = m * (1.0 - s[:, t])
    return s


def _glu(op: ops.GLU, x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    if op.gate == "sigmoid":
        return a * _sigmoid(b)
    return a * np.clip(b / 6.0 + 0.5, 0.0, 1.0)


def _evaluate(node: Node, op: ops.Op, xs: list[np.ndarray]) -> np.ndarray:
    if isinstance(op, ops.Add):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total
    (x,) = xs
    if isinstance(op, (ops.Output, ops.Dropout, ops.Identity)):
        return x
    if isinstance(op, ops.Linear):
        return x @ op.weight.T + op.bias
    if isinstance(op, ops.BatchNorm):
        return (x - op.mean) / np.sqrt(op.var + op.eps) * op.weight + op.bias
    if isinstance(op, ops.ChannelAffine):
        return op.scale * x + op.shift
    if isinstance(op, ops.S4D):
        return _ssm(discretize_s4d(op), x)
    if isinstance(op, ops.SSM):
        return _ssm(op, x)
    if isinstance(op, ops.ResetRefractory):
        return _reset_refractory(op, x)
    if isinstance(op, ops.LIF):
        return _lif(op, x)
    if isinstance(op, ops.Heaviside):
        return (x > 0).astype(np.float64)
    if isinstance(op, ops.GLU):
        return _glu(op, x)
    if isinstance(op, ops.Activation):
        return _activation(op.function, x)
    if isinstance(op, ops.Pool):
        pooled = x.mean(axis=1) if op.mode == "mean" else x[:, -1]
        return pooled[:, None, :]
    raise UnsupportedError(f"the interpreter cannot run node {node.name!r} ({op.kind})")


def run_graph(
    graph: Graph, u: np.ndarray, traces: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Run `graph` on u (B, L, d_in) in float64; returns the output, (B, d_out) if the
    graph pools (else (B, L, d_out)). If `traces` is a dict, every node's output is put
    in it by node name ((B, L, H) per step, (B, H) once pooled).
    """
    u = np.asarray(u, dtype=np.float64)
    size = graph.size(graph.input.name)
    if u.ndim != 3 or u.shape[2] != size:
        raise UsageError(f"input must be (B, L, {size}), got {u.shape}")
    values: dict[str, np.ndarray] = {}
    pooled: dict[str, bool] = {}
    for node in graph:
        if isinstance(node.op, ops.Input):
            out = u
            pooled[node.name] = False
        else:
            xs = [values[name] for name in node.inputs]
            out = _evaluate(node, node.op, xs)
            pooled[node.name] = isinstance(node.op, ops.Pool) or any(
                pooled[name] for name in node.inputs
            )
        values[node.name] = out
        if traces is not None:
            traces[node.name] = out[:, 0] if pooled[node.name] else out
    result = values[graph.output.name]
    return result[:, 0] if pooled[graph.output.name] else result
