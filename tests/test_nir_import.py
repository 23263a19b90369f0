"""NIR import: every node mapping against the float NIR simulator, recurrent cycles, the
real graphs of peer frameworks (float exact, quantized measured, Lava exact), bad files."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import netlists
import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from trace_compare import assert_traces_equal

from snncompile.cli import main
from snncompile.compiler import compile_model
from snncompile.errors import CorruptInputError, UnsupportedError, UsageError
from snncompile.frontend.nir_compile import (
    default_calibration,
    node_traces,
    spike_agreement,
    spiking_nodes,
)
from snncompile.frontend.nir_import import conv_matrix, import_nir
from snncompile.frontend.nir_sim import simulate_nir
from snncompile.ir.netlist import Netlist, Population, Synapse
from snncompile.ir.ops import InvalidGraphError
from snncompile.ir.serialize import load_graph, load_netlist, save_graph, save_netlist
from snncompile.lower.lower import lower
from snncompile.quantize.quantize import quantize
from snncompile.reference.simulator import simulate

EXAMPLES = Path(__file__).parent / "data" / "nir-examples"


def spikes(shape: tuple[int, ...], rate: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float64)


def graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def chain(in_shape: tuple[int, ...], *middle: tuple[str, object]) -> nir.NIRGraph:
    """input -> middle nodes in order -> output."""
    nodes = {"input": nir.Input(input_type=np.array(in_shape))}
    names = ["input"]
    for name, node in middle:
        nodes[name] = node
        names.append(name)
    nodes["output"] = nir.Output(output_type=np.array([1]))
    names.append("output")
    return graph(nodes, list(itertools.pairwise(names)))


def compare_float(g, x: np.ndarray, dt: float, reset: str = "zero", rtol: float = 1e-9):
    """Float NIR simulation vs the float64 netlist: spikes equal, graded values close.
    A spiking node split into several populations (by its time constants) is compared
    whole, its populations' traces put back in the node's neuron order."""
    net = lower(import_nir(g, dt=dt, reset=reset).graph)
    oracle = simulate_nir(g, x, dt=dt, reset=reset)
    result = simulate(net, x, record=True)
    nodes = spiking_nodes(net)
    assert set(nodes) <= set(oracle), sorted(set(nodes) - set(oracle))
    checked = {}
    for name, got in node_traces(nodes, result.traces).items():
        np.testing.assert_array_equal(got, oracle[name], err_msg=name)
        checked[name] = float(np.mean(oracle[name]))
    for pop in net.populations:
        if pop.compartment.spiking or pop.name not in oracle or pop.kind in ("input", "readout"):
            continue
        want, got = oracle[pop.name], result.traces[pop.name]
        scale = max(np.abs(want).max(), 1e-300)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=pop.name)
        checked[pop.name] = float(np.mean(want))
    assert checked, "no population was compared"
    return net, oracle, checked


def lif(n: int, tau=0.01, thr=1.0, v_leak=0.0, r=1.0) -> nir.LIF:
    full = lambda v: np.full(n, v, dtype=float)  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(thr),
                   v_reset=full(0.0))  # fmt: skip


def cuba_lif(n: int, tau_syn=0.002, tau_mem=0.004, thr=1.0, w_in=1.0, r=1.0) -> nir.CubaLIF:
    full = lambda v: np.full(n, v, dtype=float)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(r),
                       v_leak=full(0.0), v_threshold=full(thr), v_reset=full(0.0),
                       w_in=full(w_in))  # fmt: skip


RNG = np.random.default_rng(7)


# ---- one test per node mapping ----------------------------------------------------------


def test_affine_lif_with_leak_and_per_neuron_thresholds():
    w = RNG.normal(1.0, 1.0, (5, 4))
    node = lif(5, tau=0.005, v_leak=0.3, r=3.0)
    node.v_threshold = np.linspace(0.5, 1.5, 5)
    g = chain((4,), ("fc", nir.Affine(weight=w, bias=RNG.normal(0, 0.3, 5))), ("lif", node))
    _, _, rates = compare_float(g, spikes((3, 80, 4), 0.4), dt=1e-3)
    assert 0.02 < rates["lif"] < 0.9


def test_linear_scale_if():
    w = RNG.normal(0.3, 0.5, (6, 3))
    node = nir.IF(r=np.full(6, 2.0), v_threshold=np.full(6, 1.0), v_reset=np.zeros(6))
    g = chain((3,), ("fc", nir.Linear(weight=w)), ("s", nir.Scale(scale=np.linspace(0.5, 2, 6))),
              ("if", node))  # fmt: skip
    _, _, rates = compare_float(g, spikes((2, 60, 3), 0.5), dt=0.5)
    assert rates["if"] > 0.05


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_if_reset_modes_differ_and_match(reset):
    node = nir.IF(r=np.ones(3), v_threshold=np.full(3, 1.0), v_reset=np.zeros(3))
    g = chain((3,), ("fc", nir.Affine(weight=np.diag([0.7, 0.9, 1.3]), bias=np.zeros(3))),
              ("if", node))  # fmt: skip
    x = np.ones((1, 12, 3))
    net, oracle, _ = compare_float(g, x, dt=1.0, reset=reset)
    kind = {"zero": "cuba_lif", "subtract": "reset_refractory"}[reset]
    assert net.population("if").kind == kind
    # 0.7 per step: zero reset spikes every 2nd step, subtract reset keeps the remainder.
    count = oracle["if"][0, :, 0].sum()
    assert count == (6 if reset == "zero" else 8)


def test_spiking_is_strict_in_every_stage():
    """v reaching the threshold exactly does not spike (NIR, netlist float and int)."""
    node = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    g = chain((1,), ("fc", nir.Linear(weight=np.full((1, 1), 0.5))), ("if", node))
    x = np.ones((1, 9, 1))
    net, oracle, _ = compare_float(g, x, dt=1.0)
    assert np.flatnonzero(oracle["if"][0, :, 0]).tolist() == [2, 5, 8]
    qnet, _ = quantize(net, x)
    assert np.array_equal(simulate(qnet, x, record=True).traces["if"], oracle["if"])


def test_cuba_lif_current_then_voltage():
    g = chain((4,), ("fc", nir.Affine(weight=RNG.normal(0.2, 1, (5, 4)), bias=np.zeros(5))),
              ("lif", cuba_lif(5, w_in=2.0, r=1.0)))  # fmt: skip
    net, _, rates = compare_float(g, spikes((3, 60, 4), 0.5), dt=1e-3)
    assert float(net.population("lif").params["alpha_u"]) == pytest.approx(0.5)
    assert 0.05 < rates["lif"] < 0.9


@pytest.mark.parametrize("kind", ["I", "LI", "CubaLI"])
def test_graded_neurons(kind):
    n = 4
    node = {
        "I": nir.I(r=np.full(n, 0.5)),
        "LI": nir.LI(tau=np.full(n, 0.004), r=np.full(n, 2.0), v_leak=np.full(n, 0.2)),
        "CubaLI": nir.CubaLI(tau_syn=np.full(n, 0.003), tau_mem=np.full(n, 0.005),
                             r=np.ones(n), v_leak=np.full(n, 0.1), w_in=np.full(n, 1.5)),
    }[kind]  # fmt: skip
    g = chain((3,), ("fc", nir.Affine(weight=RNG.normal(0, 1, (n, 3)), bias=RNG.normal(0, 1, n))),
              ("neuron", node))  # fmt: skip
    net, _, _ = compare_float(g, spikes((2, 40, 3), 0.5), dt=1e-3)
    assert net.population("neuron").kind == "ssm"
    assert ("neuron.current" in {p.name for p in net.populations}) == (kind == "CubaLI")


def test_threshold_node():
    g = chain((3,), ("fc", nir.Affine(weight=RNG.normal(0, 1, (4, 3)), bias=np.zeros(4))),
              ("thr", nir.Threshold(threshold=np.array([0.1, 0.3, -0.2, 0.0]))))  # fmt: skip
    net, _, rates = compare_float(g, spikes((2, 30, 3), 0.5), dt=1.0)
    assert net.population("thr").kind == "heaviside"
    assert 0.1 < rates["thr"] < 0.9


CONVS = [
    # (in shape, weight shape, stride, padding, dilation, groups)
    ((2, 7, 6), (3, 2, 3, 3), 1, 0, 1, 1),
    ((2, 9, 8), (4, 2, 3, 2), (2, 1), (1, 2), 1, 1),
    ((4, 8, 8), (4, 2, 3, 3), 1, 1, (2, 1), 2),
    ((2, 6, 6), (2, 2, 3, 3), 1, "same", 1, 1),
    ((2, 6, 5), (3, 2, 2, 4), 1, "same", (1, 2), 1),
    ((2, 6, 6), (3, 2, 3, 3), 2, "valid", 1, 1),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("spec", CONVS)
def test_conv2d_layout(spec):
    in_shape, w_shape, stride, padding, dilation, groups = spec
    conv = nir.Conv2d(input_shape=in_shape[1:], weight=RNG.normal(0, 1, w_shape), stride=stride,
                      padding=padding, dilation=dilation, groups=groups,
                      bias=RNG.normal(0, 1, w_shape[0]))  # fmt: skip
    out = import_nir(chain(in_shape, ("conv", conv), ("li", _li_like(conv, in_shape))), dt=1e-3)
    assert out.shapes["li"] == out.shapes["conv"]
    compare_float(
        chain(in_shape, ("conv", conv), ("li", _li_like(conv, in_shape))),
        spikes((2, 5, int(np.prod(in_shape))), 0.5),
        dt=1e-3,
    )


def _li_like(conv, in_shape) -> nir.LI:
    """An LI over the conv's output shape (computed by the test from the torch formula)."""
    import torch

    y = torch.nn.functional.conv2d(
        torch.zeros(1, *in_shape, dtype=torch.float64),
        torch.from_numpy(conv.weight),
        None,
        tuple(conv.stride),
        conv.padding if isinstance(conv.padding, str) else tuple(conv.padding),
        tuple(conv.dilation),
        conv.groups,
    )
    shape = tuple(y.shape[1:])
    return nir.LI(tau=np.full(shape, 0.002), r=np.ones(shape), v_leak=np.zeros(shape))


def test_conv_matrix_against_direct_sum():
    w = RNG.normal(0, 1, (2, 1, 2, 2))
    x = RNG.normal(0, 1, (1, 3, 3))
    m, out = conv_matrix(w, (1, 3, 3), (1, 1), (0, 0), (1, 1), 1)
    assert out == (2, 2, 2)
    y = (m @ x.ravel()).reshape(out)
    assert y[1, 1, 0] == pytest.approx(np.sum(w[1, 0] * x[0, 1:3, 0:2]))


def test_conv1d_pools_flatten_fan_in():
    conv1 = nir.Conv1d(input_shape=8, weight=RNG.normal(0, 1, (3, 2, 3)), stride=1, padding=1,
                       dilation=1, groups=1, bias=np.zeros(3))  # fmt: skip
    li = nir.LI(tau=np.full((3, 8), 0.002), r=np.ones((3, 8)), v_leak=np.zeros((3, 8)))
    compare_float(chain((2, 8), ("conv", conv1), ("li", li)), spikes((2, 6, 16), 0.5), dt=1e-3)

    pool_args = dict(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                     padding=np.array([0, 0]))  # fmt: skip
    nodes = {
        "input": nir.Input(input_type=np.array([2, 4, 4])),
        "sum": nir.SumPool2d(**pool_args),
        "avg": nir.AvgPool2d(**pool_args),
        "flat_s": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        "flat_a": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        "fc": nir.Affine(weight=RNG.normal(0, 1, (5, 8)), bias=np.zeros(5)),
        "lif": lif(5, tau=0.002),
        "output": nir.Output(output_type=np.array([5])),
    }
    edges = [("input", "sum"), ("input", "avg"), ("sum", "flat_s"), ("avg", "flat_a"),
             ("flat_s", "fc"), ("flat_a", "fc"), ("fc", "lif"), ("lif", "output")]  # fmt: skip
    _, _, rates = compare_float(graph(nodes, edges), spikes((3, 40, 32), 0.5), dt=1e-3)
    assert rates["lif"] > 0.05


def test_the_nir_simulation_takes_the_shapes_the_import_takes():
    """helper-86: verify's oracle (simulate_nir) crashed (exit 1) on graphs the import
    compiles: a Flatten of some dims only (it flattened all, so the Conv1d after it got a
    vector), pooling padded by more than half its kernel (torch's avg_pool2d refuses it),
    and elementwise parameters declared flat (n,) or as one value on a (C, H, W) input."""
    rng = np.random.default_rng(86)
    conv1 = nir.Conv1d(input_shape=9, weight=rng.normal(0, 1, (3, 2, 3)), stride=1, padding=0,
                       dilation=1, groups=1, bias=rng.normal(0, 0.3, 3))  # fmt: skip
    full = lambda shape, v: np.full(shape, v)  # noqa: E731
    lif37 = nir.LIF(tau=full((3, 7), 0.0031), r=full((3, 7), 1.3), v_leak=full((3, 7), 0.0),
                    v_threshold=full((3, 7), 0.29), v_reset=full((3, 7), 0.0))  # fmt: skip
    flat = nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=1, end_dim=-1)
    _, _, rates = compare_float(
        chain((2, 3, 3), ("flat", flat), ("conv", conv1), ("lif", lif37)),
        spikes((3, 30, 18), 0.4), dt=1e-3,
    )  # fmt: skip
    assert rates["lif"] > 0.01

    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]),
                         padding=np.array([2, 2]))  # fmt: skip
    avg = nir.AvgPool2d(kernel_size=np.array([1, 3]), stride=np.array([2, 2]),
                        padding=np.array([1, 2]))  # fmt: skip
    conv2 = nir.Conv2d(input_shape=(5, 5), weight=rng.normal(0, 1, (2, 1, 2, 2)), stride=1,
                       padding=0, dilation=1, groups=1, bias=np.zeros(2))  # fmt: skip
    scale = nir.Scale(scale=np.array([1.37]))  # one value for all 32
    g = chain((1, 4, 4), ("pool", pool), ("avg", avg), ("conv", conv2), ("scale", scale),
              ("lif", lif(32, tau=0.0027, thr=0.23)))  # fmt: skip
    _, _, rates = compare_float(g, spikes((3, 30, 16), 0.4), dt=1e-3)
    assert rates["lif"] > 0.01
    # One value declared (1, 1) on a flat input: broadcast_to refused more dimensions
    # than the input's (verify exit 1 on a graph export compiled, helper-87).
    g = chain((4,), ("fc", nir.Affine(weight=rng.normal(1, 1, (4, 4)), bias=np.zeros(4))),
              ("scale", nir.Scale(scale=np.array([[1.5]]))),
              ("lif", lif(4, tau=0.0027, thr=0.23)))  # fmt: skip
    _, _, rates = compare_float(g, spikes((3, 30, 4), 0.4), dt=1e-3)
    assert rates["lif"] > 0.01
    thr = chain((1, 4, 4), ("pool", pool), ("avg", avg), ("conv", conv2),
                ("thr", nir.Threshold(threshold=rng.normal(0, 0.3, 32))))  # fmt: skip
    x = spikes((2, 10, 16), 0.4)
    net = lower(import_nir(thr, dt=1e-3).graph)
    got = simulate(net, x, record=True).traces["thr"]
    np.testing.assert_array_equal(got, simulate_nir(thr, x, dt=1e-3)["thr"])


