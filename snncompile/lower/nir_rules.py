"""Lowering rules for the NIR import's Graph ops (snncompile.ir.nir_ops).

    SparseLinear  -> fused into the synapse of its one consumer, like ops.Linear
    EulerNeuron   reset "zero"      -> "cuba_lif" populations (Lava's LIF: current u,
                                       voltage v, hard reset), one per distinct pair
                                       (alpha_u, alpha_v) of the node (decay_groups: Lava's
                                       LIF shares du and dv over a population)
                  reset "subtract"  -> without a current (IF, LIF): one "reset_refractory"
                                       population with rho = 0 (m = beta v + a,
                                       s = [m > 1], v = m - s: subtractive reset; beta
                                       per neuron);
                                       with a current (CubaLIF): "cuba_lif_sub"
                                       populations (cuba_lif's decays, v -= vsub = 1 on
                                       a spike; one per distinct (alpha_u, alpha_v))
                  reset "subtract-delayed" (snnTorch's: the threshold comes off the
                                       next step's v, after its decay) -> without a
                                       current: "reset_refractory" with rho = 1/beta - 1,
                                       since beta (1 + rho) = 1 makes m' = beta m + a' - s;
                                       with a current: "cuba_lif_sub" with vsub = 1/beta
                                       (v -= vsub on a spike) for the same reason
                  reset "none"      -> graded: one real "ssm" resonator per element
                                       (a = alpha_v, b = 1) for I and LI; CubaLI adds one
                                       in front for its current (a = alpha_u)
    Each neuron's threshold is folded into the weights feeding it (threshold 1 after
    lowering), input i becomes a synapse with Synapse.lag = lags[i], and the recurrent
    matrix a synapse from the population to itself with lag rec_lag (delay rec_lag - 1).
    A node split into several populations (named `<node>.tau<k>`) gets each input's rows
    of its group, the recurrent matrix as lag rec_lag synapses between every pair of
    groups whose block is not zero, and the node's value is the sum of the groups'
    messages scattered back to the node's neuron order (a View with one part per group),
    so everything it feeds takes the matching columns. The netlist's meta records the
    split (SPLIT_META), for whatever maps NIR nodes to populations.
    A constant drive v_bias enters from the bias population; it reaches v unchanged only
    when the neuron keeps no current (alpha_u = 0), otherwise it is refused.
    Feedback      -> no compartment: the view of its source node's population(s), `lag`
                     model steps late, so the loop closes with lagged synapses (the lowering
                     then gives the netlist the ticks per model step the loop needs)

This module is imported by snncompile.lower.lower, whose builder it uses at call time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import UnsupportedError
from snncompile.ir import nir_ops
from snncompile.ir.graph import Node
from snncompile.ir.netlist import Population


def _lower_module():
    from snncompile.lower import lower

    return lower


def _sparse_linear(b: Any, node: Node) -> None:
    _lower_module()._linear(b, node)  # the Linear rule takes a sparse weight as it is


# The compartment of a spiking neuron with one decay pair per population: every node of
# a reset zero, and of either subtract reset when it keeps a current (CubaLIF).
_SHARED_DECAYS = {
    "zero": "cuba_lif",
    "subtract": "cuba_lif_sub",
    "subtract-delayed": "cuba_lif_sub",
}

# netlist.meta key: NIR node -> [[population, [the node's neuron indices it holds]], ...]
# for every node lowered to more than one population (decay_groups).
SPLIT_META = "split_nodes"


def _shares_decays(op: nir_ops.EulerNeuron) -> bool:
    """Whether op lowers to a compartment whose decays are one per population."""
    return op.reset != "none" and (op.reset == "zero" or bool(np.any(op.alpha_u != 0)))


def decay_groups(op: nir_ops.EulerNeuron) -> list[np.ndarray]:
    """The node's neuron indices (ascending) of each population it becomes: one group per
    distinct (alpha_u, alpha_v) pair, exact float equality, in order of first appearance,
    where the compartment shares its decays (cuba_lif, cuba_lif_sub); one group of every
    neuron otherwise (reset_refractory and the resonators take per-neuron values)."""
    h = op.theta.size
    if not _shares_decays(op) or (np.ptp(op.alpha_u) == 0 and np.ptp(op.alpha_v) == 0):
        return [np.arange(h)]
    members: dict[tuple[float, float], list[int]] = {}  # dicts keep first-appearance order
    for i, pair in enumerate(zip(op.alpha_u.tolist(), op.alpha_v.tolist(), strict=True)):
        members.setdefault(pair, []).append(i)
    return [np.array(idx, dtype=np.int64) for idx in members.values()]


def group_name(node: str, k: int, groups: int) -> str:
    """The population of group k: the node's own name when it is not split."""
    return node if groups == 1 else f"{node}.tau{k}"


