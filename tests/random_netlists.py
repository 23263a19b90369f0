"""Hypothesis strategies for random integer netlists. `random_netlists`: 1-4 populations
of random kinds in a DAG with skips, repeated edges and delays, weights on the grid of
random weight bits (stored dense or sparse), exponents of both signs, parameters and
inputs at their limits, random formats. `random_lagged_netlists` adds what the first
leaves out: lagged synapses (self-loops, cycles, lag 2), time-multiplexing, cuba_lif,
every format across its validator range and exponents across theirs. The ONNX, Lava
and reference tests draw from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st
from scipy import sparse

from snncompile.ir.netlist import (
    EXACT_FLOAT_BITS,
    FORMAT_LIMITS,
    INT64_MAX,
    LIF_KINDS,
    WEIGHT_EXP_LIMIT,
    Formats,
    Netlist,
    Population,
    Synapse,
    input_bound_violation,
    product_reach,
    synapse_input_bound,
)

MAX24 = 2**23 - 1

KINDS = ("accumulator", "ssm", "reset_refractory", "lif", "cuba_lif_sub", "heaviside", "glu")
int24 = st.integers(-MAX24, MAX24)
inputs = st.one_of(int24, st.sampled_from([MAX24, -MAX24, 0, 1, -1, 2**16, -(2**16), 63, 64]))


def edge(low: int, high: int):
    return st.one_of(st.integers(low, high), st.sampled_from([low, high]))


def params(draw, kind: str, size: int, fmt: Formats) -> dict:
    def vec(strategy):
        return np.array(draw(st.lists(strategy, min_size=size, max_size=size)), dtype=float)

    if kind == "ssm":
        a = edge(-(2**fmt.ssm_frac_bits), 2**fmt.ssm_frac_bits)
        b = edge(-(2**31) + 1, 2**31 - 1)
        shift = np.asarray(float(draw(edge(0, fmt.state_bits - 1))))
        return {"a_re_q": vec(a), "a_im_q": vec(a), "b_re_q": vec(b), "b_im_q": vec(b),
                "out_shift": shift, "frac_cut": vec(edge(0, fmt.ssm_frac_bits))}  # fmt: skip
    if kind == "reset_refractory":
        return {
            "decay": vec(edge(0, 4096)),
            "theta": vec(st.one_of(edge(1, MAX24), st.integers(1, 64))),
            "rho": vec(edge(0, MAX24)),
        }
    if kind in LIF_KINDS:
        constants = ("vth", "vsub") if kind == "cuba_lif_sub" else ("vth",)
        return {k: np.asarray(float(draw(edge(0, 4095)))) for k in ("du", "dv")} | {
            k: np.asarray(float(draw(edge(0, 2**17 - 1)))) for k in constants
        }
    if kind == "glu":
        limit = 2 ** (fmt.message_bits - 1) - 1
        table = draw(st.lists(st.integers(0, 4096), min_size=2, max_size=9))
        return {
            "pwl_x0": np.asarray(float(draw(edge(-limit, limit)))),
            "pwl_shift": np.asarray(float(draw(st.integers(0, 23)))),
            "pwl_table_q12": np.array(table, dtype=float),
            "out_shift": np.asarray(float(draw(st.integers(-23, 40)))),
        }
    return {}


def grid_weights(draw, shape: tuple[int, int]) -> np.ndarray:
    """A (dst, src) float matrix on Lava's 8-bit grid, all positive, negative or mixed."""
    sign = draw(st.sampled_from(["pos", "neg", "mixed"]))
    entry = {
        "pos": st.integers(0, 255),
        "neg": st.integers(-255, 0),
        "mixed": st.integers(-128, 127).map(lambda v: 2 * v),
    }[sign]
    weight = np.array(
        draw(st.lists(entry, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    )
    if weight.max() <= 0:
        weight = np.maximum(weight, -255)  # -256 exists on the mixed-sign grid only
    return weight.reshape(shape).astype(float)


def synapse(draw, name: str, src: Population, dst: Population) -> Synapse:
    dense = grid_weights(draw, (dst.input_width, src.size))
    exp = draw(st.integers(-12, 8))
    delay = draw(st.integers(0, 3))
    return Synapse(name, src.name, dst.name, dense, exp, delay)


@st.composite
def random_netlists(draw) -> tuple[Netlist, np.ndarray]:
    """1-4 populations of random kinds in a DAG with skips and repeated edges, weights on
    the 8-bit grid, exponents both signs, delays, parameters and inputs at their limits,
    random formats."""
    fmt = Formats(
        state_bits=draw(st.sampled_from([16, 24, 32])),
        message_bits=draw(st.sampled_from([8, 16, 24])),
        ssm_frac_bits=draw(st.sampled_from([12, 16])),
        weight_bits=draw(st.sampled_from([8, 6])),
    )
    n_in = draw(st.integers(1, 3))
    pops = [Population("in", "input", n_in)]
    if draw(st.booleans()):
        limit = 2 ** (fmt.message_bits - 1) - 1
        value = draw(st.integers(-limit, limit))
        pops.append(Population("bias", "bias", 1, {"value": np.asarray(float(value))}))
    syns = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(KINDS))
        size = draw(st.integers(1, 3))
        values = params(draw, kind, size, fmt)
        new = Population(f"p{k}", kind, size, values, {"gate": "sigmoid"})
        sources = draw(st.lists(st.sampled_from(pops), min_size=1, max_size=3))
        for i, src in enumerate(sources):
            syns.append(synapse(draw, f"{src.name}->{new.name}.{i}", src, new))
        pops.append(new)
    mode = draw(st.sampled_from(["mean", "last"]))
    out = Population("out", "readout", draw(st.integers(1, 2)), attrs={"mode": mode})
    computed = [p for p in pops if p.kind not in ("input", "bias")]
    others = draw(st.lists(st.sampled_from(computed[:-1]), unique=True)) if computed[1:] else []
    for src in [computed[-1], *others]:
        syns.append(synapse(draw, f"{src.name}->out", src, out))
    syns = [fit_grid(s, fmt) for s in syns]
    # Some synapses stored sparse, as the compiler stores an SSM's fan-out and readout
    # (the reference runs those through its compiled int64 loop).
    stored_sparse = draw(st.lists(st.booleans(), min_size=len(syns), max_size=len(syns)))
    syns = [as_sparse(s) if flag else s for s, flag in zip(syns, stored_sparse, strict=True)]
    net = Netlist(fit_products([*pops, out], syns, fmt), syns, numeric="int", formats=fmt)
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    values = draw(st.lists(inputs, min_size=batch * length * n_in, max_size=batch * length * n_in))
    scale = draw(st.sampled_from([1.0, 0.5, 2.0**-10, 3.0]))
    x = np.array(values, dtype=float).reshape(batch, length, n_in) * scale
    return Netlist(net.populations, net.synapses, "int", fmt, input_scale=scale), x


def as_sparse(syn: Synapse) -> Synapse:
    return replace(syn, weight=sparse.csr_matrix(syn.dense()))


def fit_grid(syn: Synapse, fmt: Formats) -> Synapse:
    """Round the mantissas down onto the grid of fewer weight bits."""
    w = syn.dense()
    step = 1 << (8 - fmt.weight_bits) if (w >= 0).all() or (w <= 0).all() else 0
    step = step or 1 << (9 - fmt.weight_bits)
    w = np.trunc(w / step) * step
    if (w <= 0).all():  # a mixed matrix may have lost its positive entries: -256 is off
        single = 1 << (8 - fmt.weight_bits)  # the single-signed grid [-255, 0]
        w = np.maximum(w, -(255 // single) * single)
    return replace(syn, weight=w)


def fit_products(pops: list[Population], syns: list[Synapse], fmt: Formats) -> tuple:
    """pops with their updates made to fit int64 for any input their synapses can deliver
    (the validator's rule, netlist.input_bound_violation): an ssm's gains
    clipped, a glu's out_shift or a lif kind's du raised, each to the nearest value
    allowed, an edge case of its own."""
    by_name = {p.name: p for p in pops}
    fitted = []
    for pop in pops:
        bound = sum(synapse_input_bound(s, by_name[s.src], fmt) for s in syns if s.dst == pop.name)
        if pop.kind == "ssm":
            rotation, _ = product_reach(pop, 0, fmt)
            limit = min((INT64_MAX - rotation) // max(bound, 1), 2**31 - 1)
            clip = {k: np.clip(v, -limit, limit) for k, v in pop.params.items() if "b_" in k}
            pop = _with(pop, **clip)
        for name, last in (("out_shift", 40), ("du", 4095)):
            while (
                name in pop.params
                and input_bound_violation(pop, bound, fmt) is not None
                and pop.params[name] < last
            ):
                pop = _with(pop, **{name: np.asarray(float(pop.params[name]) + 1)})
        fitted.append(pop)
    return tuple(fitted)


def _with(pop: Population, **params: np.ndarray) -> Population:
    return Population(pop.name, pop.kind, pop.size, {**pop.params, **params}, pop.attrs)


# ---- lagged, time-multiplexed netlists at every format ------------------------------

LAGGED_KINDS = (*KINDS, "cuba_lif")
# The largest summed input each kind can take once fit_products has moved its other
# parameters to their safe ends (netlist.input_bound_violation): a lif kind's current
# reaches 64 |a| at du = 4095, a glu's product 4096 |a| at out_shift 40, an ssm's gains
# may be clipped to 0; every sum stays below 2**53.
INPUT_LIMIT = {kind: 2**47 for kind in LIF_KINDS} | {"glu": 2**51}


def formats() -> st.SearchStrategy[Formats]:
    """Any Formats the validator takes, each field often at an end of its range."""
    fields = {name: edge(low, high) for name, (low, high) in FORMAT_LIMITS.items()}
    return st.builds(Formats, **fields)


def lag_edges(draw, dst: str, lat: dict[str, int], sources: list[str], ticks: int) -> list:
    """0-2 lagged (src, dst, lag, delay) into dst, each with the one delay the timing
    rule allows: latency(src) + 1 + delay = latency(dst) + lag * ticks. The source is
    drawn from those for which that delay is >= 0 (a self-loop always is)."""
    edges = []
    for _ in range(draw(st.integers(0, 2))):
        lag = draw(st.integers(1, 2))
        due = lat[dst] + lag * ticks
        src = draw(st.sampled_from([s for s in sources if lat[s] + 1 <= due]))
        edges.append((src, dst, lag, due - lat[src] - 1))
    return edges


def data_edges(draw, dst: str, lat: dict[str, int], sources: list[str], ticks: int) -> list:
    """1-3 lag-0 (src, dst, 0, delay) into dst from populations of lower latency. The
    first arrives with latency(dst) (that defines it); at one tick per model step the
    others may arrive earlier (the validator allows it: they mix model steps), with T > 1
    each must arrive with latency(dst) too, at dst's active tick."""
    earlier = [s for s in sources if lat[s] < lat[dst]]
    picked = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3))
    edges = []
    for i, src in enumerate(picked):
        exact = lat[dst] - lat[src] - 1
        delay = draw(st.integers(0, exact)) if ticks == 1 and i else exact
        edges.append((src, dst, 0, delay))
    return edges


def format_grid_weights(draw, shape: tuple[int, int], fmt: Formats) -> np.ndarray:
    """A (dst, src) matrix drawn on the grid of fmt.weight_bits (netlist.weight_grid),
    all positive, negative or mixed, often at the grid's ends."""
    single = 1 << (8 - fmt.weight_bits)
    top = 255 // single  # the largest single-signed mantissa, in grid steps
    entry = draw(
        st.sampled_from(
            [edge(0, top).map(lambda v: v * single), edge(-top, 0).map(lambda v: v * single),
             edge(-256 // (2 * single), 254 // (2 * single)).map(lambda v: v * 2 * single)]
        )
    )  # fmt: skip
    count = shape[0] * shape[1]
    weight = np.array(draw(st.lists(entry, min_size=count, max_size=count)), dtype=float)
    if weight.max(initial=0) <= 0:  # -256 is on the mixed-sign grid only
        weight = np.maximum(weight, -top * single)
    return weight.reshape(shape)


# Limits of the "mild" draws: summed inputs small enough that LIF currents and SSM
# states mostly stay unwrapped and unsaturated, so the reference's compiled kernels run
# (they decline a tile that could wrap or saturate) with neurons that spike and reset.
MILD_INPUT_LIMIT = 2**12


def fit_exponents(
    pops: list[Population], syns: list[Synapse], fmt: Formats, mild: bool = False
) -> list[Synapse]:
    """syns with exponents lowered, the largest contribution first, until every summed
    input is below its kind's INPUT_LIMIT (MILD_INPUT_LIMIT when mild). It ends: at
    exponent -32 a synapse delivers at most 1 (2**31 >> 32, floored)."""
    by_name = {p.name: p for p in pops}
    syns = list(syns)
    for pop in pops:
        limit = INPUT_LIMIT.get(pop.kind, 2**EXACT_FLOAT_BITS)
        if mild:
            limit = min(limit, MILD_INPUT_LIMIT)
        while True:
            into = [i for i, s in enumerate(syns) if s.dst == pop.name]
            bounds = [synapse_input_bound(syns[i], by_name[syns[i].src], fmt) for i in into]
            if sum(bounds, 0) < limit:
                break
            i = into[int(np.argmax(bounds))]
            syns[i] = replace(syns[i], weight_exp=syns[i].weight_exp - 1)
    return syns


@st.composite
def random_lagged_netlists(draw) -> tuple[Netlist, np.ndarray]:
    """1-4 populations of any kind at rising latencies (gaps of 1-2 ticks), each fed by
    1-3 lag-0 synapses and 0-2 lagged ones (lag 1 or 2: self-loops, back edges closing
    cycles, from the input too), optionally a bias synapse, T = 1-4 ticks per model step,
    a readout fed from any population (so some may run after it, or feed it lagged),
    every Formats, exponents across [-32, 32], inputs at the message limits, half-way
    between integers, far beyond and at the thresholds. Valid by construction."""
    fmt = draw(formats())
    ticks = draw(st.integers(1, 4))
    n_in = draw(st.integers(1, 3))
    pops = [Population("in", "input", n_in)]
    lat = {"in": 0}
    edges = []  # (src, dst, lag, delay)
    computed = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(LAGGED_KINDS))
        size = draw(st.integers(1, 3))
        gate = draw(st.sampled_from(["sigmoid", "hard-sigmoid"]))
        new = Population(f"p{k}", kind, size, params(draw, kind, size, fmt), {"gate": gate})
        lat[new.name] = lat[pops[-1].name] + draw(st.integers(1, 2))
        edges += data_edges(draw, new.name, lat, [p.name for p in pops], ticks)
        pops.append(new)
        computed.append(new.name)
    mode = draw(st.sampled_from(["mean", "last"]))
    out = Population("out", "readout", draw(st.integers(1, 2)), attrs={"mode": mode})
    lat["out"] = lat[draw(st.sampled_from(computed))] + draw(st.integers(1, 2))
    senders = [p.name for p in pops]
    edges += data_edges(draw, "out", lat, senders, ticks)
    for dst in [*computed, "out"]:
        edges += lag_edges(draw, dst, lat, senders, ticks)
    if draw(st.booleans()):
        limit = 2 ** (fmt.message_bits - 1) - 1
        value = np.asarray(float(draw(edge(-limit, limit))))
        pops.append(Population("bias", "bias", 1, {"value": value}))
        for dst in draw(st.lists(st.sampled_from([*computed, "out"]), unique=True)):
            # With T > 1 the constant must arrive at dst's active tick; at T = 1 any
            # delay is valid, and one off latency(dst) - 1 sends it early or late.
            exact = lat[dst] - 1
            edges.append(("bias", dst, 0, draw(st.integers(0, exact + 2)) if ticks == 1 else exact))
    pops.append(out)
    by_name = {p.name: p for p in pops}
    syns = []
    for i, (src, dst, lag, delay) in enumerate(edges):
        weight = format_grid_weights(draw, (by_name[dst].input_width, by_name[src].size), fmt)
        exp = draw(st.one_of(st.integers(-12, 4), edge(-WEIGHT_EXP_LIMIT, WEIGHT_EXP_LIMIT)))
        syns.append(Synapse(f"s{i}:{src}->{dst}@{lag}", src, dst, weight, exp, delay, lag))
    syns = fit_exponents(pops, syns, fmt, mild=draw(st.booleans()))
    stored_sparse = draw(st.lists(st.booleans(), min_size=len(syns), max_size=len(syns)))
    syns = [as_sparse(s) if flag else s for s, flag in zip(syns, stored_sparse, strict=True)]
    scale = draw(st.sampled_from([1.0, 0.5, 2.0**-10, 3.0, 2.0**20]))
    net = Netlist(fit_products(pops, syns, fmt), syns, "int", fmt, scale, ticks_per_step=ticks)
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    size = batch * length * n_in
    values = draw(st.lists(lagged_inputs(net), min_size=size, max_size=size))
    return net, np.array(values, dtype=float).reshape(batch, length, n_in) * scale


def lagged_inputs(net: Netlist) -> st.SearchStrategy[float]:
    """Input values (before input_scale): small integers (the neurons leave saturation),
    any message, the message limit and one past it, half-way values (round half to
    even), far beyond int64, and the neurons' thresholds."""
    limit = 2 ** (net.formats.message_bits - 1) - 1
    specials = [limit, -limit, limit + 1, -limit - 1, 0.5, -0.5, 1.5, -2.5, limit - 0.5]
    specials += [2.0**16, 63, 64, 1e30, -1e30]
    for pop in net.populations:
        specials += [float(v) for k in ("theta", "vth") for v in np.ravel(pop.params.get(k, []))]
    return st.one_of(st.integers(-300, 300), st.integers(-limit, limit), st.sampled_from(specials))
