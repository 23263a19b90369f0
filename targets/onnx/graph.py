"""One model step of an integer Netlist as an ONNX graph, with the state as explicit tensors.

    model = build_step_model(net)          # onnx.ModelProto; docs/targets.md "## onnx"

One call of the graph is one model step (one token): the ticks_per_step = T simulation
steps (ticks) T c .. T c + T - 1 of call c, unrolled (with T = 1, one simulation step).
Calls start at multiples of T, so within a call every population is active at one static
tick, offset latency mod T, and is computed once, on model step c - latency // T; at the
other offsets it is idle and needs no ops. Populations are built in order of offset. A
synapse into a population at offset j reads its source's message of tick j - 1 - delay
of this call: from the same call (an earlier offset) when that is >= 0, else from the
`delay` state of earlier calls. For T > 1 every such tick is an active tick of the
source (the netlist validator checks latency(src) + 1 + delay = latency(dst) + lag T),
so the delay state keeps one message per call, not per tick.

The graph computes exactly what snncompile.reference computes over those ticks
(docs/numerics.md), in int64 tensors. Every rounding maps to ONNX ops whose result does
not depend on a runtime's choice of integer-division rounding:

    tz(x, n), n >= 0       q = Div(|x|, 2^n), -q where x < 0  (Div of non-negatives: a floor;
                                                          |x| and the sign by Less/Where/Neg)
    floor_shift(x, e), e<0 Div(x - Mod(x, 2^-e), 2^-e)    (Mod fmod=0 is the floor remainder,
                                                          so the Div is exact)
    x << n, x * 2^n        Mul(x, 2^n)                    (int64 wraps as numpy's int64 does)
    wrap32(x)              Mod(x + 2^31, 2^32) - 2^31
    sat_b(x)               Where(x > hi, hi, x), then Where(x < lo, lo, x)  (not Clip,
                                                          Max, Min: wrong on int64 in
                                                          onnxruntime 1.23, measured)
    round_half_even        Round (float64; ONNX Round is half-to-even)
    W @ msg                MatMul in float64 (exact: the netlist bounds every sum below 2^53),
                           or Gather * mantissa for fan-out synapses (one weight per row)

State layout: see `StepInterface`. Zero is the initial value of every state tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy import sparse

from snncompile.errors import CorruptInputError, UnsupportedError
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse, total_ticks

from .interface_json import interface_from_json

OPSET = 17
IR_VERSION = 8  # onnxruntime >= 1.14 reads it; newer IRs add nothing this graph uses
LIF_STATE_BITS = 24  # Lava's bit-accurate LIF has 24-bit u and v whatever the formats say
INT32_LIMIT = 1 << 31
INTERFACE_KEY = "snncompile.interface"


@dataclass(frozen=True)
class StepInterface:
    """Names and shapes of the step graph's tensors (also stored in the model's metadata).

    One call is one model step c, the ticks T c .. T c + T - 1 (T = ticks_per_step; an
    interface stored without it reads as 1). A population at latency k is active once
    per call, at tick T c + k mod T, working on model step c - k // T.

    inputs:  "x" float64 (batch, n_in): the float input of model step c (quantized inside);
             "in_window" bool (batch, 1): true while c < L, false in the latency tail;
             every name in `states` (int64, shape `states[name]` after the batch axis).
    outputs: "next:" + each state name (the state for the next call);
             "readout" int64 (batch, d_out): the readout state after this call;
             "msg:" + each sending population: what it sent at its active tick of this
             call (batch, size);
             "in:" + each population with inputs: its summed synaptic input at that
             tick (batch, input width), for tracing;
             "events" int64: saturation / wrap events, summed over the batch, one entry
             per name in `event_sites`: shape (n_sites,) for T = 1, and (T, n_sites)
             for T > 1, row j counting tick T c + j (a run of L model steps ends within
             its last call, whose later ticks are not part of it).
    states:  "state:<pop>.<state>" (size,) compartment states, and "delay<k>:<pop>"
             (size,) for k < depth: the message `pop` sent k + 1 calls ago. A synapse
             with delay d into a population at offset j reads "delay<m-1>:<src>" with
             m = ceil((1 + d - j) / T) calls back, or this call's message when m = 0
             (with T = 1: "delay<d>:<src>"); depth is the largest such m.
    """

    input_size: int
    output_size: int
    states: dict[str, list[int]]
    sending: dict[str, int]
    receiving: dict[str, int]
    event_sites: list[str]
    input_scale: float
    output_scale: float
    readout_mode: str
    output_latency: int
    latency: dict[str, int] = field(default_factory=dict)
    spiking: list[str] = field(default_factory=list)
    ticks_per_step: int = 1

    def calls(self, length: int) -> int:
        """Calls that run a sequence of `length` model steps: the input window, then the
        tail up to the readout's last active tick, T (length - 1) + output_latency."""
        return length + self.output_latency // self.ticks_per_step

    def total_ticks(self, length: int) -> int:
        """Ticks of that run (as Netlist.total_ticks); the last call may hold more."""
        return total_ticks(length, self.ticks_per_step, self.output_latency)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StepInterface:
        """The interface to_json wrote; CorruptInputError naming a field that is not."""
        return interface_from_json(cls, text, _STEP_FIELD_KINDS)


