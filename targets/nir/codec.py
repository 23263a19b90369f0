"""snncompile Graph <-> NIR 1.0.8 graph: the node-by-node encoding (docs/targets.md, ## nir).

    nir_graph = encode_graph(graph, dt_s=1e-3)     # a nir.NIRGraph; every node carries
    graph = decode_graph(nir_graph)                # the op it came from in its metadata

NIR nodes are continuous-time ODEs without dt (FACTS.md). Every parameter written here
is chosen so that a consumer that integrates with forward Euler at the stated dt (graph
metadata "snncompile_dt_s") computes our step equations where NIR can say them exactly
(neurons, linear maps, sums), and the closest standard form where it cannot (the S4D's
ZOH/bilinear discretization, the GLU's product, the time pooling). The exact op -- every
array bit for bit -- is kept in the node's metadata group "snncompile"; decode_graph
rebuilds the Graph from it and re-encodes it to prove the NIR parameters in the file are
still the ones computed from that metadata (an edited file is rejected, not trusted).
A graph imported from another framework's NIR file (sparse_linear, euler_neuron and
feedback ops) is written as the plain NIR nodes that compute those ops (imported.py;
docs/nir.md, "Export to NIR again").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import CorruptInputError, UnsupportedError, UsageError
from snncompile.ir import ops
from snncompile.ir.graph import Graph, Node
from snncompile.ir.nir_ops import EulerNeuron, Feedback, SparseLinear
from snncompile.ir.serialize import parse_json

from .imported import (
    check_loops,
    encode_euler_neuron,
    encode_feedback,
    encode_sparse_linear,
    euler_neuron_problem,
    imported_from_nir,
    input_lags,
    loop_first,
)

FORMAT = "snncompile-nir"
VERSION = 1
META = "snncompile"  # the node metadata group holding the exact op
DEFAULT_DT_S = 1e-3  # stated in the file; a trained sequence model's steps have no duration
# How an S4D's (A, B) are written: "continuous" = the trained continuous system (a consumer
# discretizing it by the metadata's rule gets our A_bar, B_bar); "euler" = the system whose
# forward Euler step at dt is our A_bar, B_bar (what Euler-integrating frameworks need).
SSM_FORMS = ("continuous", "euler")
# A pool of a graph imported from NIR, written as the per-step Output it came from.
PER_STEP_READ = "per step, as the NIR Output it was imported from (snncompile's readout averages)"

# What each encoded op tells a consumer that reads the metadata (and docs/targets.md).
_SEMANTICS = {
    "input": "x_t given at every step",
    "linear": "y_t = W x_t + b",
    "batchnorm": "y = (x - mean) / sqrt(var + eps) * weight + bias (eval mode)",
    "affine": "y = scale * x + shift",
    "dropout": "y = x (inference)",
    "identity": "y = x",
    "s4d": "x_t = A_bar x_{t-1} + B_bar u_t; y_t = 2 Re(C x_t) + D u_t; A_bar, B_bar by "
    "the rule in 'discretization' from the continuous (A, B) of this subgraph at dt",
    "reset_refractory": "m_t = beta v_{t-1} + x_t; s_t = [m_t > theta]; "
    "v_t = m_t - (theta + rho) s_t (subtractive reset plus refractory drop rho)",
    "lif": "m_t = tau u_{t-1} + x_t / threshold; s_t = [m_t >= 1]; u_t = m_t (1 - s_t)",
    "heaviside": "s_t = [x_t > 0]",
    "glu": "y = a * gate(b) for the input [a; b]; gate in 'attrs'",
    "add": "y = sum of the inputs (NIR sums fan-in)",
    "pool": "reduce over time at the end of the sequence: mean or last",
    "output": "y = x",
    "sparse_linear": "y_t = W x_t + b (W sparse; a NIR import's composed linear nodes)",
    "euler_neuron": "u_t = alpha_u u_{t-1} + sum_i x_i(t - lags_i) + R y(t - rec_lag); "
    "v_t = alpha_v v_{t-1} + u_t + v_bias; s_t = [v_t > theta], then the reset "
    "(zero, subtract, subtract-delayed) or none (graded, y = v)",
    "feedback": "y_t = y_source(t - lag), 0 before step lag",
}


# -- small helpers -----------------------------------------------------------------------


def nir_name(name: str) -> str:
    """A node name NIR tools can address: no '.' (some use it for subgraph paths), no '/'."""
    return name.replace(".", "_").replace("/", "_")


def _meta_arrays(op: ops.Op) -> dict[str, Any]:
    """The op's arrays for the metadata group; complex ones as {"real", "imag"}."""
    out: dict[str, Any] = {}
    for key, value in op.arrays().items():
        if sparse.issparse(value):  # a CSR matrix as its three arrays, bit for bit
            csr = value.tocsr()
            out[key] = {
                "data": np.array(csr.data),
                "indices": np.array(csr.indices),
                "indptr": np.array(csr.indptr),
                "shape": np.array(csr.shape, dtype=np.int64),
            }
        elif value.dtype.kind == "c":
            out[key] = {
                "real": np.ascontiguousarray(value.real),
                "imag": np.ascontiguousarray(value.imag),
            }
        else:
            out[key] = np.array(value)
    return out


