"""Quantize a float64 Netlist to Loihi 2 integer formats, calibrated on real inputs.

Every population gets power-of-two scales: `in` (float value of one unit of its summed
input) and `out` (of one unit of the messages it sends; spikes are 1). Powers of two
keep every rescaling an exact shift. A synapse's float weights W then become integer
mantissas on Lava's grid with one exponent: W * out(src) / in(dst) ~= mant * 2**exp.

Scales come from the largest magnitude each population reaches on the calibration data,
times 2**headroom_bits, placed at the top of its integer range:

    graded messages (input, accumulator, glu)   act_bits (16 by default, < message_bits,
                                                 so synaptic sums stay far inside int32)
    SSM states, readout, Heaviside input         state_bits (an SSM's messages: the same
                                                 peak in message_bits when narrower,
                                                 its states shifted by out_shift)
    reset-refractory neuron                      theta = T = 2**k with max|m| T inside
                                                 state_bits, theta and rho inside their
                                                 23 bits; decay follows
    LIF (Lava's bit-accurate model)              vth = T with a <= 2**15 (Lava's 16-bit
                                                 input) and |v| = |m| 64 T inside 24 bits

Thresholds are co-scaled with the weights feeding them (the lowering already made every
threshold 1), so spiking is invariant to the scale. After quantizing, the integer
network runs on the calibration data; a population that still saturates gets one more
bit of headroom, and the source of a synaptic sum that wraps int32 sends one bit
narrower messages (`message_headroom`: the sum is its messages times the mantissas, which
no other scale moves), up to `max_rounds` runs in all. Values that cannot fit their bit
width raise HardwareRuleError naming the parameter, its value and the limit; so does a
synaptic sum that still wraps int32 on the calibration data, at once where its source's
messages cannot narrow (the bias's value is fixed by act_bits).

Constants (synapses from the bias population) are one synapse on one grid, unless one
of them is larger than its destination's whole calibrated input (a folded BatchNorm
shift cancelling a channel mean) or weights are narrower than 8 bits: then each bias
synapse whose grid leaves half a unit or more of its destination gets a second synapse,
`<name>.fine`, with the remainder on its own grid, no finer than whole units of the
destination (`_Quantizer.build`), and below 8 bits further ones, `.fine2`, ..., up to
MAX_FINE_PARTS (`_Quantizer.synapses`).
A cancelling constant, at any weight bits (a BatchNorm folded downstream, whose 1 / std
scales each channel's error alike), also splits every weight matrix whose rows' largest
magnitudes lie ROW_GROUP_BITS octaves or more apart into synapses by rows,
`<name>.rows<g>`, each on its own exponent (`_row_groups`); elsewhere one grid per
synapse, as the bundled models have at 8-bit weights.

netx_weights (--netx-weights) caps each LIF layer of the chain from the input
(lif_chain) at the input scale that puts every weight into it on the grid at exponent 0
(`_netx_limit`), and quantizes those synapses there: what lava-dl's netx loads from a
loihi2 network.net (docs/formats.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import HardwareRuleError, UsageError
from snncompile.ir.compartments import COMPARTMENTS
from snncompile.ir.netlist import (
    FORMAT_LIMITS,
    WEIGHT_EXP_LIMIT,
    Formats,
    Netlist,
    Population,
    Synapse,
    compact_weight,
    lif_chain,
    weight_grid,
)
from snncompile.ir.ops import InvalidGraphError
from snncompile.reference.kinds import gate_float
from snncompile.reference.parts import part_size, simulate_in_parts
from snncompile.reference.simulator import simulate

LIF_INPUT_BITS = 16  # Lava's LIF in-port is int16
LIF_VTH_LIMIT = 2**17 - 1
RR_PARAM_LIMIT = 2**23 - 1  # reset_refractory theta and rho (ir/compartments.py)
FINE_SUFFIX = ".fine"
# Remainder synapses of a bias synapse below 8-bit weights (`.fine`, `.fine2`, ...):
# at most this many, until every constant arrives within half a unit (one at 8 bits).
MAX_FINE_PARTS = 8
ROWS_SUFFIX = ".rows"
# Rows whose largest weights differ by this many octaves or more share no exponent (a
# row 8x below the top keeps 4 of 8 bits), in at most MAX_ROW_GROUPS synapses.
ROW_GROUP_BITS = 3
MAX_ROW_GROUPS = 4
GATE_RANGE = {"sigmoid": (-8.0, 8.0, 0.25), "hard-sigmoid": (-4.0, 4.0, 1.0)}
GLU_SHIFT_MAX = 23  # pwl_shift's format (ir/compartments.py)


@dataclass(frozen=True)
class QuantConfig:
    """Bit widths and calibration policy (CLI: --weight-bits, --state-bits, ...)."""

    weight_bits: int = 8
    state_bits: int = 24
    message_bits: int = 24
    ssm_frac_bits: int = 16
    act_bits: int = 16
    headroom_bits: int = 2
    max_rounds: int = 4
    netx_weights: bool = False  # the LIF chain from the input at weight exponent 0

    def __post_init__(self) -> None:
        try:  # the formats first: act_bits is bounded by a message_bits known to be valid
            self.formats()
        except InvalidGraphError as exc:
            raise UsageError(str(exc)) from None
        if not 2 <= self.act_bits <= self.message_bits:
            # message_bits alone below 16 meets act_bits' default: say so, not only "got 16"
            default = QuantConfig.__dataclass_fields__["act_bits"].default
            hint = (
                f" (act_bits defaults to {default}): pass act_bits={self.message_bits} or less"
                if self.act_bits == default
                else ""
            )
            raise UsageError(
                f"act_bits must be in [2, message_bits = {self.message_bits}], got "
                f"{self.act_bits}{hint}"
            )
        if not isinstance(self.netx_weights, bool):
            raise UsageError(f"netx_weights must be True or False, got {self.netx_weights!r}")
        for name, low, high in (("headroom_bits", 0, 8), ("max_rounds", 1, 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise UsageError(f"{name} must be an integer in [{low}, {high}], got {value!r}")

    def formats(self) -> Formats:
        return Formats(
            weight_bits=self.weight_bits,
            state_bits=self.state_bits,
            message_bits=self.message_bits,
            ssm_frac_bits=self.ssm_frac_bits,
        )


@dataclass
class Scales:
    """log2 of a population's input and output scales."""

    in_log2: int = 0
    out_log2: int = 0