def test_delay_node_shifts_by_whole_steps():
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=np.eye(3) * 3.0, bias=np.full(3, 0.1)),
        "delay": nir.Delay(delay=np.array([0.0, 2e-3, 3e-3])),
        "if": nir.IF(r=np.ones(3), v_threshold=np.full(3, 2.0), v_reset=np.zeros(3)),
        "direct": nir.Linear(weight=np.eye(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc"), ("fc", "delay"), ("delay", "if"), ("input", "direct"),
             ("direct", "if"), ("if", "output")]  # fmt: skip
    net, _, _ = compare_float(graph(nodes, edges), spikes((2, 30, 3), 0.5), dt=1e-3)
    lags = sorted(s.lag for s in net.incoming("if") if s.src == "input")
    assert lags == [0, 2, 3]
    with pytest.raises(UnsupportedError, match="whole"):
        import_nir(graph(nodes, edges), dt=0.7e-3)
    nodes["delay"] = nir.Delay(delay=np.array([0.0, 2e-3, 10.0]))  # 10 s: 100,000 steps at 1e-4 s
    with pytest.raises(UnsupportedError, match=r"delay of 100000 steps .* beyond the 65536"):
        import_nir(graph(nodes, edges), dt=1e-4)


def test_neuron_fed_only_through_delays_reference_and_lava():
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "delay": nir.Delay(delay=np.array([1e-3, 2e-3, 2e-3])),
        "fc": nir.Affine(weight=np.eye(3) * 3.0, bias=np.full(3, 0.1)),
        "if": nir.IF(r=np.ones(3), v_threshold=np.full(3, 2.0), v_reset=np.zeros(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "delay"), ("delay", "fc"), ("fc", "if"), ("if", "output")]
    g = graph(nodes, edges)
    x = spikes((2, 20, 3), 0.5)
    net, oracle, _ = compare_float(g, x, dt=1e-3)
    assert net.latency()["if"] == 1  # anchored one hop after the input, not at 0
    run_lava = run_lava_or_skip()
    qnet, _ = quantize(net, x)
    ref = simulate(qnet, x, record=True)
    np.testing.assert_array_equal(ref.traces["if"], oracle["if"])
    assert_traces_equal(ref, run_lava(qnet, x), order=[p.name for p in qnet.populations])


def test_a_neuron_fed_only_through_delays_reads_back_from_network_net(tmp_path):
    """The zero-weight synapse that anchors such a neuron was the netlist's last synapse,
    while network.net's reader rebuilds them destination by destination: the loihi2
    artifact read back as another netlist ("the synapses differ"), so inspect and
    simulate refused it. A split node's synapses (per-neuron tau) behind it too."""
    from snncompile.ir.netlist import first_difference
    from snncompile.targets.loihi2.netx import read_network, write_network

    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "delay": nir.Delay(delay=np.array([1e-3, 2e-3, 2e-3])),
        "fc": nir.Affine(weight=np.eye(3) * 3.0, bias=np.full(3, 0.1)),
        "if": nir.IF(r=np.ones(3), v_threshold=np.full(3, 2.0), v_reset=np.zeros(3)),
        "fc2": nir.Linear(weight=np.eye(3)),
        "lif": lif(3, r=3.0),
        "output": nir.Output(output_type=np.array([3])),
    }
    nodes["lif"].tau = np.array([0.004, 0.008, 0.004])
    edges = [("input", "delay"), ("delay", "fc"), ("fc", "if"), ("if", "fc2"), ("fc2", "lif"),
             ("lif", "output")]  # fmt: skip
    x = spikes((2, 20, 3), 0.5)
    net, _, _ = compare_float(graph(nodes, edges), x, dt=1e-3)
    assert net.meta["split_nodes"] == {"lif": [["lif.tau0", [0, 2]], ["lif.tau1", [1]]]}
    qnet, _ = quantize(net, x)
    write_network(qnet, tmp_path / "network.net")
    assert first_difference(read_network(tmp_path / "network.net"), qnet) is None


def test_nested_subgraph_is_flattened():
    inner = graph(
        {"input": nir.Input(input_type=np.array([4])), "w": nir.Linear(weight=np.eye(4) * 0.8),
         "lif": lif(4, tau=0.003), "output": nir.Output(output_type=np.array([4]))},
        [("input", "w"), ("w", "lif"), ("lif", "output")],
    )  # fmt: skip
    g = chain((3,), ("fc", nir.Affine(weight=RNG.normal(1, 0.5, (4, 3)), bias=np.zeros(4))),
              ("block", inner))  # fmt: skip
    net, _, rates = compare_float(g, spikes((2, 50, 3), 0.6), dt=1e-3)
    assert "block.lif" in {p.name for p in net.populations}
    assert rates["block.lif"] > 0.05


def test_a_subgraph_nir_cannot_type_is_read_as_the_top_level_is(tmp_path):
    """helper-86: nir's reader types nested subgraphs even when told not to, so a nested
    grouped Conv1d (nir declares weight.shape[1] = in_channels / groups as its input
    channels) made the file 'nir cannot read it' (exit 6), while the same node at the top
    level compiled with a warning. Now both read with the warning and are float exact."""
    rng = np.random.default_rng(86)
    conv = nir.Conv1d(input_shape=6, weight=rng.normal(0, 1, (4, 1, 3)), stride=1,
                      padding=1, dilation=1, groups=2, bias=rng.normal(0, 0.3, 4))  # fmt: skip
    full = lambda v: np.full((4, 6), v)  # noqa: E731
    lif46 = nir.LIF(tau=full(0.0031), r=full(1.2), v_leak=full(0.0), v_threshold=full(0.37),
                    v_reset=full(0.0))  # fmt: skip
    inner = graph(
        {"input": nir.Input(input_type=np.array([2, 6])), "conv": conv, "lif": lif46,
         "output": nir.Output(output_type=np.array([4, 6]))},
        [("input", "conv"), ("conv", "lif"), ("lif", "output")],
    )  # fmt: skip
    path = tmp_path / "nested.nir"
    nir.write(path, chain((2, 6), ("block", inner)))
    result = import_nir(path, dt=1e-3)
    assert any("type check failed" in w for w in result.warnings), result.warnings
    _, _, rates = compare_float(path, spikes((2, 30, 12), 0.4), dt=1e-3)
    assert rates["block.lif"] > 0.01
    # A 'type_check' entry in the file is refused at any depth, as nir.read refuses it
    # at the top (the untyped read would have overwritten it).
    import h5py

    with h5py.File(path, "r+") as f:
        f["node/nodes/block"].create_dataset("type_check", data=True)
    with pytest.raises(CorruptInputError, match=r"nir cannot read it .*'type_check' key"):
        import_nir(path, dt=1e-3)


def test_a_nested_chain_without_input_reads_where_another_node_fails_the_type_check(tmp_path):
    """nir completes a nested chain that has no Input node with one of its own, but only
    in a typed read: when a grouped Conv1d elsewhere failed the type check, reading every
    level untyped refused the chain (exit 4, 'needs one Input', helper-87). Nested
    graphs are read typed unless one of them fails its own check."""
    rng = np.random.default_rng(87)
    conv = nir.Conv1d(input_shape=6, weight=rng.normal(0, 1, (4, 1, 3)), stride=1,
                      padding=1, dilation=1, groups=2, bias=rng.normal(0, 0.3, 4))  # fmt: skip
    full = lambda v: np.full(24, v)  # noqa: E731
    lif = nir.LIF(tau=full(0.0031), r=full(1.2), v_leak=full(0.0), v_threshold=full(0.37),
                  v_reset=full(0.0))  # fmt: skip
    inner = graph(
        {"fc": nir.Linear(weight=rng.normal(0.5, 1, (24, 24))), "lif": lif,
         "output": nir.Output(output_type=np.array([24]))},
        [("fc", "lif"), ("lif", "output")],
    )  # fmt: skip
    path = tmp_path / "chain.nir"
    nir.write(
        path,
        chain(
            (2, 6),
            ("conv", conv),
            ("flat", nir.Flatten(input_type={"input": np.array([4, 6])})),
            ("block", inner),
        ),
    )
    result = import_nir(path, dt=1e-3)
    assert any("type check failed" in w for w in result.warnings), result.warnings
    _, _, rates = compare_float(path, spikes((2, 30, 12), 0.4), dt=1e-3)
    assert rates["block.lif"] > 0.01


@pytest.mark.parametrize("declared", [(3, 3), (5, 5)])
def test_a_grouped_convolutions_warnings_quote_the_channels_the_file_states(declared, tmp_path):
    """nir's Conv2d declares weight.shape[1] = in_channels / groups input channels, so a
    grouped convolution fails nir's type check. The warnings quoted that count as the
    node's own declaration ("declares input shape (2, 3, 3) but receives (4, 3, 3)") of a
    file that states nothing of the kind (helper-88): the type-check warning now says
    how many channels the node reads, and the declared-shape warning is given only where
    the file's input_shape disagrees, with groups * weight.shape[1] channels."""
    rng = np.random.default_rng(88)
    conv = nir.Conv2d(input_shape=declared, weight=rng.normal(0, 1, (4, 2, 3, 3)), stride=1,
                      padding=1, dilation=1, groups=2, bias=np.zeros(4))  # fmt: skip
    path = tmp_path / "grouped.nir"
    flat = nir.Flatten(start_dim=0, input_type={"input": np.array([4, 3, 3])})
    nir.write(path, chain((4, 3, 3), ("conv", conv), ("flat", flat), ("lif", lif(36))))
    warnings = import_nir(path, dt=1e-3).warnings
    assert "'conv' takes 4, not 2" in warnings[0], warnings
    conv_warnings = [w for w in warnings if w.startswith("node 'conv'")]
    if declared == (3, 3):  # what the node receives: nothing to warn of
        assert conv_warnings == [], warnings
    else:
        assert conv_warnings == [
            "node 'conv' (Conv2d) declares input shape (4, 5, 5) but receives (4, 3, 3) "
            "from 'input'; using (4, 3, 3)"
        ], warnings


# ---- recurrent cycles -------------------------------------------------------------------


def recurrent_graph(n: int = 6, neuron=None, loop_delay: float | None = None) -> nir.NIRGraph:
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=RNG.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "lif": neuron if neuron is not None else cuba_lif(n, w_in=2.0, r=2.0),
        "w_rec": nir.Affine(weight=RNG.normal(-0.3, 1.0, (n, n)), bias=np.full(n, 0.1)),
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    if loop_delay is not None:
        nodes["d"] = nir.Delay(delay=np.full(n, loop_delay))
        edges = [e for e in edges if e != ("w_rec", "lif")] + [("w_rec", "d"), ("d", "lif")]
    return graph(nodes, edges)


def test_self_loop_is_a_lag_one_synapse_with_delay_zero():
    g = recurrent_graph()
    net, _, rates = compare_float(g, spikes((3, 60, 3), 0.4), dt=1e-3)
    (rec,) = [s for s in net.synapses if s.src == s.dst == "lif"]
    assert (rec.lag, rec.delay) == (1, 0)
    assert net.latency()["lif"] == 1
    assert 0.02 < rates["lif"] < 0.9


@pytest.mark.parametrize(
    "edge, message",
    [
        (("lif", "input"), "NIR edge ('lif', 'input') leads into the Input node"),
        (("output", "fc"), "NIR edge ('output', 'fc') leaves the Output node"),
    ],
)
def test_an_edge_into_the_input_or_out_of_the_output_is_refused(edge, message):
    # The first was dropped without a word, the second compiled as a feedback loop.
    g = recurrent_graph()
    bad = graph(g.nodes, [*g.edges, edge])
    with pytest.raises(CorruptInputError, match=re.escape(message)):
        import_nir(bad, dt=1e-3)


def test_loop_through_a_delay_gets_the_extra_steps():
    g = recurrent_graph(loop_delay=2e-3)
    net, _, _ = compare_float(g, spikes((2, 40, 3), 0.4), dt=1e-3)
    (rec,) = [s for s in net.synapses if s.src == s.dst == "lif"]
    assert (rec.lag, rec.delay) == (3, 2)


@pytest.mark.parametrize(
    "shape, message",
    [((60, 3), r"shape \(batch, steps, 3\), got \(60, 3\)"), ((3,), "got \\(3,\\)")],
)
def test_simulate_nir_names_an_input_of_the_wrong_shape(shape, message):
    # A 2-D or 1-D input failed unpacking its shape (ValueError) before it was checked.
    with pytest.raises(UsageError, match=message):
        simulate_nir(recurrent_graph(), np.zeros(shape), dt=1e-3)


