"""Small netlists for the target tests (Lava, ONNX): each kind side by side."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import sparse

from snncompile.ir.netlist import Formats, Netlist, Population, Synapse

FMT = Formats()


def pop(name: str, kind: str, size: int, attrs: dict | None = None, **params) -> Population:
    """A population with float-array parameters given as keywords."""
    return Population(
        name, kind, size, {k: np.asarray(v, float) for k, v in params.items()}, attrs or {}
    )


def side_by_side(
    pops: list[Population], *, fmt: Formats = FMT, mode: str = "last", numeric: str = "int"
) -> Netlist:
    """input -> each population (identity on its slice of the input) -> one readout."""
    widths = [p.input_width for p in pops]
    sizes = [p.size for p in pops]
    syns, start = [], 0
    for p, width in zip(pops, widths, strict=True):
        weight = np.zeros((width, sum(widths)))
        weight[:, start : start + width] = np.eye(width)
        syns.append(Synapse(f"in->{p.name}", "in", p.name, weight))
        start += width
    start = 0
    for p, size in zip(pops, sizes, strict=True):
        weight = np.zeros((sum(sizes), size))
        weight[start : start + size] = np.eye(size)
        syns.append(Synapse(f"{p.name}->out", p.name, "out", weight))
        start += size
    readout = Population("out", "readout", sum(sizes), attrs={"mode": mode})
    return Netlist(
        (Population("in", "input", sum(widths)), *pops, readout), syns, numeric, formats=fmt
    )


def loop_netlist(
    pops: list[Population],
    *,
    seed: int = 0,
    self_loop: bool = True,
    ticks: int | None = None,
    fmt: Formats = FMT,
    mode: str = "mean",
) -> Netlist:
    """A time-multiplexed int netlist: input -> p0 -> p1 -> ... -> p(n-1), the loop closed
    by a lag-1 synapse p(n-1) -> p0, a lag-1 self-loop on p0, a residual input -> p(n-1)
    and a bias into p0, the last population into a readout; random weights on the 8-bit
    mixed-sign grid. It needs n ticks per model step; `ticks` may ask for more."""
    rng = np.random.default_rng(seed)
    n = len(pops)
    ticks = ticks or n
    names = [p.name for p in pops]
    latency = {"in": 0, **{name: i + 1 for i, name in enumerate(names)}, "out": n + 1}

    def weight(dst: Population, src_size: int) -> np.ndarray:
        return 2.0 * rng.integers(-40, 41, (dst.input_width, src_size))

    def syn(src: str, dst: Population, src_size: int, lag: int = 0) -> Synapse:
        delay = latency[dst.name] + lag * ticks - latency[src] - 1
        return Synapse(f"{src}->{dst.name}@{lag}", src, dst.name, weight(dst, src_size),
                       delay=delay, lag=lag)  # fmt: skip

    width = 3
    syns = [syn("in", pops[0], width)]
    syns += [syn(a.name, b, a.size) for a, b in itertools.pairwise(pops)]
    syns.append(syn(names[-1], pops[0], pops[-1].size, lag=1))
    if self_loop:
        syns.append(syn(names[0], pops[0], pops[0].size, lag=1))
    if n > 1:
        syns.append(syn("in", pops[-1], width))
    bias = np.full((pops[0].input_width, 1), 6.0)
    syns.append(Synapse("bias->p0", "bias", names[0], bias, delay=latency[names[0]] - 1))
    readout = Population("out", "readout", pops[-1].size, attrs={"mode": mode})
    syns.append(Synapse("last->out", names[-1], "out", np.eye(pops[-1].size)))
    inputs = (Population("in", "input", width), pop("bias", "bias", 1, value=8.0))
    return Netlist((*inputs, *pops, readout), tuple(syns), "int", formats=fmt, ticks_per_step=ticks)


def loop_pops(kinds: str) -> list[Population]:
    """Populations p0, p1, ... for loop_netlist, by letter: l lif, r reset_refractory,
    a accumulator, s ssm, g glu, c cuba_lif_sub, h heaviside."""
    table = [0, 300, 1200, 2048, 2900, 3800, 4096]
    make = {
        "l": lambda n: pop(n, "lif", 4, du=1024, dv=512, vth=600),
        "r": lambda n: pop(n, "reset_refractory", 4, decay=[500] * 4, theta=[40] * 4,
                           rho=[20] * 4),
        "a": lambda n: pop(n, "accumulator", 4),
        "s": lambda n: pop(n, "ssm", 4, a_re_q=[50000, -30000, 0, 65536],
                           a_im_q=[20000, 40000, -65536, 0], b_re_q=[65536, -40000, 9000, 3],
                           b_im_q=[-7000, 65536, 100, -3], out_shift=2,
                           frac_cut=[0, 3, 0, 16]),
        "g": lambda n: pop(n, "glu", 4, {"gate": "sigmoid"}, pwl_x0=-300, pwl_shift=7,
                           pwl_table_q12=table, out_shift=10),
        "c": lambda n: pop(n, "cuba_lif_sub", 4, du=2000, dv=300, vth=500, vsub=588),
        "h": lambda n: pop(n, "heaviside", 4),
    }  # fmt: skip
    return [make[k](f"p{i}") for i, k in enumerate(kinds)]


def constant_netlist(
    constants: dict[str, np.ndarray], gains: dict[str, np.ndarray] | None = None
) -> Netlist:
    """Float64: input -> one accumulator per entry (from its slice of the input, times its
    `gains` or 1), plus a bias synapse of the given constants into it -> one last-step
    readout."""
    sizes = [c.size for c in constants.values()]
    total = sum(sizes)
    pops = [pop("in", "input", total), pop("bias", "bias", 1, value=1.0)]
    syns, start = [], 0
    for (name, constant), size in zip(constants.items(), sizes, strict=True):
        pick = np.eye(total)[start : start + size]
        gain = (gains or {}).get(name, np.ones(size))
        pops.append(pop(name, "accumulator", size))
        syns.append(Synapse(f"in->{name}", "in", name, pick * gain[:, None]))
        syns.append(Synapse(f"bias->{name}", "bias", name, constant.reshape(-1, 1)))
        syns.append(Synapse(f"{name}->out", name, "out", pick.T))
        start += size
    pops.append(Population("out", "readout", total, attrs={"mode": "last"}))
    return Netlist(tuple(pops), tuple(syns), numeric="float64")


# Constants cancelling their inputs (a folded BatchNorm shift): the quantizer gives each
# bias synapse a `.fine` remainder synapse, and rows far apart their own exponents
# (snncompile/quantize/quantize.py).
CANCELLING = np.array([-1000.37, 999.81, -500.123, 731.9])


def cancelling_inputs(seed: int = 0, batch: int = 8, steps: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return -CANCELLING + rng.normal(scale=0.5, size=(batch, steps, CANCELLING.size))


# Rows 45x and more apart (an encoder's weights before a BatchNorm); beside a cancelling
# constant the quantizer gives them two exponents.
FAR_APART_GAINS = np.array([1.04, -0.37, 0.0231, -0.0173])


def far_apart_inputs(seed: int = 0) -> np.ndarray:
    """cancelling_inputs, beside a slice of N(0, 1) for the far-apart rows."""
    signal = np.random.default_rng(seed + 1).normal(size=(8, 16, FAR_APART_GAINS.size))
    return np.concatenate([cancelling_inputs(seed), signal], axis=2)


def split_synapse_netlist() -> tuple[Netlist, np.ndarray]:
    """(int netlist, inputs) in which the quantizer split synapses: a cancelling constant
    into a main synapse and its `.fine` remainder, and matrices of far-apart rows into
    `.rows1` parts (a lagged self-loop, a delayed CSR matrix, a delayed one into a LIF);
    the parts share source, destination, delay and lag, not exponents."""
    from snncompile.quantize.quantize import quantize

    x = far_apart_inputs()
    mix = FAR_APART_GAINS[:, None] * np.random.default_rng(3).uniform(0.5, 1.0, (4, 4))
    net = constant_netlist({"acc": CANCELLING, "enc": np.array([0.1, -0.2, 0.05, 0.3])},
                           gains={"enc": FAR_APART_GAINS})  # fmt: skip
    out = net.populations[-1]
    pops = [*net.populations[:-1], pop("d", "accumulator", 4),
            pop("lif", "lif", 4, tau=0.9, vth=1.0),
            Population(out.name, out.kind, out.size + 8, attrs=dict(out.attrs))]  # fmt: skip

    def widen(s: Synapse) -> Synapse:  # the readout takes 8 more values
        if s.dst != out.name:
            return s
        return Synapse(s.name, s.src, s.dst, np.vstack([s.weight, np.zeros((8, s.shape[1]))]))

    syns = [
        *map(widen, net.synapses),
        Synapse("enc->enc", "enc", "enc", 0.3 * mix, lag=1),
        Synapse("enc->d", "enc", "d", sparse.csr_matrix(mix), delay=2),
        Synapse("enc->lif", "enc", "lif", mix, delay=1),
        Synapse("d->out", "d", out.name, np.eye(out.size + 8)[:, out.size : out.size + 4]),
        Synapse("lif->out", "lif", out.name, np.eye(out.size + 8)[:, out.size + 4 :]),
    ]  # fmt: skip
    qnet, _ = quantize(Netlist(tuple(pops), tuple(syns), numeric="float64"), x)
    names = {s.name for s in qnet.synapses}
    split = ("in->enc", "enc->enc", "enc->d", "enc->lif")
    assert {"bias->acc.fine", *(f"{name}.rows1" for name in split)} <= names, names
    return qnet, x


# Channels of wide_sums_netlist: 64 graded messages moving together sum to 64 times one's
# peak, past int32 at act_bits 24 unless each is 3 bits narrower.
WIDE_SUM_FAN_IN = 64


def wide_sums_netlist() -> tuple[Netlist, np.ndarray]:
    """(float64 netlist, inputs) whose int32 sums wrap at act_bits 24 from each graded
    source kind the quantizer narrows besides the SSM: the input, an accumulator and a
    GLU each send 64 channels moving together, summed with weight 1 into one accumulator
    of 3 (one row per source, each a step after its input) -> last-step readout."""
    n = WIDE_SUM_FAN_IN

    def row(i: int) -> np.ndarray:
        weight = np.zeros((3, n))
        weight[i] = 1.0
        return weight

    pops = (pop("in", "input", n), pop("mid", "accumulator", n),
            pop("gate", "glu", n, {"gate": "sigmoid"}), pop("sum", "accumulator", 3),
            Population("out", "readout", 3, attrs={"mode": "last"}))  # fmt: skip
    syns = (
        Synapse("in->sum", "in", "sum", row(0), delay=1),  # beside the paths of 2 hops
        Synapse("in->mid", "in", "mid", np.eye(n)),
        Synapse("mid->sum", "mid", "sum", row(1)),
        Synapse("in->gate", "in", "gate", np.vstack([np.eye(n), np.eye(n)])),
        Synapse("gate->sum", "gate", "sum", row(2)),
        Synapse("sum->out", "sum", "out", np.eye(3)),
    )
    x = 3.0 + 0.1 * np.random.default_rng(0).normal(size=(4, 16, n))
    return Netlist(pops, syns, numeric="float64"), x


def narrowed_messages_netlist() -> tuple[Netlist, np.ndarray]:
    """(int netlist, inputs): wide_sums_netlist quantized at act_bits 24, its input, its
    accumulator and its GLU sending messages narrowed by the calibration rounds (the
    input's on a coarser input_scale), so that no sum wraps."""
    from snncompile.quantize.quantize import QuantConfig, quantize

    net, x = wide_sums_netlist()
    qnet, report = quantize(net, x, QuantConfig(act_bits=24))
    narrowed = {n: p.get("message_headroom_bits") for n, p in report.populations.items()}
    assert narrowed == {"in": 3, "mid": 3, "gate": 3, "sum": None, "out": None}, narrowed
    assert not report.calibration_events, report.calibration_events
    return qnet, x


def nir_mlp(path: Path, recurrent: str | None = None) -> Path:
    """A NIR LIF MLP without biases (8 -> 16 -> 10), the kind netx's chain expresses.
    `recurrent` "mixed": the hidden layer also feeds itself with weights of both signs (a
    NIR cycle: lag 1, netx dense_rec); "inhibitory": with -2 everywhere, its input
    weights all positive (so the two matrices differ in sign)."""
    import nir

    rng = np.random.default_rng(0)

    def lif(n: int) -> nir.LIF:
        ones = np.ones(n)
        return nir.LIF(tau=0.02 * ones, r=ones, v_leak=0 * ones, v_threshold=ones)

    fc1 = rng.normal(0, 12, (16, 8))
    nodes = {
        "input": nir.Input(input_type=np.array([8])),
        "fc1": nir.Linear(weight=np.abs(fc1) if recurrent == "inhibitory" else fc1),
        "lif1": lif(16),
        "fc2": nir.Linear(weight=rng.normal(0, 8, (10, 16))),
        "lif2": lif(10),
        "output": nir.Output(output_type=np.array([10])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]  # fmt: skip
    if recurrent is not None:
        mixed = rng.normal(0, 4, (16, 16))
        nodes["rec"] = nir.Linear(
            weight=mixed if recurrent == "mixed" else -2.0 * np.ones((16, 16))
        )
        edges += [("lif1", "rec"), ("rec", "lif1")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    return path