def _float_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsupportedError(f"cannot write {value} into NIR metadata")
    return value


def _node_meta(node: Node, *, store_arrays: bool, extra: dict[str, Any]) -> dict[str, Any]:
    op = node.op
    meta: dict[str, Any] = {
        "op": op.kind,
        "name": node.name,
        "inputs": json.dumps(list(node.inputs)),
        "attrs": json.dumps({k: _float_json(v) for k, v in op.attributes().items()}),
        "semantics": _SEMANTICS[op.kind],
    }
    if store_arrays:
        meta["arrays"] = _meta_arrays(op)
    meta.update(extra)
    return {META: meta}


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64)


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


# -- one encoder per op -------------------------------------------------------------------
#
# Each returns (NIR node, store_arrays, extra metadata). store_arrays=False where the NIR
# parameters hold the op's arrays exactly (Linear: weight and bias are the Affine's).


def _input(op: ops.Input, n_in: int, dt: float) -> Any:
    import nir

    return nir.Input(input_type={"input": np.array([op.size])}), False, {}


def _output(op: ops.Output, n_in: int, dt: float) -> Any:
    import nir

    return nir.Output(output_type={"output": np.array([n_in])}), False, {}


def _linear(op: ops.Linear, n_in: int, dt: float) -> Any:
    import nir

    return nir.Affine(weight=np.array(op.weight), bias=np.array(op.bias)), False, {}


def _batchnorm(op: ops.BatchNorm, n_in: int, dt: float) -> Any:
    import nir

    affine = op.as_affine()  # the consumer gets the per-channel affine as a diagonal Affine
    return nir.Affine(weight=np.diag(affine.scale), bias=np.array(affine.shift)), True, {}


def _channel_affine(op: ops.ChannelAffine, n_in: int, dt: float) -> Any:
    import nir

    return nir.Affine(weight=np.diag(op.scale), bias=np.array(op.shift)), True, {}


def _identity(op: ops.Op, n_in: int, dt: float) -> Any:
    import nir

    # NIR has no identity node; Scale by ones is y = x for every consumer.
    return nir.Scale(scale=_ones(n_in)), False, {}


def _add(op: ops.Add, n_in: int, dt: float) -> Any:
    # NIR sums the edges into a node: a Scale by ones with several inputs is the sum.
    return _identity(op, n_in, dt)


def _heaviside(op: ops.Heaviside, n_in: int, dt: float) -> Any:
    import nir

    # Threshold is z = [v > v_thr], the same strict test: exact for every consumer.
    return nir.Threshold(threshold=_zeros(n_in)), False, {"spike_test": ">", "reset": "none"}


def _lif(op: ops.LIF, n_in: int, dt: float) -> Any:
    import nir

    # tau_m dv/dt = -v + r I, Euler at dt: v_t = (1 - dt/tau_m) v + (dt/tau_m) r I_t.
    # With tau_m = dt / (1 - tau) and r = 1 / (1 - tau): v_t = tau v + I_t, i.e. our
    # membrane times `threshold`; the spike test v > threshold is ours except at equality
    # (ours is >=), and the reset to v_reset = 0 is our hard reset.
    tau_m = np.full(n_in, dt / (1.0 - op.tau))
    r = np.full(n_in, 1.0 / (1.0 - op.tau))
    node = nir.LIF(
        tau=tau_m,
        r=r,
        v_leak=_zeros(n_in),
        v_threshold=np.array(op.threshold),
        v_reset=_zeros(n_in),
    )
    extra = {"spike_test": ">=", "reset": "zero", "leak": "m_t = tau * u_{t-1} + x_t"}
    return node, True, extra