def test_recurrence_changes_the_answer():
    """The recurrent synapse must matter (a test that could not fail otherwise)."""
    g = recurrent_graph()
    x = spikes((2, 60, 3), 0.4)
    with_rec = simulate_nir(g, x, dt=1e-3)["lif"]
    g.nodes["w_rec"].weight = np.zeros_like(g.nodes["w_rec"].weight)
    assert np.any(simulate_nir(g, x, dt=1e-3)["lif"] != with_rec)


def neuron_loop(n_loop: int, n: int = 4, self_loop: bool = False, feedback: float = 1.0):
    """input -> fc -> n0 -> n1 -> ... -> n{k-1} -> back to n0 (a loop through n_loop
    neurons, alternating LIF and CubaLIF); the last neuron feeds the output."""
    rng = np.random.default_rng(11)
    names = [f"n{i}" for i in range(n_loop)]
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=rng.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", names[0]), (names[-1], "output")]
    for i, name in enumerate(names):
        nodes[name] = lif(n, tau=0.004) if i % 2 == 0 else cuba_lif(n, w_in=2.0, r=2.0)
        nxt = names[(i + 1) % n_loop]
        nodes[f"w{i}"] = nir.Linear(weight=rng.normal(0.6, 1.0, (n, n)) * (
            feedback if nxt == names[0] else 1.0))  # fmt: skip
        edges += [(name, f"w{i}"), (f"w{i}", nxt)]
    if self_loop:
        nodes["w_self"] = nir.Linear(weight=rng.normal(-0.3, 0.5, (n, n)))
        edges += [(names[0], "w_self"), ("w_self", names[0])]
    return graph(nodes, edges)


@pytest.mark.parametrize("n_loop", [2, 3])
def test_loop_through_several_neurons_time_multiplexes(n_loop):
    """A -> B (-> C) -> A with NIR's one-step feedback: the netlist runs n_loop ticks
    per model step, the loop's synapse has lag 1, and the float netlist equals the float
    NIR simulation at every model step."""
    g = neuron_loop(n_loop, self_loop=True)
    imported = import_nir(g, dt=1e-3).graph
    assert [n.op.kind for n in imported].count("feedback") == 1
    net, _, rates = compare_float(g, spikes((3, 60, 3), 0.4), dt=1e-3)
    assert net.ticks_per_step == n_loop
    (back,) = [s for s in net.synapses if s.src == f"n{n_loop - 1}" and s.dst == "n0"]
    assert (back.lag, back.delay) == (1, 0)
    (own,) = [s for s in net.synapses if s.src == s.dst == "n0"]
    assert (own.lag, own.delay) == (1, n_loop - 1)
    assert all(0.02 < rates[f"n{i}"] < 0.95 for i in range(n_loop)), rates


def test_loop_feedback_changes_the_answer():
    """The loop's feedback must matter (otherwise the test above could not fail)."""
    x = spikes((2, 60, 3), 0.4)
    with_loop = simulate_nir(neuron_loop(2), x, dt=1e-3)["n0"]
    without = simulate_nir(neuron_loop(2, feedback=0.0), x, dt=1e-3)["n0"]
    assert np.any(with_loop != without)


def test_time_multiplexed_netlist_quantizes_and_round_trips(tmp_path):
    g = neuron_loop(2)
    x = spikes((2, 40, 3), 0.4)
    net = lower(import_nir(g, dt=1e-3).graph)
    qnet, _ = quantize(net, x)
    assert qnet.ticks_per_step == 2
    save_netlist(qnet, tmp_path)
    back = load_netlist(tmp_path)
    assert back.ticks_per_step == 2
    assert_traces_equal(simulate(back, x, record=True), simulate(qnet, x, record=True))


@pytest.mark.parametrize("n_loop", [2, 3])
def test_time_multiplexed_loop_reference_vs_onnx_exact(n_loop):
    """A loop through 2 or 3 NIR neurons, quantized (T = n_loop ticks per model step):
    onnxruntime's step graph, one call per model step, equals the reference in every
    message, state and summed input, the readout, events and spike rates."""
    from snncompile.targets.onnx import run_onnx

    g = neuron_loop(n_loop, self_loop=True)
    qnet, _ = quantize(lower(import_nir(g, dt=1e-3).graph), spikes((4, 30, 3), 0.4, seed=3))
    assert qnet.ticks_per_step == n_loop
    x = spikes((2, 16, 3), 0.4, seed=5)
    ref = simulate(qnet, x, record=True, record_internals=True)
    got = run_onnx(qnet, x, record_internals=True)
    assert_traces_equal(ref, got, order=[p.name for p in qnet.populations])
    assert (got.events, got.spike_rates, got.steps) == (ref.events, ref.spike_rates, ref.steps)
    assert all(ref.spike_rates[f"n{i}"] > 0.02 for i in range(n_loop)), ref.spike_rates


def test_time_multiplexed_loop_exports_simulates_and_verifies_on_onnx(tmp_path, capsys):
    """The same loop from a .nir file through the command line: export --target onnx
    (its own check against the reference), simulate --backend onnx, verify --target onnx."""
    import json

    from snncompile.api import inspect_artifact
    from snncompile.simulate import simulate_artifact

    path = tmp_path / "loop.nir"
    nir.write(path, neuron_loop(3, self_loop=True))
    art = tmp_path / "loop.onnx-art"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(path), "--dt", "1e-3", "--target", "onnx", "-o", str(art)])
    assert exit_info.value.code == 0
    summary = inspect_artifact(art)["onnx"]
    assert (summary["ticks_per_step"], summary["extra_calls"]) == (3, 1)  # latency 4 ticks
    x = spikes((3, 20, 3), 0.4, seed=7)
    ref = simulate_artifact(art, x, backend="reference")
    ort = simulate_artifact(art, x, backend="onnx")
    assert ort.predictions == ref.predictions and ort.spike_rates == ref.spike_rates
    assert ort.saturation_events == ref.saturation_events
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(path), "--dt", "1e-3", "--target", "onnx", "--limit", "3", "--json"])
    check = json.loads(capsys.readouterr().out)["target_check"]
    assert exit_info.value.code == 0 and check["exact"] and check["values_differing"] == 0
    assert check["ticks_per_step"] == 3 and "ticks 3c .. 3c + 2" in check["alignment"]
    assert check["simulated_steps"] == 3 * (check["steps"] - 1) + check["output_latency"] + 1


def test_netlist_checks_and_saves_lags(tmp_path):
    def make(lag: int, delay: int) -> Netlist:
        pops = (
            Population("x", "input", 1),
            Population(
                "n",
                "cuba_lif",
                1,
                params={"alpha_u": np.array(0.0), "alpha_v": np.array(0.5), "vth": np.array(1.0)},
            ),
            Population("r", "readout", 1, attrs={"mode": "mean"}),
        )
        syns = (
            Synapse("x->n", "x", "n", np.ones((1, 1))),
            Synapse("n->n", "n", "n", np.full((1, 1), -0.5), delay=delay, lag=lag),
            Synapse("n->r", "n", "r", np.ones((1, 1))),
        )
        return Netlist(pops, syns, numeric="float64")

    with pytest.raises(InvalidGraphError, match="cycle"):
        make(0, 0)
    with pytest.raises(InvalidGraphError, match="lag 1 needs"):
        make(1, 1)
    net = make(2, 1)
    save_netlist(net, tmp_path)
    assert [s.lag for s in load_netlist(tmp_path).synapses] == [0, 2, 0]


def test_graph_with_nir_ops_round_trips(tmp_path):
    g = import_nir(recurrent_graph(), dt=1e-3).graph
    save_graph(g, tmp_path)
    back = load_graph(tmp_path)
    assert [n.op.kind for n in back] == [n.op.kind for n in g]
    assert (back.node("lif").op.rec_weight != g.node("lif").op.rec_weight).nnz == 0


def test_cuba_lif_subtract_keeps_the_remainder_and_matches():
    """CubaLIF with reset subtract: cuba_lif_sub, float NIR == float64 netlist, and
    a strong constant drive spikes more often than with reset zero."""
    g = chain((4,), ("fc", nir.Affine(weight=RNG.normal(0.2, 1, (5, 4)), bias=np.zeros(5))),
              ("lif", cuba_lif(5, w_in=2.0, r=1.0)))  # fmt: skip
    x = spikes((3, 60, 4), 0.5)
    counts = {}
    for reset in ("zero", "subtract"):
        net, oracle, _ = compare_float(g, x, dt=1e-3, reset=reset)
        assert net.population("lif").kind == {"zero": "cuba_lif", "subtract": "cuba_lif_sub"}[reset]
        counts[reset] = oracle["lif"].sum()
    assert counts["subtract"] > counts["zero"]
    qnet, _ = quantize(net, x)
    assert qnet.population("lif").kind == "cuba_lif_sub"
    assert int(qnet.population("lif").params["vth"]) > 0


def _snntorch_leaky_graph(n: int = 6) -> tuple[nir.NIRGraph, dict]:
    """Input (4) -> Affine -> LIF (per-neuron tau and threshold, r = tau / dt as
    snnTorch's export writes it, so the LIF's input is W x + b) with a recurrent Linear."""
    rng = np.random.default_rng(11)
    p = {
        "w": rng.normal(0.6, 1.0, (n, 4)),
        "b": rng.normal(0.05, 0.1, n),
        "rec": rng.normal(-0.2, 0.5, (n, n)),
        "tau": np.linspace(0.002, 0.01, n),
        "thr": np.linspace(0.5, 1.5, n),
        "dt": 1e-3,
    }
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "fc": nir.Affine(weight=p["w"], bias=p["b"]),
        "lif": nir.LIF(tau=p["tau"], r=p["tau"] / p["dt"], v_leak=np.zeros(n),
                       v_threshold=p["thr"]),
        "w_rec": nir.Linear(weight=p["rec"]),
        "output": nir.Output(output_type=np.array([n])),
    }  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
             ("lif", "output")]  # fmt: skip
    return graph(nodes, edges), p


def _snntorch_leaky(x: np.ndarray, p: dict) -> np.ndarray:
    """snnTorch's Leaky with reset_mechanism="subtract" and its default reset_delay, as its
    docstring states it: U[t] = beta U[t-1] + I[t] - thr S[t-1], S[t] = [U[t] > thr]."""
    beta = 1.0 - p["dt"] / p["tau"]
    mem = np.zeros((x.shape[0], p["b"].size))
    spk = np.zeros_like(mem)
    out = []
    for t in range(x.shape[1]):
        current = x[:, t] @ p["w"].T + p["b"] + spk @ p["rec"].T
        mem = beta * mem + current - p["thr"] * spk
        spk = (mem > p["thr"]).astype(np.float64)
        out.append(spk)
    return np.stack(out, axis=1)


def test_subtract_delayed_is_snntorchs_subtract_spike_for_spike():
    """--reset subtract-delayed reproduces snnTorch's Leaky (recurrent, per-neuron tau and
    threshold): the NIR simulation, the float64 netlist (reset_refractory with
    rho = 1/beta - 1) and the hand-written snnTorch update spike identically; plain
    subtract does not."""
    g, p = _snntorch_leaky_graph()
    x = spikes((4, 80, 4), 0.5)
    want = _snntorch_leaky(x, p)
    assert 0.05 < want.mean() < 0.6
    net, oracle, _ = compare_float(g, x, dt=p["dt"], reset="subtract-delayed")
    np.testing.assert_array_equal(oracle["lif"], want)
    lif_pop = net.population("lif")
    assert lif_pop.kind == "reset_refractory"
    beta = 1.0 - p["dt"] / p["tau"]
    np.testing.assert_allclose(lif_pop.params["rho"], 1.0 / beta - 1.0, rtol=1e-12)
    same_step = simulate_nir(g, x, dt=p["dt"], reset="subtract")["lif"]
    assert (same_step != want).any()


def test_subtract_delayed_is_snntorchs_synaptic_spike_for_spike():
    """CubaLIF (snnTorch's Synaptic: syn = alpha syn + I, mem = beta mem + syn - thr
    S[t-1]) on cuba_lif_sub with vsub = 1/beta: NIR simulation, float64 netlist and the
    hand-written update spike identically; the quantized network keeps vsub > vth."""
    n, dt = 5, 1e-3
    rng = np.random.default_rng(12)
    w, rec = rng.normal(0.8, 1.0, (n, 3)), rng.normal(-0.3, 0.5, (n, n))
    tau_syn, tau_mem, thr = 0.004, 0.008, np.linspace(0.6, 1.4, n)
    full = lambda v: np.full(n, v)  # noqa: E731
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Linear(weight=w),
        "lif": nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                           v_leak=full(0.0), v_threshold=thr, v_reset=full(0.0),
                           w_in=full(tau_syn / dt)),
        "w_rec": nir.Linear(weight=rec),
        "output": nir.Output(output_type=np.array([n])),
    }  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
             ("lif", "output")]  # fmt: skip
    g = graph(nodes, edges)
    x = spikes((4, 80, 3), 0.4)
    alpha, beta = 1 - dt / tau_syn, 1 - dt / tau_mem
    syn, mem, spk, want = np.zeros((4, n)), np.zeros((4, n)), np.zeros((4, n)), []
    for t in range(x.shape[1]):
        syn = alpha * syn + x[:, t] @ w.T + spk @ rec.T
        mem = beta * mem + syn - thr * spk
        spk = (mem > thr).astype(np.float64)
        want.append(spk)
    want = np.stack(want, axis=1)
    assert 0.05 < want.mean() < 0.6
    net, oracle, _ = compare_float(g, x, dt=dt, reset="subtract-delayed")
    np.testing.assert_array_equal(oracle["lif"], want)
    lif_pop = net.population("lif")
    assert lif_pop.kind == "cuba_lif_sub" and float(lif_pop.params["vsub"]) == 1.0 / beta
    qnet, _ = quantize(net, x)
    q = qnet.population("lif").params
    assert int(q["vsub"]) == round(int(q["vth"]) / beta) and int(q["vsub"]) > int(q["vth"])


