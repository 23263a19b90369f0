"""What a NIR consumer that ignores snncompile's metadata computes: a small float64
simulator of standard NIR 1.0.8 nodes, integrated with forward Euler at a given dt.

    y = run_plain(nir_graph, x, dt)      # x (B, L, n_in) -> (B, L, n_out)

It reads NIR parameters only, never metadata, and follows the conventions other
frameworks use (FACTS.md): each neuron's ODE advances by one Euler step per time step
with the input of that step; the edges into a node are summed; in a cycle (a recurrent
connection) the edges into its neurons/integrators carry the previous step's value, so
every state in the loop advances from the previous step's states (forward Euler), as
nirtorch 2.6's graph executor does.
Nested NIRGraph nodes are flattened: edges into one enter its Input, edges out leave its
Output. Used to measure what is lost without metadata (docs/targets.md, "## nir").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.errors import UnsupportedError
from snncompile.ir.graph import reachable


def flatten(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(nodes by path "sub/node", edges) of a NIR graph with its subgraphs inlined: edges
    into a subgraph enter its Input, edges out leave its Output."""
    import nir

    nodes: dict[str, Any] = {}
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        flat = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten(node, flat + "/")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            (inp,) = [k for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            (out,) = [k for k, n in node.nodes.items() if isinstance(n, nir.Output)]
            entry[flat], exit_[flat] = f"{flat}/{inp}", f"{flat}/{out}"
        else:
            nodes[flat] = node
            entry[flat] = exit_[flat] = flat
    for src, dst in graph.edges:
        edges.append((exit_[prefix + src], entry[prefix + dst]))
    return nodes, edges


_STATEFUL = ("I", "LI", "IF", "LIF", "CubaLI", "CubaLIF")


def _order(
    nodes: dict[str, Any], edges: list[tuple[str, str]], start: str
) -> tuple[list[str], set[tuple[str, str]]]:
    """(topological order of the nodes reachable from `start`, the delayed edges).

    An edge is delayed when it lies on a cycle (its destination reaches its source) and
    its destination is a neuron or integrator: that node's Euler step then uses the
    previous step's value of the loop, which is forward Euler for the loop's states.
    nirtorch 2.6's executor does the same on our subgraphs (tests/test_nir_export.py).
    """
    reach = {name: reachable(edges, name) for name in nodes}
    delayed = {
        (src, dst)
        for src, dst in edges
        if src in reach[dst] and type(nodes[dst]).__name__ in _STATEFUL
    }
    live = [e for e in edges if e not in delayed]
    wanted = reachable(live, start) | {start}
    indegree = {name: 0 for name in wanted}
    for src, dst in live:
        if src in wanted and dst in wanted:
            indegree[dst] += 1
    order, ready = [], [name for name in wanted if indegree[name] == 0]
    while ready:
        name = ready.pop()
        order.append(name)
        for src, dst in live:
            if src == name and dst in indegree:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    ready.append(dst)
    if len(order) != len(wanted):
        raise UnsupportedError("the NIR graph has a loop through no neuron (an algebraic loop)")
    return order, delayed


def _step(node: Any, x: np.ndarray, state: dict[str, np.ndarray], dt: float) -> np.ndarray:
    import nir

    if isinstance(node, (nir.Input, nir.Output)):
        return x
    if isinstance(node, nir.Affine):
        return x @ node.weight.T + node.bias
    if isinstance(node, nir.Linear):
        return x @ node.weight.T
    if isinstance(node, nir.Scale):
        return x * node.scale
    if isinstance(node, nir.Threshold):
        return (x > node.threshold).astype(np.float64)
    v = state.get("v", np.zeros_like(x))
    if isinstance(node, nir.I):
        v = v + dt * node.r * x
        state["v"] = v
        return v
    if isinstance(node, nir.IF):
        v = v + dt * node.r * x
    elif isinstance(node, (nir.LI, nir.LIF)):
        v = v + dt / node.tau * (node.v_leak - v + node.r * x)
        if isinstance(node, nir.LI):
            state["v"] = v
            return v
    else:
        raise UnsupportedError(f"the plain NIR simulator has no {type(node).__name__} node")
    spikes = v > node.v_threshold
    state["v"] = np.where(spikes, node.v_reset, v)
    return spikes.astype(np.float64)


def run_plain(
    nir_graph: Any, x: np.ndarray, dt: float, traces: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Run `nir_graph` (one Input, one Output) on x (B, L, n_in); returns (B, L, n_out).

    traces, if a dict, receives every flattened node's output by its path ("a/b")."""
    import nir

    nodes, edges = flatten(nir_graph)
    inputs = [k for k, n in nir_graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nir_graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedError("the plain NIR simulator takes one Input and one Output node")
    order, back = _order(nodes, edges, inputs[0])  # back: the delayed edges
    if outputs[0] not in order:
        raise UnsupportedError("the Output is not reachable from the Input")
    incoming: dict[str, list[tuple[str, bool]]] = {name: [] for name in order}
    for src, dst in edges:
        if src in incoming and dst in incoming:
            incoming[dst].append((src, (src, dst) in back))
    x = np.asarray(x, dtype=np.float64)
    batch, length, _ = x.shape
    states: dict[str, dict[str, np.ndarray]] = {name: {} for name in order}
    previous: dict[str, np.ndarray] = {}
    record: dict[str, list[np.ndarray]] = {name: [] for name in order}
    for t in range(length):
        now: dict[str, np.ndarray] = {}
        for name in order:
            if name == inputs[0]:
                total = x[:, t]
            else:
                total = None
                for src, delayed in incoming[name]:
                    if delayed:
                        value = previous.get(src)
                        if value is None:  # before the first step a recurrent edge carries 0
                            continue
                    else:
                        value = now[src]
                    total = value if total is None else total + value
                if total is None:
                    total = np.zeros((batch, _width_in(nodes[name])))
            now[name] = _step(nodes[name], total, states[name], dt)
            record[name].append(now[name])
        previous = now
    if traces is not None:
        traces.update({name: np.stack(values, axis=1) for name, values in record.items()})
    return np.stack(record[outputs[0]], axis=1)


def _width_in(node: Any) -> int:
    return int(np.prod(next(iter(node.input_type.values()))))


def strip_metadata(nir_graph: Any) -> Any:
    """A copy of `nir_graph` with every metadata dict emptied (graph and nodes, nested)."""
    import nir

    nodes = {}
    for name, node in nir_graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            nodes[name] = strip_metadata(node)
        else:
            data = node.to_dict()
            data["metadata"] = {}
            nodes[name] = nir.dict2NIRNode(data)
    return nir.NIRGraph(nodes=nodes, edges=list(nir_graph.edges), metadata={})