def node_view(b: Any, name: str, size: int, lag: int = 0) -> Any:
    """The view of node `name`'s output (width `size`) from the population(s) it becomes,
    `lag` model steps late; known from the node's parameters alone, so a Feedback can
    read a node lowered after it."""
    low = _lower_module()
    op = b.graph.node(name).op
    groups = decay_groups(op) if isinstance(op, nir_ops.EulerNeuron) else [np.arange(size)]
    parts = []
    for k, idx in enumerate(groups):
        scatter = sparse.csr_matrix(
            (np.ones(idx.size), (idx, np.arange(idx.size))), shape=(size, idx.size)
        )
        parts.append(low.Part(group_name(name, k, len(groups)), scatter, lag))
    return low.View(tuple(parts), np.zeros(size))


def euler_neuron_problems(
    where: str, alpha_u: np.ndarray, alpha_v: np.ndarray, v_bias: np.ndarray, reset: str
) -> list[str]:
    """Why the compartments cannot take this neuron, one line per reason ([] if they can),
    each starting with `where` ("node 'n1' (CubaLIF)", as the importer's own refusals do).
    Parameters only, so a node fed by a refused one is still checked (and the importer
    can add these to its own refusals: every offending node is named at once)."""
    if reset == "none":
        return []
    problems = []
    has_current = bool(np.any(alpha_u != 0))
    if has_current and np.any(v_bias != 0):
        problems.append(
            f"{where}: a leak voltage (v_leak != 0) with a synaptic current has no exact "
            "Lava LIF form (a constant input reaches v through the decaying current)"
        )
    if reset == "subtract-delayed" and np.any(alpha_v <= 0):
        problems.append(
            f"{where}: reset subtract-delayed at dt = tau (the voltage keeps nothing of "
            "the last step, so the delayed subtraction has no decayed form)"
        )
    elif reset == "subtract-delayed" and np.any(alpha_v < 1 / 4096):
        # The 12-bit decay would hold beta as 0 (reset_refractory) or 1/4096 (cuba_lif_sub,
        # clipped), so the threshold / beta subtracted would not decay back to threshold.
        problems.append(
            f"{where}: reset subtract-delayed with beta = 1 - dt/tau_mem = "
            f"{float(alpha_v.min()):.3g}, below the 1/4096 a 12-bit decay holds (the "
            "delayed subtraction would be lost in quantization)"
        )
    return problems


def node_label(b: Any, name: str) -> str:
    """How errors name a node: "node 'n1' (CubaLIF)", with the NIR type the importer
    recorded in the graph's meta, as the importer's own refusals read."""
    kind = b.graph.meta.get("nir_kinds", {}).get(name)
    return f"node {name!r}" + (f" ({kind})" if kind else "")


def _node_problems(b: Any, node: Node) -> list[str]:
    """euler_neuron_problems of an EulerNeuron node; [] for other ops."""
    op = node.op
    if not isinstance(op, nir_ops.EulerNeuron):
        return []
    where = node_label(b, node.name)
    return euler_neuron_problems(where, op.alpha_u, op.alpha_v, op.v_bias, op.reset)


def _euler_neuron(b: Any, node: Node) -> None:
    op: nir_ops.EulerNeuron = node.op
    h = op.theta.size
    has_current = bool(np.any(op.alpha_u != 0))
    if op.reset == "none":
        _graded_neuron(b, node, has_current)
        return
    problems = _node_problems(b, node)
    if problems:
        raise UnsupportedError("; ".join(problems))
    scale = 1.0 / op.theta
    groups = decay_groups(op)
    if len(groups) > 1:
        # A NIR node may itself be named like a group ("lif.tau0" beside "lif").
        names = {group_name(node.name, k, len(groups)) for k in range(len(groups))}
        taken = sorted(names & {n.name for n in b.graph})
        if taken:
            raise UnsupportedError(
                f"{node_label(b, node.name)}: its time constants differ between neurons, "
                f"so it becomes one population per value, named {', '.join(taken)} as "
                "other nodes are (rename them)"
            )
    pops = []
    for k, idx in enumerate(groups):
        name = group_name(node.name, k, len(groups))
        if _shares_decays(op):
            kind = _SHARED_DECAYS[op.reset]
            alpha_v = float(op.alpha_v[idx[0]])
            params = {
                "alpha_u": np.array(float(op.alpha_u[idx[0]])),
                "alpha_v": np.array(alpha_v),
                "vth": np.array(1.0),
            }
            if kind == "cuba_lif_sub":  # v - 1/beta s decays into snnTorch's v - s (above)
                sub = 1.0 / alpha_v if op.reset == "subtract-delayed" else 1.0
                params["vsub"] = np.array(sub)
        else:
            # subtract: v = m - s. subtract-delayed: v = m - s / beta, which the next step's
            # decay turns into m' = beta m + a' - s, snnTorch's update (problems: beta > 0).
            rho = 1.0 / op.alpha_v - 1.0 if op.reset == "subtract-delayed" else np.zeros(h)
            params = {"beta": op.alpha_v.copy(), "theta": np.ones(h), "rho": rho}
            kind = "reset_refractory"
        pops.append(b.add_pop(Population(name, kind, idx.size, params=params)))
    rec = sparse.csr_matrix(sparse.diags(scale) @ op.rec_weight)
    for pop, idx in zip(pops, groups, strict=True):
        # The group's rows of every input, each scaled by its neuron's 1 / threshold.
        rows = sparse.csr_matrix((scale[idx], (np.arange(idx.size), idx)), shape=(idx.size, h))
        _connect_inputs(b, node, pop, rows, (op.v_bias * scale)[idx])
        # Between groups the loop is the same one-step feedback: lag rec_lag synapses,
        # which arrive in time because every group has the same inputs, hence latency.
        into = rec[idx]
        for src, src_idx in zip(pops, groups, strict=True):
            block = sparse.csr_matrix(into[:, src_idx])
            if block.nnz:
                b._add(src.name, pop.name, block, lag=int(op.rec_lag))
    if len(groups) > 1:
        b.meta.setdefault(SPLIT_META, {})[node.name] = [
            [pop.name, idx.tolist()] for pop, idx in zip(pops, groups, strict=True)
        ]
    b.views[node.name] = node_view(b, node.name, h)