# How interface_json checks each StepInterface field.
_STEP_FIELD_KINDS = {
    "input_size": "count",
    "output_size": "count",
    "states": "shapes",
    "sending": "sizes",
    "receiving": "sizes",
    "event_sites": "names",
    "input_scale": "scale",
    "output_scale": "scale",
    "readout_mode": "name",
    "output_latency": "steps",
    "latency": "sizes",
    "spiking": "names",
    "ticks_per_step": "count",
}


class _Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0
        self._consts: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}#{self._count}"

    def op(self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attrs):
        out = out or self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def const(self, value: Any, dtype=np.int64, hint: str = "c") -> str:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.name(hint)
            self.inits.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    # -- the arithmetic of docs/numerics.md --------------------------------------------

    def tz(self, x: str, n: int | np.ndarray) -> str:
        """x / 2^n rounded toward zero; a left shift for n < 0. An array n (one per
        element of the last axis, all >= 0) divides each element by its own 2^n."""
        n_all = np.asarray(n, dtype=np.int64)
        if n_all.ndim and np.all(n_all == n_all.flat[0]):
            n_all = n_all.flat[0]  # one shift for all: the graph of a scalar n
        if n_all.ndim == 0 and n_all < 0:
            return self.op("Mul", [x, self.const(1 << int(-n_all))], "shl")
        if n_all.ndim == 0 and n_all == 0:
            return x
        # Not Sign(x) * Abs(x): onnxruntime 1.23's int64 Sign is wrong from 2^31 up
        # (Sign(2^31) = -1, measured), so the sign is taken by comparison.
        negative = self.op("Less", [x, self.const(0)], "neg?")
        magnitude = self.op("Where", [negative, self.op("Neg", [x], "neg"), x], "abs")
        divisor = np.left_shift(np.int64(1), n_all)
        quotient = self.op("Div", [magnitude, self.const(divisor)], "div")
        return self.op("Where", [negative, self.op("Neg", [quotient], "neg"), quotient], "tz")

    def floor_shift(self, x: str, e: int) -> str:
        """x * 2^e for e >= 0, floor(x / 2^-e) for e < 0 (arithmetic right shift)."""
        if e >= 0:
            return x if e == 0 else self.op("Mul", [x, self.const(1 << e)], "shl")
        d = self.const(1 << -e)
        remainder = self.op("Mod", [x, d], "mod", fmod=0)  # in [0, 2^-e): floor remainder
        return self.op("Div", [self.op("Sub", [x, remainder], "sub"), d], "sra")

    def clip(self, x: str, low: Any, high: Any, dtype=np.int64, events: list | None = None):
        """Clip x to [low, high] by comparisons.

        Not Clip/Max/Min: onnxruntime 1.23's int64 Clip, Max and Min leave some values
        outside int32 unclipped (measured: Clip(-3355442800, -8388607, 8388607) and
        Clip(2^31, ...) return their input), while Greater, Less and Where are exact.
        """
        lo, hi = self.const(low, dtype), self.const(high, dtype)
        too_high, too_low = self.op("Greater", [x, hi], "gt"), self.op("Less", [x, lo], "lt")
        if events is not None:  # count the clipped values (reusing the comparisons)
            clipped = self.op("Or", [too_high, too_low], "or")
            as_int = self.op("Cast", [clipped], "cnt", to=TensorProto.INT64)
            events.append(self.op("ReduceSum", [as_int], "events", keepdims=0))
        above = self.op("Where", [too_high, hi, x], "min")
        return self.op("Where", [too_low, lo, above], "clip")

    def changed(self, before: str, after: str) -> str:
        """How many elements differ (an int64 scalar): the saturation events of a clip."""
        differs = self.op("Not", [self.op("Equal", [before, after], "eq")], "ne")
        as_int = self.op("Cast", [differs], "cnt", to=TensorProto.INT64)
        return self.op("ReduceSum", [as_int], "events", keepdims=0)