@dataclass
class QuantReport:
    """What quantization chose and what it costs, per population and synapse."""

    populations: dict[str, dict[str, Any]] = field(default_factory=dict)
    synapses: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration_events: dict[str, int] = field(default_factory=dict)
    calibration_spike_rates: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    config: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def silent_in_calibration_warnings(populations: dict[str, dict[str, Any]]) -> list[str]:
    """The warning (none or one) of populations whose graded value calibration never
    moved (a report's `silent_in_calibration`): export prints it with its report, verify
    with its own warnings."""
    silent = [name for name, pop in populations.items() if pop.get("silent_in_calibration")]
    if not silent:
        return []
    return [
        f"no activity in calibration at {', '.join(silent)}: scaled for |value| <= 1; "
        "calibrate with data that drives them (--calib)"
    ]


def precision_notes(populations: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, text) of what quantize made coarser than the options asked, from a report's
    populations: SSM modes keeping fewer fractional bits (their b past int32) and messages
    narrowed by the wrap rounds. export prints them under its report, verify with its
    warnings: either explains a verify that disappoints."""
    fewer = [
        f"{name} ({pop['modes_with_fewer_frac_bits']}, down to {pop['fewest_frac_bits']})"
        for name, pop in populations.items()
        if pop.get("modes_with_fewer_frac_bits")
    ]
    narrowed = [
        f"{name} ({bits} bit{'s' if bits != 1 else ''})"
        for name, pop in populations.items()
        if (bits := pop.get("message_headroom_bits"))
    ]
    notes = []
    if fewer:
        notes.append(
            ("ssm modes", f"with fewer fractional bits, their b too large for int32: "
                          f"{', '.join(fewer)}")
        )  # fmt: skip
    if narrowed:
        notes.append(
            ("messages", f"narrowed where their sums wrapped int32: {', '.join(narrowed)}")
        )
    return notes


def _sources_lost(scaled: Any, values: np.ndarray, stored: np.ndarray) -> list[int]:
    """Columns (source neurons) of a weight matrix with a nonzero weight every one of
    which rounded to 0: what they send reaches nothing through this synapse. `values`
    and `stored` are the matrix's entries (a sparse matrix's data) before and after."""
    if sparse.issparse(scaled):
        columns = scaled.indices
    else:
        columns = np.broadcast_to(np.arange(scaled.shape[1]), scaled.shape).ravel()
    width = scaled.shape[1]
    largest = np.zeros(width)
    np.maximum.at(largest, columns, np.abs(values))
    # Weights of 1e-12 of the synapse's largest and less are no information: float
    # residue of composing linear NIR nodes (5.6e-17 beside 2 and 4 was "lost").
    had = largest > 1e-12 * largest.max(initial=0.0)
    kept = np.bincount(columns, weights=(stored != 0).astype(float), minlength=width) > 0
    return np.flatnonzero(had & ~kept).tolist()


def fewest_bits_to_fit(values: np.ndarray, limit: int) -> np.ndarray:
    """Per value v >= 0, the least c >= 0 with rint(v 2**-c) <= limit (float; 0 for a
    non-finite v, which the netlist's own check names). Rounded, not v 2**-c <= limit:
    limit + 0.25 fits unshifted."""
    cut = np.zeros(np.shape(values))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        over = np.isfinite(values) & (values > limit)
        # One below what the unrounded value needs: rint may bring that one inside.
        cut[over] = np.maximum(np.ceil(np.log2(values[over] / limit)) - 1, 0)
        for _ in range(2):  # the unrounded need, and one more if log2 rounded it down
            cut += np.isfinite(values) & (np.rint(values * 2.0**-cut) > limit)
    return cut


def _ssm_b_limit(fmt: Formats) -> int:
    """The largest |b_re_q| an SSM takes (ir/compartments.py)."""
    return int(COMPARTMENTS["ssm"].int_params["b_re_q"].limit(fmt)[1])


def _log2_at_least(value: float) -> int:
    """Smallest k with 2**k >= value (value > 0)."""
    return math.ceil(math.log2(value)) if value > 0 else -30


def _log2_at_most(value: float) -> int:
    return math.floor(math.log2(value)) if value > 0 else 30


def _q(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def calibration_ranges(net: Netlist, x: np.ndarray) -> dict[str, float]:
    """Largest magnitude of every message, state and input on the calibration data, run
    in parts of the batch as simulate runs them (maxima merge exactly)."""
    x = np.asarray(x)
    size = part_size(net, int(x.shape[0]), int(x.shape[1]))
    ranges: dict[str, float] = {}
    for first in range(0, int(x.shape[0]), size):
        for name, peak in simulate(net, x[first : first + size], peaks=True).peaks.items():
            ranges[name] = max(ranges.get(name, 0.0), float(peak))
    ranges["input"] = float(np.abs(x).max(initial=0))
    return ranges


def quantize_weights(
    weight: np.ndarray, bits: int, lowest_exp: int | None = None, grid_of: Any = None
) -> tuple[np.ndarray, int]:
    """Float weights -> (integer mantissas on Lava's grid, exponent), nearest rounding;
    the exponent is at least `lowest_exp` when given; the grid is the one for the signs
    of `grid_of` when given (the mixed grid for a matrix of one sign: its step)."""
    values = np.asarray(weight, dtype=np.float64)
    if not np.any(values):
        return np.zeros_like(values), 0
    low, high, step = _outer_grid(values if grid_of is None else np.asarray(grid_of), bits)
    exp = _log2_at_least(_grid_excess(values, low, high))
    if lowest_exp is not None:
        exp = max(exp, lowest_exp)
    mant = np.clip(step * np.rint(values / 2.0**exp / step), low, high)
    # Rounding tiny entries of one sign to zero leaves the other: Lava's grid is then the
    # single-sign one, which ends at -255 (or 255), not at the mixed grid's -256.
    low, high, step = weight_grid(mant, bits)
    return np.clip(mant, low + (-low) % step, high - high % step), exp


def _outer_grid(signs_of: np.ndarray, bits: int) -> tuple[int, int, int]:
    """Lava's grid for the signs of `signs_of` (weight_grid), its ends moved to the
    outermost values on it (254 is not a multiple of 128 at 2 bits)."""
    low, high, step = weight_grid(signs_of, bits)
    return low + (-low) % step, high - high % step, step


def _grid_excess(values: np.ndarray, low: int, high: int) -> float:
    """How many times larger than the grid [low, high] at exponent 0 the values reach
    (<= 1: they fit)."""
    pos, neg = values.max(initial=0.0), -values.min(initial=0.0)
    return max(pos / high if high > 0 else 0.0, neg / -low if low < 0 else 0.0)


def _row_groups(matrix: np.ndarray | sparse.csr_matrix) -> list[np.ndarray]:
    """Masks over the matrix's stored values (`.data` of a CSR matrix, else the raveled
    array) grouping its rows by how many ROW_GROUP_BITS their largest magnitude lies
    below the matrix's; [] when one group holds them all. Zero rows go with the first
    group (they store nothing)."""
    if sparse.issparse(matrix):
        values, counts = matrix.data, np.diff(matrix.indptr)
    else:
        values, counts = matrix.ravel(), np.full(matrix.shape[0], matrix.shape[1])
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    peaks = np.zeros(matrix.shape[0])
    np.maximum.at(peaks, rows, np.abs(values))
    top = peaks.max(initial=0.0)
    if not top > 0:
        return []
    octaves = np.floor(np.log2(top / np.where(peaks > 0, peaks, top)))
    group = np.minimum(octaves // ROW_GROUP_BITS, MAX_ROW_GROUPS - 1).astype(np.int64)
    used = np.unique(group)
    if used.size == 1:
        return []
    return [group[rows] == g for g in used]


def delivered(mant: np.ndarray, exp: int, message: int) -> np.ndarray:
    """What a synapse from a constant source adds per unit of its message, in weight
    units: floor_shift(mant * message, exp) / message (docs/numerics.md; exact in
    float64, the products being far below 2**53)."""
    return np.floor(mant * float(message) * 2.0**exp) / message


class _Quantizer:
    def __init__(
        self, net: Netlist, ranges: dict[str, float], cfg: QuantConfig, input_peak: float = 0.0
    ) -> None:
        self.net = net
        self.ranges = ranges
        self.input_peak = input_peak  # the calibration's largest |x|, named in range errors
        self.cfg = cfg
        self.extra_headroom: dict[str, int] = {}
        # Bits on the scale of what a population sends, beyond its headroom: given to the
        # source of a synaptic sum that wrapped int32 (quantize), whose messages times
        # the mantissas make the sum; the destination's scale leaves that product alone.
        self.message_headroom: dict[str, int] = {}
        self.scales: dict[str, Scales] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.silent: set[str] = set()
        self.fine_grids = False  # build() decides: see _cancels
        # netx_weights: the chain's layers, and the synapses into them, by name.
        chain = lif_chain(net) if cfg.netx_weights else []
        self.netx_layers = {layer.pop.name: layer for layer in chain}
        self.netx_synapses = {s.name for layer in chain for s in layer.synapses}

    def headroom(self, name: str) -> float:
        return 2.0 ** (self.cfg.headroom_bits + self.extra_headroom.get(name, 0))

    def message_room(self, name: str) -> int:
        return self.message_headroom.get(name, 0)

    def range_of(self, key: str) -> float:
        return self.ranges.get(key, 0.0)

    def graded_log2(self, name: str, peak: float, bits: int) -> int:
        """The scale exponent that fits `peak` (with headroom) into `bits`. A value the
        calibration never moved (peak 0) says nothing about its range: it is given the
        scale of |value| <= 1 and reported, instead of a scale fit for 1e-30 that would
        need shifts of 100 bits downstream."""
        if not peak > 0:
            self.silent.add(name)
            peak = 1.0
        return _log2_at_least(peak * self.headroom(name) / _q(bits))

    # -- scales and integer parameters per kind ---------------------------------------

    def population(self, pop: Population) -> Population:
        handler = getattr(self, f"_{pop.kind}")
        return handler(pop)

    def _input(self, pop: Population) -> Population:
        k = self.graded_log2(pop.name, self.range_of("input"), self.cfg.act_bits)
        k += self.message_room(pop.name)  # its value is its message
        self.scales[pop.name] = Scales(k, k)
        return pop

    def _bias(self, pop: Population) -> Population:
        k = -(self.cfg.act_bits - 2)
        self.scales[pop.name] = Scales(k, k)
        return Population(pop.name, "bias", 1, params={"value": np.array(2.0**-k)})

    def _accumulator(self, pop: Population) -> Population:
        k = self.graded_log2(pop.name, self.range_of(pop.name), self.cfg.act_bits)
        k += self.message_room(pop.name)  # its value is its message
        self.scales[pop.name] = Scales(k, k)
        return pop

    def _ssm(self, pop: Population) -> Population:
        k_in = self.graded_log2(pop.name, self.range_of(f"{pop.name}.in"), self.cfg.act_bits)
        peak = max(self.range_of(f"{pop.name}.re"), self.range_of(f"{pop.name}.im"))
        k = self.graded_log2(pop.name, peak, self.cfg.state_bits)
        # Messages narrower than the states send Re z shifted right, to the scale that
        # fits its peak into them: sent unshifted they clipped the peaks (--message-bits
        # 16: 96.11% argmax agreement), and states fit to the messages instead rounded
        # every step too coarsely (88.06%; docs/compiler.md).
        out_shift = max(0, self.graded_log2(pop.name, peak, self.cfg.message_bits) - k)
        out_shift += self.message_room(pop.name)  # the states keep their scale
        self.scales[pop.name] = Scales(k_in, k + out_shift)
        gain = 2.0 ** (self.cfg.ssm_frac_bits + k_in - k)  # input -> state units, Q(F)
        frac_cut = self._ssm_frac_cut(pop, gain)
        one = 2.0 ** (self.cfg.ssm_frac_bits - frac_cut)  # per mode
        params = {
            "a_re_q": np.rint(pop.params["a_re"] * one),
            "a_im_q": np.rint(pop.params["a_im"] * one),
            "b_re_q": np.rint(pop.params["b_re"] * gain * 2.0**-frac_cut),
            "b_im_q": np.rint(pop.params["b_im"] * gain * 2.0**-frac_cut),
            "out_shift": np.array(float(out_shift)),
            "frac_cut": frac_cut,
        }
        self.notes[pop.name] = {"state_scale_log2": k, "out_shift": out_shift}
        if frac_cut.any():
            self.notes[pop.name].update(
                modes_with_fewer_frac_bits=int(np.count_nonzero(frac_cut)),
                fewest_frac_bits=int(self.cfg.ssm_frac_bits - frac_cut.max()),
            )
        return Population(pop.name, "ssm", pop.size, params=params)

    def _ssm_frac_cut(self, pop: Population, gain: float) -> np.ndarray:
        """Per mode, the fewest fractional bits below F whose b_q = rint(b gain 2**-cut)
        fits int32 (float, 0 where it already fits). A mode's b is large where its input
        is small: a BatchNorm folded into the SSM puts a channel's 1 / std there (a small
        prenorm binary-s4d needed 32 bits), and one such mode made F smaller for all
        (an option the refusal named until 2026-12-06). Per-mode input scales would keep
        F, but cost each lifted row an exponent of its own in every synapse into the SSM
        (tried: rows sharing a synapse lost bits, down to zero). HardwareRuleError where a
        mode would need fewer than F's least value (12) bits."""
        limit = _ssm_b_limit(self.cfg.formats())
        b = np.maximum(np.abs(pop.params["b_re"]), np.abs(pop.params["b_im"])) * gain
        cut = fewest_bits_to_fit(b, limit)
        low = FORMAT_LIMITS["ssm_frac_bits"][0]
        if self.cfg.ssm_frac_bits - cut.max(initial=0.0) < low:
            mode = int(np.argmax(cut))
            lacking = int(cut[mode]) - (self.cfg.ssm_frac_bits - low)
            raise HardwareRuleError(
                f"quantized network does not fit: population {pop.name!r}: mode {mode}'s "
                f"b_q = b 2**(frac bits + input scale - state scale) = {b[mode]:.4g} at "
                f"--ssm-frac-bits {self.cfg.ssm_frac_bits} is outside int32 by "
                f"{int(cut[mode])} bit(s), {lacking} more than its fractional bits can "
                f"give ({low} at least); each bit fewer of --state-bits or more of "
                "--act-bits halves it (large b where a mode's input is small, e.g. a "
                "folded BatchNorm's 1 / std)"
            )
        return cut

    def _membrane_peak(self, pop: Population, state: str) -> float:
        return self.range_of(f"{pop.name}.in") + self.range_of(f"{pop.name}.{state}")

    def _reset_refractory(self, pop: Population) -> Population:
        peak = max(self._membrane_peak(pop, "v"), 1.0)
        k = _log2_at_most(_q(self.cfg.state_bits) / (peak * self.headroom(pop.name)))
        # theta and rho are 23-bit parameters whatever the state width (compartments.py):
        # 28-bit states put theta = 2**23 just outside.
        largest = max(float(np.max(pop.params["theta"])), float(np.max(pop.params["rho"])), 1.0)
        k = min(k, _log2_at_most(RR_PARAM_LIMIT / largest))
        threshold = 2**k
        self.scales[pop.name] = Scales(-k, 0)
        params = {
            "decay": np.rint((1.0 - pop.params["beta"]) * 4096),
            "theta": np.rint(pop.params["theta"] * threshold),
            "rho": np.rint(pop.params["rho"] * threshold),
        }
        self.notes[pop.name] = {"threshold_int": threshold}
        return Population(pop.name, pop.kind, pop.size, params=params)

    def _lif(self, pop: Population) -> Population:
        room = self.headroom(pop.name)
        by_input = _q(LIF_INPUT_BITS) / (max(self.range_of(f"{pop.name}.in"), 1e-30) * room)
        membrane = self._membrane_peak(pop, "v")
        by_state = 2**17 / (max(membrane, 1.0) * room)
        bounds = {
            "input": _log2_at_most(by_input),
            "membrane": _log2_at_most(by_state),
            "netx": self._netx_limit(pop),
        }
        k = min(bounds.values())
        self.scales[pop.name] = Scales(-k, 0)
        tau = float(pop.params["tau"])
        dv = 4096 - round(tau * 4096)
        if not 0 <= dv <= 4095:  # no bit width moves it: the generic hint would mislead
            raise HardwareRuleError(
                f"population {pop.name!r}: tau = {tau:g} gives dv = {dv}, outside [0, 4095] "
                "(Lava's LIF keeps (4096 - dv) / 4096 of v per step: tau must round to "
                "1/4096 .. 1 of it)"
            )
        params = {
            "du": np.array(4095.0),
            "dv": np.array(float(dv)),
            "vth": self._vth(pop, k, bounds, membrane),
        }
        self.notes[pop.name] = {"vth": int(params["vth"])}
        return Population(pop.name, pop.kind, pop.size, params=params)

    def _netx_limit(self, pop: Population) -> int:
        """The largest LIF input scale exponent k (at most 16) that keeps every weight
        into a netx chain layer (netx_weights) on the weight grid at exponent 0; 16 for
        any other population. The synapse puts W 2**(out_log2(src) + k) on the grid."""
        layer = self.netx_layers.get(pop.name)
        if layer is None:
            return 16
        syns = layer.synapses
        # The grid of the layer's signs, as `synapses` quantizes them (netx_weights).
        signs = np.concatenate([s.dense().ravel() for s in syns])
        low, high, _ = _outer_grid(signs, self.cfg.weight_bits)
        # A self-synapse's source is this layer: its spikes (scale 2**0).
        out_log2 = {s.src: 0 if s.src == pop.name else self.scales[s.src].out_log2 for s in syns}
        need = max(_grid_excess(s.dense() * 2.0 ** out_log2[s.src], low, high) for s in syns)
        return min(_log2_at_most(1.0 / need), 16) if need > 0 else 16

    def _vth(self, pop: Population, k: int, bounds: dict[str, int], membrane: float) -> np.ndarray:
        """The threshold on the input's scale 2**k. The lowering makes it an integer
        (weights carry the float threshold); a negative k, from an input range far above
        the threshold (a NIR weight or gain of 1e300) or a membrane that calibration drove
        far past it (a decay near 1 under a steady input of one sign), would put it below
        one unit. `bounds` holds the largest k each limit allows; the refusal names the
        one that bound (the input's until 2026-12-07, also when the membrane bound: "its
        input reaches 200 ..., beyond what a 16-bit input holds", helper-83)."""
        vth = float(2**k) * float(pop.params["vth"])
        if not vth.is_integer():
            peak = self.range_of(f"{pop.name}.in")
            threshold = float(pop.params["vth"])
            bits = round(math.log2(self.headroom(pop.name)))
            extra = self.extra_headroom.get(pop.name, 0)  # saturation rounds added them
            given = f", {extra} of them added for saturation" if extra else ""
            room = f"{bits} headroom bit{'s' if bits != 1 else ''} (--headroom-bits{given})"
            if bounds.get("input") == k:
                what = (
                    f"its input reaches {peak:.3g} against a threshold of {threshold:g}, "
                    f"beyond what a {LIF_INPUT_BITS}-bit input holds with the threshold at one "
                    f"unit or more and {room}"
                )
            elif bounds.get("membrane") == k:
                what = (
                    f"its membrane's calibrated range reaches {membrane:.3g} against a "
                    f"threshold of {threshold:g} (its input {peak:.3g}), beyond what Lava's "
                    f"24-bit LIF state holds with the threshold at one unit or more and {room}"
                )
            elif bounds.get("netx") == k:
                what = (
                    f"under --netx-weights its weights sit at exponent 0, where a threshold "
                    f"of {threshold:g} falls below one unit of its input (input {peak:.3g})"
                )
            else:  # the largest constant in vth's 17-bit format
                what = (
                    f"a threshold of {threshold:g} falls below one unit of its input "
                    f"(input {peak:.3g}, membrane {membrane:.3g})"
                )
            raise HardwareRuleError(
                f"population {pop.name!r}: {what}: the model's weights, gains or dt, or the "
                f"calibration inputs (largest magnitude {self.input_peak:.3g}), are out of "
                "scale"
            )
        return np.array(vth)

    def _cuba_lif(self, pop: Population, largest_constant: float = 1.0) -> Population:
        # Lava's LIF with a current: u holds (a << 6) sums and must stay inside its 24-bit
        # wrap, v inside its 24-bit saturation, one input inside Lava's int16 port; the
        # largest constant in vth's 17-bit format (the threshold, 1, or a subtrahend).
        room = self.headroom(pop.name)
        by_input = _q(LIF_INPUT_BITS) / (max(self.range_of(f"{pop.name}.in"), 1e-30) * room)
        membrane = max(self._membrane_peak(pop, "u"), self._membrane_peak(pop, "v"))
        by_state = 2**17 / (max(membrane, 1.0) * room)
        by_constant = (2**17 - 1) / max(largest_constant, 1.0)
        bounds = {
            "input": _log2_at_most(by_input),
            "membrane": _log2_at_most(by_state),
            "constant": _log2_at_most(by_constant),
            "netx": self._netx_limit(pop),
        }
        k = min(bounds.values())
        self.scales[pop.name] = Scales(-k, 0)
        alpha_u, alpha_v = float(pop.params["alpha_u"]), float(pop.params["alpha_v"])
        params = {
            # Lava keeps 4096 - (du + 1) of u per step, and 4096 - dv of v.
            "du": np.array(float(min(max(4095 - round(alpha_u * 4096), 0), 4095))),
            "dv": np.array(float(min(max(4096 - round(alpha_v * 4096), 0), 4095))),
            "vth": self._vth(pop, k, bounds, membrane),
        }
        self.notes[pop.name] = {"vth": int(params["vth"]), "du": int(params["du"]),
                                "dv": int(params["dv"])}  # fmt: skip
        return Population(pop.name, pop.kind, pop.size, params=params)

    def _cuba_lif_sub(self, pop: Population) -> Population:
        # The same states, decays, threshold and limits as cuba_lif; the subtrahend in
        # the threshold's format (the calibration's v range includes what it leaves).
        vsub, vth = float(pop.params["vsub"]), float(pop.params["vth"])
        if vsub > (2**17 - 1) * vth:  # even a threshold of one unit leaves vsub too large
            raise HardwareRuleError(
                f"population {pop.name!r}: a spike subtracts vsub = {vsub:.4g} with a "
                f"threshold of {vth:.4g}, more thresholds than vth's 17-bit format holds "
                "(snnTorch's delayed reset subtracts 1/beta of them)"
            )
        out = self._cuba_lif(pop, largest_constant=vsub)
        k = -self.scales[pop.name].in_log2  # vth is 2**k times the float threshold
        out.params["vsub"] = np.array(float(round(vsub * 2.0**k)))
        self.notes[pop.name]["vsub"] = int(out.params["vsub"])
        return out

    def _heaviside(self, pop: Population) -> Population:
        k = self.graded_log2(pop.name, self.range_of(f"{pop.name}.in"), self.cfg.state_bits)
        self.scales[pop.name] = Scales(k, 0)
        return pop

    def _glu(self, pop: Population) -> Population:
        k_in = self.graded_log2(pop.name, self.range_of(f"{pop.name}.in"), self.cfg.act_bits)
        k_out = self.graded_log2(pop.name, self.range_of(pop.name), self.cfg.act_bits)
        k_out += self.message_room(pop.name)
        self.scales[pop.name] = Scales(k_in, k_out)
        low, high, knot = GATE_RANGE[pop.attrs["gate"]]
        shift = max(_log2_at_most(knot) - k_in, 0)
        knot = 2.0 ** (shift + k_in)
        x0 = math.floor(low / 2.0**k_in)
        n_knots = math.ceil((high - low) / knot) + 1
        limit = 2 ** (self.cfg.message_bits - 1) - 1  # pwl_x0's format
        if x0 < -limit or shift > GLU_SHIFT_MAX:
            # A gate input calibrated far below the gate's range (the GLU's weights
            # 0.01 of a unit's, at the default widths): the table from -8 would start
            # outside pwl_x0's format, which refused the model (exit 5; helper-83). Its
            # knots then span only the values a summed input of that many units
            # reaches, +-limit, at most 2**23 units apart (finer than 0.25 there); an
            # input beyond them holds the end value, as beyond -8 and 8 otherwise.
            shift = min(shift, GLU_SHIFT_MAX)
            x0 = max(x0, -limit)
            top = min(math.ceil(high / 2.0**k_in), limit)
            n_knots = max(math.ceil((top - x0) / 2**shift), 1) + 1
        knots = (x0 + np.arange(n_knots) * 2**shift) * 2.0**k_in
        params = {
            "pwl_x0": np.array(float(x0)),
            "pwl_shift": np.array(float(shift)),
            "pwl_table_q12": np.rint(gate_float(pop.attrs["gate"], knots) * 4096),
            "out_shift": np.array(float(12 + k_out - k_in)),
        }
        return Population(pop.name, pop.kind, pop.size, params=params, attrs=dict(pop.attrs))

    def _readout(self, pop: Population) -> Population:
        k = self.graded_log2(pop.name, self.range_of(f"{pop.name}.acc"), self.cfg.state_bits)
        self.scales[pop.name] = Scales(k, k)
        return Population(pop.name, pop.kind, pop.size, attrs=dict(pop.attrs))

    # -- synapses -----------------------------------------------------------------------

    def synapses(self, syn: Synapse) -> tuple[Synapse, ...]:
        """The synapse on its weight grid. Where constants cancel (`fine_grids`) or weights
        are narrower than 8 bits, a constant gets a second synapse, `<name>.fine`, holding
        what the first leaves off (below 8 bits more: `.fine2`, ...); where constants
        cancel, a weight matrix whose rows differ by ROW_GROUP_BITS or more in magnitude is
        split by rows into synapses `<name>.rows<g>` with exponents of their own."""
        ratio = 2.0 ** (self.scales[syn.src].out_log2 - self.scales[syn.dst].in_log2)
        if sparse.issparse(syn.weight):
            scaled = syn.weight.tocsr(copy=True) * ratio
            values = scaled.data
        else:
            scaled = np.asarray(syn.weight, dtype=np.float64) * ratio
            values = scaled.ravel()
        is_bias = self.net.population(syn.src).kind == "bias"
        netx = syn.name in self.netx_synapses
        groups = [] if is_bias or netx or not self.fine_grids else _row_groups(scaled)
        if netx:  # _netx_limit put these weights on the grid at exponent <= 0
            layer = self.netx_layers[syn.dst]
            # A dense_rec layer's two matrices go to netx side by side: where they mix
            # signs, both take the mixed grid (netx's bits then fit each; a matrix of
            # one sign with odd weights beside it was zeroed by Lava's Dense: measured).
            both = [s.dense().ravel() for s in layer.synapses]
            mant, exp = quantize_weights(
                values, self.cfg.weight_bits, lowest_exp=0, grid_of=np.concatenate(both)
            )
            parts = [(syn.name, mant, exp)]
            stored = mant * 2.0**exp
        elif is_bias:
            message = int(2 ** -self.scales[syn.src].out_log2)  # the bias's integer value
            # The synapse floor-shifts its product with the message, so a grid finer than
            # whole units of the destination was floored there (up to a unit lost, -1
            # for any tiny negative constant): no finer, and the grid's rounding is the
            # nearest unit. Grids of larger constants are coarser already.
            whole = self._whole_units_exp(values, message)
            mant, exp = quantize_weights(values, self.cfg.weight_bits, lowest_exp=whole)
            parts = [(syn.name, mant, exp)]
            stored = delivered(mant, exp, message)
            # A remainder grid holds weight_bits more bits: 7-8 at 8-bit weights, 1-4 at
            # --weight-bits 2-4, where fine-tuned prenorm models' folded BatchNorm shifts
            # kept 0.6% of error and more, and verify's argmax agreement fell to 41-75%
            # (97-100% at 8 bits). Below 8 bits further remainders each take what the
            # last left, until no sum moves by half a unit; at 8 bits one, as before.
            # Below 8 bits a constant's one grid keeps as little as 2**-(weight_bits+1)
            # of its largest entry, cancelling or not: a depth-1 prenorm spike-ssm
            # fine-tuned at 4 bits, whose folded BatchNorm shift cancelled nothing,
            # verified at 64% argmax agreement (96% at 8 bits; helper-85). So every
            # constant gets its remainders there; at 8 bits only where one cancels.
            rest = values - stored
            if self.cfg.weight_bits < 8:
                n_fine = MAX_FINE_PARTS
            else:
                n_fine = 1 if self.fine_grids else 0
            for k in range(1, n_fine + 1):
                fine = self._remainder(rest, message)
                if fine is None:
                    break
                suffix = FINE_SUFFIX if k == 1 else f"{FINE_SUFFIX}{k}"
                parts.append((self._free_name(syn.name + suffix), *fine))
                stored = stored + delivered(*fine, message)
                rest = values - stored
        else:
            parts = self._row_parts(syn.name, values, groups)
            stored = sum(mant * 2.0**exp for _, mant, exp in parts)
        rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
        error = float(np.sqrt(np.mean((values - stored) ** 2))) / rms if rms else 0.0
        # (A netx synapse's weights sit at exponent 0; netx_warnings speaks of those.)
        from_input = syn.src == self.net.input.name and not netx
        lost = _sources_lost(scaled, values, stored) if from_input else []
        out = []
        for name, part, part_exp in parts:
            if sparse.issparse(scaled):
                # Copies: eliminate_zeros works in place, and the next part needs them.
                weight = sparse.csr_matrix(
                    (part, scaled.indices.copy(), scaled.indptr.copy()), scaled.shape
                )
            else:
                weight = part.reshape(scaled.shape)
            if groups:  # the other parts' rows are no synapses to map or store
                weight = compact_weight(weight)
            elif name != syn.name and sparse.issparse(weight):  # nor a remainder's zeros
                weight.eliminate_zeros()
            # The error is of the sum of the parts: what the destination receives.
            self.notes[name] = {"weight_exp": int(part_exp), "relative_rms_error": error,
                                "delay": syn.delay}  # fmt: skip
            if lost and name == syn.name:
                self.notes[name]["inputs_rounded_to_zero"] = lost
            out.append(Synapse(name, syn.src, syn.dst, weight, int(part_exp), syn.delay, syn.lag))
        return tuple(out)

    def _row_parts(
        self, name: str, values: np.ndarray, groups: list[np.ndarray]
    ) -> list[tuple[str, np.ndarray, int]]:
        """(name, mantissas, exponent) of each group of rows (all rows without groups).
        Rows far below the top get no exponent beyond what the first part could have
        (and the loihi2 target's default weight_exp_min, a placeholder, allows); rows that
        round to zero even there store nothing."""
        parts = []
        for g, member in enumerate(groups or [np.ones(values.shape, dtype=bool)]):
            mant, exp = quantize_weights(
                np.where(member, values, 0.0),
                self.cfg.weight_bits,
                lowest_exp=None if g == 0 else 1 - WEIGHT_EXP_LIMIT,
            )
            if g == 0 or np.any(mant):
                part = name if g == 0 else self._free_name(f"{name}{ROWS_SUFFIX}{g}")
                parts.append((part, mant, exp))
        return parts

    def _remainder(self, rest: np.ndarray, message: int) -> tuple[np.ndarray, int] | None:
        """`rest` (weight units) on its own grid, or None where it moves no sum by half a
        unit. Each synapse floor-shifts its own product with the message, so the exponent
        is kept where every product on the grid is whole (below it the low bits were
        dropped: a remainder of 0.7 units added 0, one of -0.3 added -1)."""
        if not np.abs(rest).max(initial=0.0) * message >= 0.5:
            return None
        whole = self._whole_units_exp(rest, message)
        mant, exp = quantize_weights(rest, self.cfg.weight_bits, lowest_exp=whole)
        return (mant, exp) if np.any(mant) and exp <= WEIGHT_EXP_LIMIT else None

    def _whole_units_exp(self, values: np.ndarray, message: int) -> int:
        """The least exponent at which every product of a grid step of `values`' mantissa
        grid with the constant's `message` is a whole unit of the destination."""
        step = weight_grid(values, self.cfg.weight_bits)[2]
        return -round(math.log2(message)) - round(math.log2(step))

    def _free_name(self, name: str) -> str:
        """`name`, or `name#k` where the float netlist already has a synapse so named."""
        taken = {s.name for s in self.net.synapses}
        k, free = 1, name
        while free in taken:
            free, k = f"{name}#{k}", k + 1
        return free

    def _cancels(self, syn: Synapse) -> bool:
        """A constant larger than anything its destination sums cancels its other inputs:
        a folded BatchNorm shift, minus a channel mean of 40 standard deviations."""
        src = self.net.population(syn.src)
        if src.kind != "bias" or not syn.weight.size:
            return False
        largest = float(abs(syn.weight).max()) * abs(float(src.params["value"]))
        return largest > self.range_of(f"{syn.dst}.in")

    def build(self) -> Netlist:
        pops = tuple(self.population(p) for p in self.net.populations)
        # One 8-bit grid keeps a constant to 2**-9 of its largest entry. Where a constant
        # cancels (the BatchNorm shift), that error is many times the destination's
        # signal, and downstream gains (the BatchNorm's 1 / std) scale every constant's
        # error alike: a channel mean of 40 deviations kept 1/3 of a deviation of error
        # and verify's argmax agreement fell to 38-93% on prenorm models. Then every
        # bias synapse gets its remainder on a second grid (_remainder). The same gains
        # scale each channel's error, so then every weight matrix gets its far-apart rows
        # exponents of their own (_row_groups): the encoder row 45x below the largest of a
        # prenorm binary-s4d was 32% wrong, and its verify failed (95.56% argmax).
        self.fine_grids = any(self._cancels(s) for s in self.net.synapses)
        synapses = tuple(q for s in self.net.synapses for q in self.synapses(s))
        readout = self.scales[self.net.readout.name]
        try:
            return Netlist(
                pops,
                synapses,
                numeric="int",
                formats=self.cfg.formats(),
                input_scale=2.0 ** self.scales[self.net.input.name].out_log2,
                output_scale=2.0**readout.in_log2,
                dt_s=self.net.dt_s,
                meta=dict(self.net.meta),
                ticks_per_step=self.net.ticks_per_step,
            )
        except InvalidGraphError as exc:
            widths = ", ".join(
                f"--{name.replace('_', '-')} {getattr(self.cfg, name)}"
                for name in (
                    "weight_bits",
                    "state_bits",
                    "message_bits",
                    "ssm_frac_bits",
                    "act_bits",
                )
            )
            raise HardwareRuleError(
                f"quantized network does not fit: {exc} (with {widths}: these options set the "
                "scales, so other values may fit; the calibration inputs reach "
                f"{self.input_peak:.3g})"
            ) from None


