"""lava-dl's own netx loader on our network.net: it builds the leading chain the file
states (netx_layers) and Lava runs it bit for bit as the reference simulator does.

lava-dl 0.6.0 is installed by `make setup` without its dependencies (it pins torch
2.3); netx's loader imports one helper of lava-dl's slayer (RF neuron parameters),
whose package needs torchvision and matplotlib, so the tests give it a stand-in
module: our files have no RF layers, the one place netx calls it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netlists import nir_mlp
from trace_compare import assert_traces_equal

from snncompile.errors import CorruptInputError
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse, first_difference
from snncompile.reference.simulator import SimResult, encode_input, simulate
from snncompile.targets.loihi2.netx import (
    load_unchecked,
    netx_network,
    read_network,
    write_network,
)
from snncompile.targets.loihi2.netx_chain import netx_chain, netx_warnings
from snncompile.verify.traces import diff_runs


def _lif(name: str, kind: str, size: int, du: int, dv: int, vth: int) -> Population:
    params = {"du": np.array(float(du)), "dv": np.array(float(dv)), "vth": np.array(float(vth))}
    return Population(name, kind, size, params)


def _grid(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Weights on Lava's 8-bit mixed-sign grid (even, -256 .. 254), both ends included."""
    weight = 2.0 * rng.integers(-128, 128, shape)
    weight.flat[:2] = (-256, 254)
    return weight