def _reset_refractory(op: ops.ResetRefractory, n_in: int, dt: float) -> Any:
    import nir

    # NIR neurons reset to a constant. The subtractive reset is written with standard
    # nodes instead: unrolled, m_t = beta m_{t-1} + x_t - beta (theta + rho) s_{t-1},
    # a leaky integrator (no reset) fed back its own spikes through a Scale. The cycle
    # spike -> reset -> membrane is NIR's recurrent edge (one step of delay), so a consumer
    # integrating with Euler at dt computes exactly this neuron.
    tau = dt / (1.0 - op.beta)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "membrane": nir.LI(tau=tau, r=1.0 / (1.0 - op.beta), v_leak=_zeros(n_in)),
        "spike": nir.Threshold(threshold=np.array(op.theta)),
        "reset": nir.Scale(scale=-op.beta * (op.theta + op.rho)),
        "output": nir.Output(output_type={"output": np.array([n_in])}),
    }
    edges = [
        ("input", "membrane"),
        ("membrane", "spike"),
        ("spike", "output"),
        ("spike", "reset"),
        ("reset", "membrane"),
    ]
    extra = {"spike_test": ">", "reset": "subtract", "refractory_rho": np.array(op.rho)}
    return nir.NIRGraph(nodes=nodes, edges=edges), True, extra


def _glu(op: ops.GLU, n_in: int, dt: float) -> Any:
    import nir

    # NIR has no product. The subgraph passes the value half a through; the gate
    # gate(b) exists only in the metadata: a consumer without it computes y = a.
    half = n_in // 2
    select = np.concatenate([np.eye(half), np.zeros((half, half))], axis=1)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "value": nir.Linear(weight=select),
        "output": nir.Output(output_type={"output": np.array([half])}),
    }
    edges = [("input", "value"), ("value", "output")]
    extra = {"gate": op.gate, "lost_without_metadata": "the product with gate(b); y = a"}
    return nir.NIRGraph(nodes=nodes, edges=edges), False, extra


def _pool(op: ops.Pool, n_in: int, dt: float, per_step: bool = False) -> Any:
    import nir

    if per_step:
        # A graph imported from a NIR file: the importer put this pool (our readout
        # averages over the steps) before the file's Output, which gives a value per step.
        # Written back as that per-step Output, not as a running sum.
        return _identity(op, n_in, dt)[0], False, {"read": PER_STEP_READ}
    if op.mode == "mean":
        # An integrator with r = 1/dt: Euler gives the running sum; read at the last step
        # and divided by the number of steps, it is the mean (the division is metadata).
        node = nir.I(r=np.full(n_in, 1.0 / dt))
        return node, False, {"read": "at the last step, divided by the number of steps"}
    return _identity(op, n_in, dt)[0], False, {"read": "at the last step"}


def s4d_continuous(op: ops.S4D, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(A', B') of the continuous system whose `op.discretization` at step dt is our SSM.

    Our channel h discretizes (a, b) with its own step dt_h = exp(log_dt_h) over one step
    of unit length. Rescaling time so that one step lasts dt: A' = a dt_h / dt and
    B' = b dt_h / dt; then exp(dt A') = exp(dt_h a) (ZOH) and (1 + dt A'/2)/(1 - dt A'/2)
    is the bilinear a_bar, and the B_bar formulas of ops.S4D agree likewise.
    """
    dt_h = np.exp(op.log_dt.astype(np.float64))[:, None]
    return op.a * dt_h / dt, op.b * dt_h / dt


def s4d_euler(op: ops.S4D, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(A', B') whose forward Euler step at dt is our discretized SSM: z + dt (A' z + B' u)
    = A_bar z + B_bar u, i.e. A' = (A_bar - 1) / dt, B' = B_bar / dt (A_bar, B_bar by the
    op's own rule). Re A' < 0 because |A_bar| < 1."""
    from snncompile.ir.discretize import discretize_s4d

    ssm = discretize_s4d(op)
    return (ssm.a_bar - 1.0) / dt, ssm.b_bar / dt