def quantize(
    net: Netlist, calibration: np.ndarray, config: QuantConfig | None = None
) -> tuple[Netlist, QuantReport]:
    """Float64 netlist + calibration inputs (B, L, d_in) -> (int netlist, report)."""
    if net.numeric != "float64":
        raise UsageError("quantize() takes a float64 netlist")
    cfg = config or QuantConfig()
    ranges = calibration_ranges(net, calibration)
    peak = float(np.abs(calibration).max(initial=0.0))
    quantizer = _Quantizer(net, ranges, cfg, input_peak=peak)
    rounds = 0
    while True:
        rounds += 1
        qnet = quantizer.build()
        check = simulate_in_parts(qnet, calibration)  # events summed, rates merged
        events = check.events
        if not events or rounds >= cfg.max_rounds:
            break
        # A population that saturated gets a headroom bit; a synapse whose sum wrapped,
        # one bit narrower messages from its source, the only scale in that sum (its
        # destination's headroom was given until 2026-12-07, which left the mantissas
        # and the wrap as they were and refused after three rounds for nothing).
        sources = {s.name: s.src for s in qnet.synapses}
        wrapped_from: set[str] = set()  # one bit per source a round, however many wrap
        for name, count in events.items():
            if not count:
                continue
            if _is_population(net, name):
                quantizer.extra_headroom[name] = quantizer.extra_headroom.get(name, 0) + 1
            else:
                wrapped_from.add(sources[name])
        if any(net.population(s).kind not in NARROWABLE for s in wrapped_from):
            break  # no scale of ours narrows those messages: refused below, now
        for src in wrapped_from:
            quantizer.message_headroom[src] = quantizer.message_room(src) + 1
    _refuse_wrapped_sums(qnet, events, cfg, quantizer.message_headroom)
    report = QuantReport(
        calibration_events=events,
        rounds=rounds,
        config=asdict(cfg),
        calibration_spike_rates=check.spike_rates,
    )
    for pop in qnet.populations:
        scales = quantizer.scales[pop.name]
        report.populations[pop.name] = {
            "kind": pop.kind,
            "size": pop.size,
            "in_scale_log2": scales.in_log2,
            "out_scale_log2": scales.out_log2,
            "headroom_bits": cfg.headroom_bits + quantizer.extra_headroom.get(pop.name, 0),
            **_message_headroom_note(quantizer.message_room(pop.name)),
            "calibration_peak": ranges.get(pop.name, ranges.get(f"{pop.name}.in", 0.0)),
            **quantizer.notes.get(pop.name, {}),
        }
        if pop.name in quantizer.silent:
            report.populations[pop.name]["silent_in_calibration"] = True
    for syn in qnet.synapses:
        report.synapses[syn.name] = quantizer.notes[syn.name]
    return qnet, report