class _Events:
    """Collects event counts per site (population or synapse name), in netlist order."""

    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.sites: dict[str, list[str]] = {}

    def saturate(self, x: str, bits: int, where: str) -> str:
        limit = (1 << (bits - 1)) - 1
        return self.b.clip(x, -limit, limit, events=self.sites.setdefault(where, []))

    def count(self, before: str, after: str, where: str) -> None:
        self.sites.setdefault(where, []).append(self.b.changed(before, after))


def _vec(b: _Builder, pop: Population, name: str) -> str:
    return b.const(np.asarray(pop.params[name], dtype=np.float64).astype(np.int64))


def _int(pop: Population, name: str) -> int:
    return int(np.asarray(pop.params[name]))


# ---- compartments: (builder, events, pop, states in, a, formats) -> (out, states out) ----


def _accumulator(b, ev, pop, st, a, fmt):
    return ev.saturate(a, fmt.message_bits, pop.name), {}


def _ssm(b, ev, pop, st, a, fmt):
    ar, ai = _vec(b, pop, "a_re_q"), _vec(b, pop, "a_im_q")
    br, bi = _vec(b, pop, "b_re_q"), _vec(b, pop, "b_im_q")
    re, im = st["re"], st["im"]

    def mul(p, q):
        return b.op("Mul", [p, q], "mul")

    # One rounding per step, of the whole Q(frac) sum.
    sum_re = b.op("Add", [b.op("Sub", [mul(ar, re), mul(ai, im)], "sub"), mul(br, a)], "add")
    sum_im = b.op("Add", [b.op("Add", [mul(ai, re), mul(ar, im)], "add"), mul(bi, a)], "add")
    frac = fmt.ssm_frac_bits - np.asarray(pop.params["frac_cut"]).astype(np.int64)
    new_re = ev.saturate(b.tz(sum_re, frac), fmt.state_bits, pop.name)
    new_im = ev.saturate(b.tz(sum_im, frac), fmt.state_bits, pop.name)
    sent = b.tz(new_re, _int(pop, "out_shift"))
    if fmt.message_bits >= fmt.state_bits:  # re is within the message range already
        return sent, {"re": new_re, "im": new_im}
    return ev.saturate(sent, fmt.message_bits, pop.name), {"re": new_re, "im": new_im}


def _reset_refractory(b, ev, pop, st, a, fmt):
    keep = b.const(4096 - np.asarray(pop.params["decay"], dtype=np.float64).astype(np.int64))
    theta = _vec(b, pop, "theta")
    reset = b.const(
        (np.asarray(pop.params["theta"]) + np.asarray(pop.params["rho"])).astype(np.int64)
    )
    decayed = b.tz(b.op("Mul", [st["v"], keep], "mul"), 12)
    m = ev.saturate(b.op("Add", [decayed, a], "add"), fmt.state_bits, pop.name)
    spikes = b.op("Cast", [b.op("Greater", [m, theta], "gt")], "spk", to=TensorProto.INT64)
    v = b.op("Sub", [m, b.op("Mul", [reset, spikes], "mul")], "sub")
    return spikes, {"v": ev.saturate(v, fmt.state_bits, pop.name)}