def _s4d(op: ops.S4D, n_in: int, dt: float, ssm_form: str = "continuous") -> Any:
    import nir

    # The complex diagonal system as real states: for mode (h, n) at index k = h M + n,
    # z = x_re + i x_im and dz/dt = A' z + B' u become
    #   dx_re/dt = A'_re x_re - A'_im x_im + B'_re u
    #   dx_im/dt = A'_im x_re + A'_re x_im + B'_im u
    # (one 2x2 rotation block per mode). x_re and x_im are LI nodes (tau = -1/A'_re,
    # r = tau, so tau dv/dt = -v + r I is dv/dt = A'_re v + I); the rotation is two Scale
    # nodes on the cycle between them; B' is two Linear maps from the input. The output
    # y = 2 Re(sum_n C z) + D u is Linear 2 C_re from x_re, Linear -2 C_im from x_im and a
    # Scale D from the input, summed by a Scale of ones ("y") before the Output.
    h, m = op.a.shape
    a_c, b_c = s4d_continuous(op, dt) if ssm_form == "continuous" else s4d_euler(op, dt)
    rows = np.arange(h * m)
    chan = np.repeat(np.arange(h), m)

    def expand_in(values: np.ndarray) -> np.ndarray:  # (H, M) -> (H M, H)
        w = np.zeros((h * m, h))
        w[rows, chan] = values.reshape(-1)
        return w

    def expand_out(values: np.ndarray) -> np.ndarray:  # (H, M) -> (H, H M)
        w = np.zeros((h, h * m))
        w[chan, rows] = values.reshape(-1)
        return w

    tau = -1.0 / a_c.real.reshape(-1)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([h])}),
        "b_re": nir.Linear(weight=expand_in(b_c.real)),
        "b_im": nir.Linear(weight=expand_in(b_c.imag)),
        "x_re": nir.LI(tau=tau, r=tau.copy(), v_leak=_zeros(h * m)),
        "x_im": nir.LI(tau=tau.copy(), r=tau.copy(), v_leak=_zeros(h * m)),
        "rot_im_to_re": nir.Scale(scale=-a_c.imag.reshape(-1)),
        "rot_re_to_im": nir.Scale(scale=a_c.imag.reshape(-1).copy()),
        "c_re": nir.Linear(weight=expand_out(2.0 * op.c.real)),
        "c_im": nir.Linear(weight=expand_out(-2.0 * op.c.imag)),
        "d": nir.Scale(scale=np.array(op.d)),
        # The three terms are summed in a Scale by ones, not in the Output: nirtorch 2.6
        # sums fan-in into ordinary nodes but hands an Output its inputs as a tuple.
        "y": nir.Scale(scale=_ones(h)),
        "output": nir.Output(output_type={"output": np.array([h])}),
    }
    edges = [
        ("input", "b_re"),
        ("input", "b_im"),
        ("input", "d"),
        ("b_re", "x_re"),
        ("b_im", "x_im"),
        ("x_re", "rot_re_to_im"),
        ("rot_re_to_im", "x_im"),
        ("x_im", "rot_im_to_re"),
        ("rot_im_to_re", "x_re"),
        ("x_re", "c_re"),
        ("x_im", "c_im"),
        ("c_re", "y"),
        ("c_im", "y"),
        ("d", "y"),
        ("y", "output"),
    ]
    extra = {
        "discretization": op.discretization,
        "ssm_form": ssm_form,
        "state_layout": "x_re, x_im: index h * M + n for channel h, mode n",
    }
    if ssm_form == "continuous":
        extra["lost_without_metadata"] = (
            "the discretization rule: a consumer integrating with forward Euler at dt gets "
            "A_bar = 1 + dt_h a instead of the rule's"
        )
    else:
        extra["semantics_euler"] = (
            "A' = (A_bar - 1)/dt, B' = B_bar/dt: forward Euler at dt is our SSM; the "
            "continuous system this was trained as is in the metadata arrays"
        )
    return nir.NIRGraph(nodes=nodes, edges=edges), True, extra


_ENCODERS: dict[type[ops.Op], Callable[..., Any]] = {
    ops.Input: _input,
    ops.Output: _output,
    ops.Linear: _linear,
    ops.BatchNorm: _batchnorm,
    ops.ChannelAffine: _channel_affine,
    ops.Dropout: _identity,
    ops.Identity: _identity,
    ops.Add: _add,
    ops.Heaviside: _heaviside,
    ops.LIF: _lif,
    ops.ResetRefractory: _reset_refractory,
    ops.GLU: _glu,
    ops.Pool: _pool,
    ops.S4D: _s4d,
    SparseLinear: encode_sparse_linear,
    EulerNeuron: encode_euler_neuron,
    Feedback: encode_feedback,
}

# Who takes what the NIR encoding cannot (for the UnsupportedError message).
_TAKEN_ELSEWHERE = {
    "ssm": "the reference, lava and loihi2 targets (a discrete SSM; export the traced "
    "graph, whose S4D keeps the continuous A, B and dt NIR needs)",
    "activation": "no spiking target; `onnx --float` only",
    "opaque": "no spiking target; `onnx --float` only (the IR keeps it by name only)",
}


def _taken_elsewhere(kind: str) -> str:
    """Which other targets take an op kind: a note where one helps, else the registry."""
    if kind in _TAKEN_ELSEWHERE:
        return _TAKEN_ELSEWHERE[kind]
    from snncompile.support import targets_taking

    others = [label for label in targets_taking(kind) if label != "nir" and "--" not in label]
    return ", ".join(others) or "none"


