"""A hypothesis strategy for random integer netlists: 1-4 populations of random kinds in a
DAG with skips, repeated edges and delays, weights on the grid of random weight bits
(stored dense or sparse), exponents of both signs, parameters and inputs at their
limits, random formats. The ONNX and reference tests draw from it."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy import sparse

from snncompile.ir.netlist import (
    INT64_MAX,
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
    if kind in ("lif", "cuba_lif_sub"):
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
    weight = sparse.csr_matrix(syn.dense())
    return Synapse(syn.name, syn.src, syn.dst, weight, syn.weight_exp, syn.delay)


def fit_grid(syn: Synapse, fmt: Formats) -> Synapse:
    """Round the mantissas down onto the grid of fewer weight bits."""
    w = syn.dense()
    step = 1 << (8 - fmt.weight_bits) if (w >= 0).all() or (w <= 0).all() else 0
    step = step or 1 << (9 - fmt.weight_bits)
    w = np.trunc(w / step) * step
    if (w <= 0).all():  # a mixed matrix may have lost its positive entries: -256 is off
        single = 1 << (8 - fmt.weight_bits)  # the single-signed grid [-255, 0]
        w = np.maximum(w, -(255 // single) * single)
    return Synapse(syn.name, syn.src, syn.dst, w, syn.weight_exp, syn.delay)


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
