"""Resource mapping: place every compartment and its incoming synapses on a neuro core.

    mapping = map_netlist(net, config)
    mapping.n_cores, mapping.n_chips, mapping.cores[0].synapse_bytes

The algorithm (greedy and deterministic: no search beyond packing each population in two
orders, packing again where the exact output axons break the limit, and the whole netlist
in index order once more where a population moved, so the same netlist and config always
give the same placement):

1. Walk the populations in netlist order (a topological order from the input).
2. A population opens a new core (or, with `model.share_cores = true`, continues the
   last core) and fills it with as many compartments, consecutive in the population's
   placement order, as fit every per-core limit: compartments (min of neurons_per_core
   and compartments_per_core), synapse memory, input axons, and a lower bound of the
   output axons (one per source compartment and destination population it reaches; one
   per source compartment with `share_cores`). The count is found by bisection, since
   each cost only grows with the number of compartments. The rest of the population goes
   to the next cores.
3. The placement order is index order, or the locality order (`_locality_order`:
   compartments sorted by the mean place of the sources they read) when packing in it
   opens fewer cores or, at equal cores, needs fewer input axons plus recorded runs on
   the population's cores (`_Placer.place_best`). A convolution's output, channel-major
   in the netlist, so lands on cores by position instead of by channel, and a source
   compartment feeds the one or two cores covering its neighbourhood instead of all of
   them. A core's compartments of one population are then several runs of consecutive
   indices, each a (population, start, stop) slice. Where the result, fitted as in 5,
   still breaks the output-axon limit, or opens more cores, and index order everywhere
   (fitted too) does not, the mapping is index order everywhere (`map_netlist`): no
   netlist fits worse than in index order.
4. A single compartment that alone exceeds a limit of the packing (including the
   output-axon bound) is still placed, on its own core; the design-rule check then
   reports that core (the mapping never fails by itself).
5. The exact output axons are counted after placement (they depend on where the
   targets landed, e.g. a destination split over two cores needs two axons): per source
   compartment, the destination cores it feeds (its fan). Where a core's sum breaks the
   limit, the same orders are packed again charging each compartment its fan instead of
   the bound (`_fit_output_axons`), so a source's cores hold fewer compartments; again
   while a population split anew changes its sources' fans, at most once per population
   and once more, or _MAX_REFITS times if more (`_refits_max`). A compartment whose fan
   alone exceeds the limit is still charged the bound (`_charges`): no core could hold
   it, and set apart it would only spread its population over more cores and raise its
   sources' fans. It stays where the first packing put it, the design-rule check
   reports its core, and the cores without such a compartment are fitted as before.

What a core is charged for:

- compartments: one per snncompile compartment (one Loihi 2 neuron program; the state
  memory a neuron model needs is not modeled). Input and bias populations are counted
  too, although on the chip their messages would be injected by an embedded core.
- synapse memory: the weights of the incoming synapses whose destination rows are on
  the core, as the cheaper of two encodings per synapse and core: dense (rows x source
  size x weight bits: zeros are stored) or sparse (per nonzero weight, its mantissa bits
  plus `sparse_index_bits`, by default ceil(log2(the synapse's destination rows on the
  core)), to name the compartment it feeds: an input axon points to a list of synapses,
  each naming its target, as in Loihi 1's synapse format (nengo-loihi's Synapse.idx_bits);
  Loihi 2's is not public). Per-axon list headers, delays and learning state are not
  counted; with `share_cores` the index may need to name more compartments than its
  destination's (a lower bound).
- input axons: distinct source compartments with a nonzero weight into the core.
- output axons: distinct (source compartment, destination core) pairs leaving the core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import UsageError
from snncompile.ir.netlist import Netlist, Population, Synapse

from .config import TargetConfig


@dataclass
class Core:
    """What one neuro core holds and uses."""

    index: int
    chip: int
    # (population, start, stop): runs of consecutive compartments; a population placed in
    # locality order has several runs on a core (`_locality_order`).
    slices: list[tuple[str, int, int]] = field(default_factory=list)
    compartments: int = 0
    synapse_bytes: int = 0
    stored_weights: int = 0
    input_axons: int = 0
    output_axons: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "core": self.index,
            "chip": self.chip,
            "populations": [{"name": n, "start": a, "stop": b} for n, a, b in self.slices],
            "compartments": self.compartments,
            "synapse_bytes": self.synapse_bytes,
            "stored_weights": self.stored_weights,
            "input_axons": self.input_axons,
            "output_axons": self.output_axons,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Core:
        """to_dict's inverse (KeyError, TypeError on what to_dict does not write)."""
        slices = [(s["name"], s["start"], s["stop"]) for s in d["populations"]]
        counts = ("compartments", "synapse_bytes", "stored_weights", "input_axons", "output_axons")
        return cls(d["core"], d["chip"], slices, **{key: d[key] for key in counts})


