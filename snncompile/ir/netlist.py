"""The Netlist: populations of compartments joined by synapses, in integers or float64.

This is what every target takes. A population is `size` compartments of one kind
(snncompile.ir.compartments); a synapse is a weight matrix from a source population's
messages to a destination population's input, with an exponent and a delay. Time is
discrete; every synapse hop takes one step, plus `delay` more (docs/numerics.md gives
the exact arithmetic of each kind in both numeric modes).

    numeric "int":     weights are integer mantissas on Lava's 8-bit grid, parameters
                       are integers within their bit widths (a quantized network);
    numeric "float64": the same structure with float weights (weight_exp 0) and float
                       parameters (the float model, for checking lowering exactly).

`ticks_per_step` is the number of simulation steps (ticks) one model step takes. It is 1
for every feed-forward network and for self-loops; a recurrent loop through n
populations with lag 1 needs n ticks per model step (time-multiplexing): a population at
latency k (in ticks) works on model step t at tick ticks_per_step * t + k and is idle at
every other tick (it keeps its state and sends zero), see docs/numerics.md.

`input_scale` maps the float input to the input population's integers
(x_int = round(x / input_scale)); `output_scale` maps the readout state back
(logits = state * output_scale, divided by the sequence length for mean pooling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

from snncompile.ir.compartments import COMPARTMENTS, Compartment
from snncompile.ir.ops import InvalidGraphError

NUMERICS = ("int", "float64")
# Integer sums run on float64 BLAS: exact while every partial sum stays below 2**53.
# Every population's summed input stays below it too: Lava's recorded inputs pass through
# float64 (its Extractor's ports).
EXACT_FLOAT_BITS = 53
INT64_MAX = 2**63 - 1
WRAP32_MAGNITUDE = 2**31  # the largest |wrap32(.)|
# An int32 sum shifted by at most 32 fits int64 (and by more, right, is 0 or -1 anyway);
# beyond it numpy's and compiled shifts disagree (x86 takes the count mod 64).
WEIGHT_EXP_LIMIT = 32


# The range each Formats field takes (inclusive).
FORMAT_LIMITS = {
    "weight_bits": (2, 8),
    "state_bits": (8, 32),
    "message_bits": (2, 32),
    "decay_bits": (12, 12),
    "ssm_frac_bits": (12, 24),
}


@dataclass(frozen=True)
class Formats:
    """Bit widths of the integer network (the Loihi 2 defaults, see docs/numerics.md)."""

    weight_bits: int = 8
    state_bits: int = 24
    message_bits: int = 24
    decay_bits: int = 12
    ssm_frac_bits: int = 16

    def __post_init__(self) -> None:
        for name, (low, high) in FORMAT_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidGraphError(
                    f"{name} must be an integer in [{low}, {high}], got {value!r}"
                )

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Population:
    """`size` compartments of one kind with their parameters.

    params: numpy arrays (0-d for a shared scalar, (size,) per compartment, or a table);
    attrs: plain str/int/float settings (e.g. the readout's pooling mode).
    """

    name: str
    kind: str
    size: int
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def compartment(self) -> Compartment:
        return COMPARTMENTS[self.kind]

    @property
    def input_width(self) -> int:
        return self.compartment.input_factor * self.size


@dataclass(frozen=True, eq=False)
class Synapse:
    """a_dst += shift(W @ msg_src(t - 1 - delay), weight_exp); W is (dst input width, src size).

    `weight` is a dense ndarray or a scipy CSR matrix (block-structured synapses such as
    an SSM's input are sparse). In int netlists it holds integer-valued float64 mantissas.

    `lag` (model steps, >= 0) says which model step the synapse carries: 0 for an
    ordinary (feed-forward) synapse, which defines the latency of its destination; a
    synapse with lag k >= 1 delivers the source's message of k model steps earlier (a
    recurrent connection has lag 1). Lagged synapses are left out of the latency DAG, so
    they may close cycles, and must satisfy (latency and delay in ticks)
    latency(src) + 1 + delay = latency(dst) + lag * ticks_per_step.
    """

    name: str
    src: str
    dst: str
    weight: np.ndarray | sparse.csr_matrix
    weight_exp: int = 0
    delay: int = 0
    lag: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]

    def dense(self) -> np.ndarray:
        return self.weight.toarray() if sparse.issparse(self.weight) else np.asarray(self.weight)

    def values(self) -> np.ndarray:
        """The stored (nonzero for sparse) weight values."""
        return self.weight.data if sparse.issparse(self.weight) else np.asarray(self.weight)

    @cached_property
    def max_row_abs_sum(self) -> float:
        """The largest sum of |weight| over one destination (so |W @ m| <= this * max|m|)."""
        sums = np.asarray(abs(self.weight).sum(axis=1)).ravel()  # sparse gives a matrix
        return float(sums.max(initial=0))

    @property
    def max_row_nnz(self) -> int:
        if sparse.issparse(self.weight):  # stored entries per row, any sparse format or array
            return int(np.diff(self.weight.tocsr().indptr).max(initial=0))
        return int(np.count_nonzero(self.weight, axis=1).max(initial=0))


@dataclass(frozen=True, eq=False)
class Netlist:
    """Populations and synapses; validated on construction (see the module docstring)."""

    populations: tuple[Population, ...]
    synapses: tuple[Synapse, ...]
    numeric: str
    formats: Formats = field(default_factory=Formats)
    input_scale: float = 1.0
    output_scale: float = 1.0
    dt_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ticks_per_step: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "populations", tuple(self.populations))
        object.__setattr__(self, "synapses", tuple(self.synapses))
        object.__setattr__(self, "_by_name", {p.name: p for p in self.populations})
        validate_netlist(self)

    def population(self, name: str) -> Population:
        return self._by_name[name]  # type: ignore[attr-defined]

    def of_kind(self, kind: str) -> list[Population]:
        return [p for p in self.populations if p.kind == kind]

    @property
    def input(self) -> Population:
        return self.of_kind("input")[0]

    @property
    def readout(self) -> Population:
        return self.of_kind("readout")[0]

    def incoming(self, name: str) -> list[Synapse]:
        return [s for s in self.synapses if s.dst == name]

    def latency(self) -> dict[str, int]:
        """Steps from the input to each population: max over lag-0 in-edges of src + 1 + delay.

        Lagged (recurrent) synapses are not edges of this DAG (see Synapse)."""
        lat: dict[str, int] = {}

        def visit(name: str, trail: tuple[str, ...]) -> int:
            if name in lat:
                return lat[name]
            if name in trail:
                raise InvalidGraphError(f"synapses form a cycle through {name!r}")
            incoming = [
                s
                for s in self.incoming(name)
                if self.population(s.src).kind != "bias" and s.lag == 0
            ]
            lat[name] = max(
                (visit(s.src, (*trail, name)) + 1 + s.delay for s in incoming), default=0
            )
            return lat[name]

        for pop in self.populations:
            visit(pop.name, ())
        return lat

    @property
    def output_latency(self) -> int:
        """Ticks from the input to the readout."""
        return self.latency()[self.readout.name]

    def total_ticks(self, length: int) -> int:
        """Ticks that run a sequence of `length` model steps (see `total_ticks`)."""
        return total_ticks(length, self.ticks_per_step, self.output_latency)

    def steps_run(self, length: int) -> dict[str, int]:
        """Model steps each population computes in a run of `length` (total_ticks): all of
        them, but for a population later than the readout (in a loop through several
        neurons), whose model step t falls at tick ticks_per_step * t + its latency:
        its last steps come after the run's last tick, and its traces hold zeros there."""
        lat, out = self.latency(), self.output_latency
        t = self.ticks_per_step
        return {name: min(length, length + (out - late) // t) for name, late in lat.items()}

    def counts(self) -> dict[str, int]:
        """Compartments per kind and the number of stored synaptic weights."""
        out: dict[str, int] = {}
        for pop in self.populations:
            out[pop.kind] = out.get(pop.kind, 0) + pop.size
        out["synapses"] = int(
            sum(s.weight.nnz if sparse.issparse(s.weight) else s.weight.size for s in self.synapses)
        )
        return out


def first_difference(a: Netlist, b: Netlist) -> str | None:
    """Where two netlists compute differently (None when they are the same network):
    any population's kind, size, parameter or setting, any synapse's ends, weights,
    exponent, delay or lag, the formats, scales, dt or ticks per step. `meta` is not
    compared (it describes, it does not compute)."""
    for field_name in ("numeric", "formats", "input_scale", "output_scale", "ticks_per_step"):
        if getattr(a, field_name) != getattr(b, field_name):
            return f"{field_name} {getattr(a, field_name)!r} != {getattr(b, field_name)!r}"
    if a.dt_s != b.dt_s:
        return f"dt_s {a.dt_s!r} != {b.dt_s!r}"
    if [p.name for p in a.populations] != [p.name for p in b.populations]:
        return "the populations differ"
    for pa, pb in zip(a.populations, b.populations, strict=True):
        if (pa.kind, pa.size, pa.attrs) != (pb.kind, pb.size, pb.attrs):
            return f"population {pa.name!r}: kind, size or settings differ"
        if set(pa.params) != set(pb.params) or not all(
            np.array_equal(pa.params[k], pb.params[k]) for k in pa.params
        ):
            return f"population {pa.name!r}: parameters differ"
    if [s.name for s in a.synapses] != [s.name for s in b.synapses]:
        return "the synapses differ"
    for sa, sb in zip(a.synapses, b.synapses, strict=True):
        ends = (sa.src, sa.dst, sa.weight_exp, sa.delay, sa.lag)
        if ends != (sb.src, sb.dst, sb.weight_exp, sb.delay, sb.lag):
            return f"synapse {sa.name!r}: ends, exponent, delay or lag differ"
        if sa.shape != sb.shape or not np.array_equal(sa.dense(), sb.dense()):
            return f"synapse {sa.name!r}: weights differ"
    return None


def total_ticks(length: int, ticks_per_step: int, output_latency: int) -> int:
    """Ticks that run `length` model steps: the readout's last active tick is
    ticks_per_step * (length - 1) + output_latency."""
    return ticks_per_step * (length - 1) + output_latency + 1


def compact_weight(matrix: np.ndarray | sparse.spmatrix) -> np.ndarray | sparse.csr_matrix:
    """The matrix's nonzeros, stored dense when at least a quarter of the entries are
    nonzero, else as CSR (the lowering's and the quantizer's storage rule). The argument
    is left as it was."""
    matrix = sparse.csr_matrix(matrix, copy=True)
    matrix.eliminate_zeros()
    if matrix.nnz >= 0.25 * matrix.shape[0] * matrix.shape[1]:
        return matrix.toarray()
    return matrix


def weight_grid(values: np.ndarray, bits: int) -> tuple[int, int, int]:
    """(low, high, step) of Lava's mantissa grid for a matrix with these values.

    Lava clips to 8 bits then truncates 8 - bits low bits, plus one more when the matrix
    mixes signs (lava.utils.weightutils): single sign [0, 255] or [-255, 0] in steps of
    2**(8 - bits); mixed sign [-256, 254] in steps of 2**(9 - bits).
    """
    if np.all(values >= 0):
        return 0, 255, 1 << (8 - bits)
    if np.all(values <= 0):
        return -255, 0, 1 << (8 - bits)
    return -256, 254, 1 << (9 - bits)


# Delays, lags and ticks per step in ticks. No network we build comes near (Loihi 2's
# synaptic delays are far shorter); the bound keeps a damaged file from sizing the
# simulators' delay buffers in gigabytes.
MAX_TICKS = 1 << 16
# Input and output scales are powers of two the quantizer picks from weight exponents
# (within +-32) and bit widths; far beyond, a (damaged) scale of 1e308 made inf logits.
MAX_SCALE_LOG2 = 200
# Compartments of one population: as the NIR import's node limit (far beyond a Loihi 2
# chip's 128 cores x 8192); a damaged size of 10**10 would size simulator arrays.
MAX_POPULATION_SIZE = 1 << 22


def validate_netlist(net: Netlist) -> None:
    """Raise InvalidGraphError naming the first broken rule."""
    if net.numeric not in NUMERICS:
        raise InvalidGraphError(f"numeric must be one of {NUMERICS}, got {net.numeric!r}")
    if not isinstance(net.ticks_per_step, int) or not 1 <= net.ticks_per_step <= MAX_TICKS:
        raise InvalidGraphError(
            f"ticks_per_step must be an integer in [1, {MAX_TICKS}], got {net.ticks_per_step}"
        )
    for name in ("input_scale", "output_scale"):
        scale = getattr(net, name)
        if not (
            isinstance(scale, (int, float)) and 2.0**-MAX_SCALE_LOG2 <= scale <= 2.0**MAX_SCALE_LOG2
        ):
            raise InvalidGraphError(
                f"{name} must be a positive number within 2**+-{MAX_SCALE_LOG2}, got {scale!r}"
            )
    dt = net.dt_s
    if dt is not None and not (isinstance(dt, (int, float)) and 0 < dt < math.inf):
        raise InvalidGraphError(f"dt_s must be a positive finite number of seconds, got {dt!r}")
    names = [p.name for p in net.populations]
    if len(set(names)) != len(names):
        raise InvalidGraphError("population names must be unique")
    for kind in ("input", "readout"):
        if len(net.of_kind(kind)) != 1:
            raise InvalidGraphError(f"a netlist needs exactly one {kind} population")
    for pop in net.populations:
        if pop.kind not in COMPARTMENTS:
            raise InvalidGraphError(f"population {pop.name!r}: unknown kind {pop.kind!r}")
        if pop.size > MAX_POPULATION_SIZE:
            raise InvalidGraphError(
                f"population {pop.name!r}: size {pop.size} is beyond {MAX_POPULATION_SIZE}"
            )
        if pop.size <= 0:
            raise InvalidGraphError(f"population {pop.name!r}: size must be positive")
        try:
            pop.compartment.validate(pop, net.numeric, net.formats)
        except InvalidGraphError as exc:
            raise InvalidGraphError(f"population {pop.name!r}: {exc}") from None
    if len({s.name for s in net.synapses}) != len(net.synapses):
        raise InvalidGraphError("synapse names must be unique")
    for syn in net.synapses:
        _validate_synapse(net, syn)
    if net.numeric == "int":
        for pop in net.populations:
            if pop.compartment.input_factor:
                _check_input_bound(net, pop)
    latency = net.latency()  # raises on cycles of lag-0 synapses
    ticks = net.ticks_per_step
    for syn in net.synapses:
        # With idle ticks every message must arrive at its destination's active tick.
        if not syn.lag and ticks == 1:
            continue
        arrives, due = latency[syn.src] + 1 + syn.delay, latency[syn.dst] + syn.lag * ticks
        if arrives != due:
            raise InvalidGraphError(
                f"synapse {syn.name!r}: lag {syn.lag} needs latency(src) + 1 + delay = "
                f"latency(dst) + lag * ticks_per_step, got {latency[syn.src]} + 1 + "
                f"{syn.delay} != {latency[syn.dst]} + {syn.lag} * {ticks}"
            )


def _validate_synapse(net: Netlist, syn: Synapse) -> None:
    where = f"synapse {syn.name!r}"
    for end in (syn.src, syn.dst):
        if end not in net._by_name:  # type: ignore[attr-defined]
            raise InvalidGraphError(f"{where}: unknown population {end!r}")
    src, dst = net.population(syn.src), net.population(syn.dst)
    if not src.compartment.sends:
        raise InvalidGraphError(f"{where}: a {src.kind} population sends no messages")
    if not dst.compartment.input_factor:
        raise InvalidGraphError(f"{where}: a {dst.kind} population takes no input")
    if syn.shape != (dst.input_width, src.size):
        raise InvalidGraphError(
            f"{where}: weight shape {syn.shape}, expected {(dst.input_width, src.size)}"
        )
    if not 0 <= syn.delay <= MAX_TICKS:
        raise InvalidGraphError(f"{where}: delay must be in [0, {MAX_TICKS}], got {syn.delay}")
    if not 0 <= syn.lag <= MAX_TICKS:
        raise InvalidGraphError(f"{where}: lag must be in [0, {MAX_TICKS}], got {syn.lag}")
    if syn.lag and src.kind == "bias":
        raise InvalidGraphError(f"{where}: a synapse from the bias cannot have a lag")
    if sparse.issparse(syn.weight):
        canonical = syn.weight.tocsr(copy=True)  # a COO's duplicates are summed here
        canonical.sum_duplicates()
        if canonical.nnz != syn.weight.nnz:  # its weight is their sum, not a stored value
            raise InvalidGraphError(f"{where}: sparse weight stores an entry more than once")
    values = syn.values()
    if not np.all(np.isfinite(values)):
        raise InvalidGraphError(f"{where}: weights hold NaN or inf")
    if net.numeric == "float64":
        return
    if np.any(values != np.round(values)):
        raise InvalidGraphError(f"{where}: int netlist weights must be integers")
    if not -WEIGHT_EXP_LIMIT <= syn.weight_exp <= WEIGHT_EXP_LIMIT:
        raise InvalidGraphError(
            f"{where}: weight_exp must be in [-{WEIGHT_EXP_LIMIT}, {WEIGHT_EXP_LIMIT}], "
            f"got {syn.weight_exp}"
        )
    low, high, step = weight_grid(values, net.formats.weight_bits)
    bad = (values < low) | (values > high) | (values % step != 0)
    if np.any(bad):
        raise InvalidGraphError(
            f"{where}: weight {values[bad][0]:.0f} is off the {net.formats.weight_bits}-bit "
            f"grid [{low}, {high}] step {step}"
        )
    # Exactness of the float64 BLAS sums the simulators use for integer products.
    msg_bits = 1 if src.compartment.spiking else net.formats.message_bits - 1
    bound_bits = np.log2(max(syn.max_row_nnz, 1)) + 8 + msg_bits
    if bound_bits >= EXACT_FLOAT_BITS:
        raise InvalidGraphError(f"{where}: fan-in {syn.max_row_nnz} is too large to sum exactly")


def synapse_input_bound(syn: Synapse, source: Population, formats: Formats) -> int:
    """The largest |floor_shift(wrap32(W @ msg), weight_exp)| an int synapse from `source`
    delivers to one destination input: |W @ msg| <= largest row sum of |W| x largest
    message (1 for spikes, else the message limit), at most 2**31 after the wrap."""
    message = 1 if source.compartment.spiking else 2 ** (formats.message_bits - 1) - 1
    total = min(int(syn.max_row_abs_sum) * message, WRAP32_MAGNITUDE)
    exp = syn.weight_exp
    return total << exp if exp >= 0 else -(-total >> -exp)  # floor rounds away from 0 below


def input_bound(net: Netlist, name: str) -> int:
    """The largest |a| population `name`'s summed input can reach in an int netlist."""
    return sum(
        synapse_input_bound(syn, net.population(syn.src), net.formats) for syn in net.incoming(name)
    )


LIF_KINDS = ("lif", "cuba_lif", "cuba_lif_sub")


def current_reach(pop: Population, bound: int) -> int:
    """The largest |u| of a lif-kind population whose |a| <= bound: |u_t| <= r |u_{t-1}|
    + 64 |a| with r = (4095 - du) / 4096 (the one wrap only shrinks |u|), so from u = 0,
    |u| <= 64 bound 4096 / (du + 1) (64 bound when du = 4095)."""
    return -(-64 * bound * 4096 // (int(pop.params["du"]) + 1))


def product_reach(pop: Population, bound: int, formats: Formats) -> tuple[int, str]:
    """(the largest magnitude of pop's update products given |a| <= bound, the product):
    ssm's a_re_q re - a_im_q im + b_q a, glu's a0 g shifted left by -out_shift, a lif
    kind's u (4095 - du); (0, "") for the other kinds."""
    if pop.kind == "ssm":
        gain = max(int(np.abs(pop.params[k]).max(initial=0)) for k in ("b_re_q", "b_im_q"))
        rotation = 2 * 2**formats.ssm_frac_bits * (2 ** (formats.state_bits - 1) - 1)
        return rotation + gain * bound, "a_re_q re - a_im_q im + b_q a"
    if pop.kind == "glu":
        gate = int(np.max(pop.params["pwl_table_q12"]))
        left = max(0, -int(pop.params["out_shift"]))  # tz by a negative n shifts left
        return (gate * bound) << left, "a0 g (shifted by out_shift)"
    if pop.kind in LIF_KINDS:
        keep = 4095 - int(pop.params["du"])
        return current_reach(pop, bound) * keep, "u (4095 - du)"
    return 0, ""


def input_bound_violation(pop: Population, bound: int, formats: Formats) -> str | None:
    """Which rule of docs/numerics.md's "Input bounds" pop breaks when its summed input
    reaches `bound`, or None: the summed input, and a lif kind's current, stay below
    2**53 (exact in float64 too, as Lava records them) and the ssm, glu and lif products
    inside int64."""
    exact = 2**EXACT_FLOAT_BITS
    if bound >= exact:
        return (
            f"its summed input can reach {bound:.4g} (largest |W| row sum x largest message "
            f"x 2**weight_exp over its synapses), not below 2**{EXACT_FLOAT_BITS}"
        )
    if pop.kind in LIF_KINDS:
        current = current_reach(pop, bound)
        if current >= exact:
            return (
                f"its current u can reach {current:.4g} (summed input up to {bound:.4g}, du "
                f"{int(pop.params['du'])}), not below 2**{EXACT_FLOAT_BITS}"
            )
    reach, what = product_reach(pop, bound, formats)
    if reach > INT64_MAX:
        return f"{what} can reach {reach:.4g}, beyond int64 (summed input up to {bound:.4g})"
    return None


def _check_input_bound(net: Netlist, pop: Population) -> None:
    problem = input_bound_violation(pop, input_bound(net, pop.name), net.formats)
    if problem is not None:
        raise InvalidGraphError(
            f'population {pop.name!r}: {problem} (docs/numerics.md, "Input bounds")'
        )


class ChainLayer(NamedTuple):
    """A layer of a dense chain: the population, the synapse from the layer before it,
    and its own lag-1 synapse or None."""

    pop: Population
    feed: Synapse
    recurrent: Synapse | None

    @property
    def synapses(self) -> list[Synapse]:
        """The feed, then the self-synapse if there is one."""
        return [self.feed] if self.recurrent is None else [self.feed, self.recurrent]


CHAIN_KINDS = ("lif", "cuba_lif")  # Lava's LIF, the neuron of lava-dl netx's dense layers


def _chain_layer(net: Netlist, pop: Population, tail: str) -> ChainLayer | None:
    if pop.kind not in CHAIN_KINDS:
        return None
    syns = net.incoming(pop.name)
    feed = [s for s in syns if s.src == tail and s.lag == 0 and not s.delay]
    loop = [s for s in syns if s.src == pop.name and s.lag == 1 and not s.delay]
    if len(feed) != 1 or len(feed) + len(loop) != len(syns):
        return None
    return ChainLayer(pop, feed[0], loop[0] if loop else None)


def lif_chain(net: Netlist) -> list[ChainLayer]:
    """The chain of LIF layers from the input, by structure: each next layer is the first
    population in netlist order of a CHAIN_KINDS kind fed by the layer before it alone
    (delay 0, lag 0), with at most one more synapse, from itself with lag 1 and delay 0;
    none in a time-multiplexed netlist. What lava-dl's netx can build as dense and
    dense_rec layers (the loihi2 target adds its numeric conditions; the quantizer's
    netx_weights option aims these layers' weights at exponent 0)."""
    if net.ticks_per_step != 1:
        return []
    chain: list[ChainLayer] = []
    tail = net.input.name
    while True:
        taken = {layer.pop.name for layer in chain}
        step = next(
            (
                layer
                for pop in net.populations
                if pop.name not in taken and (layer := _chain_layer(net, pop, tail)) is not None
            ),
            None,
        )
        if step is None:
            return chain
        chain.append(step)
        tail = step.pop.name
