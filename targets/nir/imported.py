"""NIR encoding of the ops only a NIR import makes (sparse_linear, euler_neuron,
feedback): each becomes the plain NIR node whose forward Euler step at the file's dt
computes it, and the graph's edges are ordered so that a reader closes each loop where
the graph's feedback node delays it (docs/nir.md, "Export to NIR again")."""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.errors import UnsupportedError
from snncompile.ir.graph import Graph, reachable
from snncompile.ir.nir_ops import EulerNeuron, Feedback, SparseLinear

# -- ops of a graph imported from another framework's NIR file ----------------------------
#
# The importer (snncompile.frontend.nir_import) discretizes every NIR neuron at dt and
# composes the linear nodes between two neurons into one sparse matrix. Written back, each
# becomes the plain NIR node whose forward Euler step at dt is that op again (up to float
# rounding: the parameters are derived from the op's, e.g. tau = dt / (1 - alpha)), so a
# NIR consumer, and our own NIR simulator (frontend/nir_sim.py), computes what the
# imported graph computes; the exact op is in the metadata for our own re-import.


def encode_sparse_linear(op: SparseLinear, n_in: int, dt: float, lag: int = 0) -> Any:
    import nir

    # The dense weight: NIR has no sparse node and the convolutions the matrix was
    # composed of are not kept. Exact (the same values, zeros written out).
    affine = nir.Affine(weight=op.weight.toarray(), bias=np.array(op.bias))
    if not lag:
        return affine, True, {}
    # The neuron reads this node `lag` steps late (a Delay of the original file): a NIR
    # Delay of lag dt after the Affine. Its value at rest is the Affine's bias, as the
    # op's (x is 0 before step 0).
    size = op.weight.shape[0]
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "affine": affine,
        "delay": nir.Delay(delay=np.full(size, lag * dt)),
        "output": nir.Output(output_type={"output": np.array([size])}),
    }
    edges = [("input", "affine"), ("affine", "delay"), ("delay", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), True, {"lag_steps": lag}


def euler_neuron_problem(op: EulerNeuron) -> str | None:
    """Why no plain NIR neuron computes `op` (None if one does): NIR's time constants
    are positive and finite, so each decay must lie in [0, 1), or be exactly 1 (no leak:
    IF, I, which have no v_leak) for every neuron of the node."""
    au, av = op.alpha_u, op.alpha_v
    if np.any((au < 0) | (au >= 1)):
        return "a current decay alpha_u outside [0, 1)"
    if np.any((av < 0) | (av > 1)):
        return "a voltage decay alpha_v outside [0, 1]"
    if np.any(av == 1) and not np.all(av == 1):
        return "leaky and non-leaky neurons in one node (alpha_v 1 and below 1)"
    if np.all(av == 1) and np.any(au != 0):
        return "a current feeding a non-leaky voltage (alpha_v 1)"
    if np.all(av == 1) and np.any(op.v_bias != 0):
        return "a constant input v_bias on a non-leaky voltage (NIR's I and IF have no v_leak)"
    return None


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray(), dtype=np.float64)