def _connect_inputs(
    b: Any, node: Node, pop: Population, in_map: sparse.spmatrix, constant: np.ndarray
) -> None:
    """Every input into pop's input (scaled by in_map), `constant` once, lag-0 first."""
    op: nir_ops.EulerNeuron = node.op
    order = sorted(range(len(node.inputs)), key=lambda i: int(op.lags[i]))
    for k, i in enumerate(order):
        view = b.views[node.inputs[i]]
        offset = constant if k == 0 else np.zeros(pop.size)
        b.connect(view.then(in_map, offset), pop, lag=int(op.lags[i]))


def _resonator(name: str, alpha: np.ndarray) -> Population:
    h = alpha.size
    params = {"a_re": alpha.copy(), "a_im": np.zeros(h), "b_re": np.ones(h), "b_im": np.zeros(h)}
    return Population(name, "ssm", h, params=params)


def _graded_neuron(b: Any, node: Node, has_current: bool) -> None:
    low = _lower_module()
    op: nir_ops.EulerNeuron = node.op
    h = op.theta.size
    eye = sparse.identity(h, format="csr")
    if not has_current:
        pop = b.add_pop(_resonator(node.name, op.alpha_v))
        _connect_inputs(b, node, pop, eye, op.v_bias)
        rec_target = pop
    else:
        # The current and the voltage are two resonators in series: one more hop, which
        # the latency absorbs (a recurrent loop into the current cannot close in time).
        current = b.add_pop(_resonator(f"{node.name}.current", op.alpha_u))
        _connect_inputs(b, node, current, eye, np.zeros(h))
        pop = b.add_pop(_resonator(node.name, op.alpha_v))
        b.connect(low.View.of(current.name, eye, op.v_bias.copy()), pop)
        rec_target = current
    if op.rec_weight.nnz:
        b._add(pop.name, rec_target.name, op.rec_weight, lag=int(op.rec_lag))
    b.views[node.name] = low._identity_view(pop)


def _feedback(b: Any, node: Node) -> None:
    """The view of the source node's population(s) `lag` model steps late; the source
    is lowered later, and check_feedback then makes sure it became those populations."""
    op: nir_ops.Feedback = node.op
    b.views[node.name] = node_view(b, op.source, op.size, lag=op.lag)


def check_feedback(b: Any, node: Node) -> None:
    """A Feedback's source must have become the populations node_view named, read as is."""
    op: nir_ops.Feedback = node.op
    view, want = b.views[op.source], node_view(b, op.source, op.size)
    same = len(view.parts) == len(want.parts) and all(
        got.pop == part.pop
        and not got.lag
        and got.matrix.shape == part.matrix.shape
        and not (got.matrix != part.matrix).nnz
        for got, part in zip(view.parts, want.parts, strict=True)
    )
    if not same or view.pooled or np.any(view.offset):
        raise UnsupportedError(
            f"{node_label(b, node.name)}: a loop closes on {op.source!r}, which is not a "
            "population of its own (only neuron outputs can close a loop through several nodes)"
        )


# What the lowering can say about a node from its parameters alone (run on the nodes it
# skips because an input was refused).
NIR_PARAMETER_CHECKS: dict[type, Callable[[Any, Node], list[str]]] = {
    nir_ops.EulerNeuron: _node_problems,
}

NIR_LOWERINGS: dict[type, Callable[[Any, Node], None]] = {
    nir_ops.SparseLinear: _sparse_linear,
    nir_ops.EulerNeuron: _euler_neuron,
    nir_ops.Feedback: _feedback,
}