def supported_ops() -> list[str]:
    return sorted(cls.kind for cls in _ENCODERS)


def check_exportable(graph: Graph) -> None:
    """UnsupportedError (exit 4), one line naming every node NIR cannot take (or that
    nothing reads)."""
    bad = [node for node in graph if type(node.op) not in _ENCODERS]
    if not bad:
        neurons = [
            f"{node.name} ({problem})"
            for node in graph
            if isinstance(node.op, EulerNeuron)
            and (problem := euler_neuron_problem(node.op)) is not None
        ]
        if neurons:
            raise UnsupportedError(
                f"no NIR neuron computes the euler_neuron node(s) {'; '.join(neurons)}"
            )
        input_lags(graph)
        # nir's type check gives every node without an outgoing edge an Output of its own:
        # the file would have two, which no NIR reader of ours takes (export's read-back
        # called it corrupt, exit 6). Only an import makes such a node: a neuron that feeds
        # nothing but itself through a recurrent edge.
        read = {src for src, _ in graph_edges(graph)}
        unread = [n.name for n in graph if n.name not in read and not isinstance(n.op, ops.Output)]
        if unread:
            raise UnsupportedError(
                f"no NIR encoding for {', '.join(unread)}: no node reads its output (in the "
                "NIR file it feeds only itself), and a NIR graph has one Output; remove it "
                "from the file to export it"
            )
        return
    kinds = sorted({node.op.kind for node in bad})
    where = "; ".join(f"{kind}: {_taken_elsewhere(kind)}" for kind in kinds)
    names = ", ".join(
        f"{node.name} ({' '.join(filter(None, (node.op.kind, node.op.detail())))})" for node in bad
    )
    raise UnsupportedError(
        f"no NIR encoding for {names}; the nir target takes "
        f"{', '.join(supported_ops())}; targets that take them: {where}"
    )


def encode_node(
    node: Node,
    n_in: int,
    dt: float,
    extra: dict[str, Any] | None = None,
    ssm_form: str = "continuous",
    *,
    lag: int = 0,
    per_step_pool: bool = False,
) -> Any:
    """One Graph node as a NIR node (or NIRGraph) with its snncompile metadata. lag: the
    steps its (euler_neuron) reader delays it by (input_lags); per_step_pool: a pool
    becomes the per-step Output of the NIR file the graph was imported from."""
    encoder = _ENCODERS.get(type(node.op))
    if encoder is None:
        raise UnsupportedError(f"no NIR encoding for {node.name} ({node.op.kind})")
    if isinstance(node.op, ops.S4D):
        nir_node, store_arrays, more = _s4d(node.op, n_in, dt, ssm_form)
    elif isinstance(node.op, SparseLinear):
        nir_node, store_arrays, more = encode_sparse_linear(node.op, n_in, dt, lag)
    elif isinstance(node.op, ops.Pool):
        nir_node, store_arrays, more = _pool(node.op, n_in, dt, per_step_pool)
    else:
        nir_node, store_arrays, more = encoder(node.op, n_in, dt)
    if len(set(node.inputs)) < len(node.inputs):
        # NIR edges are a set: an input read twice is one edge, summed once.
        more = {**more, "lost_without_metadata": "an input read more than once counts once"}
    nir_node.metadata = _node_meta(node, store_arrays=store_arrays, extra={**more, **(extra or {})})
    return nir_node