def test_subtract_delayed_with_beta_near_zero_is_refused():
    """beta below 1/4096 (what the 12-bit decay holds) is refused at lowering for IF/LIF
    and CubaLIF alike; a netlist built by hand with such a vsub still gets a clear error
    from quantization (vsub = vth / beta must fit vth's 17 bits), not one about the input
    range."""
    from dataclasses import replace

    from snncompile.errors import HardwareRuleError

    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("c", cuba_lif(2, tau_mem=1.0001e-3)),
              ("fc2", nir.Linear(weight=np.eye(2))), ("l", lif(2, tau=1.0001e-3)))  # fmt: skip
    with pytest.raises(UnsupportedError) as info:
        lower(import_nir(g, dt=1e-3, reset="subtract-delayed").graph)
    for label in ("'c' (CubaLIF)", "'l' (LIF)"):
        expected = f"node {label}: reset subtract-delayed with beta = 1 - dt/tau_mem = 0.0001,"
        assert expected in str(info.value)
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("c", cuba_lif(2)))
    net = lower(import_nir(g, dt=1e-3, reset="subtract").graph)
    sub = net.population("c")
    sub = replace(sub, params={**sub.params, "vsub": np.array(1e7)})
    net = replace(net, populations=tuple(sub if p.name == "c" else p for p in net.populations))
    with pytest.raises(HardwareRuleError, match="'c': a spike subtracts vsub = 1e\\+07 with"):
        quantize(net, spikes((2, 10, 2), 0.5))


def test_the_subtract_resets_do_not_read_v_reset():
    """v_reset != 0 is refused for reset zero only; a subtract reset replaces NIR's
    reset, so the NIR simulation and the netlist agree without it."""
    node = lif(3)
    node.v_reset = np.full(3, 0.3)
    g = chain((3,), ("fc", nir.Affine(weight=RNG.normal(1.0, 1.0, (3, 3)), bias=np.zeros(3))),
              ("lif", node))  # fmt: skip
    with pytest.raises(UnsupportedError, match="v_reset != 0"):
        import_nir(g, dt=1e-3)
    for reset in ("subtract", "subtract-delayed"):
        compare_float(g, spikes((2, 40, 3), 0.5), dt=1e-3, reset=reset)


def test_subtract_delayed_refuses_dt_equal_to_tau():
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("c", cuba_lif(2, tau_mem=1e-3)),
              ("fc2", nir.Linear(weight=np.eye(2))), ("l", lif(2, tau=1e-3)))  # fmt: skip
    with pytest.raises(UnsupportedError) as info:
        lower(import_nir(g, dt=1e-3, reset="subtract-delayed").graph)
    message = str(info.value)
    assert "node 'c' (CubaLIF): reset subtract-delayed at dt = tau" in message
    assert "node 'l' (LIF): reset subtract-delayed at dt = tau" in message, message


def test_subtract_delayed_exports_simulates_and_verifies_from_the_cli(tmp_path, cli):
    g, _ = _snntorch_leaky_graph()
    source = tmp_path / "leaky.nir"
    nir.write(source, g)
    art = tmp_path / "leaky.ref"
    argv = ["--dt", "1e-3", "--reset", "subtract-delayed"]
    out = cli("export", str(source), *argv, "-o", str(art))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["source"]["reset"] == "subtract-delayed"
    out = cli("verify", str(source), *argv, "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["reset"] == "subtract-delayed", out.stderr
    assert report["lowering_agreement"] == {"lif": 1.0}


def run_lava_or_skip():
    pytest.importorskip("lava.magma.core.run_configs")
    from snncompile.targets.lava import run_lava

    return run_lava


def assert_quantized_backends_equal(net: Netlist) -> None:
    """net quantized on 3-input spikes: onnxruntime and Lava equal the reference in every
    message, state and summed input of every population at every step."""
    from snncompile.targets.onnx import run_onnx

    qnet, _ = quantize(net, spikes((4, 30, 3), 0.4, seed=3))
    x = spikes((2, 16, 3), 0.4, seed=5)
    ref = simulate(qnet, x, record=True, record_internals=True)
    order = [p.name for p in qnet.populations]
    assert_traces_equal(ref, run_onnx(qnet, x, record_internals=True), order=order)
    run_lava = run_lava_or_skip()
    assert_traces_equal(ref, run_lava(qnet, x, record_internals=True), order=order)


def test_recurrent_mixed_network_reference_vs_lava_exact():
    run_lava = run_lava_or_skip()
    n = 5
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=RNG.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "lif": cuba_lif(n, w_in=2.0, r=2.0),
        "w_rec": nir.Linear(weight=RNG.normal(-0.3, 1.0, (n, n))),
        "fc2": nir.Linear(weight=RNG.normal(0.5, 1.0, (2, n))),
        "li": nir.LI(tau=np.full(2, 0.004), r=np.ones(2), v_leak=np.zeros(2)),
        "output": nir.Output(output_type=np.array([2])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
             ("lif", "fc2"), ("fc2", "li"), ("li", "output")]  # fmt: skip
    g = graph(nodes, edges)
    compare_float(g, spikes((2, 30, 3), 0.4), dt=1e-3)
    qnet, _ = quantize(lower(import_nir(g, dt=1e-3).graph), spikes((4, 30, 3), 0.4, seed=3))
    x = spikes((2, 12, 3), 0.4, seed=5)
    ref = simulate(qnet, x, record=True, record_internals=True)
    assert ref.spike_rates["lif"] > 0.05
    assert {"lif.u", "lif.v", "lif.in", "li.re"} <= set(ref.traces)
    got = run_lava(qnet, x, record_internals=True)
    assert_traces_equal(ref, got, order=[p.name for p in qnet.populations])


@pytest.mark.parametrize("n_loop", [2, 3])
def test_loop_through_several_neurons_reference_vs_lava_exact(n_loop):
    """neuron_loop quantized: a time-multiplexed netlist (n_loop ticks per model step,
    Lava's LIF for the LIF and CubaLIF neurons) equals the reference on Lava, every
    message, state and summed input at every model step, and the readout."""
    run_lava = run_lava_or_skip()
    g = neuron_loop(n_loop, self_loop=True)
    qnet, _ = quantize(lower(import_nir(g, dt=1e-3).graph), spikes((4, 30, 3), 0.4, seed=3))
    assert qnet.ticks_per_step == n_loop
    x = spikes((2, 24, 3), 0.4, seed=5)
    ref = simulate(qnet, x, record=True, record_internals=True)
    loop = [f"n{i}" for i in range(n_loop)]
    assert {qnet.population(n).kind for n in loop} <= {"lif", "cuba_lif"}  # Lava's LIF
    assert all(ref.spike_rates[n] > 0.02 for n in loop), ref.spike_rates
    got = run_lava(qnet, x, record_internals=True)
    assert_traces_equal(ref, got, order=[p.name for p in qnet.populations])
    assert got.steps == ref.steps == qnet.total_ticks(24)


# ---- per-neuron time constants ---------------------------------------------------------

# tau_mem and tau_syn of six neurons: four distinct (tau_syn, tau_mem) pairs, interleaved,
# one pair differing from another in tau_syn alone (neurons 0 and 5).
TAU_MEM = np.array([0.004, 0.008, 0.004, 0.006, 0.008, 0.004])
TAU_SYN = np.array([0.002, 0.002, 0.002, 0.003, 0.002, 0.003])
# (NIR kind, reset, the node's neuron groups, the groups' compartment)
SPLIT_CASES = [
    ("LIF", "zero", [[0, 2, 5], [1, 4], [3]], "cuba_lif"),
    ("CubaLIF", "zero", [[0, 2], [1, 4], [3], [5]], "cuba_lif"),
    ("CubaLIF", "subtract", [[0, 2], [1, 4], [3], [5]], "cuba_lif_sub"),
    ("CubaLIF", "subtract-delayed", [[0, 2], [1, 4], [3], [5]], "cuba_lif_sub"),
]
SPLIT_IDS = [f"{kind}-{reset}" for kind, reset, _, _ in SPLIT_CASES]


def per_neuron_tau_neuron(kind: str, n: int = 6, uniform: bool = False):
    """A LIF (tau = TAU_MEM) or CubaLIF (TAU_SYN, TAU_MEM) whose time constants differ
    between neurons; with `uniform`, every neuron has their mean instead."""
    mem, syn = (np.resize(t, n) for t in (TAU_MEM, TAU_SYN))
    if uniform:
        mem, syn = np.full(n, mem.mean()), np.full(n, syn.mean())
    if kind == "LIF":
        node = lif(n, r=2.0)
        node.tau = mem
        return node
    node = cuba_lif(n, w_in=2.0, r=2.0)
    node.tau_mem, node.tau_syn = mem, syn
    return node


def tau_graph(kind: str, uniform: bool = False) -> nir.NIRGraph:
    """recurrent_graph around per_neuron_tau_neuron, with weights of its own seed (the
    module's RNG gives weights that depend on which tests ran before)."""
    rng = np.random.default_rng(21)
    n = 6
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=rng.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "lif": per_neuron_tau_neuron(kind, n, uniform),
        "w_rec": nir.Affine(weight=rng.normal(-0.3, 1.0, (n, n)), bias=np.full(n, 0.1)),
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return graph(nodes, edges)


def split_groups(net: Netlist, node: str) -> list[tuple[Population, list[int]]]:
    return [(net.population(pop), idx) for pop, idx in net.meta["split_nodes"][node]]


@pytest.mark.parametrize("kind, reset, groups, compartment", SPLIT_CASES, ids=SPLIT_IDS)
def test_per_neuron_time_constants_become_one_population_per_decay_pair(
    kind, reset, groups, compartment
):
    """A recurrent node whose time constants differ between neurons (refused before)
    becomes one population per distinct (tau_syn, tau_mem), each with its own decays; the
    recurrent matrix becomes lag-1 delay-0 synapses between every pair of groups, and
    the float64 netlist spikes as the float NIR simulation, neuron by neuron (compare_float
    puts the groups back in the node's order)."""
    g = tau_graph(kind)
    x = spikes((3, 60, 3), 0.4)
    net, oracle, rates = compare_float(g, x, dt=1e-3, reset=reset)
    found = split_groups(net, "lif")
    assert [idx for _, idx in found] == groups
    assert [pop.name for pop, _ in found] == [f"lif.tau{k}" for k in range(len(groups))]
    assert {pop.kind for pop, _ in found} == {compartment}
    decays = {(float(pop.params["alpha_u"]), float(pop.params["alpha_v"])) for pop, _ in found}
    assert len(decays) == len(groups)
    names = {pop.name for pop, _ in found}
    loop = [s for s in net.synapses if s.src in names and s.dst in names]
    assert len(loop) == len(groups) ** 2 and {(s.lag, s.delay) for s in loop} == {(1, 0)}
    assert net.ticks_per_step == 1 and "lif" not in {p.name for p in net.populations}
    assert 0.02 < rates["lif"] < 0.9, rates
    # The time constants matter: their mean for every neuron spikes otherwise.
    uniform = tau_graph(kind, uniform=True)
    assert np.any(simulate_nir(uniform, x, dt=1e-3, reset=reset)["lif"] != oracle["lif"])


@pytest.mark.parametrize("kind, reset, groups, compartment", SPLIT_CASES, ids=SPLIT_IDS)
def test_per_neuron_time_constants_reference_vs_onnx_and_lava_exact(
    kind, reset, groups, compartment
):
    """The split node quantized: each group's decays are its own (du, dv differ between
    the groups), and onnxruntime's step graph and Lava equal the reference in every
    message, state and summed input; spike_agreement names the NIR node, not its groups."""
    from snncompile.targets.onnx import run_onnx

    g = tau_graph(kind)
    net = lower(import_nir(g, dt=1e-3, reset=reset).graph)
    qnet, _ = quantize(net, spikes((4, 30, 3), 0.4, seed=3))
    found = split_groups(qnet, "lif")
    assert len({(int(p.params["du"]), int(p.params["dv"])) for p, _ in found}) == len(groups)
    x = spikes((2, 16, 3), 0.4, seed=5)
    ref = simulate(qnet, x, record=True, record_internals=True)
    assert {f"{p.name}.{state}" for p, _ in found for state in ("u", "v", "in")} <= set(ref.traces)
    assert sum(ref.spike_rates[p.name] for p, _ in found) > 0.1, ref.spike_rates
    order = [p.name for p in qnet.populations]
    assert_traces_equal(ref, run_onnx(qnet, x, record_internals=True), order=order)
    agreement = spike_agreement(g, qnet, x, dt=1e-3, reset=reset)
    assert set(agreement) == {"lif"} and agreement["lif"]["agreement"] > 0.8, agreement
    run_lava = run_lava_or_skip()
    assert_traces_equal(ref, run_lava(qnet, x, record_internals=True), order=order)


def test_a_group_named_as_another_node_is_refused_naming_both():
    """A node "lif.tau0" beside a split "lif" would make two populations of one name
    (the lowering's latency pass crashed on it with a KeyError); the clash is named."""
    g = tau_graph("LIF")
    nodes = {**g.nodes, "lif.tau0": lif(6), "w2": nir.Linear(weight=np.eye(6))}
    edges = [*g.edges, ("lif", "w2"), ("w2", "lif.tau0"), ("lif.tau0", "output")]
    with pytest.raises(UnsupportedError, match=r"node 'lif' \(LIF\): .* named lif.tau0 as"):
        lower(import_nir(graph(nodes, edges), dt=1e-3).graph)


def test_a_loop_through_split_neurons_time_multiplexes_exactly():
    """neuron_loop(2) with per-neuron time constants in both neurons (a LIF and a
    CubaLIF, the first with a self-loop): the Feedback reads the split CubaLIF's groups,
    the netlist still takes 2 ticks per model step, the float64 netlist equals the NIR
    simulation, and the quantized network runs alike on the reference, onnxruntime
    and Lava."""
    g = neuron_loop(2, self_loop=True)
    g.nodes["n0"] = per_neuron_tau_neuron("LIF", n=4)
    g.nodes["n1"] = per_neuron_tau_neuron("CubaLIF", n=4)
    net, _, rates = compare_float(g, spikes((3, 60, 3), 0.4), dt=1e-3)
    assert net.ticks_per_step == 2
    assert set(net.meta["split_nodes"]) == {"n0", "n1"}, net.meta["split_nodes"]
    back = [s for s in net.synapses if s.src.startswith("n1.") and s.dst.startswith("n0.")]
    assert back and {(s.lag, s.delay) for s in back} == {(1, 0)}
    assert all(0.02 < rates[name] < 0.95 for name in ("n0", "n1")), rates
    assert_quantized_backends_equal(net)


def test_a_split_node_read_only_through_a_feedback_keeps_one_tick_per_step():
    """A recurrent split CubaLIF first in the order, read by the other neuron through a
    2-step Delay and reading it back through another (so only through a Feedback): its
    groups' recurrent synapses anchored every group but the first one hop after it, so
    the groups had different latencies and the netlist took 2 ticks per model step
    where the same node with one time constant takes 1. The groups stay together."""
    rng = np.random.default_rng(4)
    n = 4
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "a": per_neuron_tau_neuron("CubaLIF", n=n),
        "fc": nir.Affine(weight=rng.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "b": lif(n, tau=0.004, r=2.0),
        "w_ba": nir.Linear(weight=rng.normal(1.0, 1.0, (n, n))),
        "d_ba": nir.Delay(delay=np.full(n, 2e-3)),
        "w_ab": nir.Linear(weight=rng.normal(0.3, 1.0, (n, n))),
        "d_ab": nir.Delay(delay=np.full(n, 2e-3)),
        "w_rec": nir.Linear(weight=rng.normal(0.0, 1.0, (n, n))),
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "b"), ("b", "w_ba"), ("w_ba", "d_ba"), ("d_ba", "a"),
             ("a", "w_ab"), ("w_ab", "d_ab"), ("d_ab", "b"), ("b", "output"), ("a", "w_rec"),
             ("w_rec", "a")]  # fmt: skip
    net, _, rates = compare_float(graph(nodes, edges), spikes((3, 60, 3), 0.4), dt=1e-3)
    groups = [pop.name for pop, _ in split_groups(net, "a")]
    assert len(groups) == 3 and 0.02 < rates["a"] < 0.95, rates
    assert {net.latency()[name] for name in groups} == {0}
    assert net.ticks_per_step == 1
    uniform = dict(nodes, a=cuba_lif(n, w_in=2.0, r=2.0))
    assert lower(import_nir(graph(uniform, edges), dt=1e-3).graph).ticks_per_step == 1