def chain_netlist(
    seed: int = 0, *, message_bits: int = 8, ticks: int = 1, in_h_exp: int = 0, h_r_delay: int = 0
) -> Netlist:
    """in(4) -> h (lif, graded input) -> r (cuba_lif with a lag-1 self-loop) -> a LIF
    netx cannot take (weight_exp -3) and a readout; an accumulator fed by the input comes
    before h in the netlist's order (the file puts the chain first)."""
    rng = np.random.default_rng(seed)
    pops = (
        Population("in", "input", 4),
        Population("side", "accumulator", 5),
        _lif("h", "lif", 6, du=4095, dv=300, vth=900),
        _lif("r", "cuba_lif", 5, du=1500, dv=700, vth=100),
        _lif("tail", "lif", 3, du=4095, dv=100, vth=20),
        Population("out", "readout", 5, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->side", "in", "side", _grid(rng, (5, 4))),
        Synapse("in->h", "in", "h", _grid(rng, (6, 4)), weight_exp=in_h_exp),
        Synapse("h->r", "h", "r", _grid(rng, (5, 6)), delay=h_r_delay),
        Synapse("r->r", "r", "r", _grid(rng, (5, 5)), delay=ticks - 1, lag=1),
        Synapse("r->tail", "r", "tail", _grid(rng, (3, 5)), weight_exp=-3),
        Synapse("r->out", "r", "out", 2.0 * np.eye(5)),
        Synapse("side->out", "side", "out", 2.0 * np.eye(5), delay=1),
    )
    formats = Formats(message_bits=message_bits)
    return Netlist(pops, syns, numeric="int", formats=formats, ticks_per_step=ticks)


def run_netx(
    path: Path, net: Netlist, x: np.ndarray, *, checked: bool = True
) -> tuple[SimResult, SimResult]:
    """(reference, netx): the reference simulator's and netx's runs of the chain that
    network.net at `path` states, on one sample's inputs x (1, steps, width) of `net`,
    each holding the spikes of every chain layer aligned to model steps.

    netx's Network has one out-port, the last layer's; a sink on each layer block's own
    out-port gives the layers before it, so a difference shows in the layer it starts
    in, not only where it reaches the end."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    with h5py.File(path, "r") as f:
        layers = int(f.attrs["netx_layers"])
        names = [str(f[f"layer/{i}"].attrs["name"]) for i in range(1, layers)]
    if checked:
        network = netx_network(path)
    else:  # a file read_network refuses, loaded to show what netx makes of it
        network = load_unchecked(path, layers, net.formats.message_bits)
    assert (network.num_layers, network.input_message_bits) == (layers, net.formats.message_bits)
    latency = net.latency()
    length = x.shape[1]
    # Lava step s (row s - 1) carries tick s - 1; model step m of a layer is tick m + its
    # latency: pad the input so that the last layer's last step is run.
    padded = np.concatenate([x, np.zeros((1, max(latency[n] for n in names), x.shape[2]))], 1)
    ints = encode_input(net, padded)[0]
    steps = ints.shape[0]
    source = Source(data=ints.T.astype(np.int32))
    source.s_out.connect(network.inp)
    sinks = []
    for layer in network.layers:  # its blocks: the chain (layer 0, the input, has none)
        sinks.append(Sink(shape=layer.out.shape, buffer=steps))
        layer.out.connect(sinks[-1].a_in)
    try:
        network.run(RunSteps(num_steps=steps), Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = [np.asarray(sink.data.get()).T for sink in sinks]
    finally:
        network.stop()
    theirs = {
        name: trace[latency[name] : latency[name] + length][None]
        for name, trace in zip(names, spikes, strict=True)
    }
    ours = simulate(net, x, record=names).traces
    nothing = np.zeros((1, 0))
    return (
        SimResult(nothing, nothing, {name: ours[name] for name in names}),
        SimResult(nothing, nothing, theirs),
    )


def assert_netx_runs_exactly(path: Path, net: Netlist, x: np.ndarray) -> SimResult:
    """netx's run of the file's chain equals the reference's in every layer at every step
    (the first difference is named); returns the reference's run."""
    ours, theirs = run_netx(path, net, x)
    assert_traces_equal(ours, theirs, order=[p.name for p in net.populations])
    return ours


# What keeps a layer out of the chain (the chain starts at the input, so h first).
CHAIN_BREAKS = {
    "as built": ({}, ["h", "r"]),
    "24-bit input messages: Lava's int32 LIF could wrap in h": ({"message_bits": 24}, []),
    "weights at exponent -3 into h are not whole numbers": ({"in_h_exp": -3}, []),
    "weights at exponent 1 into h leave Lava's 8-bit grid": ({"in_h_exp": 1}, []),
    "a delay into r (netx: DelayDense, untested)": ({"h_r_delay": 1}, ["h"]),
    "two ticks per step: netx's neuron cannot idle": ({"ticks": 2}, []),
}


@pytest.mark.parametrize("case", CHAIN_BREAKS, ids=list(CHAIN_BREAKS))
def test_the_chain_is_the_layers_netx_can_express(case: str) -> None:
    options, names = CHAIN_BREAKS[case]
    chain = netx_chain(chain_netlist(**options))
    assert [layer.pop.name for layer in chain] == names
    if "r" in names:
        assert (chain[1].feed.name, chain[1].recurrent.name) == ("h->r", "r->r")  # type: ignore[union-attr]


def test_the_file_puts_the_chain_first_and_reads_back_as_the_netlist(tmp_path: Path) -> None:
    net = chain_netlist()
    path = tmp_path / "network.net"
    write_network(net, path)
    with h5py.File(path, "r") as f:
        layers = [f["layer"][str(i)] for i in range(len(f["layer"]))]
        assert f.attrs["netx_layers"] == 3
        assert [layer["type"][0] for layer in layers] == [b"input", b"dense", b"dense_rec"] + [
            b"ext"
        ] * 3
        assert [layer.attrs["name"] for layer in layers] == ["in", "h", "r", "side", "tail", "out"]
        assert [layer.attrs["position"] for layer in layers] == [0, 2, 3, 1, 4, 5]
        assert layers[2]["neuron/iDecay"][()] == 1501 and layers[2]["neuron/vThMant"][()] == 100
    assert first_difference(read_network(path), net) is None


@pytest.mark.parametrize(
    "where, value",
    [("netx_layers", 3.0), ("netx_layers", "3"), ("weight_exp", 0.5), ("delay", 0.7)],
)
def test_integer_fields_stored_as_other_types_are_refused(
    tmp_path: Path, where: str, value: object
) -> None:
    """int() read 3.5 as 3 and '3' as 3 (helper-74): a field that is no HDF5 integer is
    a damaged file."""
    path = tmp_path / "network.net"
    write_network(chain_netlist(), path)
    with h5py.File(path, "r+") as f:
        if where == "netx_layers":
            f.attrs["netx_layers"] = value
        else:
            group = f["layer/1/inputs/0"]
            del group[where]
            group[where] = value
    with pytest.raises(CorruptInputError, match=f"{where} .* is not an integer"):
        read_network(path)


@pytest.mark.parametrize("value", [10**9, "abc", 1])
def test_netx_network_refuses_what_read_network_refuses(tmp_path: Path, value: object) -> None:
    """netx_network read the attributes alone: netx_layers of 10**9 loaded, 'abc' was a
    ValueError (helper-74). It reads the file as read_network does first."""
    path = tmp_path / "network.net"
    write_network(chain_netlist(), path)
    with h5py.File(path, "r+") as f:
        f.attrs["netx_layers"] = value
    with pytest.raises(CorruptInputError):
        netx_network(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_netx_loads_the_chain_and_lava_runs_it_bit_exactly(tmp_path: Path, seed: int) -> None:
    net = chain_netlist(seed)
    path = tmp_path / "network.net"
    write_network(net, path)
    with h5py.File(path, "r") as f:
        layers = int(f.attrs["netx_layers"])
    rng = np.random.default_rng(seed)
    length = 40
    x = rng.integers(-127, 128, (1, length, 4)).astype(np.float64)
    x[0, ::7] = 127  # the largest messages, so the layers see their largest inputs
    assert layers == 3
    ours = assert_netx_runs_exactly(path, net, x)
    for name in ("h", "r"):
        spikes = ours.traces[name]
        assert spikes.any() and not spikes.all(), f"{name} must spike and be silent"


def one_layer(
    weight: np.ndarray, rec: np.ndarray | None = None, message_bits: int = 8, vth: int = 50
) -> Netlist:
    """in(4) -> h (lif, 5; with a lag-1 self-synapse `rec`) -> a readout."""
    pops = (
        Population("in", "input", 4),
        _lif("h", "lif", 5, du=4095, dv=300, vth=vth),
        Population("out", "readout", 5, attrs={"mode": "mean"}),
    )
    syns = [Synapse("in->h", "in", "h", weight), Synapse("h->out", "h", "out", 2.0 * np.eye(5))]
    if rec is not None:
        syns.append(Synapse("h->h", "h", "h", rec, lag=1))
    return Netlist(pops, tuple(syns), numeric="int", formats=Formats(message_bits=message_bits))


def _signed(sign: int, zeros: bool) -> np.ndarray:
    weight = sign * np.random.default_rng(3).integers(1, 256, (5, 4)).astype(np.float64)
    weight.flat[0] = sign * 255
    if zeros:
        weight.flat[1::3] = 0.0
    return weight


# netx's three sign modes (optimize_weight_bits), each run and compared below.
SIGN_MODES = {
    "excitatory, with zeros": _signed(1, zeros=True),
    "inhibitory, no zero": _signed(-1, zeros=False),
    "excitatory, odd and small": 2.0 * np.random.default_rng(4).integers(0, 8, (5, 4)) + 1,
}


@pytest.mark.parametrize("mode", SIGN_MODES, ids=list(SIGN_MODES))
def test_netx_takes_every_sign_mode_exactly(tmp_path: Path, mode: str) -> None:
    net = one_layer(SIGN_MODES[mode])
    assert [layer.pop.name for layer in netx_chain(net)] == ["h"]
    path = tmp_path / "network.net"
    write_network(net, path)
    x = np.random.default_rng(5).integers(-127, 128, (1, 30, 4)).astype(np.float64)
    spikes = assert_netx_runs_exactly(path, net, x).traces["h"]
    assert spikes.any() and not spikes.all()


@pytest.mark.parametrize("zeros", [True, False], ids=["all zero", "largest weight 0"])
def test_a_matrix_whose_largest_weight_is_0_is_no_netx_layer(zeros: bool) -> None:
    """netx reads it as mixed-sign with an infinite scale (OverflowError when all zero,
    9-bit weights and a layer that never spiked otherwise: measured)."""
    weight = np.zeros((5, 4)) if zeros else _signed(-1, zeros=True)
    assert netx_chain(one_layer(weight)) == []


# Layers netx_chain leaves out, each because netx or Lava would compute something else
# (helper-69 found the first three in a review; the test shows netx does differ).
LEFT_OUT = {
    # netx scales -1 up to -256, which Lava's Dense clips to -255 for one sign.
    "all -1": lambda: one_layer(-np.ones((5, 4)), vth=1),
    # netx scales -128 to -256, then Lava clips and truncates it to -126 (-2 stays):
    # an input of -1 everywhere sums 128 + 3 x 2 = 134 > 133 for us, 132 in netx.
    "one sign, -128 the least": lambda: one_layer(
        np.where(np.eye(5, 4) > 0, -128.0, -2.0), vth=133
    ),
    # netx shifts the ones 7 bits up: 4 x 127 x 2^7 ... with 24-bit messages, 2^32.
    "sums netx shifts past int32": lambda: one_layer(np.ones((5, 4)), message_bits=24, vth=100_000),
    # odd weights of one sign beside the other sign: netx's 9 bits, zeroed by Lava.
    "dense_rec of opposite signs": lambda: one_layer(
        2.0 * np.random.default_rng(6).integers(0, 8, (5, 4)) + 1,
        rec=-205.0 * np.ones((5, 5)),
        vth=20,
    ),
}


def _forced_netx_file(net: Netlist, path: Path) -> None:
    """network.net with population h written as a netx layer anyway."""
    from snncompile.ir.netlist import ChainLayer
    from snncompile.targets.loihi2.netx import _write_netx_fields

    write_network(net, path)
    (feed,) = [s for s in net.incoming("h") if s.src == "in"]
    loop = [s for s in net.incoming("h") if s.src == "h"]
    with h5py.File(path, "r+") as f:
        layer = f["layer/1"]
        assert layer.attrs["name"] == "h"
        del layer["type"]
        f.attrs["netx_layers"] = 2
        _write_netx_fields(layer, ChainLayer(net.population("h"), feed, loop[0] if loop else None))


@pytest.mark.parametrize("case", LEFT_OUT, ids=list(LEFT_OUT))
def test_what_netx_would_compute_otherwise_is_left_out(tmp_path: Path, case: str) -> None:
    net = LEFT_OUT[case]()
    assert netx_chain(net) == []
    path = tmp_path / "forced.net"
    _forced_netx_file(net, path)
    edge = 2 ** (net.formats.message_bits - 1) - 1
    x = np.where(np.random.default_rng(7).random((1, 30, 4)) < 0.5, edge, -edge // 3)
    x = -np.ones((1, 30, 4)) if "-128" in case else x.astype(np.float64)
    with pytest.raises(CorruptInputError, match="netx_layers is 2, the chain has 0"):
        netx_network(path)  # refused: netx would compute something else
    ours, theirs = run_netx(path, net, x, checked=False)
    assert ours.traces["h"].any(), "the reference must spike for the difference to show"
    # A divergence in the values, not a missing trace or a shape (diff_runs' -1).
    assert diff_runs(ours, theirs).divergence is not None


def _add_neuron(f: h5py.File, path: str) -> None:
    f.create_group(path).create_dataset("type", data=np.array([b"CUBA"], "S10"))


# Edits that change what netx builds while our own fields (inputs/, params/) stay.
NETX_EDITS = {
    "a chain weight": (
        lambda f: f["layer/2/weight"].__setitem__((0, 0), f["layer/2/weight"][0, 0] + 2),
        "layer 2's netx fields differ",
    ),
    # netx then builds an input block whose LIF sends 1-bit spikes (helper-69).
    "a neuron in layer 0": (lambda f: _add_neuron(f, "layer/0/neuron"), "more than the input"),
    "a chain layer's shape": (
        lambda f: f["layer/1/shape"].__setitem__(1, 2),
        "layer 1's netx fields differ",
    ),
    "a bias in a chain layer": (
        lambda f: f["layer/1"].create_dataset("bias", data=np.ones(6)),
        "layer 1's netx fields differ",
    ),
}


@pytest.mark.parametrize("edit", NETX_EDITS, ids=list(NETX_EDITS))
def test_read_network_refuses_netx_fields_that_differ(tmp_path: Path, edit: str) -> None:
    from snncompile.errors import CorruptInputError

    path = tmp_path / "network.net"
    write_network(chain_netlist(), path)
    change, reason = NETX_EDITS[edit]
    with h5py.File(path, "r+") as f:
        change(f)
    with pytest.raises(CorruptInputError, match=reason):
        read_network(path)


# -- a NIR graph through the compiler -------------------------------------------------


def _export(tmp_path: Path, name: str, recurrent: str | None = None, **config: int | bool) -> Path:
    from snncompile.api import export_model
    from snncompile.quantize.quantize import QuantConfig

    out = tmp_path / name
    source = nir_mlp(tmp_path / "mlp.nir", recurrent)
    export_model(source, out, target="loihi2", dt=1e-3, config=QuantConfig(**config))
    return out


@pytest.mark.parametrize("recurrent", [None, "mixed", "inhibitory"])
def test_netx_weights_make_a_nir_mlp_netx_loads_and_lava_runs_exactly(
    tmp_path: Path, recurrent: str | None
) -> None:
    """dense, dense_rec, and a dense_rec whose two matrices differ in sign (both then
    on the mixed grid: helper-69's case, which netx had zeroed before)."""
    from snncompile.artifact import read_artifact

    narrow = {"message_bits": 8, "act_bits": 8}
    out = _export(tmp_path, "mlp.loihi2", recurrent, netx_weights=True, **narrow)
    net = read_artifact(out).netlist
    exps = {s.name: s.weight_exp for s in net.synapses if s.dst != "output"}
    assert set(exps.values()) == {0} and ("lif1->lif1" in exps) == (recurrent is not None)
    with h5py.File(out / "network.net", "r") as f:
        layers = int(f.attrs["netx_layers"])
        first = f["layer/1/type"][0]
    assert layers == 3 and first == (b"dense_rec" if recurrent else b"dense")
    if recurrent == "inhibitory":
        weight = {s.name: s.dense() for s in net.synapses}
        feed, rec = weight["input->lif1"], weight["lif1->lif1"]
        assert feed.min() >= 0 and rec.max() < 0  # one sign each: the mixed grid's step
        assert not np.any(feed % 2) and not np.any(rec % 2)
    x = (np.random.default_rng(2).random((1, 50, 8)) < 0.3).astype(np.float64)
    ours = assert_netx_runs_exactly(out / "network.net", net, x)
    assert all(0.05 < ours.traces[name].mean() < 0.5 for name in ("lif1", "lif2"))


def test_without_netx_weights_the_mlp_has_no_netx_layer(tmp_path: Path) -> None:
    from snncompile.artifact import read_artifact

    out = _export(tmp_path, "plain.loihi2")
    exps = {s.name: s.weight_exp for s in read_artifact(out).netlist.synapses}
    assert exps["input->lif1"] < 0 and exps["lif1->lif2"] > 0  # finer grids than netx's
    with h5py.File(out / "network.net", "r") as f:
        assert f.attrs["netx_layers"] == 0


def test_netx_weights_warns_what_cuts_the_chain(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from snncompile.cli import main

    def export(*options: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(["export", str(source), "--dt", "1e-3", "--target", "loihi2", *options])
        out, err = capsys.readouterr()
        return int(info.value.code or 0), out, err

    source = nir_mlp(tmp_path / "mlp.nir")
    code, _, err = export("--netx-weights", "-o", str(tmp_path / "a"))
    assert code == 0 and "warning: --netx-weights: netx can load 0 of the 2 LIF layers" in err
    assert "--message-bits 8 --act-bits 8" in err
    narrow = ("--netx-weights", "--message-bits", "8", "--act-bits", "8")
    code, out, err = export(*narrow, "-o", str(tmp_path / "b"))
    assert code == 0 and "warning" not in err, err
    assert "layers 0-2 of network.net load in lava-dl's netx" in out


def test_norses_one_lif_graph_loads_in_netx_as_exported(tmp_path: Path) -> None:
    """A real file from another framework, with the default quantization: its one
    weight's mantissa at exponent -7 is a multiple of 128, so netx holds it."""
    from snncompile.api import export_model
    from snncompile.artifact import read_artifact

    source = Path(__file__).parent / "data" / "nir-examples" / "lif_norse.nir"
    out = tmp_path / "norse.loihi2"
    export_model(source, out, target="loihi2", dt=1e-3)
    net = read_artifact(out).netlist
    (feed,) = net.incoming("1")
    assert feed.weight_exp == -7 and feed.dense()[0, 0] % 128 == 0
    with h5py.File(out / "network.net", "r") as f:
        assert f.attrs["netx_layers"] == 2
    x = (np.random.default_rng(3).random((1, 60, 1)) < 0.4).astype(np.float64)
    spikes = assert_netx_runs_exactly(out / "network.net", net, x).traces["1"]
    assert spikes.any() and not spikes.all()


@st.composite
def netx_layers_drawn(draw: st.DrawFn) -> tuple[Netlist, np.ndarray]:
    """One layer (with a self-synapse or not) of weights whose patterns netx treats
    differently: either sign or both, scaled by a power of two, odd or even, some zero;
    8- or 24-bit input messages; and inputs at the message limits."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)

    def matrix(shape: tuple[int, int]) -> np.ndarray:
        sign = draw(st.sampled_from([1, -1, 0]))  # 0: both signs, on their even grid
        top = 2 ** draw(st.integers(0, 7))
        values = rng.integers(1, top + 1, shape) * 2 ** draw(st.integers(0, 1))
        if sign:
            values = sign * np.minimum(values, 255)
        else:
            values = np.clip(2 * values * rng.choice([-1, 1], shape), -256, 254)
        return np.where(rng.random(shape) < draw(st.sampled_from([0.0, 0.3])), 0, values)

    rec = matrix((5, 5)).astype(np.float64) if draw(st.booleans()) else None
    bits = draw(st.sampled_from([8, 24]))
    net = one_layer(matrix((5, 4)).astype(np.float64), rec, bits, vth=draw(st.integers(1, 400)))
    edge = 2 ** (bits - 1) - 1
    x = rng.choice([edge, -edge, 1, -1, 0], (1, 20, 4)).astype(np.float64)
    return net, x


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(netx_layers_drawn())
def test_every_layer_netx_chain_takes_runs_exactly_in_netx(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Netlist, np.ndarray]
) -> None:
    net, x = case
    if not netx_chain(net):
        return  # left out: the test above shows what netx does with such layers
    path = tmp_path_factory.mktemp("netx") / "network.net"
    write_network(net, path)
    assert_netx_runs_exactly(path, net, x)


def test_the_netx_example_runs_and_agrees() -> None:
    """examples/netx_mlp.py, as the README shows it (exit 1 on any difference)."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "examples" / "netx_mlp.py"
    out = subprocess.run(
        [sys.executable, str(script), "--steps", "40"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "netx loads layers 0-2 (the input, then up to lif2)" in out.stdout
    assert "0 differ" in out.stdout
    # Noise the README's sample omits: Lava's ProcessModel search and torch's CUDA probe.
    assert "Cannot import module" not in out.stderr and "No CUDA runtime" not in out.stderr


def test_the_slayer_stand_in_leaves_sys_modules_after_netx_is_imported() -> None:
    """The stand-in stayed in sys.modules: a user's own `import lava.lib.dl.slayer`
    afterwards found an empty module instead of failing on what slayer lacks."""
    import subprocess

    code = (
        "import sys\n"
        "from snncompile.targets.loihi2.netx_chain import netx_hdf5\n"
        "hdf5 = netx_hdf5()\n"
        "assert netx_hdf5() is hdf5 and hdf5.Network\n"
        "print(sorted(name for name in sys.modules if 'slayer' in name))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[]\n"


WARNINGS = {
    "as built": (
        {},
        "netx can load 2 of the 3 LIF layers of the chain from the input: at "
        "'tail', the weights of 'r->tail' at weight_exp -3 are not whole",
    ),
    "24-bit input messages": (
        {"message_bits": 24},
        "0 of the 3 LIF layers of the chain from the input: at 'h', its summed input can reach",
    ),
    "exponent -3 into h": ({"in_h_exp": -3}, "are not whole (weights at exponent 0 have"),
    # A delay ends lif_chain itself (its structure), not netx's part of it.
    "a delay into r": ({"h_r_delay": 1}, None),
    "two ticks per step": (
        {"ticks": 2},
        "netx can load no layer: a time-multiplexed network (2 ticks per step)",
    ),
}


@pytest.mark.parametrize("case", WARNINGS, ids=list(WARNINGS))
def test_the_warnings_say_why_netx_loads_fewer_layers(case: str) -> None:
    options, expected = WARNINGS[case]
    warnings = netx_warnings(chain_netlist(**options))
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expected in warnings[0], warnings


def test_snntorchs_braille_rnn_loads_in_netx_with_netx_weights(tmp_path: Path) -> None:
    """A real recurrent graph from another framework (snnTorch's Braille RNN without
    biases: 12 -> CubaLIF(40) with a recurrent matrix -> CubaLIF(7); read with reset to
    zero): with --netx-weights and 8-bit input messages netx loads it whole, a dense_rec
    then a dense layer, and runs it as the reference does."""
    from snncompile.api import export_model
    from snncompile.artifact import read_artifact
    from snncompile.quantize.quantize import QuantConfig

    source = Path(__file__).parent / "data" / "nir-examples" / "braille_noDelay_noBias_subtract.nir"
    out = tmp_path / "braille.loihi2"
    config = QuantConfig(netx_weights=True, message_bits=8, act_bits=8)
    export_model(source, out, target="loihi2", dt=1e-4, config=config)
    net = read_artifact(out).netlist
    with h5py.File(out / "network.net", "r") as f:
        assert f.attrs["netx_layers"] == 3
        assert [f[f"layer/{i}/type"][0] for i in (1, 2)] == [b"dense_rec", b"dense"]
        names = [str(f[f"layer/{i}"].attrs["name"]) for i in (1, 2)]
    x = (np.random.default_rng(4).random((1, 80, 12)) < 0.5).astype(np.float64)
    ours = assert_netx_runs_exactly(out / "network.net", net, x)
    assert all(ours.traces[name].any() for name in names)


def test_a_chain_layer_netx_loads_but_never_spikes_is_warned_of(tmp_path: Path) -> None:
    """helper-70: the same Braille graph with 24-bit input messages loads in netx whole,
    but --netx-weights rounds every input weight to 0 (the recurrence keeps the layer in
    the chain); export says so."""
    from snncompile.api import export_model
    from snncompile.quantize.quantize import QuantConfig

    source = Path(__file__).parent / "data" / "nir-examples" / "braille_noDelay_noBias_subtract.nir"
    config = QuantConfig(netx_weights=True)
    result = export_model(source, tmp_path / "b.loihi2", target="loihi2", dt=1e-4, config=config)
    assert result.compiled.meta["warnings"] == [
        "--netx-weights: every weight of 'input->lif1.lif' is 0 at exponent 0, so 'lif1.lif' "
        "never spikes (weights at exponent 0 have little room beside the input's graded "
        "messages: narrower ones, --message-bits 8 --act-bits 8, give them more)"
    ]


def test_the_warning_names_what_the_input_feeds_when_there_is_no_chain() -> None:
    """helper-70: a subtractive reset (or a bias besides the input) was reported as 'no
    LIF layer is fed by the input alone'."""
    sub = one_layer(_signed(1, zeros=False))
    pops = list(sub.populations)
    params = {**pops[1].params, "vsub": np.array(50.0)}
    pops[1] = Population("h", "cuba_lif_sub", 5, params)
    net = Netlist(tuple(pops), sub.synapses, numeric="int", formats=sub.formats)
    assert netx_warnings(net) == [
        "netx can load no layer: the input feeds 'h', a population of kind cuba_lif_sub; "
        "netx's dense layers hold lif and cuba_lif (Lava's LIF, reset to 0)"
    ]
    bias = Population("bias", "bias", 1, {"value": np.array(4.0)})
    extra = Synapse("bias->h", "bias", "h", np.full((5, 1), 2.0))
    net = Netlist(
        (sub.populations[0], bias, *sub.populations[1:]),
        (*sub.synapses, extra),
        numeric="int",
        formats=sub.formats,
    )
    (warning,) = netx_warnings(net)
    assert "'h' takes bias->h besides the input (a bias, a second source)" in warning
    plain = one_layer(_signed(1, zeros=False))
    late = [
        Synapse(s.name, s.src, s.dst, s.weight, delay=int(s.src == "in")) for s in plain.synapses
    ]
    net = Netlist(plain.populations, tuple(late), numeric="int", formats=plain.formats)
    assert netx_warnings(net) == [
        "netx can load no layer: the input's synapse into 'h' has a delay; the chain's take none"
    ]