def encode_graph(
    graph: Graph,
    *,
    dt_s: float | None = None,
    node_extra: dict[str, dict[str, Any]] | None = None,
    graph_extra: dict[str, Any] | None = None,
    ssm_form: str = "continuous",
) -> Any:
    """`graph` as a nir.NIRGraph (type-checked). dt_s: the step duration stated in the
    file (default: graph.dt_s, else DEFAULT_DT_S); node_extra/graph_extra: more metadata
    (e.g. quantization scales) by node name / for the graph; ssm_form: see SSM_FORMS."""
    import nir

    if ssm_form not in SSM_FORMS:
        raise UsageError(f"unknown NIR SSM form {ssm_form!r}; forms: {', '.join(SSM_FORMS)}")
    check_exportable(graph)
    dt = float(dt_s if dt_s is not None else (graph.dt_s or DEFAULT_DT_S))
    if not (math.isfinite(dt) and dt > 0):
        raise UnsupportedError(f"NIR dt must be a positive number of seconds, got {dt}")
    names: dict[str, str] = {}
    for node in graph:
        name = nir_name(node.name)
        if name in names.values():
            raise UnsupportedError(f"node names {node.name!r} and another both map to {name!r}")
        names[node.name] = name
    nodes: dict[str, Any] = {}
    lags, per_step = input_lags(graph), imported_from_nir(graph)
    for node in graph:
        n_in = graph.size(node.inputs[0]) if node.inputs else 0
        extra = (node_extra or {}).get(node.name)
        nodes[names[node.name]] = encode_node(
            node, n_in, dt, extra, ssm_form, lag=lags.get(node.name, 0), per_step_pool=per_step
        )
    edges = [(names[src], names[dst]) for src, dst in graph_edges(graph)]
    metadata = {
        "snncompile_format": FORMAT,
        "snncompile_version": VERSION,
        "snncompile_dt_s": dt,
        "snncompile_ssm_form": ssm_form,
        "snncompile_graph_dt_s": json.dumps(graph.dt_s),
        "snncompile_graph_meta": json.dumps(graph.meta, default=_json_default),
        "snncompile_node_order": json.dumps([node.name for node in graph]),
        "snncompile_integration": "forward Euler at snncompile_dt_s reproduces every "
        "node exactly except those whose metadata says lost_without_metadata",
        **(graph_extra or {}),
    }
    nir_graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    if any(isinstance(node.op, Feedback) for node in graph):
        check_loops(graph, nir_graph, names)
    return nir_graph


def graph_edges(graph: Graph) -> list[tuple[str, str]]:
    """The NIR edges of a Graph: one per distinct input of each node (NIR edges are a
    set), and source -> node for a feedback node (the edge that closes its loop). With
    feedback nodes, in the order that makes a depth-first search reach each loop's
    neuron before the node that feeds it back (loop_first)."""
    edges = []
    closing = []
    for node in graph:
        if isinstance(node.op, Feedback):
            closing.append((node.op.source, node.name))
            edges.append(closing[-1])
        for src in dict.fromkeys(node.inputs):  # an input read twice is one NIR edge
            edges.append((src, node.name))
    return loop_first(graph, edges, closing) if closing else edges


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise UnsupportedError(f"graph metadata holds a {type(value).__name__}; cannot write it")


# -- reading back --------------------------------------------------------------------------


def is_ours(nir_graph: Any) -> bool:
    meta = getattr(nir_graph, "metadata", None)
    return isinstance(meta, dict) and _text(meta.get("snncompile_format")) == FORMAT


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SO":
        return _text(value.item())
    return value


def _array(value: Any, where: str) -> Any:
    if isinstance(value, dict) and set(value) == {"data", "indices", "indptr", "shape"}:
        data, indices, indptr = (
            _array(value[k], f"{where}.{k}") for k in ("data", "indices", "indptr")
        )
        shape = _array(value["shape"], f"{where}.shape")
        if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu" or shape.shape != (2,):
            raise CorruptInputError(f"{where}: not a sparse matrix")
        try:
            matrix = sparse.csr_matrix((data, indices, indptr), shape=tuple(int(n) for n in shape))
            matrix.check_format(full_check=True)
        except (ValueError, TypeError) as exc:
            raise CorruptInputError(f"{where}: invalid sparse matrix ({exc})") from None
        return matrix
    if isinstance(value, dict) and set(value) == {"real", "imag"}:
        real, imag = _array(value["real"], where), _array(value["imag"], where)
        if real.shape != imag.shape:
            raise CorruptInputError(f"{where}: real and imaginary parts differ in shape")
        out = np.empty(real.shape, np.complex128)
        out.real, out.imag = real, imag  # assigned: keeps the sign of a zero imaginary part
        return out
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise CorruptInputError(f"{where}: not a numeric array")
    return np.array(value)


def _json(meta: dict[str, Any], key: str, where: str) -> Any:
    try:
        return parse_json(_text(meta[key]))
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CorruptInputError(f"{where}: metadata {key!r} is missing or not JSON") from None


def _decode_node(nir_node: Any, where: str) -> Node:
    node_meta = getattr(nir_node, "metadata", None)
    meta = node_meta.get(META) if isinstance(node_meta, dict) else None
    if not isinstance(meta, dict):
        raise CorruptInputError(f"{where}: no {META!r} metadata")
    kind = _text(meta.get("op"))
    cls = ops.OPS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise CorruptInputError(f"{where}: unknown op {kind!r}")
    attrs = _json(meta, "attrs", where)
    inputs = _json(meta, "inputs", where)
    name = _text(meta.get("name"))
    if not isinstance(attrs, dict) or not isinstance(inputs, list) or not isinstance(name, str):
        raise CorruptInputError(f"{where}: malformed snncompile metadata")
    if cls is ops.Linear:
        arrays = {"weight": _array(nir_node.weight, where), "bias": _array(nir_node.bias, where)}
    else:
        stored = meta.get("arrays", {})
        if not isinstance(stored, dict):
            raise CorruptInputError(f"{where}: metadata arrays are not a group")
        arrays = {k: _array(v, f"{where}.{k}") for k, v in stored.items()}
    try:
        op = cls(**attrs, **arrays)
    except TypeError as exc:
        raise CorruptInputError(
            f"{where}: op {kind!r} does not take these fields ({exc})"
        ) from None
    return Node(name, op, tuple(str(i) for i in inputs))