@dataclass
class Mapping:
    """The placement: cores in order, chips = cores grouped by cores_per_chip."""

    cores: list[Core]
    cores_per_chip: int

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    @property
    def n_chips(self) -> int:
        return math.ceil(self.n_cores / self.cores_per_chip)

    def chip_totals(self) -> list[dict[str, int]]:
        totals = [{"compartments": 0, "stored_weights": 0} for _ in range(self.n_chips)]
        for core in self.cores:
            totals[core.chip]["compartments"] += core.compartments
            totals[core.chip]["stored_weights"] += core.stored_weights
        return totals

    def to_dict(self) -> dict[str, Any]:
        def peak(attr: str) -> int:
            return max((getattr(c, attr) for c in self.cores), default=0)

        return {
            "cores": self.n_cores,
            "chips": self.n_chips,
            "cores_per_chip": self.cores_per_chip,
            "compartments": sum(c.compartments for c in self.cores),
            "synapse_bytes": sum(c.synapse_bytes for c in self.cores),
            "peak_per_core": {
                attr: peak(attr)
                for attr in ("compartments", "synapse_bytes", "input_axons", "output_axons")
            },
            "chip_totals": self.chip_totals(),
            "per_core": [c.to_dict() for c in self.cores],
        }


@dataclass
class _Incoming:
    """One synapse into a population, prepared for slicing by destination compartment."""

    syn: Synapse
    src_size: int
    rows: sparse.csr_matrix  # nonzero structure, one row per destination input row
    row_nnz_cum: np.ndarray  # prefix sums of nonzeros per row (len rows + 1)


def _structure(syn: Synapse) -> sparse.csr_matrix:
    """The synapse's nonzero weights as CSR (explicit zeros dropped: they need no axon)."""
    csr = sparse.csr_matrix(syn.weight, copy=True)
    csr.eliminate_zeros()
    return csr


def _prepare(net: Netlist, pop: Population, order: np.ndarray) -> list[_Incoming]:
    """pop's incoming synapses with their rows in placement order (`order`)."""
    parts = pop.input_width // pop.size  # a two-part input (GLU) has its rows twice
    rows = (np.arange(parts)[:, None] * pop.size + order).ravel()
    out = []
    for syn in net.incoming(pop.name):
        csr = _structure(syn)[rows]
        cum = np.concatenate([[0], np.cumsum(np.diff(csr.indptr))]).astype(np.int64)
        out.append(_Incoming(syn, net.population(syn.src).size, csr, cum))
    return out


def _output_axon_need(net: Netlist, pop: Population, share: bool) -> np.ndarray:
    """The fewest output axons each of pop's compartments needs (index order): one per
    destination population it reaches, or one in all with share_cores."""
    reaches: dict[str, np.ndarray] = {}  # destination population -> compartment sends to it
    for syn in net.synapses:
        if syn.src == pop.name:
            hit = np.diff(_structure(syn).tocsc().indptr) > 0
            reaches[syn.dst] = reaches.get(syn.dst, np.zeros(pop.size, bool)) | hit
    if not reaches:
        return np.zeros(pop.size, np.int64)
    if share:  # all destinations might share one core
        return np.any(list(reaches.values()), axis=0).astype(np.int64)
    return np.sum(list(reaches.values()), axis=0).astype(np.int64)  # each has its own cores


