"""NIR import: a NIR graph (snnTorch, Norse, Sinabs, Rockpool, ...) -> the float IR Graph.

    result = import_nir("net.nir", dt=1e-4, reset="zero")   # NirImport: graph, warnings

NIR neurons are continuous-time ODEs; they are discretized with forward Euler at `dt`
(seconds; from the argument, else from `dt` in the graph's metadata, else UsageError).
With a = dt / tau (per element) and the summed input x_t of the node:

    I        v_t = v_{t-1} + dt R x_t                                  (graded output v)
    LI       v_t = (1 - dt/tau) v_{t-1} + (dt/tau) (v_leak + R x_t)    (graded output v)
    CubaLI   I_t = (1 - dt/tau_syn) I_{t-1} + (dt/tau_syn) w_in x_t
             v_t = (1 - dt/tau_mem) v_{t-1} + (dt/tau_mem) (v_leak + R I_t)
    IF, LIF, CubaLIF: as I, LI, CubaLI, then s_t = [v_t > v_threshold] (strict, as NIR)
             and v_t <- v_reset where s_t (reset "zero", the only reset NIR stores; v_reset
             must be 0) or v_t <- v_t - v_threshold (reset "subtract", chosen by the user)
             or, snnTorch's reset, v_{t+1} gets - v_threshold s_t undecayed (reset
             "subtract-delayed": v_t = beta v_{t-1} + ... - v_threshold s_{t-1})
    Threshold  s_t = [x_t > threshold]   (stateless)

The current is updated first and the voltage uses the new current, as snnTorch and
Lava's LIF do. Every neuron becomes one EulerNeuron op (snncompile.ir.nir_ops) with the
gains folded into its input weights: u = (dt R / tau_mem) I, so v is NIR's v.

Linear nodes (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten,
Delay, and the Input/Output relays of flattened subgraphs) are composed: each neuron's
input is a sum over source nodes (the Input and the neurons) and lags of sparse matrices
times that source's output, plus a constant; fan-in edges sum. Tensors are flattened
row-major (Conv2d input (C, H, W), weight (out, in / groups, kh, kw)). A Delay of d
seconds delays by round(d / dt) steps (it must be a whole number of steps). A cycle
(lif -> w_rec -> lif) is a recurrent connection: the edge that closes it (found by a
depth-first search from the Input) carries the previous step's value, so a loop that
returns to the same neuron through linear nodes becomes its recurrent matrix with a lag
of one step. A constant on any path (a bias) is present from step 0, including on
recurrent and delayed paths: they start from the value their input has at rest. A loop
through two or more neurons (A -> B -> A) closes with a Feedback node (A reads B's output
of the previous step); the lowering then runs the netlist with as many ticks per model
step as the loop has populations, since every population hop costs one tick.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import CorruptInputError, UnsupportedError, UsageError
from snncompile.frontend.nir_graph import (
    DEAD_ENDS_NOTE,
    NEURONS,
    SUPPORTED,
    FlatNir,
    _nir,
    forward_order,
    load_flat,
    naming_file,
    unsupported_nodes_error,
)
from snncompile.ir import ops
from snncompile.ir.graph import Graph, Node
from snncompile.ir.netlist import MAX_TICKS
from snncompile.ir.nir_ops import EulerNeuron, Feedback, SparseLinear
from snncompile.lower.nir_rules import euler_neuron_problems

RESET_MODES = ("zero", "subtract", "subtract-delayed")

Key = tuple[str, int]  # (source node, lag in steps)


@dataclass
class Expr:
    """sum over (source, lag) of terms[key] @ output(source)(t - lag) + const."""

    terms: dict[Key, sparse.csr_matrix]
    const: np.ndarray

    @property
    def width(self) -> int:
        return self.const.size

    def add(self, other: Expr) -> Expr:
        terms = dict(self.terms)
        for key, m in other.terms.items():
            terms[key] = terms[key] + m if key in terms else m
        return Expr(terms, self.const + other.const)

    def delayed(self, steps: int) -> Expr:
        """The same sum `steps` steps later (a constant is the value at rest: unchanged)."""
        return Expr({(src, lag + steps): m for (src, lag), m in self.terms.items()}, self.const)


@dataclass
class NirImport:
    """What the import produced: the Graph, the shapes it inferred, and warnings."""

    graph: Graph
    dt: float
    reset: str
    input_shape: tuple[int, ...]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def resolve_dt(dt: float | None, metadata: dict[str, Any], where: str) -> float:
    """The dt argument, else the graph metadata's `dt`; UsageError if neither is usable."""
    if dt is None and "dt" in metadata:
        bad = metadata["dt"]
        try:
            dt = float(np.asarray(bad).item())
        except (TypeError, ValueError):
            raise CorruptInputError(f"{where}: metadata dt {bad!r} is not a number") from None
        if not (math.isfinite(dt) and dt > 0):
            raise CorruptInputError(f"{where}: metadata dt {bad!r} is not a positive number")
    if dt is None:
        raise UsageError(
            f"{where} states no dt: NIR neurons are continuous-time, pass --dt SECONDS "
            "(snnTorch exports assume 1e-4, Norse 1e-3)"
        )
    if not (math.isfinite(dt) and dt > 0):
        raise UsageError(f"--dt must be a positive number of seconds, got {dt}")
    return float(dt)