def decode_graph(nir_graph: Any) -> Graph:
    """The Graph a snncompile-written NIR graph holds (CorruptInputError if it is damaged
    or its NIR parameters no longer match the metadata they were computed from)."""
    from snncompile.ir.ops import InvalidGraphError

    meta = nir_graph.metadata
    version = meta.get("snncompile_version")
    if not isinstance(version, (int, np.integer)) or int(version) != VERSION:
        raise CorruptInputError(
            f"{FORMAT} version {version!r} is not supported (this snncompile reads {VERSION})"
        )
    try:
        dt = float(np.asarray(meta["snncompile_dt_s"]))
    except (KeyError, TypeError, ValueError):
        dt = math.nan
    if not (math.isfinite(dt) and dt > 0):
        raise CorruptInputError("graph metadata snncompile_dt_s is missing or not positive")
    order = _json(meta, "snncompile_node_order", "graph")
    graph_dt = _json(meta, "snncompile_graph_dt_s", "graph")
    graph_meta = _json(meta, "snncompile_graph_meta", "graph")
    if not isinstance(order, list) or not isinstance(graph_meta, dict):
        raise CorruptInputError("graph: malformed snncompile metadata")
    if graph_dt is not None and not (
        isinstance(graph_dt, (int, float))
        and not isinstance(graph_dt, bool)
        and math.isfinite(graph_dt)
        and graph_dt > 0
    ):
        raise CorruptInputError(f"graph: snncompile_graph_dt_s {graph_dt!r} is not a positive dt")
    by_name = {nir_name(name): name for name in order}
    if set(by_name) != set(nir_graph.nodes) or len(by_name) != len(order):
        raise CorruptInputError("the NIR nodes are not the nodes the snncompile metadata lists")
    nodes = [_decode_node(nir_graph.nodes[nir_name(name)], nir_name(name)) for name in order]
    try:
        graph = Graph(tuple(nodes), dt_s=graph_dt, meta=graph_meta)
    except InvalidGraphError as exc:
        raise CorruptInputError(f"the graph in the snncompile metadata is invalid: {exc}") from None
    _check_consistent(graph, nir_graph, dt)
    return graph


def _check_consistent(graph: Graph, nir_graph: Any, dt: float) -> None:
    """Re-encode and compare: edges, node types and every NIR parameter, bit for bit."""
    expected = {(nir_name(src), nir_name(dst)) for src, dst in graph_edges(graph)}
    if {(a, b) for a, b in nir_graph.edges} != expected:
        raise CorruptInputError("the NIR edges do not match the snncompile metadata")
    try:
        lags = input_lags(graph)
    except UnsupportedError as exc:
        raise CorruptInputError(f"the graph in the snncompile metadata: {exc}") from None
    per_step = imported_from_nir(graph)
    for node in graph:
        n_in = graph.size(node.inputs[0]) if node.inputs else 0
        stored = nir_graph.nodes[nir_name(node.name)]
        form = _text(getattr(stored, "metadata", {}).get(META, {}).get("ssm_form", "continuous"))
        if form not in SSM_FORMS:
            raise CorruptInputError(f"NIR node {nir_name(node.name)!r}: unknown ssm_form {form!r}")
        with np.errstate(all="ignore"), _edited(nir_name(node.name)):  # compared below
            fresh = encode_node(
                node, n_in, dt, ssm_form=form, lag=lags.get(node.name, 0), per_step_pool=per_step
            )
        problem = _differs(fresh, stored)
        if problem:
            raise CorruptInputError(
                f"NIR node {nir_name(node.name)!r} ({problem}) no longer matches its snncompile "
                "metadata: the file was edited after it was exported"
            )


@contextmanager
def _edited(name: str) -> Iterator[None]:
    """An op from a file's metadata that has no NIR encoding (a decay edited to 1.5): the
    file was edited (exit 6), not a model we cannot export."""
    try:
        yield
    except UnsupportedError as exc:
        raise CorruptInputError(f"NIR node {name!r}: {exc}") from None