# The option that sets how wide a graded population's messages are (see the kinds'
# handlers above); spikes are one bit and the bias's value is fixed by act_bits. An SSM's
# are min(message_bits, state_bits) wide: narrower messages than states are its states
# shifted, which keeps the states' width (_narrower_messages).
MESSAGE_WIDTH_OPTION = {"input": "act_bits", "accumulator": "act_bits", "glu": "act_bits",
                        "bias": "act_bits", "ssm": "message_bits"}  # fmt: skip
# The kinds whose messages' scale quantize can coarsen when a sum of them wraps int32
# (_Quantizer.message_headroom); the bias's value is fixed, and spikes are one bit.
NARROWABLE = frozenset({"input", "accumulator", "glu", "ssm"})


def _message_headroom_note(bits: int) -> dict[str, int]:
    """The report's `message_headroom_bits` of a population, where wraps gave it any."""
    return {"message_headroom_bits": bits} if bits else {}


def _narrower_messages(option: str, cfg: QuantConfig) -> str:
    """The remedy that narrows `option`'s messages: `--option value`, and for messages
    no narrower than the states (an SSM's send its states then) the width to go below."""
    text = f"--{option.replace('_', '-')} {getattr(cfg, option)}"
    if option == "message_bits" and cfg.message_bits >= cfg.state_bits:
        text += f" below --state-bits {cfg.state_bits} (the SSMs then send their states shifted)"
    return text