@pytest.mark.parametrize("split", [False, True], ids=["one-tau", "split"])
def test_a_neuron_read_only_through_a_feedback_takes_a_constant_input(split):
    """A neuron first in the order, fed only through a Delay from the neuron after it
    (a Feedback), with a bias on that path: it had latency 0, so its bias synapse got
    delay -1 and the valid file was refused as one the compiler cannot take (exit 6). It
    is placed a hop after the input, the float64 netlist equals the NIR simulation and
    the quantized one runs alike on onnxruntime and in Lava."""
    rng = np.random.default_rng(4)
    n = 4
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "a": per_neuron_tau_neuron("CubaLIF", n=n) if split else cuba_lif(n, w_in=2.0, r=2.0),
        "fc": nir.Affine(weight=rng.normal(1.0, 1.0, (n, 3)), bias=np.full(n, 0.05)),
        "b": lif(n, tau=0.004, r=2.0),
        "w_ba": nir.Affine(weight=rng.normal(1.0, 1.0, (n, n)), bias=np.full(n, 0.2)),
        "d_ba": nir.Delay(delay=np.full(n, 1e-3)),
        "w_ab": nir.Linear(weight=rng.normal(0.3, 1.0, (n, n))),
        "d_ab": nir.Delay(delay=np.full(n, 1e-3)),
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "b"), ("b", "w_ba"), ("w_ba", "d_ba"), ("d_ba", "a"),
             ("a", "w_ab"), ("w_ab", "d_ab"), ("d_ab", "b"), ("b", "output")]  # fmt: skip
    net, _, rates = compare_float(graph(nodes, edges), spikes((3, 60, 3), 0.4), dt=1e-3)
    pops = [pop for pop, _ in spiking_nodes(net)["a"]]
    assert len(pops) == (3 if split else 1) and 0.02 < rates["a"] < 0.95, rates
    assert {net.latency()[name] for name in pops} == {1} and net.ticks_per_step == 1
    assert_quantized_backends_equal(net)


# ---- the real graphs --------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    file: str
    dt: float
    rate: float
    floor: float  # declared minimum float-vs-quantized spike agreement per population
    reset: str = "zero"


EXAMPLE_CASES = [
    Example("braille_noDelay_bias_zero.nir", 1e-4, 0.3, 0.80),
    Example("braille_noDelay_noBias_subtract.nir", 1e-4, 0.3, 0.95),
    Example("braille_noDelay_noBias_subtract.nir", 1e-4, 0.3, 0.95, reset="subtract"),
    Example("lif_norse.nir", 1e-3, 0.3, 0.99),
    Example("two_lif_neurons.nir", 1e-3, 0.3, 0.97),
    Example("lif_rockpool.nir", 1e-3, 0.3, 0.99),
    Example("two_lif_neurons.nir", 1e-3, 0.3, 0.97, reset="subtract"),
]


@pytest.mark.parametrize("case", EXAMPLE_CASES, ids=lambda c: f"{c.file}-{c.reset}")
def test_example_graph_float_exact_quantized_measured_lava_exact(case):
    path = EXAMPLES / case.file
    compiled = compile_model(path, dt=case.dt, reset=case.reset)
    n = compiled.graph.input.op.size
    x = spikes((8, 60, n), case.rate, seed=1)
    exact = spike_agreement(path, compiled.float_netlist, x, dt=case.dt, reset=case.reset)
    assert exact and all(v["agreement"] == 1.0 for v in exact.values()), exact
    measured = spike_agreement(path, compiled.netlist, x, dt=case.dt, reset=case.reset)
    assert set(measured) == set(exact)  # every spiking layer measured, none vacuously
    for name, value in measured.items():
        assert value["agreement"] >= case.floor, (name, value)
    run_lava = run_lava_or_skip()
    short = x[:2, :10]
    net = compiled.netlist
    ref = simulate(net, short, record=True, record_internals=True)
    got = run_lava(net, short, record_internals=True)
    assert_traces_equal(ref, got, order=[p.name for p in net.populations])


@pytest.fixture(scope="module")
def cnn():
    path = EXAMPLES / "cnn_sinabs.nir"
    # A small calibration batch keeps the test fast; the CLI default is 8 x 32.
    calib = default_calibration(2 * 34 * 34)[:2, :12]
    return path, compile_model(path, dt=1.0, calibration=calib)


def test_cnn_sinabs_float_exact_and_quantized_measured(cnn):
    path, compiled = cnn
    assert compiled.graph.input.op.size == 2 * 34 * 34
    x = spikes((2, 15, 2 * 34 * 34), 0.2, seed=2)
    exact = spike_agreement(path, compiled.float_netlist, x, dt=1.0)
    assert set(exact) == {"1", "3", "6", "10", "12"}
    assert all(v["agreement"] == 1.0 and v["rate_float"] > 0 for v in exact.values()), exact
    measured = spike_agreement(path, compiled.netlist, x, dt=1.0)
    assert all(v["agreement"] >= 0.85 for v in measured.values()), measured


def test_cnn_sinabs_reference_vs_lava_two_steps(cnn):
    run_lava = run_lava_or_skip()
    _, compiled = cnn
    x = spikes((1, 2, 2 * 34 * 34), 0.2, seed=4)
    ref = simulate(compiled.netlist, x, record=True)
    assert ref.traces["1"].sum() > 0
    assert_traces_equal(
        ref, run_lava(compiled.netlist, x), order=[p.name for p in compiled.netlist.populations]
    )


# ---- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["braille_noDelay_bias_zero_subgraph.nir", "braille_legacy_cf1c59a.nir",
     "scnn_mnist_legacy_8a7172f.nir"],
)  # fmt: skip
def test_unreadable_files_exit_6_in_one_line(name, tmp_path, cli):
    out = cli("export", str(EXAMPLES / name), "--dt", "1e-4", "-o", str(tmp_path / "a"))
    assert out.returncode == 6, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "a").exists()