def _arr(node: Any, name: str) -> np.ndarray:
    return np.asarray(getattr(node, name), dtype=np.float64)


def _pair(value: Any, field: str) -> tuple[int, int]:
    v = np.atleast_1d(np.asarray(value))
    if v.dtype.kind == "f" and not np.all(np.abs(v) < 2**31):
        # astype(int) made NaN or 1e30 into -2**63, with a RuntimeWarning on stderr
        shown = np.array2string(v, threshold=4, edgeitems=2)
        raise ValueError(f"{field} {shown} is not a whole number of positions")
    v = v.astype(int)
    return (int(v[0]), int(v[-1])) if v.size in (1, 2) else (int(v[0]), int(v[1]))


def _check_geometry(lowest: int, **fields: tuple[int, int]) -> None:
    """Kernel sizes, strides, dilations or groups (lowest 1) or paddings (lowest 0) that
    no convolution has: a damaged file (they would divide by zero or allocate nonsense)."""
    for field_name, value in fields.items():
        if min(value) < lowest:
            raise CorruptInputError(f"{field_name} {value} is below {lowest}")


@contextmanager
def _node_fields(name: str, kind: str) -> Iterator[None]:
    """Errors while reading one node's fields name the node: numpy's and nir's own
    complaints about a malformed field (a bias that does not broadcast, a kernel of the
    wrong rank) become CorruptInputError, as do our geometry checks."""
    prefix = f"node {name!r} ({kind}): "
    try:
        yield
    except CorruptInputError as exc:
        text = str(exc)
        raise CorruptInputError(text if text.startswith("node ") else prefix + text) from None
    except (ValueError, TypeError, IndexError, ArithmeticError, AssertionError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise CorruptInputError(f"{prefix}malformed parameters ({detail})") from None


def _neuron_shape(node: Any) -> tuple[int, ...]:
    kind = type(node).__name__
    field_name = {"I": "r", "IF": "v_threshold", "Threshold": "threshold"}.get(kind, "r")
    return tuple(int(n) for n in np.shape(getattr(node, field_name))) or (1,)


# ---- linear nodes as sparse matrices ---------------------------------------------------


def conv_matrix(
    weight: np.ndarray,
    in_shape: tuple[int, int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    pad_after: tuple[int, int] | None = None,
) -> tuple[sparse.csr_matrix, tuple[int, int, int]]:
    """The matrix of a 2-d convolution (cross-correlation, as torch and NIR) on a
    row-major (C, H, W) input: out[o, y, x] = sum_{c, ky, kx} w[o, c, ky, kx]
    in[g(o) Cg + c, y sy - py + ky dy, x sx - px + kx dx] (zero outside the input).
    `padding` pads before, `pad_after` after (default: the same; torch's 'same' pads
    one less before than after for even kernels)."""
    c_in, h, w = in_shape
    n_out, cg, kh, kw = weight.shape
    if c_in != cg * groups or n_out % groups:
        raise CorruptInputError(
            f"convolution weight {weight.shape} with groups {groups} does not fit input "
            f"channels {c_in}"
        )
    after = padding if pad_after is None else pad_after
    oh = (h + padding[0] + after[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + padding[1] + after[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise CorruptInputError(f"convolution output would be empty for input {in_shape}")
    if n_out * cg * kh * kw * oh * ow > MAX_NODE_NEURONS * 4:  # six int64 index grids below
        raise CorruptInputError(
            f"convolution of {n_out}x{cg}x{kh}x{kw} weights over a {oh}x{ow} output is too "
            f"large (check its padding {padding} and stride {stride})"
        )
    o, c, ky, kx, y, x = np.meshgrid(
        np.arange(n_out), np.arange(cg), np.arange(kh), np.arange(kw), np.arange(oh),
        np.arange(ow), indexing="ij",
    )  # fmt: skip
    iy = y * stride[0] - padding[0] + ky * dilation[0]
    ix = x * stride[1] - padding[1] + kx * dilation[1]
    channel = (o // (n_out // groups)) * cg + c
    values = weight[o, c, ky, kx]
    rows = (o * oh + y) * ow + x
    cols = (channel * h + iy) * w + ix
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (values != 0)
    matrix = sparse.csr_matrix(
        (values[keep], (rows[keep], cols[keep])), shape=(n_out * oh * ow, c_in * h * w)
    )
    return matrix, (n_out, oh, ow)


def _same_padding(
    kernel: tuple[int, ...], dilation: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(before, after) padding of torch's 'same': total d (k - 1), the smaller half before."""
    total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    before = (total[0] // 2, total[1] // 2)
    return before, (total[0] - before[0], total[1] - before[1])


def _conv_node(node: Any, in_shape: tuple[int, ...]) -> tuple[sparse.csr_matrix, tuple, np.ndarray]:
    weight = _arr(node, "weight")
    one_d = weight.ndim == 3
    if one_d:
        weight = weight[:, :, None, :]
        shape3 = (in_shape[0], 1, in_shape[-1]) if len(in_shape) == 2 else None
        stride, dilation = (
            (1, _pair(node.stride, "stride")[0]),
            (1, _pair(node.dilation, "dilation")[0]),
        )
    else:
        shape3 = in_shape if len(in_shape) == 3 else None
        stride, dilation = _pair(node.stride, "stride"), _pair(node.dilation, "dilation")
    if shape3 is None:
        raise CorruptInputError(f"convolution input has shape {in_shape}")
    if weight.ndim != 4:
        raise CorruptInputError(f"convolution weight has shape {weight.shape}")
    kernel = weight.shape[2:]
    _check_geometry(1, stride=stride, dilation=dilation, groups=(int(node.groups),) * 2)
    after = None
    if isinstance(node.padding, str):
        if node.padding == "same" and stride != (1, 1):
            raise UnsupportedError("padding 'same' with a stride other than 1")
        padding = (0, 0)
        if node.padding == "same":
            padding, after = _same_padding(kernel, dilation)
    else:
        padding = (
            (0, _pair(node.padding, "padding")[0]) if one_d else _pair(node.padding, "padding")
        )
    _check_geometry(0, padding=padding)
    matrix, out = conv_matrix(
        weight, shape3, stride, padding, dilation, int(node.groups), pad_after=after
    )
    bias = np.repeat(np.broadcast_to(_arr(node, "bias"), (out[0],)), out[1] * out[2])
    return matrix, ((out[0], out[2]) if one_d else out), bias


def _pool_node(node: Any, in_shape: tuple[int, ...], average: bool) -> tuple:
    if len(in_shape) != 3:
        raise CorruptInputError(f"pooling input has shape {in_shape}, expected (C, H, W)")
    kernel, stride, padding = (
        _pair(node.kernel_size, "kernel_size"),
        _pair(node.stride, "stride"),
        _pair(node.padding, "padding"),
    )
    _check_geometry(1, kernel_size=kernel, stride=stride)
    _check_geometry(0, padding=padding)
    weight = np.ones((in_shape[0], 1, *kernel))
    if average:  # torch's default: padded zeros count in the average
        weight /= kernel[0] * kernel[1]
    matrix, out = conv_matrix(weight, in_shape, stride, padding, (1, 1), in_shape[0])
    return matrix, out, np.zeros(matrix.shape[0])


def _flatten_shape(node: Any, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    nd = len(in_shape)
    start, end = int(node.start_dim), int(node.end_dim)
    # nir's Flatten counts dims without the batch; sinabs writes start_dim 0 for (C, H, W).
    start = start + nd if start < 0 else start
    end = end + nd if end < 0 else end
    start, end = min(max(start, 0), nd - 1), min(max(end, 0), nd - 1)
    return (*in_shape[:start], int(np.prod(in_shape[start : end + 1])), *in_shape[end + 1 :])


def linear_parts(
    name: str, node: Any, in_shape: tuple[int, ...], dt: float, relay: bool
) -> tuple[list[tuple[int, sparse.csr_matrix]], np.ndarray, tuple[int, ...]]:
    """([(lag, matrix)], bias, output shape) of one NIR linear node on a flat input."""
    kind = type(node).__name__
    n = int(np.prod(in_shape))
    eye = sparse.identity(n, format="csr")
    if relay or kind == "Flatten":
        out = in_shape if relay else _flatten_shape(node, in_shape)
        return [(0, eye)], np.zeros(n), out
    if kind in ("Affine", "Linear"):
        w = _arr(node, "weight")
        if w.ndim > 2:
            # Valid NIR (nir's Affine and Linear take a stack of matrices over the leading
            # axes), just not one we compile: exit 4, not a corrupt file.
            raise UnsupportedError(
                f"node {name!r} ({kind}): weight {w.shape} has {w.ndim} dimensions; only a "
                "2-d weight (out, in) is compiled"
            )
        if w.ndim != 2 or w.shape[1] != n:
            raise CorruptInputError(
                f"node {name!r} ({kind}): weight {w.shape} does not take an input of width {n}"
            )
        bias = _arr(node, "bias") if kind == "Affine" else np.zeros(w.shape[0])
        return (
            [(0, sparse.csr_matrix(w))],
            np.broadcast_to(bias, (w.shape[0],)).copy(),
            (w.shape[0],),
        )
    if kind == "Scale":
        scale = _arr(node, "scale").ravel()
        if scale.size not in (1, n):
            raise CorruptInputError(f"node {name!r} (Scale): {scale.size} scales for width {n}")
        return [(0, sparse.diags(np.broadcast_to(scale, (n,))).tocsr())], np.zeros(n), in_shape
    if kind in ("Conv1d", "Conv2d"):
        matrix, out, bias = _conv_node(node, in_shape)
        return [(0, matrix)], bias, out
    if kind in ("SumPool2d", "AvgPool2d"):
        matrix, out, bias = _pool_node(node, in_shape, kind == "AvgPool2d")
        return [(0, matrix)], bias, out
    if kind == "Delay":
        delay = np.broadcast_to(_arr(node, "delay").ravel(), (n,)) / dt
        if np.any(delay < 0):
            raise CorruptInputError(f"node {name!r} (Delay): a delay is negative")
        steps = np.rint(delay)
        if np.any(np.abs(delay - steps) > 1e-6 * np.maximum(1.0, delay)) or np.any(steps < 0):
            raise UnsupportedError(
                f"node {name!r} (Delay): delays {np.unique(delay * dt)} s are not whole "
                f"multiples of dt = {dt} s"
            )
        if steps.max(initial=0) > MAX_TICKS:
            raise UnsupportedError(
                f"node {name!r} (Delay): a delay of {int(steps.max())} steps at dt = {dt} s "
                f"is beyond the {MAX_TICKS} steps a netlist holds"
            )
        parts = [
            (int(d), sparse.diags((steps == d).astype(float)).tocsr()) for d in np.unique(steps)
        ]
        return parts, np.zeros(n), in_shape
    raise UnsupportedError(f"node {name!r}: {kind} is not a linear node")  # not reached


# ---- neurons -----------------------------------------------------------------------------


@dataclass
class NeuronParams:
    """A NIR neuron at dt: EulerNeuron fields plus the input gain folded into its weights."""

    alpha_u: np.ndarray
    alpha_v: np.ndarray
    gain: np.ndarray
    v_bias: np.ndarray
    theta: np.ndarray
    spiking: bool


def _time_constant(name: str, kind: str, field_name: str, tau: np.ndarray) -> np.ndarray:
    """tau itself; a time constant of zero or below is no neuron at all, so the file is
    wrong (exit 6, as for a NaN one), not a neuron we cannot compile."""
    if np.any(tau <= 0):
        raise CorruptInputError(
            f"node {name!r} ({kind}): {field_name} must be positive, got {tau.min():g}"
        )
    return tau


def neuron_params(name: str, node: Any, dt: float, reset: str = "zero") -> NeuronParams:
    """Forward-Euler coefficients (module docstring); UnsupportedError names what the
    compartments cannot take (v_reset != 0 with reset "zero", dt > tau). A subtract
    reset replaces NIR's reset to v_reset, so v_reset is not read then."""
    kind = type(node).__name__
    size = int(np.prod(_neuron_shape(node)))

    def get(field_name: str, default: float | None = None) -> np.ndarray:
        value = getattr(node, field_name, None)
        if value is None:
            value = default
        return np.broadcast_to(np.asarray(value, dtype=np.float64).ravel(), (size,)).copy()

    zero, one = np.zeros(size), np.ones(size)
    r = get("r", 1.0)
    tau_field = {"LI": "tau", "LIF": "tau", "CubaLI": "tau_mem", "CubaLIF": "tau_mem"}
    if kind in ("I", "IF"):
        with np.errstate(over="ignore"):  # checked below
            alpha_u, alpha_v, gain, v_bias = zero, one, dt * r, zero
    else:
        tau = _time_constant(name, kind, tau_field[kind], get(tau_field[kind]))
        alpha_u, alpha_v = zero, 1.0 - dt / tau
        tau_syn = get("tau_syn") if kind.startswith("Cuba") else None
        if tau_syn is not None:
            alpha_u = 1.0 - dt / _time_constant(name, kind, "tau_syn", tau_syn)
        # Before the gains: a dt that large overflows them (numpy would warn first).
        if np.any(alpha_u < 0) or np.any(alpha_v < 0):
            raise UnsupportedError(
                f"node {name!r} ({kind}): dt = {dt} s exceeds a time constant; forward "
                "Euler at this dt would flip the sign of the state every step"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            gain, v_bias = dt * r / tau, dt * get("v_leak", 0.0) / tau
            if tau_syn is not None:
                gain = gain * (dt / tau_syn) * get("w_in", 1.0)
    if not (np.isfinite(gain).all() and np.isfinite(v_bias).all()):
        raise CorruptInputError(
            f"node {name!r} ({kind}): its input gain or leak overflows float64 at dt = {dt} s "
            "(r, w_in or v_leak out of scale)"
        )
    spiking = kind in ("IF", "LIF", "CubaLIF")
    theta = get("v_threshold") if spiking else one
    problems = []  # both, when both hold (the first alone was named)
    if spiking and reset == "zero" and np.any(get("v_reset", 0.0) != 0):
        problems.append("v_reset != 0; Lava's LIF resets to 0")
    if spiking and np.any(theta <= 0):
        problems.append(
            "v_threshold <= 0 is not compiled (each threshold is folded into the weights "
            "feeding it as a positive scale)"
        )
    if problems:
        raise UnsupportedError(f"node {name!r} ({kind}): {'; '.join(problems)}")
    return NeuronParams(alpha_u, alpha_v, gain, v_bias, theta, spiking)


# ---- the import --------------------------------------------------------------------------


# Neurons of one NIR node. Far beyond any graph we have seen (the Sinabs CNN's largest
# layer has 8,192); above it a damaged shape would allocate gigabytes before failing.
MAX_NODE_NEURONS = 1 << 22


def _checked_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A node's shape as positive ints with at most MAX_NODE_NEURONS elements."""
    try:
        values = np.atleast_1d(shape)
        dims = tuple(int(n) for n in values)
        # int() took a size of 1.5 as 1 (helper-63)
        whole = all(float(n) == d for n, d in zip(values, dims, strict=True))
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        shown = shape.tolist() if isinstance(shape, np.ndarray) else shape
        raise CorruptInputError(f"node {name!r} declares the shape {shown!r}, not whole sizes")
    if not dims or min(dims) < 1 or math.prod(dims) > MAX_NODE_NEURONS:
        raise CorruptInputError(
            f"node {name!r} has shape {dims}: each size must be positive and the node "
            f"at most {MAX_NODE_NEURONS} neurons"
        )
    return dims


class _Importer:
    def __init__(self, flat: FlatNir, dt: float) -> None:
        self.flat = flat
        self.dt = dt
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.exprs: dict[str, Expr] = {}
        self.visiting: set[str] = set()
        self.preds = {name: flat.preds(name) for name in flat.nodes}
        self.back = forward_order(flat)[1]  # the edges that carry the previous step

    def kind(self, name: str) -> str:
        return type(self.flat.nodes[name]).__name__

    def is_source(self, name: str) -> bool:
        return name == self.flat.input or self.kind(name) in (*NEURONS, "Threshold")

    def source_shape(self, name: str) -> tuple[int, ...]:
        if name == self.flat.input:
            shape = self.flat.nodes[name].input_type.get("input")
            if shape is None:
                raise CorruptInputError(f"Input node {name!r} declares no shape")
            return _checked_shape(name, shape)
        with _node_fields(name, self.kind(name)):
            return _checked_shape(name, _neuron_shape(self.flat.nodes[name]))

    def output_of(self, name: str) -> tuple[Expr, tuple[int, ...]]:
        """A node's output as an Expr over sources, and its shape."""
        if self.is_source(name):
            shape = self.shapes.setdefault(name, self.source_shape(name))
            n = int(np.prod(shape))
            return Expr({(name, 0): sparse.identity(n, format="csr")}, np.zeros(n)), shape
        if name in self.exprs:
            return self.exprs[name], self.shapes[name]
        if name in self.visiting:
            raise UnsupportedError(
                f"a loop of linear nodes through {name!r} contains no neuron (an algebraic "
                "loop with no state)"
            )
        self.visiting.add(name)
        total, in_shape = self.input_of(name)
        relay = name in self.flat.relays or self.kind(name) == "Output"
        with _node_fields(name, self.kind(name)):
            parts, bias, out_shape = linear_parts(
                name, self.flat.nodes[name], in_shape, self.dt, relay
            )
        terms: dict[Key, sparse.csr_matrix] = {}
        const = bias.copy()
        for lag, matrix in parts:
            for (src, src_lag), m in total.terms.items():
                key = (src, src_lag + lag)
                product = sparse.csr_matrix(matrix @ m)
                terms[key] = terms[key] + product if key in terms else product
            # A constant is the value at rest: it passes a Delay unchanged.
            const = const + matrix @ total.const
        self.visiting.discard(name)
        self.exprs[name], self.shapes[name] = Expr(terms, const), out_shape
        return self.exprs[name], out_shape

    def input_of(self, name: str) -> tuple[Expr, tuple[int, ...]]:
        """The sum of everything the node's incoming edges carry (fan-in sums)."""
        preds = self.preds[name]  # never empty: _import refuses nodes nothing feeds
        total, shape = None, None
        for pred in preds:
            expr, pshape = self.output_of(pred)
            if (pred, name) in self.back:
                expr = expr.delayed(1)
            if total is None:
                total, shape = expr, pshape
            elif expr.width != total.width:
                raise CorruptInputError(
                    f"node {name!r} ({self.kind(name)}) receives width {expr.width} from "
                    f"{pred!r} and {total.width} from {preds[0]!r}"
                )
            else:
                total = total.add(expr)
        return total, shape  # type: ignore[return-value]


def _check_supported(flat: FlatNir) -> None:
    bad = [
        f"{name} ({type(node).__name__})"
        for name, node in flat.nodes.items()
        if type(node).__name__ not in SUPPORTED
    ]
    if bad:
        raise unsupported_nodes_error(bad)


def _declared_input_shape(node: Any) -> tuple[int, ...] | None:
    """The input shape a node's fields declare, None if they declare none. A convolution
    declares (groups * weight.shape[1], *input_shape): nir's input_type says
    weight.shape[1] channels, in_channels / groups, which for a grouped convolution is
    nir's mistake, not the file's (quoting it, the warning blamed a consistent file with
    a shape nothing in it states, helper-88)."""
    if type(node).__name__ in ("Conv1d", "Conv2d"):
        if getattr(node, "input_shape", None) is None:
            return None
        try:  # the import took the node, so only a field it never reads can fail here
            channels = int(np.shape(node.weight)[1]) * int(node.groups)
            return (channels, *(int(n) for n in np.atleast_1d(node.input_shape)))
        except (TypeError, ValueError, IndexError):
            return None
    declared = getattr(node, "input_type", {}).get("input")
    return None if declared is None else tuple(int(n) for n in np.atleast_1d(declared))


def _declared_shape_warnings(flat: FlatNir, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Nodes whose declared input shape differs from the one inferred from parameters."""
    out = []
    for name, node in flat.nodes.items():
        with _node_fields(name, type(node).__name__):  # a field the import never read
            declared = _declared_input_shape(node)
        preds = flat.preds(name)
        if declared is None or not preds or preds[0] not in shapes:
            continue
        got = shapes[preds[0]]
        if declared != tuple(got):
            out.append(
                f"node {name!r} ({type(node).__name__}) declares input shape {declared} but "
                f"receives {got} from {preds[0]!r}; using {got}"
            )
    return out


def import_nir(
    source: str | os.PathLike[str] | Any,
    *,
    dt: float | None = None,
    reset: str = "zero",
) -> NirImport:
    """Import a .nir file (or an in-memory nir.NIRGraph) as a float Graph at `dt` seconds.

    reset: "zero" (NIR's reset to v_reset = 0), "subtract" (v -= v_threshold in the step
    that spikes) or "subtract-delayed" (snnTorch's subtract: v_threshold comes off the
    next step's v, undecayed); NIR files cannot say which. Errors: CorruptInputError
    (unreadable or inconsistent file), UnsupportedError (every unsupported node listed),
    UsageError (no dt, bad reset).
    """
    if reset not in RESET_MODES:
        raise UsageError(f"reset must be one of {RESET_MODES}, got {reset!r}")
    _nir()
    flat = load_flat(source)
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the NIR graph"
    with naming_file(source):
        _check_supported(flat)
        dt = resolve_dt(dt, flat.metadata, where)
        return _import(flat, dt, reset, where)


def _import(flat: FlatNir, dt: float, reset: str, where: str) -> NirImport:
    """import_nir after the file is read and flattened and dt is known."""
    # A file's dead ends are refused when it is read (nir's type check gives each an
    # Input or Output of its own, nir_graph._refuse_invented_ends); an in-memory graph
    # built without that check reaches here with them (a neuron feeding nothing had no
    # shape and failed with KeyError).
    fed, feeding = {dst for _, dst in flat.edges}, {src for src, _ in flat.edges}
    ends = ", ".join(
        [f"node {n!r} has no input edge" for n in flat.nodes if n != flat.input and n not in fed]
        + [
            f"node {n!r} has no output edge"
            for n in flat.nodes
            if n != flat.output and n not in feeding
        ]
    )
    if ends:
        raise UnsupportedError(f"{where}: {ends} {DEAD_ENDS_NOTE}")
    imp = _Importer(flat, dt)
    sources = [n for n in flat.nodes if n != flat.input and imp.is_source(n)]
    params: dict[str, NeuronParams] = {}
    problems: list[str] = []
    refused_here = False
    for name in sources:
        if imp.kind(name) == "Threshold":
            continue
        try:
            with _node_fields(name, imp.kind(name)):
                p = params[name] = neuron_params(name, flat.nodes[name], dt, reset)
        except UnsupportedError as exc:
            problems.append(str(exc))
            refused_here = True
            continue
        # What the lowering will refuse, so that one line names every offending node.
        node_reset = reset if p.spiking else "none"
        where = f"node {name!r} ({imp.kind(name)})"
        problems += euler_neuron_problems(where, p.alpha_u, p.alpha_v, p.v_bias, node_reset)
    if refused_here:
        raise UnsupportedError("; ".join(problems))
    inputs = {name: imp.input_of(name)[0] for name in sources}
    out_expr, out_shape = imp.input_of(flat.output)
    for name in sources:
        if inputs[name].width != int(np.prod(imp.shapes[name])):
            raise CorruptInputError(
                f"node {name!r} ({imp.kind(name)}) has {int(np.prod(imp.shapes[name]))} "
                f"neurons but its input has width {inputs[name].width}"
            )
    order = _source_order(flat, sources, inputs)
    nodes = [Node(flat.input, ops.Input(int(np.prod(imp.shapes[flat.input]))))]
    later = {name: int(np.prod(imp.shapes[name])) for name in order}
    for name in order:
        del later[name]
        nodes.extend(
            _neuron_nodes(name, imp.kind(name), flat.nodes[name], inputs[name], params.get(name),
                          reset, later)
        )  # fmt: skip
    nodes.extend(_output_nodes(flat.output, out_expr))
    warnings = list(flat.warnings)
    if flat.warnings:
        warnings += _declared_shape_warnings(flat, imp.shapes)
    shapes = dict(imp.shapes)
    shapes[flat.output] = out_shape
    meta = {
        "source": "nir",
        "nir_file": where,
        "dt_s": dt,
        "reset": reset,
        "nir_nodes": len(flat.nodes),
        # So that the lowering's refusals name nodes as the importer's do.
        "nir_kinds": {name: imp.kind(name) for name in sources},
        "warnings": warnings,
    }
    graph = Graph(tuple(nodes), dt_s=dt, meta=meta)
    return NirImport(graph, dt, reset, imp.shapes[flat.input], shapes, warnings)


def _source_order(flat: FlatNir, sources: list[str], inputs: dict[str, Expr]) -> list[str]:
    """Neurons in dependency order. Only same-step (lag 0) inputs must come first; a
    delayed or recurrent input from a neuron later in the order becomes a Feedback node.
    Among the neurons whose same-step inputs are ready, those with every input ready go
    first, so Feedback nodes are made only where a loop needs them."""
    other = {  # name -> (other neuron it reads, lag)
        name: {(src, lag) for src, lag in inputs[name].terms if src not in (name, flat.input)}
        for name in sources
    }
    deps = {name: {src for src, _ in other[name]} for name in sources}
    same_step = {name: {src for src, lag in other[name] if not lag} for name in sources}
    for name in sources:
        if not any(src != name for src, _ in inputs[name].terms):
            raise UnsupportedError(f"node {name!r} is driven only by itself, not by the input")
    order: list[str] = []
    done: set[str] = set()
    remaining = list(sources)
    while remaining:
        ready = [n for n in remaining if deps[n] <= done] or [
            n for n in remaining if same_step[n] <= done
        ][:1]
        if not ready:  # not reached for a file nir reads: its DFS lags every loop
            raise UnsupportedError(
                f"neuron nodes {', '.join(sorted(remaining))} feed each other within one step"
            )
        for n in ready:
            order.append(n)
            done.add(n)
            remaining.remove(n)
    return order


def _neuron_nodes(
    name: str,
    kind: str,
    node: Any,
    expr: Expr,
    p: NeuronParams | None,
    reset: str,
    later: dict[str, int],
) -> list[Node]:
    """SparseLinear nodes (one per source and lag) and the neuron (or Heaviside) node;
    an input from a source in `later` (name -> width: not yet emitted) comes through a
    Feedback node carrying its lag."""
    size = expr.width
    self_terms = {lag: m for (src, lag), m in expr.terms.items() if src == name}
    terms = sorted(((k, m) for k, m in expr.terms.items() if k[0] != name), key=lambda t: t[0][1])
    if kind == "Threshold":
        if self_terms or any(lag for (_, lag), _ in terms):
            raise UnsupportedError(f"node {name!r} (Threshold): delayed or recurrent input")
        theta = np.broadcast_to(_arr(node, "threshold").ravel(), (size,))
        gain, const = np.ones(size), expr.const - theta
    else:
        gain, const = p.gain, expr.const  # type: ignore[union-attr]
    out, names, lags = [], [], []
    for i, ((src, lag), m) in enumerate(terms):
        weight = sparse.csr_matrix(sparse.diags(gain) @ m)
        bias = gain * const if i == 0 else np.zeros(size)
        suffix = f"@{lag}" if lag else ""
        lin = f"{name}<{src}{suffix}"
        feed = src
        if src in later:
            feed = f"{lin}.feedback"
            out.append(Node(feed, Feedback(src, later[src], lag)))
            lag = 0  # the Feedback node carries it
        out.append(Node(lin, SparseLinear(weight, bias), (feed,)))
        names.append(lin)
        lags.append(lag)
    if kind == "Threshold":
        if len(names) > 1:
            out.append(Node(f"{name}.sum", ops.Add(), tuple(names)))
            names = [f"{name}.sum"]
        out.append(Node(name, ops.Heaviside(), tuple(names)))
        return out
    if len(self_terms) > 1:
        raise UnsupportedError(f"node {name!r}: recurrent paths with different delays")
    rec_lag, rec = next(iter(self_terms.items()), (1, sparse.csr_matrix((size, size))))
    op = EulerNeuron(
        alpha_u=p.alpha_u,  # type: ignore[union-attr]
        alpha_v=p.alpha_v,  # type: ignore[union-attr]
        theta=p.theta,  # type: ignore[union-attr]
        v_bias=p.v_bias,  # type: ignore[union-attr]
        lags=np.array(lags, dtype=np.int64),
        rec_weight=sparse.csr_matrix(sparse.diags(gain) @ rec),
        rec_lag=rec_lag,  # >= 1: the edge closing the loop carries the previous step
        reset=reset if p.spiking else "none",  # type: ignore[union-attr]
    )
    out.append(Node(name, op, tuple(names)))
    return out


def _output_nodes(name: str, expr: Expr) -> list[Node]:
    """Pool (mean over time: the readout integrates) and Output over the output's input."""
    keys = list(expr.terms)
    if any(lag for _, lag in keys):
        raise UnsupportedError(f"output {name!r}: a delayed path into the output")
    direct = (
        len(keys) == 1
        and not np.any(expr.const)
        and expr.terms[keys[0]].shape[0] == expr.terms[keys[0]].shape[1]
        and (expr.terms[keys[0]] != sparse.identity(expr.width)).nnz == 0
    )
    out: list[Node] = []
    if direct:
        feed = keys[0][0]
    else:
        names = []
        for i, key in enumerate(keys):
            bias = expr.const if i == 0 else np.zeros(expr.width)
            out.append(Node(f"{name}<{key[0]}", SparseLinear(expr.terms[key], bias), (key[0],)))
            names.append(f"{name}<{key[0]}")
        feed = names[0]
        if len(names) > 1:
            out.append(Node(f"{name}.sum", ops.Add(), tuple(names)))
            feed = f"{name}.sum"
    out.append(Node(f"{name}.mean", ops.Pool("mean"), (feed,)))
    out.append(Node(name, ops.Output(), (f"{name}.mean",)))
    return out