def _lif(b, ev, pop, st, a, fmt):
    return _lava_lif(b, ev, pop, st, a, subtract=False)


def _cuba_lif_sub(b, ev, pop, st, a, fmt):
    return _lava_lif(b, ev, pop, st, a, subtract=True)


def _lava_lif(b, ev, pop, st, a, subtract: bool):
    """lif (reset to 0) and cuba_lif_sub (v - (vsub << 6) where it spikes)."""
    du, dv, vth = _int(pop, "du"), _int(pop, "dv"), _int(pop, "vth")
    half = 1 << (LIF_STATE_BITS - 1)
    decayed_u = b.tz(b.op("Mul", [st["u"], b.const(4096 - (du + 1))], "mul"), 12)
    current = b.op("Add", [decayed_u, b.op("Mul", [a, b.const(64)], "shl")], "add")
    # Lava's wrap: test `> 2^23` on the unwrapped value, then `<= -2^23` on the result of
    # the first test, but always correcting the unwrapped value (as the reference does).
    up = b.op("Greater", [current, b.const(half)], "gt")
    first = b.op("Where", [up, b.op("Sub", [current, b.const(2 * half)], "sub"), current], "w")
    down = b.op("LessOrEqual", [first, b.const(-half)], "le")
    u = b.op("Where", [down, b.op("Add", [current, b.const(2 * half)], "add"), first], "w")
    ev.count(current, u, pop.name)
    decayed_v = b.tz(b.op("Mul", [st["v"], b.const(4096 - dv)], "mul"), 12)
    voltage = ev.saturate(b.op("Add", [decayed_v, u], "add"), LIF_STATE_BITS, pop.name)
    spikes = b.op("Greater", [voltage, b.const(vth << 6)], "gt")
    # The result lies in (-2**23, voltage) where it applies (vsub < 2**17): no saturation.
    vsub = _int(pop, "vsub") if subtract else 0
    reset = b.op("Sub", [voltage, b.const(vsub << 6)], "sub") if subtract else b.const(0)
    v = b.op("Where", [spikes, reset, voltage], "reset")
    return b.op("Cast", [spikes], "spk", to=TensorProto.INT64), {"u": u, "v": v}


def _heaviside(b, ev, pop, st, a, fmt):
    return b.op("Cast", [b.op("Greater", [a, b.const(0)], "gt")], "spk", to=TensorProto.INT64), {}


def _glu(b, ev, pop, st, a, fmt):
    n = pop.size
    table = np.asarray(pop.params["pwl_table_q12"], dtype=np.float64).astype(np.int64)
    shift = _int(pop, "pwl_shift")
    first = b.op("Slice", [a, b.const([0]), b.const([n]), b.const([1])], "a0")
    second = b.op("Slice", [a, b.const([n]), b.const([2 * n]), b.const([1])], "a1")
    offset = b.op("Sub", [second, b.const(_int(pop, "pwl_x0"))], "x")
    index = b.clip(b.floor_shift(offset, -shift), 0, table.size - 2)
    start = b.op("Mul", [index, b.const(1 << shift)], "shl")
    frac = b.clip(b.op("Sub", [offset, start], "sub"), 0, 1 << shift)
    t = b.const(table)
    low = b.op("Gather", [t, index], "lo")
    high = b.op("Gather", [t, b.op("Add", [index, b.const(1)], "add")], "hi")
    slope = b.op("Mul", [b.op("Sub", [high, low], "sub"), frac], "mul")
    gate = b.op("Add", [low, b.tz(slope, shift)], "gate")
    out = b.tz(b.op("Mul", [first, gate], "mul"), _int(pop, "out_shift"))
    return ev.saturate(out, fmt.message_bits, pop.name), {}


def _readout(b, ev, pop, st, a, fmt):
    acc = b.op("Add", [st["acc"], a], "add") if pop.attrs["mode"] == "mean" else a
    acc = ev.saturate(acc, fmt.state_bits, pop.name)
    return acc, {"acc": acc}


