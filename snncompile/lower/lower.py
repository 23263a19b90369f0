"""Lower a float Graph to a float64 Netlist of compartments (the structure every target runs).

Each graph value is carried as an affine *view* of population messages,
value = sum_k M_k @ msg(pop_k) + c (one population for every op but a NIR neuron node
split by its time constants, nir_rules), so linear ops cost no compartments: a Linear feeding a GLU,
an Add, a neuron or the readout becomes the weights of the synapse into it, a
ChannelAffine (an unfolded BatchNorm) rescales the view. Compartments:

    Input      -> "input" population (and one "bias" population: every constant term c
                  enters as a synapse from it, delayed to arrive with the data)
    SSM        -> "ssm" population of H (M + 1) complex resonators, channel-major: mode n
                  of channel h runs w = a_bar w + (2 c b_bar) u (w = 2 c z), so the SSM
                  output 2 Re(sum_n c_n z_n) + d u is the plain sum of Re w over the
                  channel's M modes plus one extra resonator with a = 0 and gain d
    ResetRefractory / LIF / Heaviside -> a neuron population; a threshold other than 1
                  is folded into the synapse feeding it (the fold_thresholds pass does it
                  earlier, in the SSM, where it costs no precision)
    GLU        -> "glu" population (input [a; b])
    Add        -> "accumulator" population
    Linear     -> an "accumulator" population only when it feeds something else (an SSM,
                  two consumers); otherwise fused into its consumer's synapse
    Pool + Output -> the "readout" (mean: it integrates; last: it holds the last input)

Every synapse hop takes one step (tick). After building, each population's latency is
the longest path from the input, and each synapse gets the delay that makes all of a
population's inputs arrive from the same model step (residual paths get delays). A
recurrent loop through n populations makes the netlist take n ticks per model step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

from snncompile.errors import UnsupportedError
from snncompile.ir import nir_ops, ops
from snncompile.ir.graph import Graph, Node
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse, compact_weight
from snncompile.lower.nir_rules import (
    NIR_LOWERINGS,
    NIR_PARAMETER_CHECKS,
    SPLIT_META,
    check_feedback,
)

# Ops the lowering passes through unchanged (normally removed by the passes already).
_TRANSPARENT = (ops.Dropout, ops.Identity)
# Ops whose input view a Linear can be fused into.
_FUSES_LINEAR = (
    ops.GLU,
    ops.Add,
    ops.ResetRefractory,
    ops.LIF,
    ops.Heaviside,
    ops.Pool,
    nir_ops.EulerNeuron,
)


class Part(NamedTuple):
    """One term of a View: matrix (width, pop size) CSR @ msg(pop), `lag` model steps late."""

    pop: str
    matrix: sparse.csr_matrix
    lag: int = 0


@dataclass(frozen=True)
class View:
    """value = sum over parts of part.matrix @ msg(part.pop)(t - part.lag) + offset.

    One part for almost every value; several for a NIR neuron node that the lowering
    splits into one population per distinct pair of decays (nir_rules), each part
    scattering its population's neurons back to the node's order. With lag k the
    messages are those of k model steps earlier (a Feedback op's view)."""

    parts: tuple[Part, ...]
    offset: np.ndarray
    pooled: str | None = None

    @classmethod
    def of(cls, pop: str, matrix: sparse.spmatrix, offset: np.ndarray, lag: int = 0) -> View:
        """The view of one population's messages."""
        return cls((Part(pop, sparse.csr_matrix(matrix), lag),), offset)

    @property
    def width(self) -> int:
        return self.parts[0].matrix.shape[0]

    def then(self, weight: np.ndarray | sparse.spmatrix, bias: np.ndarray) -> View:
        """The view of weight @ value + bias."""
        parts = tuple(p._replace(matrix=sparse.csr_matrix(weight @ p.matrix)) for p in self.parts)
        return replace(self, parts=parts, offset=weight @ self.offset + bias)


def _identity_view(pop: Population) -> View:
    return View.of(pop.name, sparse.identity(pop.size, format="csr"), np.zeros(pop.size))


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.pops: list[Population] = []
        self.synapses: list[Synapse] = []
        self.bias_synapses: set[str] = set()
        self.views: dict[str, View] = {}
        self.meta: dict[str, Any] = {}  # what rules add to the netlist's meta
        # The synapse names taken, kept as they are added: collecting them per synapse
        # cost O(synapses^2), 6 s for a NIR node split into 128 populations (16,640 synapses).
        self.synapse_names: set[str] = set()

    def add_pop(self, pop: Population) -> Population:
        self.pops.append(pop)
        return pop

    def connect(
        self,
        view: View,
        dst: Population,
        in_map: sparse.spmatrix | None = None,
        *,
        lag: int = 0,
    ) -> None:
        """Synapses carrying `in_map @ view` into dst's input (identity in_map if None);
        `lag` model steps late (Synapse.lag; the constant part always arrives on time)."""
        in_map = in_map if in_map is not None else sparse.identity(view.width, format="csr")
        for part in view.parts:
            weight = sparse.csr_matrix(in_map @ part.matrix)
            self._add(part.pop, dst.name, weight, lag=lag + part.lag)
        constant = np.asarray(in_map @ view.offset).ravel()
        if np.any(constant != 0):
            name = self._add("bias", dst.name, sparse.csr_matrix(constant.reshape(-1, 1)))
            self.bias_synapses.add(name)

    def _add(self, src: str, dst: str, weight: sparse.spmatrix, *, lag: int = 0) -> str:
        name = f"{src}->{dst}"
        k = 1
        while name in self.synapse_names:
            k += 1
            name = f"{src}->{dst}#{k}"
        self.synapse_names.add(name)
        self.synapses.append(Synapse(name, src, dst, compact_weight(weight), lag=lag))
        return name


def lowers(op: ops.Op) -> bool:
    """Whether the lowering turns `op` into compartments (or passes it through)."""
    return type(op) in _LOWERINGS or isinstance(op, _TRANSPARENT)


def _op_label(op: ops.Op) -> str:
    """An op's class with its detail ("Opaque GSUMixer", "Activation gelu")."""
    return " ".join(filter(None, (type(op).__name__, op.detail())))


def lower(graph: Graph, *, formats: Formats | None = None) -> Netlist:
    """Lower `graph` to a float64 Netlist; UnsupportedError lists every op it cannot take."""
    from snncompile.support import targets_taking

    refused = [node for node in graph if not lowers(node.op)]
    if refused:
        from snncompile.targets import TARGETS

        netlist_targets = [name for name, t in TARGETS.items() if t.takes == "netlist"]
        others = [
            name
            for name in targets_taking(refused[0].op.kind)
            if name not in netlist_targets
            and all(name in targets_taking(n.op.kind) for n in refused)
        ]
        elsewhere = [f"`{name}`" for name in others]
        kinds = sorted({_op_label(node.op) for node in refused})
        raise UnsupportedError(
            "no compartment for "
            + ", ".join(f"{node.name} ({_op_label(node.op)})" for node in refused)
            + f"; the {', '.join(netlist_targets)} targets take "
            + ", ".join(sorted(c.__name__ for c in _LOWERINGS))
            + f"; a float model with {'this op' if len(kinds) == 1 else 'these ops'} "
            + f"({', '.join(kinds)}) can still go to "
            + (" or ".join(elsewhere) or "no other target")
        )
    builder = _Builder(graph)
    # A rule refuses a node it has no exact form for (UnsupportedError); the refusals of
    # every node are reported together; a node fed by a refused one is not lowered, only
    # checked for what its parameters alone refuse.
    problems: list[str] = []
    skipped: set[str] = set()
    for node in graph:
        if skipped.intersection(node.inputs):
            skipped.add(node.name)
            check = NIR_PARAMETER_CHECKS.get(type(node.op))
            problems.extend(check(builder, node) if check else [])
        elif isinstance(node.op, _TRANSPARENT):
            builder.views[node.name] = builder.views[node.inputs[0]]
        else:
            try:
                _LOWERINGS[type(node.op)](builder, node)
            except UnsupportedError as exc:
                problems.append(str(exc))
                skipped.add(node.name)
    if problems:
        raise UnsupportedError("; ".join(problems))
    for node in graph:
        if isinstance(node.op, nir_ops.Feedback):
            check_feedback(builder, node)
    if not any(s.src == "bias" for s in builder.synapses):
        builder.pops = [p for p in builder.pops if p.kind != "bias"]
    ticks = _assign_delays(builder)
    # Synapses destination by destination in population order, as network.net stores
    # them and its reader rebuilds them (the anchor of a neuron fed only through Delays
    # came last, so a loihi2 artifact of such a graph read back as another netlist).
    # Stable: each population's inputs keep their order, hence their float sum.
    position = {p.name: i for i, p in enumerate(builder.pops)}
    builder.synapses.sort(key=lambda s: position[s.dst])
    return Netlist(
        tuple(builder.pops),
        tuple(builder.synapses),
        numeric="float64",
        formats=formats or Formats(),
        dt_s=graph.dt_s,
        meta={"source": dict(graph.meta), **builder.meta},
        ticks_per_step=ticks,
    )


def _assign_delays(builder: _Builder) -> int:
    """Latency = longest path from the input over lag-0 synapses (in ticks); delays align
    every population's inputs, and a lagged (recurrent) synapse gets the delay that makes
    it arrive exactly `lag` model steps late. Returns the ticks per model step: 1 unless a
    loop through several populations needs more (time-multiplexing, docs/numerics.md)."""
    pops = {p.name: p for p in builder.pops}
    order = [p.name for p in builder.pops]  # construction order is topological for lag 0
    _anchor_lagged_only(builder, order)
    latency: dict[str, int] = {}
    for name in order:
        data_in = [
            s
            for s in builder.synapses
            if s.dst == name and s.name not in builder.bias_synapses and s.lag == 0
        ]
        latency[name] = max((latency[s.src] + 1 for s in data_in), default=0)
    # A lagged synapse must arrive lag * ticks after its destination's tick of the same
    # model step: a loop through n populations with lag 1 needs n ticks per step.
    spans = [(latency[s.src] + 1 - latency[s.dst], s.lag) for s in builder.synapses if s.lag]
    ticks = max([1, *(-(-span // lag) for span, lag in spans)])  # ceil(span / lag)
    synapses = []
    for syn in builder.synapses:
        source_latency = 0 if pops[syn.src].kind == "bias" else latency[syn.src]
        delay = latency[syn.dst] + syn.lag * ticks - source_latency - 1
        synapses.append(
            Synapse(syn.name, syn.src, syn.dst, syn.weight, syn.weight_exp, delay, syn.lag)
        )
    builder.synapses = synapses
    return ticks


def _anchor_lagged_only(builder: _Builder, order: list[str]) -> None:
    """A population fed only through lagged synapses from earlier populations (a NIR
    Delay on every input path) would get latency 0, too early for its bias; a zero-weight
    lag-0 synapse from its earliest lagged source places it one hop after that source.
    One fed only through lagged synapses from later populations (a neuron read only
    through a Feedback) and with a bias is placed one hop after the input so."""
    position = {name: i for i, name in enumerate(order)}
    sizes = {p.name: p.size for p in builder.pops}
    # The groups of a split NIR node (nir_rules) are one node: the recurrent synapses
    # between them anchor none of them, or groups after the first would be placed a hop
    # after it (one more tick per model step for a node fed only through a Feedback).
    node_of = {
        pop: node for node, groups in builder.meta.get(SPLIT_META, {}).items() for pop, _ in groups
    }
    biased = {
        node_of.get(s.dst, s.dst) for s in builder.synapses if s.name in builder.bias_synapses
    }
    inputs = [p.name for p in builder.pops if p.kind == "input"]
    for name in order:
        data_in = [
            s for s in builder.synapses if s.dst == name and s.name not in builder.bias_synapses
        ]
        if not data_in or any(s.lag == 0 for s in data_in):
            continue
        forward = [
            s
            for s in data_in
            if position[s.src] < position[name]
            and (name not in node_of or node_of.get(s.src) != node_of[name])
        ]
        if forward:
            src = min(forward, key=lambda s: position[s.src]).src
        elif node_of.get(name, name) in biased and inputs:
            src = inputs[0]
        else:
            continue
        builder._add(src, name, sparse.csr_matrix((sizes[name], sizes[src])))


# ---- one function per op ------------------------------------------------------------


def _input(b: _Builder, node: Node) -> None:
    pop = b.add_pop(Population(node.name, "input", node.op.size))
    b.add_pop(Population("bias", "bias", 1, params={"value": np.array(1.0)}))
    b.views[node.name] = _identity_view(pop)


def _linear(b: _Builder, node: Node) -> None:
    op: ops.Linear = node.op
    view = b.views[node.inputs[0]].then(op.weight, op.bias)
    consumers = b.graph.consumers(node.name)
    fusable = len(consumers) == 1 and isinstance(consumers[0].op, _FUSES_LINEAR)
    if view.pooled or fusable:
        b.views[node.name] = view
        return
    pop = b.add_pop(Population(node.name, "accumulator", op.weight.shape[0]))
    b.connect(view, pop)
    b.views[node.name] = _identity_view(pop)


def _affine(b: _Builder, node: Node) -> None:
    op = node.op.as_affine() if isinstance(node.op, ops.BatchNorm) else node.op
    b.views[node.name] = b.views[node.inputs[0]].then(sparse.diags(op.scale), op.shift)


def _ssm(b: _Builder, node: Node) -> None:
    op: ops.SSM = node.op
    h, m = op.a_bar.shape
    per = m + 1  # M modes and the D pass-through resonator
    a = np.concatenate([op.a_bar, np.zeros((h, 1))], axis=1).ravel()
    gain = np.concatenate([2.0 * op.c * op.b_bar, op.d[:, None].astype(complex)], axis=1).ravel()
    params = {"a_re": a.real, "a_im": a.imag, "b_re": gain.real, "b_im": gain.imag}
    pop = b.add_pop(Population(node.name, "ssm", h * per, params=params))
    rows = np.arange(h * per)
    channel = rows // per
    # Each resonator receives its channel's value; its complex gain b is a parameter of
    # the compartment (fixed point, not an 8-bit synaptic weight).
    fan_out = sparse.csr_matrix((np.ones(h * per), (rows, channel)), shape=(h * per, h))
    view = b.views[node.inputs[0]]
    b.connect(replace(view, offset=view.offset + op.u_shift), pop, fan_out)
    summing = sparse.csr_matrix((np.ones(h * per), (channel, rows)), shape=(h, h * per))
    b.views[node.name] = View.of(pop.name, summing, np.zeros(h))


def _neuron(kind: str, params: Callable[[ops.Op], tuple[np.ndarray, dict]]):
    def lower_neuron(b: _Builder, node: Node) -> None:
        scale, values = params(node.op)
        view = b.views[node.inputs[0]]
        pop = b.add_pop(Population(node.name, kind, view.width, params=values))
        b.connect(view.then(sparse.diags(1.0 / scale), np.zeros(view.width)), pop)
        b.views[node.name] = _identity_view(pop)

    return lower_neuron


def _rr_params(op: ops.ResetRefractory) -> tuple[np.ndarray, dict]:
    ones = np.ones_like(op.theta)
    return op.theta, {"beta": op.beta.copy(), "theta": ones, "rho": op.rho / op.theta}


def _lif_params(op: ops.LIF) -> tuple[np.ndarray, dict]:
    return op.threshold, {"tau": np.array(float(op.tau)), "vth": np.array(1.0)}


def _heaviside_params(op: ops.Heaviside) -> tuple[np.ndarray, dict]:
    return np.ones(1), {}


def _heaviside(b: _Builder, node: Node) -> None:
    view = b.views[node.inputs[0]]
    pop = b.add_pop(Population(node.name, "heaviside", view.width))
    b.connect(view, pop)
    b.views[node.name] = _identity_view(pop)


def _glu(b: _Builder, node: Node) -> None:
    view = b.views[node.inputs[0]]
    pop = b.add_pop(Population(node.name, "glu", view.width // 2, attrs={"gate": node.op.gate}))
    b.connect(view, pop)
    b.views[node.name] = _identity_view(pop)


def _add(b: _Builder, node: Node) -> None:
    views = [b.views[name] for name in node.inputs]
    pop = b.add_pop(Population(node.name, "accumulator", views[0].width))
    for view in views:
        b.connect(view, pop)
    b.views[node.name] = _identity_view(pop)


def _pool(b: _Builder, node: Node) -> None:
    view = b.views[node.inputs[0]]
    if view.pooled:
        raise UnsupportedError(f"{node.name}: pooling twice over time")
    b.views[node.name] = replace(view, pooled=node.op.mode)


def _output(b: _Builder, node: Node) -> None:
    view = b.views[node.inputs[0]]
    if not view.pooled:
        raise UnsupportedError(
            f"{node.name}: the output is a sequence; compiled models must pool over time "
            "(mean or last step) before the output"
        )
    pop = b.add_pop(Population(node.name, "readout", view.width, attrs={"mode": view.pooled}))
    b.connect(view, pop)


_LOWERINGS: dict[type[ops.Op], Callable[[_Builder, Node], None]] = {
    ops.Input: _input,
    ops.Linear: _linear,
    ops.BatchNorm: _affine,
    ops.ChannelAffine: _affine,
    ops.SSM: _ssm,
    ops.ResetRefractory: _neuron("reset_refractory", _rr_params),
    ops.LIF: _neuron("lif", _lif_params),
    ops.Heaviside: _heaviside,
    ops.GLU: _glu,
    ops.Add: _add,
    ops.Pool: _pool,
    ops.Output: _output,
    **NIR_LOWERINGS,
}

# Graph op kinds (as the passes leave them) that become compartments.
LOWERED_KINDS = frozenset(op.kind for op in (*_LOWERINGS, *_TRANSPARENT))