def _refuse_wrapped_sums(
    qnet: Netlist, events: dict[str, int], cfg: QuantConfig, narrowed: dict[str, int]
) -> None:
    """HardwareRuleError when a synapse's sum still wraps Lava's int32 accumulator on the
    calibration data itself: the outputs would be garbage (a clipped population only
    loses its peaks), and more headroom at the target cannot help, since the sum is of
    the source's messages times the weight mantissas. Mantissas reach 255 at any weight
    bits (fewer bits coarsen the grid), so the remedy is narrower source messages, each
    bit of which adds to those quantize's rounds took off them (`narrowed`, by source)."""
    wrapped = {n: int(c) for n, c in events.items() if c and not _is_population(qnet, n)}
    if not wrapped:
        return
    by_name = {s.name: s for s in qnet.synapses}
    # One entry per source and destination: a constant's remainder parts (up to 8 below
    # 8-bit weights) or a matrix's row groups wrap together, and named one by one they
    # made the line dozens of entries long.
    parts: dict[tuple[str, str], list[str]] = {}
    for name in wrapped:
        parts.setdefault((by_name[name].src, by_name[name].dst), []).append(name)
    where, options = [], []
    for (src, _), names in parts.items():
        kind = qnet.population(src).kind
        option = MESSAGE_WIDTH_OPTION.get(kind)
        more = f" and {len(names) - 1} more of its parts" if len(names) > 1 else ""
        count = sum(wrapped[n] for n in names)
        where.append(f"{names[0]}{more} ({count} times; source kind {kind})")
        if option and option not in options:
            options.append(option)
    widths = ", ".join(_narrower_messages(o, cfg) for o in options)
    remedy = f"narrow {widths}" if options else "the fan-in is too large for int32"
    taken = max((narrowed.get(by_name[n].src, 0) for n in wrapped), default=0)
    if options and taken:
        # The rounds take their bits again from the narrower width: one bit narrower
        # there is one more in all (128 coherent modes needing 4 compile at 23 of 24).
        remedy += (
            f" (each bit narrower adds to the {taken} bit{'s' if taken != 1 else ''} the "
            "calibration rounds took off those messages)"
        )
    raise HardwareRuleError(
        f"synaptic sums wrap Lava's 32-bit accumulator on the calibration data at "
        f"{'; '.join(where)}: the sources' messages times weight mantissas of up to 255 "
        f"are too wide; {remedy}"
    )


def _is_population(net: Netlist, name: str) -> bool:
    return any(p.name == name for p in net.populations)