KINDS = {
    "accumulator": _accumulator,
    "ssm": _ssm,
    "reset_refractory": _reset_refractory,
    "lif": _lif,
    "cuba_lif": _lif,  # the same integer model as lif (docs/numerics.md, cuba_lif)
    "cuba_lif_sub": _cuba_lif_sub,
    "heaviside": _heaviside,
    "glu": _glu,
    "readout": _readout,
}


def _synapse(b: _Builder, ev: _Events, syn: Synapse, msg: str, msg_limit: int) -> str:
    """floor_shift(wrap32(W @ msg), e) for msg (batch, src size) int64, |msg| <= msg_limit.

    A fan-out synapse (at most one weight per destination row, e.g. a channel fanned out
    to its SSM modes) is a Gather of the sources times the mantissas. Any other is a
    float64 MatMul: exact, since the netlist validator bounds every sum of products below
    2^53 (EXACT_FLOAT_BITS), and several times faster in onnxruntime than int64 MatMul.
    """
    weight = syn.weight.toarray() if sparse.issparse(syn.weight) else np.asarray(syn.weight)
    nonzero = weight != 0
    if nonzero.sum(axis=1).max(initial=0) <= 1:
        cols = nonzero.argmax(axis=1)
        values = weight[np.arange(weight.shape[0]), cols].astype(np.int64)
        picked = b.op("Gather", [msg, b.const(cols)], "fanout", axis=1)
        acc = b.op("Mul", [picked, b.const(values[None, :], hint=f"W:{syn.name}")], "mul")
    else:
        w_t = b.const(weight.T.astype(np.float64), np.float64, hint=f"W:{syn.name}")
        as_float = b.op("Cast", [msg], "f64", to=TensorProto.DOUBLE)
        product = b.op("MatMul", [as_float, w_t], "matmul")
        acc = b.op("Cast", [product], "i64", to=TensorProto.INT64)
    # Lava sums in int32: where a sum can leave int32, wrap it exactly (and count it).
    if float(np.abs(weight).sum(axis=1).max(initial=0)) * msg_limit >= INT32_LIMIT:
        shifted = b.op("Add", [acc, b.const(INT32_LIMIT)], "add")
        remainder = b.op("Mod", [shifted, b.const(2 * INT32_LIMIT)], "mod", fmod=0)
        wrapped = b.op("Sub", [remainder, b.const(INT32_LIMIT)], "wrap32")
        ev.count(acc, wrapped, syn.name)
        acc = wrapped
    return b.floor_shift(acc, syn.weight_exp)


def _message_limit(pop: Population, fmt: Formats) -> int:
    """The largest magnitude `pop` can send."""
    if pop.compartment.spiking:
        return 1
    if pop.kind == "bias":
        return abs(_int(pop, "value"))
    return (1 << (fmt.message_bits - 1)) - 1


def calls_back(net: Netlist) -> dict[str, int]:
    """Per synapse name: how many calls before the reading one its message was sent (0:
    the same call, at an earlier tick offset). See StepInterface."""
    ticks = net.ticks_per_step
    latency = net.latency()
    back: dict[str, int] = {}
    for syn in net.synapses:
        # The tick the synapse reads, relative to the first tick of the reading call.
        calls, offset = divmod(latency[syn.dst] % ticks - 1 - syn.delay, ticks)
        if offset != latency[syn.src] % ticks:  # the netlist validator rules this out
            raise UnsupportedError(
                f"synapse {syn.name!r} reads an idle tick of {syn.src!r} (misaligned delay)"
            )
        back[syn.name] = -calls
    return back