def test_missing_dt_exits_2_and_rockpool_warns(tmp_path, cli):
    out = cli("export", str(EXAMPLES / "lif_norse.nir"), "-o", str(tmp_path / "a"))
    assert out.returncode == 2 and "--dt" in out.stderr and out.stderr.count("\n") == 1
    out = cli("export", str(EXAMPLES / "lif_rockpool.nir"), "--dt", "1e-3", "-o",
              str(tmp_path / "b"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "declares input shape (1, 1, 1)" in out.stderr
    assert "Bernoulli" in out.stdout


def test_nir_lava_artifact_with_calib_file_inspect_simulate_both_backends(tmp_path, cli):
    calib = tmp_path / "calib.npy"
    np.save(calib, spikes((4, 20, 12), 0.3))
    art = tmp_path / "braille"
    out = cli("export", str(EXAMPLES / "braille_noDelay_bias_zero.nir"), "--dt", "1e-4",
              "--calib", str(calib), "--target", "lava", "-o", str(art))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "4 x 20 x 12" in out.stdout and "Bernoulli" not in out.stdout
    assert cli("inspect", str(art)).returncode == 0
    x = tmp_path / "x.npy"
    np.save(x, spikes((2, 15, 12), 0.3, seed=9))
    ref = cli("simulate", str(art), "--input", str(x))
    assert ref.returncode == 0, ref.stderr
    run_lava_or_skip()
    on_lava = cli("simulate", str(art), "--input", str(x), "--backend", "lava")
    assert on_lava.returncode == 0, on_lava.stderr
    rates = [line for line in ref.stdout.splitlines() if "spike rates" in line]
    assert rates == [line for line in on_lava.stdout.splitlines() if "spike rates" in line]


@pytest.mark.parametrize("reset", ["subtract", "subtract-delayed"])
def test_cubalif_subtract_exports_and_simulates_alike_on_every_backend(reset, tmp_path, cli):
    """The subtract-trained Braille graph with either subtract reset: lava, loihi2 and
    onnx artifacts; simulate on the reference, Lava and onnxruntime prints the same rates."""
    source = str(EXAMPLES / "braille_noDelay_noBias_subtract.nir")
    x = tmp_path / "x.npy"
    np.save(x, spikes((2, 15, 12), 0.3, seed=9))
    rates = {}
    for target in ("loihi2", "onnx", "lava"):
        art = tmp_path / target
        out = cli("export", source, "--dt", "1e-4", "--reset", reset, "--target", target,
                  "-o", str(art))  # fmt: skip
        assert out.returncode == 0, out.stderr
        net = load_netlist(art)
        assert net.population("lif2").kind == "cuba_lif_sub"
        if target == "loihi2":  # network.net holds the kind and its integer parameters
            from snncompile.targets.loihi2.netx import read_network

            back = read_network(art / "network.net").population("lif2")
            assert back.kind == "cuba_lif_sub"
            assert {k: int(v) for k, v in back.params.items()} == {
                k: int(v) for k, v in net.population("lif2").params.items()
            }
            continue
        backends = ["reference", target] if target == "onnx" else ["lava"]
        for backend in backends:
            if backend == "lava":
                run_lava_or_skip()
            run = cli("simulate", str(art), "--input", str(x), "--backend", backend)
            assert run.returncode == 0, run.stderr
            rates[backend] = [line for line in run.stdout.splitlines() if "spike rates" in line]
    assert rates["reference"] and all(r == rates["reference"] for r in rates.values()), rates
    vsub, vth = (int(net.population("lif2").params[k]) for k in ("vsub", "vth"))
    assert (vsub == vth) == (reset == "subtract"), (vsub, vth)


def test_a_split_node_exports_simulates_and_verifies_from_the_cli(tmp_path, cli):
    """A CubaLIF with per-neuron time constants through the command line: the loihi2
    artifact's network.net reads back as its netlist (its reader orders the synapses by
    destination, so the lowering must too: it did not at first) with one core per group,
    simulate names the groups, and verify --target onnx passes naming the NIR node."""
    from snncompile.ir.netlist import first_difference
    from snncompile.targets.loihi2.netx import read_network

    source = tmp_path / "split.nir"
    nir.write(source, tau_graph("CubaLIF"))
    argv = ["--dt", "1e-3", "--reset", "subtract-delayed"]
    art = tmp_path / "l2"
    out = cli("export", str(source), *argv, "--target", "loihi2", "-o", str(art))
    assert out.returncode == 0, out.stderr
    net = load_netlist(art)
    groups = [f"lif.tau{k}" for k in range(4)]
    assert [p.name for p in net.populations if p.kind == "cuba_lif_sub"] == groups
    assert first_difference(read_network(art / "network.net"), net) is None
    cores = json.loads((art / "resources.json").read_text())["per_core"]
    placed = [p["name"] for core in cores for p in core["populations"]]
    assert len(cores) == len(net.populations) and sorted(placed) == sorted(
        p.name for p in net.populations
    )
    x = tmp_path / "x.npy"
    np.save(x, spikes((2, 20, 3), 0.4, seed=9))
    run = cli("simulate", str(art), "--input", str(x))
    assert run.returncode == 0, run.stderr
    assert all(f"{name} " in run.stdout for name in groups), run.stdout
    out = cli("verify", str(source), *argv, "--target", "onnx", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["lowering_agreement"] == {"lif": 1.0}
    assert set(report["spike_agreement"]) == {"lif"} and report["target_check"]["exact"]


def test_a_cuba_lif_sub_written_before_vsub_existed_reads_as_vsub_vth(tmp_path):
    """netlist.json and network.net from before vsub: what they computed, v -= vth."""
    import h5py

    from snncompile.targets.loihi2.netx import read_network, write_network

    sub = netlists.pop("sub", "cuba_lif_sub", 2, du=100, dv=200, vth=300, vsub=400)
    net = netlists.side_by_side([sub])
    save_netlist(net, tmp_path)
    doc = json.loads((tmp_path / "netlist.json").read_text())
    sub = next(p for p in doc["populations"] if p["name"] == "sub")
    del sub["params"]["vsub"]
    (tmp_path / "netlist.json").write_text(json.dumps(doc))
    assert int(load_netlist(tmp_path).population("sub").params["vsub"]) == 300
    write_network(net, tmp_path / "network.net")
    with h5py.File(tmp_path / "network.net", "r+") as f:
        layers = [f[f"layer/{i}"] for i in range(len(f["layer"]))]
        (layer,) = [g for g in layers if g.attrs.get("name") == "sub"]
        del layer["params/vsub"]
    assert int(read_network(tmp_path / "network.net").population("sub").params["vsub"]) == 300


@pytest.mark.parametrize("dt", ["0", "-1e-4", "nan", "inf"])
def test_a_bad_dt_is_named_as_the_option(dt, tmp_path, cli):
    """As --nir-dt's: the message said "dt must be ...", a name the user never typed
    (helper-84)."""
    source = str(EXAMPLES / "lif_norse.nir")
    for argv in (["export", source, "-o", str(tmp_path / "a")], ["verify", source]):
        out = cli(*argv, "--dt", dt)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("error: --dt must be a positive number of seconds, got ")
    assert not (tmp_path / "a").exists()


def test_verify_of_a_nir_source_needs_its_dt(cli):
    out = cli("verify", str(EXAMPLES / "lif_norse.nir"))
    assert out.returncode == 2 and "--dt" in out.stderr


def test_dt_from_metadata_and_bad_inputs():
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", lif(2)))
    with pytest.raises(UsageError, match="--dt"):
        import_nir(g)
    g.metadata = {"dt": 1e-3}
    assert import_nir(g).dt == 1e-3
    with pytest.raises(UsageError, match="reset"):
        import_nir(g, reset="soft")
    with pytest.raises(CorruptInputError, match=r"/nonexistent/x\.nir: no such file"):
        import_nir("/nonexistent/x.nir", dt=1e-3)
    g.metadata = {"dt": 0.0}
    with pytest.raises(CorruptInputError, match=r"metadata dt 0\.0 is not a positive number"):
        import_nir(g)


def _conv(**overrides: object) -> nir.Conv2d:
    fields = dict(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=0,
                  dilation=1, groups=1, bias=np.zeros(2))  # fmt: skip
    fields.update(overrides)
    return nir.Conv2d(**fields)


def _pool(**overrides: object) -> nir.SumPool2d:
    fields = dict(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    fields.update(overrides)
    return nir.SumPool2d(**fields)


# Fields nir itself accepts but no network has: each must be exit 6 naming the file, the
# node and the field, not a numpy traceback or a silent cast.
MALFORMED = {
    "conv bias of 5 for 2 channels": (
        lambda: chain((1, 4, 4), ("c", _conv(bias=np.zeros(5)))),
        r"node 'c' \(Conv2d\): malformed parameters \(.*\(5,\).*\(2,\)\)",
    ),
    "conv dilation -1": (
        lambda: chain((1, 4, 4), ("c", _conv(dilation=-1))),
        r"node 'c' \(Conv2d\): dilation \(-1, -1\) is below 1",
    ),
    "conv padding -5": (
        lambda: chain((1, 4, 4), ("c", _conv(padding=-5))),
        r"node 'c' \(Conv2d\): padding \(-5, -5\) is below 0",
    ),
    "pool kernel -2": (
        lambda: chain((1, 4, 4), ("p", _pool(kernel_size=np.array([-2, -2])))),
        r"node 'p' \(SumPool2d\): kernel_size \(-2, -2\) is below 1",
    ),
    "pool stride 0": (
        lambda: chain((1, 4, 4), ("p", _pool(stride=np.array([0, 0])))),
        r"node 'p' \(SumPool2d\): stride \(0, 0\) is below 1",
    ),
    # astype(int) made it -2**63 ("stride (-9223372036854775808, ...) is below 1"), with a
    # RuntimeWarning on stderr above the error line (helper-104)
    "pool stride 1e30": (
        lambda: chain((1, 4, 4), ("p", _pool(stride=np.array([1e30, 1e30])))),
        r"node 'p' \(SumPool2d\): malformed parameters \(stride \[1\.e\+30 1\.e\+30\] is not "
        r"a whole number of positions\)",
    ),
    "affine bias of 3 for 2 outputs": (
        lambda: chain((2,), ("fc", nir.Affine(weight=np.eye(2), bias=np.zeros(3)))),
        r"node 'fc' \(Affine\): malformed parameters \(.*\)",
    ),
    "negative delay": (
        lambda: chain((2,), ("d", nir.Delay(delay=np.array([-1.0, 0.0])))),
        r"node 'd' \(Delay\): a delay is negative",
    ),
    "complex weight": (
        lambda: chain((2,), ("fc", nir.Linear(weight=np.eye(2) * (1 + 1j))), ("lif", lif(2))),
        r"node 'fc' \(Linear\) has complex weight; NIR parameters are real",
    ),
    "string tau": (
        lambda: chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", _string_tau())),
        r"node 'lif' \(LIF\) has tau of <U1 values, not numbers",
    ),
}


def _string_tau() -> nir.LIF:
    node = lif(2)
    node.tau = np.array(["a", "b"])
    return node


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_fields_are_corrupt_naming_node_and_field(case):
    make, message = MALFORMED[case]
    with pytest.raises(CorruptInputError) as info:
        import_nir(make(), dt=1e-3)
    assert re.fullmatch(message, str(info.value)), info.value


def test_a_malformed_file_is_one_line_naming_file_node_and_field(tmp_path, cli):
    make, message = MALFORMED["conv bias of 5 for 2 channels"]
    path = tmp_path / "bad.nir"
    nir.write(path, make())
    out = cli("export", str(path), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 6, out.stderr
    assert re.fullmatch(f"error: {re.escape(str(path))}: {message}\n", out.stderr), out.stderr
    assert not (tmp_path / "a").exists()


def test_a_declared_shape_that_is_no_sizes_is_one_line_exit_6(tmp_path, cli):
    """An Output whose shape is text: nir's type check fails, the file is read without it,
    and the check of declared against inferred shapes (which runs then) raised int()'s
    ValueError, an internal error (exit 1; helper-104, found by mutating fields)."""
    path = tmp_path / "bad.nir"
    nir.write(path, chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", lif(2))))
    with h5py.File(path, "a") as f:
        del f["node/nodes/output/shape"]
        f["node/nodes/output/shape"] = np.array(b"Banana")
    out = cli("export", str(path), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 6 and out.stderr.count("\n") == 1, out.stderr
    assert "node 'output' (Output): malformed parameters" in out.stderr
    assert not (tmp_path / "a").exists()


def test_every_unsupported_node_is_listed():
    @dataclass(eq=False)
    class Mystery(nir.NIRNode):
        gain: np.ndarray

        def __post_init__(self):
            self.input_type = {"input": np.array(self.gain.shape)}
            self.output_type = {"output": np.array(self.gain.shape)}

    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("odd1", Mystery(np.ones(2))),
              ("odd2", Mystery(np.ones(2))))  # fmt: skip
    with pytest.raises(UnsupportedError) as info:
        import_nir(g, dt=1e-3)
    assert "odd1 (Mystery)" in str(info.value) and "odd2 (Mystery)" in str(info.value)


def test_shape_mismatch_is_corrupt():
    g = chain((3,), ("fc", nir.Linear(weight=np.ones((4, 3)))), ("lif", lif(5)))
    with pytest.raises(CorruptInputError, match="5 neurons"):
        import_nir(g, dt=1e-3)


@pytest.mark.parametrize("kind", ["Affine", "Linear"])
def test_a_weight_of_more_than_two_dimensions_is_unsupported_not_corrupt(kind, tmp_path, cli):
    """nir's Affine and Linear take a stack of matrices (weight (..., out, in) on input
    (..., in)): valid NIR that is not compiled, so exit 4 naming node and weight shape,
    not exit 6 as a corrupt file (before helper-88)."""
    w = np.ones((2, 3, 4))
    node = nir.Affine(weight=w, bias=np.zeros((2, 3))) if kind == "Affine" else nir.Linear(w)
    nodes = {"input": nir.Input(input_type=np.array([2, 4])), "fc": node, "lif": lif(6),
             "output": nir.Output(output_type=np.array([6]))}  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    message = rf"node 'fc' \({kind}\): weight \(2, 3, 4\) has 3 dimensions; only a 2-d weight"
    with pytest.raises(UnsupportedError, match=message):
        import_nir(graph(nodes, edges), dt=1e-3)
    path = tmp_path / "batched.nir"
    nir.write(path, graph(nodes, edges))
    runs = {
        "export": cli("export", str(path), "--dt", "1e-3", "-o", str(tmp_path / "a")),
        "verify": cli("verify", str(path), "--dt", "1e-3"),
    }
    for command, out in runs.items():
        assert out.returncode == 4, (command, out.stderr)
        assert re.fullmatch(f"error: {re.escape(str(path))}: {message}.*\n", out.stderr), out.stderr


@pytest.mark.parametrize(("node", "field"), [("lif", "tau"), ("fc", "weight")])
def test_nan_parameter_is_a_corrupt_file_naming_node_and_field(node, field, tmp_path, cli):
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", lif(2)))
    getattr(g.nodes[node], field).flat[0] = np.nan
    nir.write(tmp_path / "nan.nir", g)
    out = cli("export", str(tmp_path / "nan.nir"), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 6, out.stderr
    kind = type(g.nodes[node]).__name__
    want = f"error: {tmp_path / 'nan.nir'}: node {node!r} ({kind}) has a NaN or infinite {field}\n"
    assert out.stderr == want, out.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("make", "field", "value"),
    [(lambda: lif(2), "tau", 0.0), (lambda: cuba_lif(2), "tau_syn", -0.001)],
    ids=["tau 0", "tau_syn negative"],
)
def test_a_time_constant_below_zero_is_a_corrupt_file(make, field, value, tmp_path, cli):
    """As a NaN one is (exit 6): it was exit 4, 'unsupported', as if another compiler
    could take it."""
    node = make()
    getattr(node, field).flat[0] = value
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", node))
    nir.write(tmp_path / "tau.nir", g)
    out = cli("export", str(tmp_path / "tau.nir"), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    kind = type(node).__name__
    assert out.returncode == 6, out.stderr
    want = f"error: {tmp_path / 'tau.nir'}: node 'lif' ({kind}): {field} must be positive, "
    want += f"got {value:g}\n"
    assert out.stderr == want, out.stderr
    assert not (tmp_path / "a").exists()


def _threshold_zero() -> nir.NIRGraph:
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", lif(2)))
    g.nodes["lif"].v_threshold.flat[0] = 0.0
    return g


def _threshold_zero_and_reset_one() -> nir.NIRGraph:
    g = _threshold_zero()
    g.nodes["lif"].v_reset.flat[1] = 1.0
    return g


def _two_inputs() -> nir.NIRGraph:
    nodes = {"a": nir.Input(input_type=np.array([2])), "b": nir.Input(input_type=np.array([2])),
             "lif": lif(2), "out": nir.Output(output_type=np.array([2]))}  # fmt: skip
    return graph(nodes, [("a", "lif"), ("b", "lif"), ("lif", "out")])


def _in_lif_out(edges: list, **more: object) -> nir.NIRGraph:
    """Input "in", a LIF "lif" and Output "out" of width 2 (and `more` nodes), joined by
    `edges`."""
    nodes = {"in": nir.Input(input_type=np.array([2])), "lif": lif(2),
             "out": nir.Output(output_type=np.array([2])), **more}  # fmt: skip
    return graph(nodes, edges)


def _unfed_neuron() -> nir.NIRGraph:
    return _in_lif_out([("in", "out"), ("lif", "out")])


def _dead_end() -> nir.NIRGraph:
    return _in_lif_out([("in", "lif"), ("lif", "out"), ("lif", "x")], x=lif(2))


def _no_edges() -> nir.NIRGraph:
    return _in_lif_out([])


def _unfed_neuron_in_a_subgraph() -> nir.NIRGraph:
    inner = _in_lif_out([("in", "out"), ("lif", "out")])
    outer = {"in": nir.Input(input_type=np.array([2])), "s": inner,
             "out": nir.Output(output_type=np.array([2]))}  # fmt: skip
    return graph(outer, [("in", "s"), ("s", "out")])


# Exit 4: valid NIR that snncompile does not compile; exit 6: not a well-formed graph.
STRUCTURE_REFUSALS = {
    "v_threshold 0": (_threshold_zero, 4, "node 'lif' (LIF): v_threshold <= 0 is not compiled"),
    "v_reset 1 and v_threshold 0": (
        _threshold_zero_and_reset_one,
        4,
        "node 'lif' (LIF): v_reset != 0; Lava's LIF resets to 0; v_threshold <= 0 is not",
    ),
    "two Input nodes": (_two_inputs, 4, "snncompile compiles NIR graphs with one Input and"),
    "a neuron nothing feeds": (_unfed_neuron, 4, "node 'lif' has no input edge (a node"),
    "a neuron that feeds nothing": (_dead_end, 4, "node 'x' has no output edge (a node"),
    "no edges": (_no_edges, 6, "the NIR graph has no edges"),
    # It was "subgraph s: needs one Input and one Output node, has 2 and 1".
    "a neuron nothing feeds, in a subgraph": (
        _unfed_neuron_in_a_subgraph,
        4,
        "node 's.lif' has no input edge (a node",
    ),
}


@pytest.mark.parametrize("case", STRUCTURE_REFUSALS, ids=list(STRUCTURE_REFUSALS))
def test_structure_refusals_name_the_file_with_their_exit_code(case, tmp_path, cli):
    make, code, text = STRUCTURE_REFUSALS[case]
    nir.write(tmp_path / "g.nir", make())
    out = cli("export", str(tmp_path / "g.nir"), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert (out.returncode, out.stderr.count("\n")) == (code, 1), out.stderr
    assert out.stderr.startswith(f"error: {tmp_path / 'g.nir'}: {text}"), out.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("make", [_dead_end, _unfed_neuron], ids=["feeds nothing", "unfed"])
def test_an_in_memory_graph_with_a_dead_end_is_refused_in_one_line(make) -> None:
    """A file's dead ends are refused as it is read (nir's type check invents an Output
    for them); a nir.NIRGraph built with type_check=False and passed to import_nir
    directly failed with KeyError: 'x' where a neuron fed nothing (helper-99)."""
    with pytest.raises(UnsupportedError) as info:
        import_nir(make(), dt=1e-3)
    assert str(info.value).startswith("the NIR graph: node ") and "\n" not in str(info.value)
    assert "(a node nothing feeds or that feeds nothing is not compiled)" in str(info.value)


@pytest.mark.parametrize("missing", ["Input", "Output", "both"])
def test_a_chain_without_its_input_or_output_node_still_compiles(missing, tmp_path, cli):
    """nir's reader completes such a chain with one Input / Output of its own; only an
    extra one, beside the file's own or a second, is a node nothing feeds (or reads)."""
    nodes = {"in": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=np.eye(2)),
             "lif": lif(2), "out": nir.Output(output_type=np.array([2]))}  # fmt: skip
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    drop = {"Input": ["in"], "Output": ["out"], "both": ["in", "out"]}[missing]
    g = graph({k: v for k, v in nodes.items() if k not in drop},
              [e for e in edges if not set(e) & set(drop)])  # fmt: skip
    nir.write(tmp_path / "g.nir", g)
    out = cli("export", str(tmp_path / "g.nir"), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 0, out.stderr


OUT_OF_SCALE = {
    # (graph, dt, exit code, the error after "error: "; big.nir stands for its path)
    "gain overflows float64": (
        lambda: chain(
            (2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", cuba_lif(2, r=1e300, w_in=1e300))
        ),
        1e-3,
        6,
        r"big\.nir: node 'lif' \(CubaLIF\): its input gain or leak overflows float64 at "
        r"dt = 0\.001 s \(r, w_in or v_leak out of scale\)",
    ),
    "dt far past the time constants": (
        lambda: chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", cuba_lif(2))),
        1e300,
        4,
        r"big\.nir: node 'lif' \(CubaLIF\): dt = 1e\+300 s exceeds a time constant; .*",
    ),
    # Only the synaptic time constant is shorter than dt (1 ms against 0.5 ms and 10 ms).
    "dt past tau_syn alone": (
        lambda: chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", cuba_lif(2, 5e-4, 1e-2))),
        1e-3,
        4,
        r"big\.nir: node 'lif' \(CubaLIF\): dt = 0\.001 s exceeds a time constant; .*",
    ),
    "weights far past the threshold": (
        lambda: chain((2,), ("fc", nir.Linear(weight=np.full((2, 2), 1e300))), ("lif", lif(2))),
        1e-3,
        5,
        r"population 'lif': its input reaches \S+ against a threshold of 1, beyond what a "
        r"16-bit input holds with the threshold at one unit or more and 2 headroom bits "
        r"\(--headroom-bits\): .*",
    ),
}


@pytest.mark.parametrize("case", OUT_OF_SCALE, ids=list(OUT_OF_SCALE))
def test_values_out_of_scale_are_one_line_naming_the_cause(case, tmp_path, cli):
    """Not a numpy overflow warning, and not the value it leads to downstream (a
    threshold of 4.9e-296 'must hold integers')."""
    make, dt, code, message = OUT_OF_SCALE[case]
    nir.write(tmp_path / "big.nir", make())
    message = message.replace(r"big\.nir", re.escape(str(tmp_path / "big.nir")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning becomes exit 1
        out = cli("export", str(tmp_path / "big.nir"), "--dt", str(dt), "-o", str(tmp_path / "a"))
    assert out.returncode == code, out.stderr
    assert re.fullmatch(f"error: {message}\n", out.stderr), out.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("shape", [(0,), (-3,), (10**9,), (100000, 100000)])
def test_absurd_input_shapes_are_corrupt_before_anything_is_allocated(shape):
    g = chain(shape, ("fc", nir.Linear(weight=np.eye(2))))
    with pytest.raises(CorruptInputError, match=r"node 'input' has shape .* at most \d+ neurons"):
        import_nir(g, dt=1e-3)


@pytest.mark.parametrize("shape", [(1.5,), (2.0000001,), (np.inf,), (np.nan,)])
def test_an_input_size_that_is_no_whole_number_is_corrupt(shape):
    """int() took 1.5 as 1 and read on (helper-63)."""
    g = chain(shape, ("fc", nir.Linear(weight=np.eye(2))))
    with pytest.raises(CorruptInputError, match=r"node 'input' declares the shape \[.*not whole"):
        import_nir(g, dt=1e-3)
    assert import_nir(chain((2.0,), ("fc", nir.Linear(weight=np.eye(2)))), dt=1e-3)  # whole


def test_a_convolution_padded_past_any_real_size_is_refused():
    with pytest.raises(CorruptInputError, match=r"too large .* padding \(100000, 100000\)"):
        conv_matrix(np.ones((2, 1, 3, 3)), (1, 4, 4), (1, 1), (100000, 100000), (1, 1), 1)


def test_unsupported_neuron_parameters_are_all_named():
    bad = lif(2)
    bad.v_reset = np.full(2, 0.5)
    slow = lif(2, tau=1e-4)
    nodes = {"input": nir.Input(input_type=np.array([2])), "a": bad, "b": slow,
             "output": nir.Output(output_type=np.array([2]))}  # fmt: skip
    with pytest.raises(UnsupportedError) as info:
        import_nir(graph(nodes, [("input", "a"), ("a", "b"), ("b", "output")]), dt=1e-3)
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


def test_neurons_the_lowering_refuses_are_all_named():
    """Refusals found while lowering (a leak voltage with a current, reset
    subtract-delayed at dt = tau) name every offending node, not just the first; a node
    fed by a refused one is skipped, not reported as a crash."""
    leaky = [cuba_lif(2), cuba_lif(2)]
    for node in leaky:
        node.v_leak = np.full(2, 0.1)
    mixed = cuba_lif(2)
    mixed.tau_mem = np.array([0.004, 1e-3])
    ends = {"input": nir.Input(input_type=np.array([2])),
            "output": nir.Output(output_type=np.array([2]))}  # fmt: skip
    nodes = {**ends, "a": leaky[0], "b": leaky[1], "c": mixed, "d": cuba_lif(2)}
    edges = [("input", "a"), ("input", "b"), ("input", "c"), ("c", "d"), ("a", "output"),
             ("b", "output"), ("d", "output")]  # fmt: skip
    with pytest.raises(UnsupportedError) as info:
        lower(import_nir(graph(nodes, edges), dt=1e-3, reset="subtract-delayed").graph)
    message = str(info.value)
    assert "\n" not in message
    assert all(f"node '{name}' (CubaLIF):" in message for name in "abc"), message
    assert "'d'" not in message and "leak voltage" in message
    assert "node 'c' (CubaLIF): reset subtract-delayed at dt = tau" in message, message


def test_a_refused_neurons_successors_and_the_import_refusals_are_named_together():
    """In a chain a -> b -> c the lowering cannot lower b or c once a is refused, yet
    their own parameter problems are named; a v_reset refused by the importer comes in
    the same line as the lowering's refusals of the other nodes."""
    a, b, c = cuba_lif(2), cuba_lif(2), cuba_lif(2)
    a.v_leak = b.v_leak = np.full(2, 0.1)
    c.v_leak = np.array([0.0, 0.2])
    g = chain((2,), ("a", a), ("b", b), ("c", c))
    with pytest.raises(UnsupportedError) as info:
        lower(import_nir(g, dt=1e-3).graph)
    message = str(info.value)
    assert "\n" not in message
    assert "node 'a' (CubaLIF): a leak voltage" in message, message
    assert "node 'b' (CubaLIF): a leak voltage" in message, message
    assert "node 'c' (CubaLIF): a leak voltage" in message, message
    b.v_leak = np.zeros(2)
    b.v_reset = np.full(2, 0.5)
    with pytest.raises(UnsupportedError) as info:
        import_nir(chain((2,), ("a", a), ("b", b), ("c", c)), dt=1e-3)
    message = str(info.value)
    assert "node 'a' (CubaLIF): a leak voltage" in message, message
    assert "node 'b' (CubaLIF): v_reset != 0" in message, message
    assert "node 'c' (CubaLIF): a leak voltage" in message, message


def test_a_file_with_a_node_type_nir_does_not_know_is_unsupported_naming_it(tmp_path, cli):
    """nir's reader stops at an unknown type with a bare AssertionError; the file is an
    unsupported model (exit 4) naming every such node, nested ones dotted, not a corrupt
    one (exit 6)."""
    import h5py

    inner = chain((2,), ("x", lif(2)))
    g = graph({"input": nir.Input(input_type=np.array([2])), "sub": inner, "y": lif(2),
               "output": nir.Output(output_type=np.array([2]))},
              [("input", "sub"), ("sub", "y"), ("y", "output")])  # fmt: skip
    path = tmp_path / "future.nir"
    nir.write(path, g)
    with h5py.File(path, "r+") as f:
        for where, kind in (("node/nodes/y", b"Conv3d"), ("node/nodes/sub/nodes/x", b"Izhikevich")):
            del f[f"{where}/type"]
            f[f"{where}/type"] = kind
    out = cli("export", str(path), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 4, out.stderr
    assert out.stderr.startswith(f"error: {path}: unsupported NIR node(s): ")
    assert "sub.x (Izhikevich)" in out.stderr and "y (Conv3d)" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1
    assert not (tmp_path / "a").exists()


def test_loop_through_two_neurons_exports_inspects_and_simulates(tmp_path, cli):
    """A NIR loop A -> B -> A from a file: the loihi2 artifact states 2 ticks per model
    step (manifest, network.net, inspect), has no netx dense layer (netx's neuron cannot
    idle), simulates, and verify against the float NIR simulation passes."""
    import json

    from snncompile.targets.loihi2.netx import read_network
    from snncompile.targets.loihi2.netx_chain import netx_chain

    source = tmp_path / "loop.nir"
    nir.write(source, neuron_loop(2, self_loop=True))
    art = tmp_path / "loop.loihi2"
    out = cli("export", str(source), "--dt", "1e-3", "--target", "loihi2", "-o", str(art))
    assert out.returncode == 0, out.stderr
    assert "(2 ticks per model step)" in out.stdout
    assert json.loads((art / "manifest.json").read_text())["ticks_per_step"] == 2
    back = read_network(art / "network.net")
    assert back.ticks_per_step == 2
    assert netx_chain(back) == []
    assert "(2 ticks per model step)" in cli("inspect", str(art)).stdout
    x = tmp_path / "x.npy"
    np.save(x, spikes((2, 15, 3), 0.4, seed=3))
    ran = cli("simulate", str(art), "--input", str(x))
    assert ran.returncode == 0, ran.stderr
    checked = cli("verify", str(source), "--dt", "1e-3")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_imported_graph_exports_to_nir(tmp_path, cli):
    """NIR re-export of an imported graph with a loop through two neurons: written (it
    was refused, exit 4, before helper-95), and read back it compiles to the netlist the
    source compiles to (tests/test_nir_reexport.py checks what the file computes)."""
    source = tmp_path / "loop.nir"
    nir.write(source, neuron_loop(2))
    art = tmp_path / "a"
    out = cli("export", str(source), "--dt", "1e-3", "--target", "nir", "-o", str(art))
    assert out.returncode == 0, out.stderr
    again = cli("export", str(art / "model.nir"), "-o", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    assert (art / "netlist.npz").read_bytes() == (tmp_path / "b" / "netlist.npz").read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_neurons=st.integers(2, 4),
    extra=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=5),
    seed=st.integers(0, 2**16),
)
def test_random_loop_structures_match_the_nir_simulation(n_neurons, extra, seed):
    """Random recurrent topologies (a chain n0 -> ... -> n_last plus random edges between
    any two neurons, self-loops, nested loops and loops of different lengths): the float
    netlist, time-multiplexed as it needs, spikes exactly as the float NIR simulation,
    and the quantized netlist runs bit for bit alike in the reference and onnxruntime."""
    rng = np.random.default_rng(seed)
    n = 3
    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=rng.normal(1.5, 1.0, (n, 2)), bias=np.zeros(n)),
        "output": nir.Output(output_type=np.array([n])),
    }
    names = [f"n{i}" for i in range(n_neurons)]
    edges = [("input", "fc"), ("fc", "n0"), (names[-1], "output")]
    pairs = list(itertools.pairwise(range(n_neurons)))
    pairs += sorted({(a % n_neurons, b % n_neurons) for a, b in extra} - set(pairs))
    for i, name in enumerate(names):
        nodes[name] = lif(n, tau=0.004) if i % 2 == 0 else cuba_lif(n, w_in=2.0, r=2.0)
    for k, (a, b) in enumerate(pairs):
        nodes[f"w{k}"] = nir.Linear(weight=rng.normal(0.4, 1.0, (n, n)))
        edges += [(names[a], f"w{k}"), (f"w{k}", names[b])]
    g = graph(nodes, edges)
    try:
        net, _, rates = compare_float(g, spikes((2, 40, 2), 0.5, seed=seed % 7), dt=1e-3)
    except UnsupportedError as exc:  # the one refusal left for these graphs
        assert "recurrent paths with different delays" in str(exc)
        return
    # A draw whose input weights keep n0 silent compares nothing but zeros (seed 11395
    # with two neurons did, and failed an assert here in CI): draw another.
    assume(rates["n0"] > 0)
    latency = net.latency()
    hops = max(latency[n] for n in names) - min(latency[n] for n in names) + 1
    closing = any(p[0] > p[1] for p in pairs)  # an edge back to an earlier neuron
    assert net.ticks_per_step == 1 or closing
    assert net.ticks_per_step <= max(hops, 1)
    # Quantized, the time-multiplexed int netlist runs identically in onnxruntime.
    from snncompile.targets.onnx import run_onnx

    qnet, _ = quantize(net, spikes((2, 20, 2), 0.5, seed=1))
    x = spikes((1, 12, 2), 0.5, seed=2)
    ref = simulate(qnet, x, record=True, record_internals=True)
    assert_traces_equal(ref, run_onnx(qnet, x, record_internals=True))


def test_a_population_silent_in_calibration_gets_a_usable_scale(tmp_path, cli):
    """A neuron that never spikes on the calibration data leaves the readout's range
    unknown: its scale assumes |value| <= 1 (it used to be fit for 1e-30, which put a
    shift of 2^113 on the synapse into it), the report says so and export warns."""
    g = chain((3,), ("fc", nir.Affine(weight=RNG.normal(1.0, 0.5, (4, 3)), bias=np.zeros(4))),
              ("lif", lif(4, tau=0.004, thr=1e6)))  # fmt: skip
    qnet, report = quantize(lower(import_nir(g, dt=1e-3).graph), spikes((2, 20, 3), 0.5))
    (into_readout,) = [s for s in qnet.synapses if s.dst == "output"]
    assert abs(into_readout.weight_exp) <= 31
    assert report.populations["output"]["silent_in_calibration"]
    assert "silent_in_calibration" not in report.populations["input"]
    source = tmp_path / "silent.nir"
    nir.write(source, g)
    out = cli("export", str(source), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 0, out.stderr
    assert "no activity in calibration at output" in out.stdout
    # verify says so too (it said nothing, helper-85)
    out = cli("verify", str(source), "--dt", "1e-3", "--limit", "2")
    assert "warning: no activity in calibration at output" in out.stderr, out.stderr


def test_a_dataset_declared_far_larger_than_stored_is_refused_before_reading(tmp_path, cli):
    """A 21 KB .nir can declare a 30000x30000 weight it never stored: nir would allocate
    7 GB reading it. The declared size is checked first (exit 6)."""
    import h5py

    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))))
    path = tmp_path / "big.nir"
    nir.write(path, g)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset(
            "weight", shape=(30000, 30000), dtype="f8", chunks=(64, 64)
        )
    out = cli("export", str(path), "--dt", "1e-3", "-o", str(tmp_path / "a"))
    assert out.returncode == 6 and "its datasets unpack to 6.7 GiB" in out.stderr, out.stderr


def _subgraph_linked_twice_per_level(path: Path, depth: int) -> None:
    """The graph's nodes are two hard links to one subgraph, whose nodes are two links to
    the next, `depth` levels down: nir's reader walks 2^depth paths."""
    import h5py

    nir.write(path, chain((2,), ("fc", nir.Linear(weight=np.eye(2)))))
    with h5py.File(path, "r+") as f:
        f.move("node", "level0")
        for level in range(1, depth + 1):
            below = f[f"level{level - 1}"]
            group = f.create_group(f"level{level}")
            group.attrs.update(below.attrs)
            nodes = group.create_group("nodes")
            nodes["a"], nodes["b"] = below, below
            group.copy(below["edges"], "edges")
            del f[f"level{level - 1}"]  # reachable through the links only
        f.move(f"level{depth}", "node")


def _subgraph_linking_its_ancestor(path: Path) -> None:
    import h5py

    nir.write(path, chain((2,), ("fc", nir.Linear(weight=np.eye(2)))))
    with h5py.File(path, "r+") as f:
        f["node/nodes/fc/loop"] = f["node"]


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (
            lambda p: _subgraph_linked_twice_per_level(p, 24),
            "HDF5 group /node/nodes/b is also linked at /node/nodes/a",
        ),
        (_subgraph_linking_its_ancestor, "HDF5 group /node/nodes/fc/loop is also linked at /node"),
    ],
    ids=["linked twice per level", "linking an ancestor"],
)
@pytest.mark.parametrize("command", ["inspect", "export"])
def test_a_nir_file_whose_groups_are_no_tree_is_refused_before_nir_reads_it(
    make, text, command, tmp_path, cli
):
    """A 24-level file took nir's reader 2^24 subgraph reads (an audit's inspect ran for
    13 minutes); a link back to an ancestor recursed until RecursionError, unnamed."""
    path = tmp_path / "g.nir"
    make(path)
    extra = ["--dt", "1e-3", "-o", str(tmp_path / "a")] if command == "export" else []
    out = cli(command, str(path), *extra)
    assert (out.returncode, out.stderr.count("\n")) == (6, 1), out.stderr
    message = rf"error: .*g\.nir: {text} \(a NIR file and a network\.net are trees of groups\)"
    assert re.search(message, out.stderr)
    assert not (tmp_path / "a").exists()


def _weight_from_elsewhere(f, other: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    """Replace the Linear's weight by one that HDF5 reads from `other`."""
    import h5py

    del f["node/nodes/fc/weight"]
    if how == "link":
        f["node/nodes/fc/weight"] = h5py.ExternalLink(str(other), "/w")
    elif how == "storage":
        f.create_dataset("node/nodes/fc/weight", (2, 2), "f8", external=[(str(other), 0, 32)])
    else:
        layout = h5py.VirtualLayout(shape=(2, 2), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "/w", shape=(2, 2))
        f.create_virtual_dataset("node/nodes/fc/weight", layout)


@pytest.mark.parametrize(
    ("how", "target", "message"),
    [
        ("link", "fifo", "HDF5 link /node/nodes/fc/weight points into another file"),
        ("link", "file", "HDF5 link /node/nodes/fc/weight points into another file"),
        ("storage", "fifo", "HDF5 dataset /node/nodes/fc/weight is stored in '"),
        ("storage", "file", "HDF5 dataset /node/nodes/fc/weight is stored in '"),
        ("virtual", "file", "HDF5 dataset /node/nodes/fc/weight is virtual over other files"),
    ],
)
@pytest.mark.parametrize("command", ["inspect", "export"])
def test_a_nir_file_reading_another_file_is_refused_unopened(
    command, how, target, message, tmp_path
):
    """helper-63, helper-64: an HDF5 external link, or a dataset stored in another file,
    to a FIFO blocked inspect and export beyond SIGTERM; to a file anywhere on the disk,
    they were read as the graph's weight. Run as a process with a timeout: the old
    behaviour hangs."""
    import h5py

    path = tmp_path / "g.nir"
    nir.write(path, chain((2,), ("fc", nir.Linear(weight=np.eye(2)))))
    other = tmp_path / "other"
    if target == "fifo":
        os.mkfifo(other)
    elif how == "storage":
        other.write_bytes(np.eye(2).tobytes())
    else:
        with h5py.File(other, "w") as f:
            f["w"] = np.eye(2)
    with h5py.File(path, "r+") as f:
        _weight_from_elsewhere(f, other, how)
    extra = ["--dt", "1e-3", "-o", str(tmp_path / "a")] if command == "export" else []
    argv = [sys.executable, "-m", "snncompile", command, str(path), *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stderr.count("\n")) == (6, 1), out.stderr
    assert f"g.nir: {message}" in out.stderr, out.stderr
    assert "the file must hold its own data" in out.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("command", ["inspect", "export"])
def test_a_nir_path_that_is_a_fifo_is_named_as_such(command, tmp_path, cli):
    """It was "does not exist" (inspect) and "no such file" (export) of a path that does."""
    fifo = tmp_path / "g.nir"
    os.mkfifo(fifo)
    extra = ["--dt", "1e-3", "-o", str(tmp_path / "a")] if command == "export" else []
    out = cli(command, str(fifo), *extra)
    assert (out.returncode, out.stderr) == (6, f"error: {fifo}: not a regular file\n")


def test_inspect_lists_the_nodes_of_another_tools_nir_file(capsys):
    # It said "not a readable checkpoint (truncated or corrupt)" of a valid .nir file.
    path = EXAMPLES / "braille_noDelay_bias_zero.nir"
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(path)])
    out = capsys.readouterr().out
    assert info.value.code in (0, None), out
    assert "written by   another tool" in out and "not stated: export needs --dt" in out
    assert re.search(r"lif1\.w_rec\s+Affine\s+1482", out) and "7 nodes, 7 edges" in out


def test_inspect_of_an_unreadable_nir_file_is_one_line_exit_6(capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(EXAMPLES / "braille_legacy_cf1c59a.nir")])
    err = capsys.readouterr().err
    assert info.value.code == 6 and err.count("\n") == 1 and "0 Input and 0 Output" in err


@pytest.mark.parametrize(
    ("offset", "value"),
    [(27369, 161), (16993, 184), (34634, 97)],
    ids=["links unvisitable", "dataspace too large", "message not aligned"],
)
def test_a_nir_file_with_one_byte_changed_is_one_line_exit_6(offset, value, tmp_path, cli):
    """One byte of the bundled braille example changed (found by flipping random bytes):
    h5py's RuntimeError or KeyError from the size and link checks that run before nir's
    reader was an internal error, exit 1 (helper-104)."""
    data = bytearray((EXAMPLES / "braille_noDelay_bias_zero.nir").read_bytes())
    data[offset] = value
    path = tmp_path / "g.nir"
    path.write_bytes(bytes(data))
    out = cli("inspect", str(path))
    assert out.returncode == 6 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: {path}: a damaged HDF5 file (")


def test_a_nir_file_whose_read_never_ends_is_one_line_exit_6(tmp_path, cli, monkeypatch):
    """lif_norse.nir with byte 2184 set to 0xEA (helper-104's fuzzing): libhdf5 2.0 read
    node/edges without end, ignoring Ctrl-C and SIGTERM. Now refused, in the time allowed
    (shortened here), or, with an HDF5 library that reports the damage instead, by the
    reader's own error; exit 6 either way."""
    from snncompile.ir import serialize

    data = bytearray((EXAMPLES / "lif_norse.nir").read_bytes())
    data[2184] = 0xEA
    path = tmp_path / "g.nir"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(serialize, "HDF5_READ_SECONDS", 2.0)
    start = time.monotonic()
    out = cli("inspect", str(path))
    assert time.monotonic() - start < 30
    assert out.returncode == 6 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: {path}: ")


def _reads_forever(path):  # the child's read, as the damaged file made it
    time.sleep(3600)


def test_an_hdf5_read_past_its_time_is_killed_and_named(tmp_path, monkeypatch):
    from snncompile.ir import serialize

    monkeypatch.setattr(serialize, "_read_every_dataset", _reads_forever)
    monkeypatch.setattr(serialize, "HDF5_READ_SECONDS", 1.0)
    path = EXAMPLES / "two_lif_neurons.nir"
    with pytest.raises(CorruptInputError, match=r"reading its datasets did not finish in 1 s"):
        serialize.check_hdf5_reads(path, data_bytes=0)


def test_an_interrupt_while_an_hdf5_read_is_checked_takes_the_child_down(monkeypatch):
    from snncompile.ir import serialize

    children = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            children.append(pid)
            signal.setitimer(signal.ITIMER_REAL, 0.3)  # Ctrl-C in 0.3 s
        return pid

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialize, "_read_every_dataset", _reads_forever)
    monkeypatch.setattr(serialize.os, "fork", fork)
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            serialize.check_hdf5_reads(EXAMPLES / "two_lif_neurons.nir", data_bytes=0)
    finally:
        signal.signal(signal.SIGALRM, old)
    with pytest.raises(ChildProcessError):  # killed and reaped
        os.waitpid(children[0], os.WNOHANG)


def test_inspecting_a_nir_file_needs_no_torch():
    code = (
        "import sys; from snncompile.api import inspect_path; "
        "info = inspect_path(sys.argv[1]); print(len(info['nodes']), 'torch' in sys.modules)"
    )
    path = EXAMPLES / "two_lif_neurons.nir"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "False"


@pytest.mark.parametrize("dt", ["abc", np.array([1.0, 2.0]), -1.0])
def test_inspect_refuses_a_metadata_dt_export_would_refuse(dt, tmp_path, capsys):
    # It was an internal error (ValueError) in inspect, exit 6 in export.
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))))
    g.metadata = {"dt": dt}
    nir.write(tmp_path / "dt.nir", g)
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(tmp_path / "dt.nir")])
    err = capsys.readouterr().err
    assert info.value.code == 6 and "metadata dt" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("tau_syn", "tau_mem", "du", "dv"), [(2e-3, 4e-3, 2047, 1024), (1e-3, 8e-3, 4095, 512)]
)
def test_cuba_lif_decays_quantize_to_lavas_du_and_dv(tau_syn, tau_mem, du, dv):
    """Lava keeps 4096 - (du + 1) of u and 4096 - dv of v per step (docs/numerics.md): at dt = 1 ms,
    tau_syn 2 ms keeps half the current (du 2047) and tau_mem 4 ms three quarters of v
    (dv 1024); tau_syn = dt keeps no current (du 4095). Calibration-based checks absorb an
    off-by-one here (1/4096 of u), so the values are pinned."""
    g = chain((2,), ("fc", nir.Linear(weight=np.eye(2))), ("lif", cuba_lif(2, tau_syn, tau_mem)))
    qnet, _ = quantize(lower(import_nir(g, dt=1e-3).graph), spikes((2, 20, 2), 0.5, seed=1))
    params = qnet.population("lif").params
    assert (int(params["du"]), int(params["dv"])) == (du, dv)


def test_a_delayed_loop_needs_fewer_ticks_per_step():
    """A loop through three neurons whose feedback also passes a one-step nir.Delay has
    two model steps to go round: ceil(3 / 2) = 2 ticks per step (a floor gave 1, and the
    netlist was refused for a delay of -1), and still equals the float NIR simulation."""
    g = neuron_loop(3)
    nodes = dict(g.nodes)
    edges = [e for e in g.edges if e != ("w2", "n0")]
    nodes["d"] = nir.Delay(delay=np.full(4, 1e-3))
    edges += [("w2", "d"), ("d", "n0")]
    net, _, rates = compare_float(graph(nodes, edges), spikes((2, 40, 3), 0.4), dt=1e-3)
    assert net.ticks_per_step == 2
    assert [(s.name, s.lag, s.delay) for s in net.synapses if s.lag] == [("n2->n0", 2, 1)]
    assert min(rates.values()) > 0.02, rates