def _differs(fresh: Any, stored: Any) -> str | None:
    import nir

    if type(fresh) is not type(stored):
        return f"type {type(stored).__name__}, expected {type(fresh).__name__}"
    if isinstance(fresh, nir.NIRGraph):
        if set(fresh.nodes) != set(stored.nodes) or {tuple(e) for e in fresh.edges} != {
            tuple(e) for e in stored.edges
        }:
            return "subgraph structure"
        for key, sub in fresh.nodes.items():
            problem = _differs(sub, stored.nodes[key])
            if problem:
                return f"{key}: {problem}"
        return None
    for key, value in vars(fresh).items():
        if key in ("metadata", "input_type", "output_type") or not isinstance(value, np.ndarray):
            continue
        other = getattr(stored, key, None)
        if not isinstance(other, np.ndarray) or other.shape != value.shape:
            return f"{key} shape"
        if other.dtype != value.dtype or not rederived_equal(value, other):
            return f"{key} values"
    return None


# A parameter derived again on another CPU must not look like an edit: numpy's exp
# differs in the last bit for 24% of inputs with and without AVX-512 (measured here, at
# most 2.2e-16 relative), and a file exported on one machine is read on others. An edit
# is far larger than this tolerance.
REDERIVED_RTOL = 1e-9


def rederived_equal(fresh: np.ndarray, stored: np.ndarray) -> bool:
    """Whether stored holds what fresh re-derives: integers and bools exactly, floats to
    within REDERIVED_RTOL of each value (plus a 1e-3 share of the array's largest, for
    values that cancel to near zero)."""
    if fresh.shape != stored.shape:
        return False
    if fresh.dtype.kind not in "fc" or stored.dtype.kind not in "fc":
        return bool(np.array_equal(fresh, stored))
    with np.errstate(all="ignore"):
        scale = float(np.max(np.abs(fresh), initial=0.0))
        bound = REDERIVED_RTOL * (np.abs(fresh) + 1e-3 * scale)
        return bool(np.all((fresh == stored) | (np.abs(fresh - stored) <= bound)))  # inf too


def graph_difference(a: Graph, b: Graph, *, rederived: bool = False) -> str | None:
    """None if the graphs are equal (names, inputs, op kinds, attributes, every array bit
    for bit and of the same dtype, dt_s, meta); else the first difference, in words.
    rederived: b was computed again from a file, maybe on another CPU: its float arrays
    need only be rederived_equal to a's."""
    if a.dt_s != b.dt_s:
        return f"dt_s {a.dt_s} != {b.dt_s}"
    if a.meta != b.meta:
        return "graph meta differs"
    if len(a) != len(b):
        return f"{len(a)} nodes != {len(b)} nodes"
    for x, y in zip(a, b, strict=True):
        if (x.name, x.inputs, x.op.kind) != (y.name, y.inputs, y.op.kind):
            return (
                f"node {x.name!r} ({x.op.kind}, {x.inputs}) != {y.name!r} ({y.op.kind}, {y.inputs})"
            )
        if x.op.attributes() != y.op.attributes():  # the passes copy float attributes
            return f"node {x.name!r}: attributes differ"
        xa, ya = x.op.arrays(), y.op.arrays()
        if xa.keys() != ya.keys():
            return f"node {x.name!r}: array names differ"
        for key, value in xa.items():
            other = ya[key]
            if sparse.issparse(value) or sparse.issparse(other):
                if not _same_sparse(value, other, rederived):
                    return f"node {x.name!r}: {key} differs"
                continue
            if value.dtype != other.dtype or value.shape != other.shape:
                return f"node {x.name!r}: {key} dtype/shape differ"
            if rederived:
                same = rederived_equal(other, value)
            else:  # the bytes: array_equal would call -0.0 == 0.0 and miss a sign flip
                same = value.tobytes() == other.tobytes()
            if not same:
                return f"node {x.name!r}: {key} differs"
    return None


def _same_sparse(a: Any, b: Any, rederived: bool) -> bool:
    """Two CSR matrices hold the same entries in the same places: data as
    graph_difference compares arrays, indices and indptr by value (their integer width
    is scipy's choice)."""
    if not (sparse.issparse(a) and sparse.issparse(b)) or a.shape != b.shape:
        return False
    a, b = a.tocsr(), b.tocsr()
    if not (np.array_equal(a.indices, b.indices) and np.array_equal(a.indptr, b.indptr)):
        return False
    if a.data.dtype != b.data.dtype or a.data.shape != b.data.shape:
        return False
    if rederived:
        return rederived_equal(b.data, a.data)
    return a.data.tobytes() == b.data.tobytes()