def interface_of(net: Netlist) -> StepInterface:
    """The tensor layout build_step_model gives `net` (without building it)."""
    if net.numeric != "int":
        raise UnsupportedError("the ONNX integer step graph needs an int netlist, not float64")
    back = calls_back(net)
    depth: dict[str, int] = {}
    for syn in net.synapses:
        if back[syn.name]:
            depth[syn.src] = max(depth.get(syn.src, 0), back[syn.name])
    states: dict[str, list[int]] = {}
    for pop in net.populations:
        if pop.kind not in ("input", "bias") and pop.kind not in KINDS:
            raise UnsupportedError(f"population {pop.name!r}: kind {pop.kind!r} has no ONNX form")
        for state in pop.compartment.states:
            states[f"state:{pop.name}.{state}"] = [pop.size]
    for pop in net.populations:
        if pop.name in depth:
            for k in range(depth[pop.name]):
                states[f"delay{k}:{pop.name}"] = [pop.size]
    sites = [p.name for p in net.populations if p.kind not in ("bias", "heaviside")]
    sites += [s.name for s in net.synapses]
    return StepInterface(
        input_size=net.input.size,
        output_size=net.readout.size,
        states=states,
        sending={p.name: p.size for p in net.populations if p.compartment.sends},
        receiving={p.name: p.input_width for p in net.populations if p.input_width},
        event_sites=sites,
        input_scale=float(net.input_scale),
        output_scale=float(net.output_scale),
        readout_mode=str(net.readout.attrs["mode"]),
        output_latency=int(net.output_latency),
        latency={k: int(v) for k, v in net.latency().items()},
        spiking=[p.name for p in net.populations if p.compartment.spiking],
        ticks_per_step=int(net.ticks_per_step),
    )