def _row_ranges(pop: Population, start: int, stop: int) -> list[tuple[int, int]]:
    """The input rows of compartments [start, stop): a two-part input (GLU) has two."""
    return [(k * pop.size + start, k * pop.size + stop) for k in range(pop.input_width // pop.size)]


_State = tuple[list[Core], dict[str, np.ndarray], int, int]


class _Placer:
    """Fills cores; keeps the open core's per-source axon masks to count distinct axons."""

    def __init__(
        self, net: Netlist, config: TargetConfig, charges: dict[str, np.ndarray] | None = None
    ) -> None:
        self.net = net
        # Output axons to charge each compartment, from an earlier placement (`_charges`):
        # the packing charges the larger of these and the bound.
        self.charges = charges or {}
        self.capacity = min(config.limit("neurons_per_core"), config.limit("compartments_per_core"))
        self.memory_bits = 8 * config.limit("synapse_memory_bytes_per_core")
        self.max_axons = config.limit("input_axons_per_core")
        self.max_out_axons = config.limit("output_axons_per_core")
        self.cores_per_chip = config.limit("cores_per_chip")
        self.share = bool(config.model("share_cores"))
        self.index_bits = int(config.model("sparse_index_bits"))
        self.weight_bits = net.formats.weight_bits
        self.cores: list[Core] = []
        # The open core's running totals:
        self.axons: dict[str, np.ndarray] = {}  # source population -> used-axon mask
        self.bits = 0
        self.out_bound = 0

    def _open(self) -> Core:
        core = Core(index=len(self.cores), chip=len(self.cores) // self.cores_per_chip)
        self.cores.append(core)
        self.axons, self.bits, self.out_bound = {}, 0, 0
        return core

    def _cost(
        self, pop: Population, inc: list[_Incoming], start: int, stop: int
    ) -> tuple[int, int, dict[str, np.ndarray]]:
        """(synapse bits, stored weights, new axon masks) of compartments [start, stop)."""
        bits = weights = 0
        masks: dict[str, np.ndarray] = {}
        for item in inc:
            n_rows = nnz = 0
            cols = []
            for a, b in _row_ranges(pop, start, stop):
                n_rows += b - a
                nnz += int(item.row_nnz_cum[b] - item.row_nnz_cum[a])
                cols.append(item.rows.indices[item.rows.indptr[a] : item.rows.indptr[b]])
            index_bits = self.index_bits or max(1, math.ceil(math.log2(max(n_rows, 2))))
            dense_bits = n_rows * item.src_size * self.weight_bits
            sparse_bits = nnz * (self.weight_bits + index_bits)
            bits += min(dense_bits, sparse_bits)
            weights += nnz
            src = item.syn.src
            mask = masks.get(src)
            if mask is None:
                base = self.axons.get(src)
                mask = base.copy() if base is not None else np.zeros(item.src_size, bool)
                masks[src] = mask
            for c in cols:
                mask[c] = True
        return bits, weights, masks

    def _fits(
        self,
        core: Core,
        pop: Population,
        inc: list[_Incoming],
        out_cum: np.ndarray,
        start: int,
        stop: int,
    ) -> bool:
        if core.compartments + (stop - start) > self.capacity:
            return False
        if self.out_bound + out_cum[stop] - out_cum[start] > self.max_out_axons:
            return False
        bits, _, masks = self._cost(pop, inc, start, stop)
        if self.bits + bits > self.memory_bits:
            return False
        return self._axon_count(masks) <= self.max_axons

    def _axon_count(self, masks: dict[str, np.ndarray]) -> int:
        untouched = sum(int(m.sum()) for src, m in self.axons.items() if src not in masks)
        return untouched + sum(int(m.sum()) for m in masks.values())

    def _state(self) -> _State:
        """A copy of what placing changes (the cores and the open core's totals)."""
        cores = [replace(core, slices=list(core.slices)) for core in self.cores]
        return cores, {src: m.copy() for src, m in self.axons.items()}, self.bits, self.out_bound

    def place_best(self, pop: Population, local: np.ndarray) -> np.ndarray:
        """Place pop in index order or in `local` order, whichever opens fewer cores and,
        at equal cores, costs less on the cores it lands on: its input axons (what its
        sources pay in output axons) plus its runs of consecutive compartments (what
        resources.json records), so that a dense layer whose few zero weights happen to
        favour another order keeps its one range per core. Index order on a tie.
        Returns the order used."""
        plain = np.arange(pop.size)
        if np.array_equal(local, plain):
            self.place(pop, plain)
            return plain
        first = len(self.cores) - (1 if self.share and self.cores else 0)

        def score() -> tuple[int, int]:
            cores = self.cores[first:]
            runs = sum(1 for core in cores for name, _, _ in core.slices if name == pop.name)
            return len(self.cores), sum(core.input_axons for core in cores) + runs

        before = self._state()
        self.place(pop, plain)
        plain_score, plain_state = score(), (self.cores, self.axons, self.bits, self.out_bound)
        self.cores, self.axons, self.bits, self.out_bound = before
        self.place(pop, local)
        if score() < plain_score:
            return local
        self.cores, self.axons, self.bits, self.out_bound = plain_state
        return plain

    def place(self, pop: Population, order: np.ndarray) -> None:
        inc = _prepare(self.net, pop, order)
        need = _output_axon_need(self.net, pop, self.share)
        if pop.name in self.charges:
            need = np.maximum(need, self.charges[pop.name])
        out_cum = np.concatenate([[0], np.cumsum(need[order])])
        core = self.cores[-1] if (self.share and self.cores) else self._open()
        start = 0
        while start < pop.size:
            lo, hi = 0, pop.size - start  # largest n in [lo, hi] with fits(n): bisection
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._fits(core, pop, inc, out_cum, start, start + mid):
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0 and core.compartments:
                core = self._open()  # try again on an empty core
                continue
            n = max(lo, 1)  # one compartment too big for an empty core: place it anyway
            bits, weights, masks = self._cost(pop, inc, start, start + n)
            core.slices.extend((pop.name, a, b) for a, b in _runs(order[start : start + n]))
            core.compartments += n
            self.bits += bits
            self.out_bound += int(out_cum[start + n] - out_cum[start])
            core.synapse_bytes = math.ceil(self.bits / 8)
            core.stored_weights += weights
            self.axons.update(masks)
            core.input_axons = sum(int(m.sum()) for m in self.axons.values())
            start += n
            if start < pop.size:
                core = self._open()


def _runs(members: np.ndarray) -> list[tuple[int, int]]:
    """Sorted compartment indices as [start, stop) runs of consecutive ones."""
    members = np.sort(members)
    cut = np.flatnonzero(np.diff(members) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(members, cut)]


def _locality_order(net: Netlist, pop: Population, rank: dict[str, np.ndarray]) -> np.ndarray:
    """pop's compartments sorted by where their inputs come from: the mean, over the
    nonzero weights into a compartment, of the source compartment's place in its
    population's order (as a fraction of that population's size); index on a tie, and
    a compartment without inputs keeps its index's fraction.

    Compartments that read the same sources get near keys, so a core filled with
    consecutive ones in this order reads few sources, and a source feeds few of its
    destination's cores: a convolution's output, channel-major in the netlist, sorts by
    position (all channels of one position read the same input window). Where every
    compartment reads (almost) every source the keys carry no locality; `place_best`
    then keeps index order. The integer sums are exact and the rest elementwise IEEE
    arithmetic, so the order is the same on every machine."""
    num = np.zeros(pop.size)
    cnt = np.zeros(pop.size, np.int64)
    parts = pop.input_width // pop.size
    for syn in net.incoming(pop.name):
        csr = _structure(syn)
        src_size = csr.shape[1]
        src_rank = rank.get(syn.src, np.arange(src_size, dtype=np.int64))
        ones = sparse.csr_matrix(
            (np.ones(csr.nnz, np.int64), csr.indices, csr.indptr), shape=csr.shape
        )
        sums = (ones @ src_rank).reshape(parts, pop.size).sum(axis=0)
        counts = np.diff(csr.indptr).reshape(parts, pop.size).sum(axis=0)
        num += sums / src_size
        cnt += counts
    own = np.arange(pop.size)
    key = np.where(cnt > 0, num / np.maximum(cnt, 1), own / max(pop.size, 1))
    return np.lexsort((own, key))


def _count_output_axons(net: Netlist, cores: list[Core]) -> dict[str, np.ndarray]:
    """Set each core's distinct (source compartment, destination core) pairs; returns
    each population's fans: per compartment, the destination cores it sends to (its
    output axons)."""
    offset, where = {}, {}
    total = 0
    for pop in net.populations:
        offset[pop.name] = total
        total += pop.size
    core_of = np.zeros(total, np.int64)
    for core in cores:
        for name, a, b in core.slices:
            core_of[offset[name] + a : offset[name] + b] = core.index
            where.setdefault(name, []).append((core.index, a, b))
    keys = [np.zeros(0, np.int64)]
    for syn in net.synapses:
        dst = net.population(syn.dst)
        csr = _structure(syn)
        for core_index, a, b in where[syn.dst]:
            cols = [
                csr.indices[csr.indptr[r0] : csr.indptr[r1]] for r0, r1 in _row_ranges(dst, a, b)
            ]
            sources = np.unique(np.concatenate(cols)) + offset[syn.src]
            keys.append(sources * len(cores) + core_index)
    pairs = np.unique(np.concatenate(keys))
    fan = np.bincount(pairs // max(len(cores), 1), minlength=total)
    counts = np.bincount(core_of, weights=fan, minlength=len(cores))
    for core in cores:
        core.output_axons = int(counts[core.index])
    return {
        pop.name: fan[offset[pop.name] : offset[pop.name] + pop.size] for pop in net.populations
    }


_Orders = dict[str, np.ndarray]  # population -> its compartments in placement order
_Fans = dict[str, np.ndarray]  # population -> output axons each compartment needs


@dataclass
class _Placed:
    mapping: Mapping
    orders: _Orders
    fans: _Fans  # what `mapping` needs (`_count_output_axons`)


def _place_all(
    net: Netlist,
    config: TargetConfig,
    *,
    locality: bool,
    orders: _Orders | None = None,
    charges: _Fans | None = None,
) -> _Placed:
    """Every population placed: in the better of index and locality order (`place_best`),
    in index order (locality False), or in the given `orders`, charging each compartment
    at least its `charges` in output axons (`_charges`)."""
    placer = _Placer(net, config, charges)
    rank: dict[str, np.ndarray] = {}  # population -> each compartment's place in its order
    placed_orders: _Orders = {}
    for pop in net.populations:
        if orders is not None:
            order = orders[pop.name]
            placer.place(pop, order)
        elif locality:
            order = placer.place_best(pop, _locality_order(net, pop, rank))
        else:
            order = np.arange(pop.size)
            placer.place(pop, order)
        placed_orders[pop.name] = order
        rank[pop.name] = np.argsort(order)
    fans = _count_output_axons(net, placer.cores)
    mapping = Mapping(cores=placer.cores, cores_per_chip=placer.cores_per_chip)
    return _Placed(mapping, placed_orders, fans)


# Re-placements `_fit_output_axons` allows at least (`_refits_max`): the wider conv inputs
# of docs/targets.md ("Mapping") need one, cnn_sinabs.nir with share_cores and 1000 output
# axons per core six.
_MAX_REFITS = 8


def _refits_max(net: Netlist) -> int:
    """How many times `_fit_output_axons` packs again at most: once per population and
    once more, or _MAX_REFITS if more. Without share_cores and lagged synapses a
    population's split is final one round after its destinations' are (one without
    destinations never moves), so every split is final after as many rounds as the
    longest chain of populations, and the next round fits or finds nothing to split (the
    tests' chain of nine populations before the readout takes nine). With share_cores or
    a lagged loop no such bound holds, and the rounds stop here."""
    return max(_MAX_REFITS, len(net.populations) + 1)


def _over_output_axons(mapping: Mapping, config: TargetConfig) -> bool:
    limit = config.limit("output_axons_per_core")
    return any(core.output_axons > limit for core in mapping.cores)


def _charges(net: Netlist, config: TargetConfig, fans: _Fans, seen: _Fans) -> _Fans:
    """The output axons a packing again charges each compartment: the largest fan it had
    within the limit so far (`seen`), or its bound, as the first packing charged, where
    its fan now (`fans`) alone exceeds the limit.

    No core holds such a compartment within the limit. Charged its fan it would take a
    core of its own, its population more cores, and its sources, feeding these, larger
    fans: cores that fix nothing, and sources over the limit that fit where it was
    charged the bound (in the tests, p0 feeding all four cores of p1 under a limit of
    2: its input was then reported too). Charged the bound, it stays where the first
    packing put it and the design-rule check reports its core. Its fan now decides, not
    the largest seen: a destination split anew in one round can lend a source a fan over
    the limit that a later placement no longer gives it (cnn_sinabs with 30 output axons
    per core: judged by the largest fan seen, input compartments that fit a core each
    stayed on cores over the limit). A bound above the limit still gets a core of its own
    (point 4 of the module docstring)."""
    limit = config.limit("output_axons_per_core")
    charges = dict(seen)  # a fan is at least the bound: it feeds a core per destination
    for pop in net.populations:
        alone_over = fans[pop.name] > limit
        if alone_over.any():
            bound = _output_axon_need(net, pop, bool(config.model("share_cores")))
            charges[pop.name] = np.where(alone_over, bound, seen[pop.name])
    return charges


def _fitting_helps(mapping: Mapping, charges: _Fans, limit: int) -> bool:
    """Whether packing again with `charges` splits a core over the output-axon limit: one
    whose compartments, more than one, are charged more than the limit. A core over the
    limit that is not holds a compartment whose fan alone exceeds it (`_charges`)."""
    for core in mapping.cores:
        if core.output_axons <= limit:
            continue
        charged = np.concatenate([charges[name][a:b] for name, a, b in core.slices])
        if charged.size > 1 and int(charged.sum()) > limit:
            return True
    return False


def _fit_output_axons(
    net: Netlist, config: TargetConfig, placed: _Placed, enough_cores: int | None = None
) -> _Placed:
    """`placed`, or where a core needs more output axons than allowed, the same orders
    packed again charging every compartment the output axons it needed (its fan), except
    one whose fan alone exceeds the limit (`_charges`).

    The packing counts only a lower bound of the output axons, one per destination
    population a compartment reaches: the exact count depends on how the destinations
    were split, placed later. Packed again with the exact fans, a source's cores hold
    fewer compartments where these break the limit. The destinations land the same
    (without share_cores a population's split depends only on its own order and charges,
    and one whose cores all met the limit keeps them: each core takes the most that fits,
    and what it held still fits), so the fans stay exact, unless a destination was split
    anew itself; then the fans are charged again, each the largest seen within the limit,
    and the loop ends when packing again would split no core (`_fitting_helps`): every
    core meets the limit, or is over it by a compartment that no core could hold within
    it. That takes at most one round per population and one more (`_refits_max`; with
    share_cores a population's split also moves where the next one starts, and a lagged
    loop feeds its own fans: these stop after _refits_max rounds).

    Charged more, the same orders never open fewer cores (each core takes the longest run
    that fits, and what fits a run fits every part of it): the loop also stops once the
    mapping has `enough_cores`, where it could no longer beat another that fits. (A
    compartment whose fan grows past the limit is charged less again, but the mapping
    then has a core over the limit, unless a later round lowers that fan.)"""
    limit = config.limit("output_axons_per_core")
    seen = {name: np.zeros_like(fan) for name, fan in placed.fans.items()}
    for _ in range(_refits_max(net)):
        if enough_cores is not None and placed.mapping.n_cores >= enough_cores:
            break
        seen = {
            name: np.maximum(seen[name], np.where(fan > limit, 0, fan))
            for name, fan in placed.fans.items()
        }
        charges = _charges(net, config, placed.fans, seen)
        if not _fitting_helps(placed.mapping, charges, limit):
            break
        placed = _place_all(net, config, locality=False, orders=placed.orders, charges=charges)
    return placed


def map_netlist(net: Netlist, config: TargetConfig) -> Mapping:
    """Place `net` (an int netlist) on cores; see the module docstring for the rules."""
    if net.numeric != "int":
        raise UsageError("the Loihi 2 mapping needs a quantized (int) netlist")
    local = _fit_output_axons(net, config, _place_all(net, config, locality=True))
    if all(np.array_equal(o, np.arange(len(o))) for o in local.orders.values()):
        return local.mapping
    # A population's choice of order sees neither its own exact output axons (they depend
    # on where its destinations land, placed later) nor, with share_cores, the room it
    # leaves the next population on the last core. So a locality order could break the
    # output-axon limit, or open more cores in all, where index order everywhere did
    # not, also once fitted (in the tests a population grouped by its inputs held the two
    # compartments that fed most; packed again by their fans it took three cores where
    # index order took two): index order everywhere is kept then.
    plain = _place_all(net, config, locality=False)

    def cost(m: Mapping) -> tuple[bool, int]:
        return _over_output_axons(m, config), m.n_cores

    # Fitting the output axons only adds cores: index order needs no more fitting once it
    # has as many cores as a locality mapping that fits (cnn_sinabs: at once).
    enough = None if cost(local.mapping)[0] else local.mapping.n_cores
    plain = _fit_output_axons(net, config, plain, enough)
    return plain.mapping if cost(plain.mapping) < cost(local.mapping) else local.mapping