def encode_euler_neuron(op: EulerNeuron, n_in: int, dt: float) -> Any:
    import nir

    # u_t = alpha_u u + x_t and v_t = alpha_v v + u_t + v_bias are NIR's Euler steps
    # I += dt/tau_syn (w_in x - I) and v += dt/tau_mem (v_leak - v + r I) with
    # tau_syn = dt / (1 - alpha_u), w_in = 1 / (1 - alpha_u), tau_mem = dt / (1 - alpha_v),
    # r = 1 / (1 - alpha_v), v_leak = v_bias / (1 - alpha_v); without a current (alpha_u 0
    # everywhere) the LIF/LI form; without a leak (alpha_v 1) IF/I with r = 1/dt.
    problem = euler_neuron_problem(op)
    if problem is not None:
        raise UnsupportedError(f"no NIR neuron computes an euler_neuron with {problem}")
    size = op.theta.size
    cuba = bool(np.any(op.alpha_u != 0))
    leaky = bool(np.all(op.alpha_v < 1))
    with np.errstate(divide="ignore", invalid="ignore"):  # alpha_v 1: IF and I, not these
        tau_mem = dt / (1.0 - op.alpha_v)
        r = 1.0 / (1.0 - op.alpha_v)
        v_leak = op.v_bias / (1.0 - op.alpha_v)
    tau_syn = dt / (1.0 - op.alpha_u)
    w_in = 1.0 / (1.0 - op.alpha_u)
    theta, zero = np.array(op.theta), np.zeros(size)
    subtract = op.reset in ("subtract", "subtract-delayed")
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    if subtract:
        # NIR neurons reset to a constant. As for reset_refractory: a membrane that never
        # resets (LI, or I without a leak), a Threshold, and the spike fed back one step
        # late (NIR's recurrent edge) through a Scale into the membrane: k s_{t-1} with
        # k = -alpha_v theta (subtract: v_t = m_t - theta s_t, so m_{t+1} = alpha_v m_t
        # - alpha_v theta s_t + ...) or k = -theta (snnTorch's subtract-delayed). A current
        # is a LI of its own before the membrane, so that the reset enters v, not I.
        if cuba:
            nodes["current"] = nir.LI(tau=tau_syn, r=w_in, v_leak=np.zeros(size))
            edges.append(("current", "membrane"))
        if leaky:
            nodes["membrane"] = nir.LI(tau=tau_mem, r=r, v_leak=v_leak)
        else:
            nodes["membrane"] = nir.I(r=np.full(size, 1.0 / dt))
        k = -op.alpha_v * theta if op.reset == "subtract" else -theta
        nodes["spike"] = nir.Threshold(threshold=theta)
        nodes["reset"] = nir.Scale(scale=k)
        edges += [("membrane", "spike"), ("spike", "reset"), ("reset", "membrane")]
        entry, out = ("current" if cuba else "membrane"), "spike"
    else:
        spiking = op.reset == "zero"
        if cuba:
            fields = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in)
            neuron = (
                nir.CubaLIF(**fields, v_threshold=theta, v_reset=zero)
                if spiking
                else nir.CubaLI(**fields)
            )
        elif leaky:
            fields = dict(tau=tau_mem, r=r, v_leak=v_leak)
            neuron = (
                nir.LIF(**fields, v_threshold=theta, v_reset=zero) if spiking else nir.LI(**fields)
            )
        else:
            rate = np.full(size, 1.0 / dt)
            neuron = nir.IF(r=rate, v_threshold=theta, v_reset=zero) if spiking else nir.I(r=rate)
        nodes["neuron"] = neuron
        entry = out = "neuron"
    recurrent = op.rec_weight.count_nonzero() > 0
    extra = {"spike_test": ">", "reset": op.reset}
    if not recurrent and not subtract:
        return nodes["neuron"], True, extra
    if recurrent:
        # y -> R -> the neuron's input: NIR's recurrent edge is the first step of rec_lag,
        # a Delay the rest.
        nodes["recurrent"] = nir.Linear(weight=_dense(op.rec_weight))
        edges.append((out, "recurrent"))
        if op.rec_lag > 1:
            nodes["recurrent_delay"] = nir.Delay(delay=np.full(size, (op.rec_lag - 1) * dt))
            edges += [("recurrent", "recurrent_delay"), ("recurrent_delay", entry)]
        else:
            edges.append(("recurrent", entry))
    nodes["input"] = nir.Input(input_type={"input": np.array([size])})
    nodes["output"] = nir.Output(output_type={"output": np.array([size])})
    edges = [("input", entry), *edges, (out, "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), True, extra


def encode_feedback(op: Feedback, n_in: int, dt: float) -> Any:
    import nir

    # The edge source -> this node closes a loop, so NIR's convention (the edge closing a
    # cycle carries the previous step) gives the first step of the lag; a Delay the rest.
    # encode_graph checks that the NIR graph's cycles close here (check_loops).
    if op.lag == 1:
        node = nir.Scale(scale=np.ones(op.size))
    else:
        node = nir.Delay(delay=np.full(op.size, (op.lag - 1) * dt))
    return node, False, {"carries": f"the output of {op.source} {op.lag} step(s) late"}


def imported_from_nir(graph: Graph) -> bool:
    """Whether the graph is a NIR import's (its Output values are per step in the file)."""
    return graph.meta.get("source") == "nir"


def input_lags(graph: Graph) -> dict[str, int]:
    """sparse_linear node -> the lag (>= 1) the euler_neuron it feeds reads it with.
    UnsupportedError where a lag sits on an input that is no sparse_linear node read by
    that neuron alone (the importer makes none such): its NIR Delay has no node to go in."""
    readers: dict[str, list[tuple[str, int]]] = {}
    for node in graph:
        lags = node.op.lags if isinstance(node.op, EulerNeuron) else [0] * len(node.inputs)
        for src, lag in zip(node.inputs, lags, strict=True):
            readers.setdefault(src, []).append((node.name, int(lag)))
    out: dict[str, int] = {}
    for src, reads in readers.items():
        lagged = [lag for _, lag in reads if lag]
        if not lagged:
            continue
        if len(reads) > 1 or not isinstance(graph.node(src).op, SparseLinear):
            raise UnsupportedError(
                f"no NIR encoding for {src!r} read {lagged[0]} step(s) late by "
                f"{reads[0][0]!r}: a lag is written as a NIR Delay inside the sparse_linear "
                "node that feeds one neuron alone"
            )
        out[src] = lagged[0]
    return out


def loop_first(
    graph: Graph, edges: list[tuple[str, str]], closing: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """`edges` ordered so that a node's successors leading to an earlier loop target
    (a neuron that reads a feedback node) come first. A reader's depth-first search
    from the Input follows a node's edges in file order; taking the way to the neuron a
    loop returns to before the way to the node that feeds it back puts that neuron on
    the search's stack when the feedback edge is met, so the cycle closes there, where
    the graph delays it (check_loops verifies; graph order alone did not, for an input
    reaching the feeding node by a path that avoids the target)."""
    position = {node.name: i for i, node in enumerate(graph)}
    path = {fb for _, fb in closing}  # the feedback nodes and the nodes reading them
    path |= {dst for src, dst in edges if src in path}
    targets = {
        dst for src, dst in edges if src in path and isinstance(graph.node(dst).op, EulerNeuron)
    }
    forward = [e for e in edges if e not in closing]
    first = {
        name: min((position[t] for t in reachable(forward, name) & targets), default=len(graph))
        for name in position
    }
    return sorted(edges, key=lambda e: first[e[1]])


def check_loops(graph: Graph, nir_graph: Any, names: dict[str, str]) -> None:
    """UnsupportedError unless the NIR graph's cycles close where the Graph's feedback
    nodes are. NIR does not mark recurrent edges: a reader (nir_sim, the importer,
    nirtorch) takes the edge that closes a cycle in its depth-first search from the Input
    to carry the previous step. So each feedback node's path (the node, the sparse_linear
    nodes reading it) must end in exactly one such edge, and no other edge may be one
    but those inside a neuron's own subgraph (its reset and self-recurrence), or the
    file's one-step delay would sit elsewhere in the loop."""
    from snncompile.frontend.nir_graph import FlatNir, forward_order

    from .plain import flatten

    flat_nodes, flat_edges = flatten(nir_graph)
    start, end = names[graph.input.name], names[graph.output.name]
    _, back = forward_order(FlatNir(flat_nodes, flat_edges, set(), start, end))
    owner: dict[str, str] = {}  # a NIR node of a feedback's path -> the feedback node
    for node in graph:
        if isinstance(node.op, Feedback):
            owner[names[node.name]] = node.name
    for node in graph:
        if isinstance(node.op, SparseLinear) and names.get(node.inputs[0], "") in owner:
            owner[names[node.name]] = owner[names[node.inputs[0]]]
    neurons = {names[n.name] for n in graph if isinstance(n.op, EulerNeuron)}
    closed = dict.fromkeys(sorted({name for name in owner.values()}), 0)
    for src, dst in sorted(back):
        a, b = src.split("/")[0], dst.split("/")[0]
        if a == b and a in neurons:
            continue
        if a in owner and b not in owner:
            closed[owner[a]] += 1
            continue
        closed[f"edge {src} -> {dst}"] = 0
    wrong = [name for name, count in closed.items() if count != 1]
    reached = reachable([(a.split("/")[0], b.split("/")[0]) for a, b in flat_edges], start)
    unreached = sorted(n.name for n in graph if isinstance(n.op, EulerNeuron)
                       and names[n.name] not in reached)  # fmt: skip
    if wrong and unreached:
        # The search from the Input never enters such a loop: where it closes is left to
        # each reader's order of visiting the rest (the reference, onnx, lava take it).
        raise UnsupportedError(
            f"no NIR encoding for a loop the Input does not reach (through "
            f"{', '.join(unreached)}): NIR readers delay the edge that closes a cycle in a "
            "depth-first search from the Input, which never enters it"
        )
    if wrong:
        raise UnsupportedError(
            f"no NIR encoding for the loop(s) through {', '.join(wrong)}: NIR's recurrent "
            "edge (the one closing a cycle in a depth-first search from the Input) would "
            "not fall where the graph's feedback node delays it"
        )