def build_step_model(net: Netlist) -> onnx.ModelProto:
    """The ONNX model of one model step (ticks_per_step ticks) of the int netlist `net`
    (see StepInterface)."""
    iface = interface_of(net)
    fmt = net.formats
    ticks = net.ticks_per_step
    latency = net.latency()
    back = calls_back(net)
    b = _Builder()
    per_tick = [_Events(b) for _ in range(ticks)]  # events by the tick they happen at
    batch = "batch"

    window = b.op("Cast", ["in_window"], "window", to=TensorProto.INT64)
    sent: dict[str, str] = {}
    summed: dict[str, str] = {}
    next_states: dict[str, str] = {}
    # Each population at its active tick of the call; a stable sort keeps netlist order
    # within a tick (and the whole order when T = 1).
    for pop in sorted(net.populations, key=lambda p: latency[p.name] % ticks):
        ev = per_tick[latency[pop.name] % ticks]
        if pop.kind == "input":
            # x_int = sat_G(round_half_even(x / input_scale)), only inside the window.
            wf = b.op("Cast", ["in_window"], "wf", to=TensorProto.DOUBLE)
            gated = b.op("Mul", ["x", wf], "gated")
            scaled = b.op("Div", [gated, b.const(net.input_scale, np.float64)], "scaled")
            limit = float((1 << (fmt.message_bits - 1)) - 1)
            rounded = b.op("Round", [scaled], "round")
            # Clip in float before the cast (a cast of a huge float is undefined), then
            # count the events on the clipped integers like the reference's saturate.
            sites = ev.sites.setdefault(pop.name, [])
            clipped = b.clip(rounded, -limit, limit, np.float64, events=sites)
            sent[pop.name] = b.op("Cast", [clipped], "xq", to=TensorProto.INT64)
            continue
        if pop.kind == "bias":
            value = b.const(np.full((1, pop.size), _int(pop, "value")))
            sent[pop.name] = b.op("Mul", [window, value], "bias")
            continue
        a = None
        for syn in net.incoming(pop.name):
            calls = back[syn.name]
            msg = f"delay{calls - 1}:{syn.src}" if calls else sent[syn.src]
            src = net.population(syn.src)
            part = _synapse(b, ev, syn, msg, _message_limit(src, fmt))
            a = part if a is None else b.op("Add", [a, part], "sum")
        if a is None:  # no incoming synapse: zeros as wide as the input, batch-sized
            a = b.op("Mul", [window, b.const(np.zeros((1, pop.input_width), np.int64))], "zeros")
        summed[pop.name] = a
        states_in = {s: f"state:{pop.name}.{s}" for s in pop.compartment.states}
        out, states_out = KINDS[pop.kind](b, ev, pop, states_in, a, fmt)
        for s, tensor in states_out.items():
            next_states[f"state:{pop.name}.{s}"] = tensor
        if pop.compartment.sends:
            sent[pop.name] = out

    outputs: list[onnx.ValueInfoProto] = []
    nodes_out: list[tuple[str, str]] = []  # (graph output name, tensor)
    for name in iface.states:
        if name.startswith("delay"):
            slot, pop_name = name.split(":", 1)
            k = int(slot[len("delay") :])
            # The line shifts by one: slot 0 takes this step's message, slot k slot k - 1.
            tensor = sent[pop_name] if k == 0 else f"delay{k - 1}:{pop_name}"
        else:
            tensor = next_states[name]
        nodes_out.append((f"next:{name}", tensor))
    nodes_out.append(("readout", next_states[f"state:{net.readout.name}.acc"]))
    for name in iface.sending:
        nodes_out.append((f"msg:{name}", sent[name]))
    for name in iface.receiving:
        nodes_out.append((f"in:{name}", summed[name]))
    rows = [_event_row(b, ev, iface.event_sites) for ev in per_tick]
    if ticks > 1:  # (T, n_sites): one row per tick of the call
        rows = [b.op("Unsqueeze", [row, b.const([0])], "evtick") for row in rows]
        nodes_out.append(("events", b.op("Concat", rows, "events", axis=0)))
    else:
        nodes_out.append(("events", rows[0]))

    produced = {out for node in b.nodes for out in node.output}
    renamed: dict[str, str] = {}
    for out_name, tensor in nodes_out:
        if tensor in produced and tensor not in renamed:
            renamed[tensor] = out_name  # the producing node writes the output directly
        else:  # a graph input or a tensor already given to another output: a copy
            b.op("Identity", [renamed.get(tensor, tensor)], out_name, out=out_name)
    for node in b.nodes:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for out_name, _ in nodes_out:
        if out_name == "events":
            shape = [len(iface.event_sites)] if ticks == 1 else [ticks, len(iface.event_sites)]
        elif out_name == "readout":
            shape = [batch, iface.output_size]
        elif out_name.startswith("msg:"):
            shape = [batch, iface.sending[out_name[4:]]]
        elif out_name.startswith("in:"):
            shape = [batch, iface.receiving[out_name[3:]]]
        else:
            shape = [batch, *iface.states[out_name[len("next:") :]]]
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.INT64, shape))

    inputs = [
        helper.make_tensor_value_info("x", TensorProto.DOUBLE, [batch, iface.input_size]),
        helper.make_tensor_value_info("in_window", TensorProto.BOOL, [batch, 1]),
    ]
    inputs += [
        helper.make_tensor_value_info(name, TensorProto.INT64, [batch, *shape])
        for name, shape in iface.states.items()
    ]
    graph = helper.make_graph(b.nodes, "snncompile_step", inputs, outputs, b.inits)
    unit = "one time step" if ticks == 1 else f"one model step ({ticks} ticks)"
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="snncompile",
        doc_string=f"{unit} of an integer snncompile netlist (docs/targets.md, ## onnx)",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {INTERFACE_KEY: iface.to_json()})
    onnx.checker.check_model(model, full_check=True)
    return model


def _event_row(b: _Builder, ev: _Events, sites: list[str]) -> str:
    """The (n_sites,) event counts `ev` collected, zero for sites without any."""
    per_site = []
    for site in sites:
        counts = ev.sites.get(site, [])
        if not counts:
            per_site.append(b.const([0]))
            continue
        total = counts[0]
        for c in counts[1:]:
            total = b.op("Add", [total, c], "evsum")
        per_site.append(b.op("Unsqueeze", [total, b.const([0])], "ev"))
    return b.op("Concat", per_site, "events", axis=0)


def read_interface(model: onnx.ModelProto) -> StepInterface:
    """The StepInterface stored in a step model's metadata."""
    for prop in model.metadata_props:
        if prop.key == INTERFACE_KEY:
            return StepInterface.from_json(prop.value)
    raise CorruptInputError("this ONNX model has no snncompile step interface in its metadata")
