"""The Lava target against the reference simulator: every trace, every step, bit for bit.

`check` compares messages and, unless told otherwise, internals too: every state
("<pop>.<state>") and summed input ("<pop>.in") of every population at every step.

Every Lava run starts one OS process per Lava Process, so the networks here are small
and each test runs Lava once or twice; the whole file took 2-3 minutes on 2 shared cores.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netlists import (
    loop_netlist,
    narrowed_messages_netlist,
    pop,
    side_by_side,
    split_synapse_netlist,
)
from random_netlists import fit_products, grid_weights, params, random_lagged_netlists
from trace_compare import assert_traces_equal, first_divergence

from snncompile.errors import MissingDependencyError, UnsupportedError
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.reference.simulator import encode_input, simulate
from snncompile.targets.lava import builder, run_lava
from snncompile.targets.lava.builder import needs_shift_stage

MAX24 = 2**23 - 1


def check(net: Netlist, x: np.ndarray, *, internals: bool = True, **kw) -> tuple:
    """Run the reference and Lava on x (B, L, d_in); assert they agree everywhere: every
    message and (internals) every state and summed input of every population."""
    x = np.asarray(x, dtype=np.float64)
    expected = simulate(net, x, record=True, record_internals=internals)
    actual = run_lava(net, x, record_internals=internals, **kw)
    if internals:  # the states are really there, not just absent from both runs
        states = {f"{p.name}.{s}" for p in net.populations for s in p.compartment.states}
        assert states <= set(actual.traces)
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations])
    # Event counts: Lava's LIF (lif, cuba_lif) and Dense count nothing, our processes
    # (also for a lif Lava's LIF cannot take exactly) count like the reference.
    counted = {
        p.name
        for p in net.populations
        if p.kind not in ("lif", "cuba_lif")
        or (net.numeric == "int" and not builder.lava_lif_is_exact(net, p))
    }
    assert {k: v for k, v in expected.events.items() if k in counted} == actual.events
    return expected, actual


# ---- the comparison helper -----------------------------------------------------------


def test_trace_compare_names_earliest_step_then_netlist_order():
    net = side_by_side([pop("a", "accumulator", 2), pop("b", "accumulator", 2)])
    x = np.arange(24, dtype=float).reshape(2, 3, 4)
    expected = simulate(net, x, record=True)
    actual = simulate(net, x, record=True)
    assert first_divergence(expected, actual) is None
    actual.traces["b"][1, 1, 0] += 1  # step 1 of b: ties with a's step 1 below
    actual.traces["b"][0, 2, 1] += 1
    actual.traces["a"][0, 1, 1] -= 5
    message = first_divergence(expected, actual, order=["in", "a", "b", "out"])
    assert "population 'a' at model step 1 (sample 0, compartment 1)" in message
    assert "expected 5, got 0" in message
    assert "b: 2" in message
    message = first_divergence(expected, actual, order=["in", "b", "a", "out"])
    assert "population 'b' at model step 1" in message
    with pytest.raises(pytest.fail.Exception, match="population 'a'"):
        assert_traces_equal(expected, actual, order=["in", "a", "b", "out"])
    same = simulate(net, x, record=True)
    same.readout[0, 0] += 1
    assert "readout differs" in first_divergence(expected, same)


def test_internals_of_chosen_populations_and_a_perturbed_state_is_caught():
    """record_internals with a list: the same traces as the reference's; one state value
    (or summed input) off by one is reported at its step, under its population."""
    rr = pop("rr", "reset_refractory", 2, decay=[100, 0], theta=[50, 7], rho=[3, 0])
    lif = pop("lif", "lif", 1, du=2000, dv=300, vth=20)
    net = side_by_side([rr, lif])
    x = np.array([[[40, 3, 900], [20, 4, -50], [0, 1, 700], [-9, 0, 0]]], dtype=float)
    record = ["rr", "lif", "out"]
    expected = simulate(net, x, record=record, record_internals=True)
    actual = run_lava(net, x, record=record, record_internals=True)
    assert set(actual.traces) == {
        "rr",
        "rr.v",
        "rr.in",
        "lif",
        "lif.u",
        "lif.v",
        "lif.in",
        "out.acc",
        "out.in",
    }
    order = [p.name for p in net.populations]
    assert_traces_equal(expected, actual, order=order)
    # v: 40; 39 + 20 = 59 > 50 spikes, 59 - 53 = 6; 5 + 0; 4 - 9 (decay 100: x 3996 / 4096).
    assert expected.traces["rr.v"][0, :, 0].tolist() == [40, 6, 5, -5]
    for name, (b, t, i) in [("rr.v", (0, 2, 1)), ("lif.u", (0, 1, 0)), ("out.in", (0, 3, 2))]:
        perturbed = copy.deepcopy(actual)
        perturbed.traces[name][b, t, i] += 1
        message = first_divergence(expected, perturbed, order=order)
        assert f"population {name!r} at model step {t} (sample {b}, compartment {i})" in message


def test_states_catch_a_fault_the_messages_hide(monkeypatch):
    """A reset_refractory model whose v is off by one but never spikes (theta out of
    reach) sends the right messages: only the state traces show the fault."""
    from snncompile.targets.lava.processes import compartments

    step = compartments.PyResetRefractoryFixed.step

    def faulty(self, a):
        out = step(self, a)
        self.v[:] += self.time_step == 3
        return out

    monkeypatch.setattr(compartments.PyResetRefractoryFixed, "step", faulty)
    rr = pop("rr", "reset_refractory", 2, decay=[100, 4000], theta=[MAX24, MAX24], rho=[0, 0])
    net = side_by_side([rr])
    x = np.array([[[1000, -1000], [5, 7], [0, 0], [3, 3]]], dtype=float)
    expected = simulate(net, x, record=True, record_internals=True)
    actual = run_lava(net, x, record_internals=True)
    messages = [p.name for p in net.populations if p.compartment.sends]
    assert all(np.array_equal(expected.traces[k], actual.traces[k]) for k in messages)
    message = first_divergence(expected, actual, order=[p.name for p in net.populations])
    # rr's latency is 1: Lava step 3 is model step 3 - 1 - 1 = 1.
    assert "population 'rr.v' at model step 1 (sample 0, compartment 0)" in message


# ---- time alignment and synapse arithmetic -------------------------------------------


def test_lavas_compiler_looks_for_each_process_classs_models_once(monkeypatch):
    """Lava executes every module of a Process's folders anew to find its models, for
    every Process of every run; later runs take the models found in the first, and
    still match the reference."""
    from lava.magma.compiler import compiler_graphs

    net = side_by_side([pop("acc", "accumulator", 2)])
    x = np.array([[[3, -2], [5, 7]]], dtype=float)
    check(net, x)
    monkeypatch.setattr(
        compiler_graphs.import_utils,
        "spec_from_file_location",
        lambda *a, **k: pytest.fail("Lava executed a module anew"),
    )
    check(net, x)


def test_latency_alignment_and_delays():
    """Model-time traces: sum[t] = floor(3 x[t] / 2) + x[t] whatever the path latencies;
    delays on the bank (input, bias) and on a computed population (two taps)."""
    pops = (
        Population("in", "input", 1),
        Population("bias", "bias", 1, {"value": np.asarray(7.0)}),
        Population("relay", "accumulator", 1),
        Population("sum", "accumulator", 1),
        Population("late", "accumulator", 2),
        Population("out", "readout", 2, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->relay", "in", "relay", np.array([[1.0]])),
        Synapse("relay->sum", "relay", "sum", np.array([[3.0]]), weight_exp=-1),
        Synapse("in->sum", "in", "sum", np.array([[1.0]]), delay=1),
        Synapse("bias->sum", "bias", "sum", np.array([[2.0]]), delay=1),
        Synapse("relay->late", "relay", "late", np.array([[1.0], [0.0]]), delay=3),
        Synapse("sum->late", "sum", "late", np.array([[0.0], [1.0]]), delay=2),
        Synapse("relay->late.1", "relay", "late", np.array([[0.0], [5.0]]), delay=1),
        Synapse("late->out", "late", "out", np.eye(2)),
    )
    net = Netlist(pops, syns, numeric="int")
    x = np.array([[[-3.0], [5.0], [0.0], [9.0]], [[1.0], [2.0], [3.0], [4.0]]])
    _, actual = check(net, x, batch_size=1)  # two Lava runs of one sample, concatenated
    assert actual.traces["sum"][0, :, 0].tolist() == [-5 - 3 + 14, 7 + 5 + 14, 14, 13 + 9 + 14]
    assert actual.steps == 2 * (4 + net.output_latency)  # the network steps of both runs
    # Both samples in one run: relay's delay line sends [tap 1 of both; tap 3 of both],
    # so tap 3 of sample 0 starts at column batch * size = 2, not size = 1.
    check(net, x)


def test_unconnected_population_and_one_later_than_the_readout():
    """A population no synapse reaches still runs (it sends zeros); one whose latency
    exceeds the readout's is cut at the last step, as in the reference."""
    pops = (
        Population("in", "input", 1),
        pop("alone", "heaviside", 2),
        pop("a", "accumulator", 1),
        pop("b", "accumulator", 1),
        pop("c", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->a", "in", "a", np.array([[1.0]])),
        Synapse("a->b", "a", "b", np.array([[1.0]])),
        Synapse("b->c", "b", "c", np.array([[1.0]]), delay=1),
        Synapse("in->out", "in", "out", np.array([[1.0]])),
    )
    net = Netlist(pops, syns, numeric="int")
    x = np.array([[[1.0], [2.0], [3.0]]])
    expected, _ = check(net, x)
    assert expected.traces["c"][0, :, 0].tolist() == [0, 0, 0]
    # Compared while running, the steps neither side sends count as zeros, as recorded.
    from snncompile.verify.targets import check_backend

    for backend in ("lava", "onnx"):
        whole = check_backend(net, x, backend, record=True)
        streamed = check_backend(net, x, backend)
        assert streamed.streamed and streamed.exact and whole.exact
        assert streamed.values_compared == whole.values_compared


def test_synapse_int32_wrap_exponent_and_fan_in():
    """int32 wrap before the exponent; a positive exponent past int32 (Shift stage);
    two synapses whose sum passes int32 (exact int64 in-port); spikes with a large
    shifted sum."""
    pops = (
        Population("in", "input", 2),
        pop("wrap", "accumulator", 1),
        pop("wrap_up", "accumulator", 1),
        pop("up", "accumulator", 1),
        pop("two", "accumulator", 1),
        pop("spikes", "heaviside", 9),
        pop("spike_sum", "accumulator", 2),
        Population("out", "readout", 1, attrs={"mode": "mean"}),
    )
    pair = np.array([[254.0, 254.0]])
    syns = (
        Synapse("in->wrap", "in", "wrap", pair, weight_exp=-3),
        Synapse("in->wrap_up", "in", "wrap_up", pair, weight_exp=2),
        Synapse("in->up", "in", "up", np.array([[254.0, 0.0]]), weight_exp=2),
        Synapse("in->two.a", "in", "two", np.array([[254.0, 0.0]])),
        Synapse("in->two.b", "in", "two", np.array([[0.0, 254.0]])),
        Synapse("in->spikes", "in", "spikes", np.ones((9, 2))),
        Synapse("spikes->sum", "spikes", "spike_sum", np.full((2, 9), 255.0), weight_exp=20),
        Synapse("two->out", "two", "out", np.array([[1.0]])),
    )
    net = Netlist(pops, syns, numeric="int")
    shifted = [s.name for s in net.synapses if needs_shift_stage(net, s)]
    assert shifted == ["in->wrap_up", "in->up", "spikes->sum"]
    x = np.array([[[MAX24, MAX24], [MAX24, 0], [-MAX24, -MAX24], [1, -1], [0, 0]]])
    expected, _ = check(net, x)
    assert expected.events["in->wrap"] == 2  # the int32 wrap really happened
    assert expected.traces["up"][0, 0, 0] == MAX24  # 254 (2^23 - 1) << 2: saturated, not wrapped


# ---- each compartment kind -----------------------------------------------------------


def test_ssm_saturation_and_limits():
    a_lim = 2**16
    params = dict(
        a_re=[a_lim, -a_lim, 0, 46341, 3],
        a_im=[0, 0, a_lim, -46341, -a_lim],
        b_re=[2**31 - 1, -(2**31) + 1, 65536, 12345, 0],
        b_im=[1, -(2**31) + 1, 0, 2**31 - 1, 2**20],
    )
    ssm = pop(
        "ssm", "ssm", 5, out_shift=0, frac_cut=[0] * 5, **{k + "_q": v for k, v in params.items()}
    )
    x = np.zeros((1, 9, 5))
    x[0, :, :] = [[MAX24], [-MAX24], [0], [1], [-1], [MAX24], [MAX24], [3], [0]]
    expected, _ = check(side_by_side([ssm]), x)
    assert expected.events["ssm"] > 0
    # Narrower messages and 12 fractional bits: the output saturates below the state.
    fmt = Formats(message_bits=16, ssm_frac_bits=12)
    small = pop(
        "ssm",
        "ssm",
        2,
        a_re_q=[4096, -4000],
        a_im_q=[0, 1000],
        b_re_q=[2**24, -(2**22)],
        b_im_q=[0, 5],
        out_shift=0,
        frac_cut=[0, 2],
    )
    x = np.array([[[2**15 - 1, -(2**15) + 1]] * 4 + [[7, 0]] * 3])
    expected, _ = check(side_by_side([small], fmt=fmt), x)
    assert expected.events["ssm"] > 0
    # Shifted onto the messages instead: Re z / 2**9 rounded toward zero, unclipped.
    small = replace(small, params={**small.params, "out_shift": np.array(9.0)})
    expected, _ = check(side_by_side([small], fmt=fmt), x)
    re, sent = expected.traces["ssm.re"], expected.traces["ssm"]
    assert np.array_equal(sent, np.sign(re) * (np.abs(re) >> 9))
    assert np.any((re < 0) & (re % 2**9 != 0)) and np.abs(sent).max() < 2**15 - 1


def test_reset_refractory_thresholds_and_saturation():
    rr = pop(
        "rr",
        "reset_refractory",
        5,
        decay=[0, 4096, 2048, 1, 4095],
        theta=[5, 1000, MAX24, 7, 1],
        rho=[0, 3, MAX24, 100, 0],
    )
    x = np.array(
        [
            [5, 1000, MAX24, 7, 1],  # exactly theta: no spike
            [1, 1001, MAX24, 8, 2],  # theta + 1 (with what is left): spike
            [6, -1000, MAX24, -7, 0],
            [0, 0, -MAX24, 100, -MAX24],
            [-5, 999, -MAX24, 0, -MAX24],
            [5, 1002, 1, 1, 3],
        ],
        dtype=float,
    )[None]
    expected, _ = check(side_by_side([rr]), x)
    assert expected.traces["rr"][0, 0].tolist() == [0, 0, 0, 0, 0]
    assert expected.events["rr"] > 0


def test_lif_thresholds_and_24_bit_limits():
    """Lava's own LIF: input exactly at vth (v == vth << 6: no spike), at the 24-bit
    limits of u (2^17 << 6 = 2^23 does not wrap, 2^17 + 1 does), and leaky cases."""
    exact = pop("exact", "lif", 3, du=4095, dv=4095, vth=10)
    limit = pop("limit", "lif", 4, du=4095, dv=0, vth=2**17 - 1)
    leaky = pop("leaky", "lif", 2, du=0, dv=0, vth=0)
    mid = pop("mid", "lif", 2, du=2000, dv=300, vth=1000)
    # One impulse whose current halves each step: v crosses 114640 << 6 at step 2 only
    # with du = 2048 exactly (du = 2049 stays 1023 below).
    decay = pop("decay", "lif", 1, du=2048, dv=0, vth=114640)
    x = np.array(
        [
            [
                10,
                11,
                9,
                2**17,
                2**17 + 1,
                -(2**17),
                -(2**17) - 1,
                2**17,
                -(2**17),
                1000,
                1001,
                2**16,
            ],
            [10, 0, 1, 2**17, 2**17 + 1, -(2**17), -(2**17) - 1, 2**17, -(2**17), 0, 2000, 0],
            [0, 10, 10, 0, 0, 2**17, 1, -(2**17), 2**17, -1000, 5, 0],
            [11, 10, 0, -5, 5, 7, 2**16, -(2**16), 3, 1000, 1000, 0],
        ],
        dtype=float,
    )[None]
    expected, _ = check(side_by_side([exact, limit, leaky, mid, decay]), x)
    assert expected.traces["exact"][0, 0].tolist() == [0, 1, 0]
    assert expected.traces["decay"][0, :, 0].tolist() == [0, 0, 1, 0]
    assert expected.events.get("limit", 0) > 0  # u wrapped or v saturated


def test_cuba_lif_sub_thresholds_remainders_and_24_bit_limits():
    """Our CubaLifSub process: v exactly at vth << 6 (no spike), the remainder kept after
    a spike (several spikes from one input), u at and past its 24-bit wrap, v saturated."""
    exact = pop("exact", "cuba_lif_sub", 3, du=4095, dv=4095, vth=10, vsub=10)
    keep = pop("keep", "cuba_lif_sub", 2, du=4095, dv=0, vth=4, vsub=4)
    limit = pop("limit", "cuba_lif_sub", 4, du=4095, dv=0, vth=2**17 - 1, vsub=2**17 - 1)
    leaky = pop("leaky", "cuba_lif_sub", 2, du=0, dv=0, vth=0, vsub=0)
    mid = pop("mid", "cuba_lif_sub", 2, du=2000, dv=300, vth=1000, vsub=1000)
    # vsub apart from vth (snnTorch's delayed reset: vth / beta), and the largest
    # subtrahend from the smallest threshold, which takes v to its most negative.
    apart = pop("apart", "cuba_lif_sub", 2, du=2000, dv=614, vth=128, vsub=151)
    deep = pop("deep", "cuba_lif_sub", 1, du=4095, dv=0, vth=1, vsub=2**17 - 1)
    x = np.array(
        [
            [10, 11, 9, 10, 0, 2**17, 2**17 + 1, -(2**17), -(2**17) - 1, 2**16, -(2**16), 1000,
             1001, 129, 300, 2],
            [10, 0, 11, 0, 10, 2**17, 2**17 + 1, -(2**17), -(2**17) - 1, 2**16, 2**16, 0, 2000,
             0, 128, 2**15],
            [11, 10, 10, 2**17, 2**17, 0, 1, -(2**17), 2**17, 7, -(2**17), -1000, 5, 200,
             -50, 0],
            [0, 0, 0, -5, 5, 7, 2**16, -(2**16), 3, 0, 0, 1000, 1000, 151, 0, 1],
        ],
        dtype=float,
    )[None]  # fmt: skip
    expected, _ = check(side_by_side([exact, keep, limit, leaky, mid, apart, deep]), x)
    # dv = 4095 keeps 1/4096 of v: 640 twice (no spike at vth << 6 = 640), then 704 spikes
    # and leaves 64.
    assert expected.traces["exact"][0, :, 0].tolist() == [0, 0, 1, 0]
    assert expected.traces["exact.v"][0, :, 0].tolist() == [640, 640, 64, 0]
    # 640 - 256 = 384, 384 - 256 = 128, then 128 + 2^23 saturates at 2^23 - 1 and spikes.
    assert expected.traces["keep.v"][0, :, 0].tolist() == [384, 128, MAX24 - 256, 8387775]
    assert expected.events.get("limit", 0) > 0  # u wrapped or v saturated
    assert expected.events.get("leaky", 0) > 0


def test_heaviside_accumulator_and_readout_saturation():
    heav = pop("heav", "heaviside", 3)
    acc = pop("acc", "accumulator", 2)
    net = side_by_side([heav, acc], mode="mean")
    # Gain 2 into the accumulator: 2 (2^23 - 1) saturates it; the mean readout saturates.
    syns = [
        Synapse(s.name, s.src, s.dst, s.dense() * 2) if s.dst == "acc" else s for s in net.synapses
    ]
    net = Netlist(net.populations, syns, numeric="int")
    x = np.array([[[-1, 0, 1, MAX24, -MAX24]] * 3 + [[0, 2, -3, 5, 5]]], dtype=float)
    expected, _ = check(net, x)
    assert expected.traces["heav"][0, 0].tolist() == [0, 0, 1]
    assert expected.events["acc"] == 6 and expected.events["out"] > 0
    last = side_by_side([pop("acc", "accumulator", 1)], mode="last")
    check(last, np.array([[[3.0], [-MAX24], [4.0]]]), internals=False)  # the default path
    # 6-bit weights (Lava's num_weight_bits): the mixed-sign grid steps by 8.
    six = Formats(weight_bits=6)
    pops = (Population("in", "input", 2), pop("acc", "accumulator", 2), *last.populations[-1:])
    syns = (
        Synapse("in->acc", "in", "acc", np.array([[248.0, -256.0], [-8.0, 16.0]]), weight_exp=-2),
        Synapse("acc->out", "acc", "out", np.array([[4.0, 4.0]]), weight_exp=-2),
    )
    check(
        Netlist(pops, syns, numeric="int", formats=six),
        np.array([[[MAX24, 5], [-7, 3]]]),
        internals=False,
    )


def test_glu_table_knots_and_saturation():
    table = [0, 100, 2048, 4000, 4096]
    interp = pop(
        "interp",
        "glu",
        4,
        {"gate": "sigmoid"},
        pwl_x0=-40,
        pwl_shift=4,
        pwl_table_q12=table,
        out_shift=12,
    )
    loud = pop(
        "loud",
        "glu",
        2,
        {"gate": "sigmoid"},
        pwl_x0=0,
        pwl_shift=0,
        pwl_table_q12=[0, 4096],
        out_shift=-3,
    )
    b_values = [-1000, -40, -39, -25, -24, 0, 7, 23, 24, 1000, MAX24, -MAX24]
    rows = []
    for i, b in enumerate(b_values):
        a0 = [1000, -1000, MAX24, 3][i % 4]
        rows.append([a0, -a0, 7, MAX24, b, b + 1, b - 1, -b, MAX24, -MAX24, b, -1])
    expected, _ = check(side_by_side([interp, loud]), np.array([rows], dtype=float))
    assert expected.events["loud"] > 0


# ---- time-multiplexed netlists (ticks_per_step > 1) ---------------------------------

LIF = pop("lif", "lif", 4, du=1024, dv=512, vth=600)
RR = pop("rr", "reset_refractory", 4, decay=[500] * 4, theta=[40] * 4, rho=[20] * 4)
ACC = pop("acc", "accumulator", 4)
SUB = pop("sub", "cuba_lif_sub", 3, du=3000, dv=400, vth=300, vsub=353)
SSM = pop("ssm", "ssm", 3, a_re_q=[30000, -20000, 50000], a_im_q=[20000, 10000, -9000],
          b_re_q=[9000, -4000, 2000], b_im_q=[100, 3000, -7000], out_shift=1,
          frac_cut=[1, 0, 5])  # fmt: skip
CUBA = pop("cuba", "cuba_lif", 3, du=2000, dv=300, vth=500)
GLU = pop("glu", "glu", 3, {"gate": "sigmoid"}, pwl_x0=-40, pwl_shift=4,
          pwl_table_q12=[0, 100, 2048, 4000, 4096], out_shift=12)  # fmt: skip
HEAV = pop("heav", "heaviside", 3)


def _loop_case(pops: list[Population], ticks: int | None, mode: str = "mean") -> tuple:
    """loop_netlist on these populations and 2 x 20 steps of input within +-30, keeping
    Lava's LIF inputs inside its 16-bit in-port (the reference does not model it). With
    a lif at the head, 8-bit messages bound its input below 2^17, so Lava's own LIF runs
    it (builder.lava_lif_is_exact); a lif later in the loop takes 24-bit residual inputs
    and runs on our int64 stand-in."""
    fmt = Formats(message_bits=8) if pops[0].kind == "lif" else Formats()
    net = loop_netlist(pops, seed=0, ticks=ticks, mode=mode, fmt=fmt)
    x = np.random.default_rng(0).integers(-30, 31, (2, 20, 3)).astype(float)
    return net, x


@pytest.mark.parametrize(
    ("pops", "ticks", "mode"),
    [
        ([LIF, ACC, RR], None, "mean"),  # Lava's LIF at the loop's head: T = 3
        ([LIF, ACC, RR], 5, "last"),  # two extra idle ticks per model step
        ([ACC, RR, LIF], 4, "mean"),  # saturating: events from acc and rr
        ([SUB, SSM], None, "mean"),  # T = 2
        ([CUBA, GLU, HEAV], None, "last"),
    ],
    ids=["lif-acc-rr", "lif-acc-rr-ticks5", "acc-rr-lif-ticks4", "sub-ssm", "cuba-glu-heav"],
)
def test_time_multiplexed_loop_matches_reference(pops, ticks, mode):
    """Every message, state and summed input of every population at every model step,
    the readout and the event counts: idle ticks, the source bank's spacing, the run
    length and the alignment of traces all as the reference."""
    net, x = _loop_case(pops, ticks, mode)
    assert net.ticks_per_step == (ticks or len(pops)) > 1
    expected, actual = check(net, x)
    assert actual.steps == expected.steps == net.total_ticks(20)
    for p in pops:  # the loop is alive: every population sends and changes state
        assert np.any(expected.traces[p.name]), p.name
        assert all(np.any(expected.traces[f"{p.name}.{s}"]) for s in p.compartment.states)
    lava_lif = [p.name for p in pops if p.kind in ("lif", "cuba_lif")]
    assert all(np.abs(expected.traces[f"{n}.in"]).max() < 2**15 for n in lava_lif)
    if pops[0] is ACC:
        assert expected.events["acc"] > 0 and expected.events["rr"] > 0
    kinds = {
        type(c).__name__
        for c in builder.build_network(net, encode_input(net, x)).compartments.values()
    }
    assert ("StateLif" in kinds) == (pops[0] is LIF)  # Lava's own LIF at the head only


@pytest.mark.parametrize("backend", ["lava", "onnx"])
def test_time_multiplexed_loop_compared_while_running(backend):
    """Rung 3 streamed (each step's records handed over as they arrive, idle ticks
    dropped, populations at their latencies) compares what the recorded check compares."""
    from snncompile.verify.targets import check_backend

    net, x = _loop_case([LIF, ACC, RR], 5, "last")
    whole = check_backend(net, x, backend, record=True)
    streamed = check_backend(net, x, backend)
    assert streamed.streamed and streamed.exact and whole.exact
    assert (streamed.values_compared, streamed.traces) == (whole.values_compared, whole.traces)


def test_streamed_check_runs_the_batch_in_parts_of_lava_runs(monkeypatch):
    """Streamed, a batch larger than one Lava run is cut by copies_per_run and each part
    runs as one run, for any batch size (5 inputs at 2.5 copies per run: parts of 3 and
    2, which equal_parts would cut again, 3 into 2 and 1)."""
    from snncompile.targets.lava import runner
    from snncompile.verify.targets import check_backend

    net, x = _loop_case([LIF, ACC, RR], 5, "last")
    x = np.concatenate([x, x[:1] - 3, x * 0.5, x[1:] + 2])[:5]
    monkeypatch.setattr(runner, "COPIES_BUDGET_BYTES", int(2.5 * runner.bytes_per_copy(net)))
    whole = check_backend(net, x, "lava", record=True)
    streamed = check_backend(net, x, "lava")
    assert streamed.streamed and streamed.runs == 2 and streamed.exact and whole.exact
    assert streamed.values_compared == whole.values_compared


def test_time_multiplexed_lif_without_internals():
    """Without record_internals a time-multiplexed lif still gets the idle ticks (our
    StateLif, its states port unconnected); Lava's plain LIF when ticks_per_step is 1."""
    net, x = _loop_case([LIF, ACC, RR], None)
    check(net, x, internals=False)
    data = encode_input(net, x)
    assert type(builder.build_network(net, data).compartments["lif"]).__name__ == "StateLif"
    flat = side_by_side([LIF], fmt=Formats(message_bits=8))
    assert (
        type(builder.build_network(flat, np.zeros((1, 2, 4))).compartments["lif"]).__name__ == "LIF"
    )
    wide = side_by_side([LIF])  # 24-bit inputs: beyond Lava's int32 LIF (du < 4095)
    kind = type(builder.build_network(wide, np.zeros((1, 2, 4))).compartments["lif"]).__name__
    assert kind == "CubaLifSub"


def test_time_multiplexed_float64_loop():
    """The floating_pt models idle too: the loop of lif-acc-rr as a float64 netlist."""
    int_net = loop_netlist([LIF, ACC, RR], seed=0)
    floats = {
        "lif": Population("lif", "lif", 4, {"tau": np.asarray(0.75), "vth": np.asarray(30.0)}),
        "rr": Population("rr", "reset_refractory", 4,
                         {"beta": np.full(4, 0.875), "theta": np.full(4, 5.0),
                          "rho": np.full(4, 2.0)}),
    }  # fmt: skip
    pops = tuple(floats.get(p.name, p) for p in int_net.populations)
    syns = tuple(Synapse(s.name, s.src, s.dst, s.weight / 16, 0, s.delay, s.lag)
                 for s in int_net.synapses)  # fmt: skip
    net = Netlist(pops, syns, numeric="float64", ticks_per_step=3)
    x = np.random.default_rng(0).normal(0, 2, (2, 20, 3))
    expected = simulate(net, x, record=True, record_internals=True)
    assert all(0.05 < expected.spike_rates[n] < 0.95 for n in ("lif", "rr")), expected.spike_rates
    actual = run_lava(net, x, record_internals=True)
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations], atol=1e-9)


def test_idle_ticks_are_what_makes_a_loop_exact(monkeypatch):
    """Without the idle gating (every process updating at every tick) Lava's LIF and our
    reset_refractory decay between their active ticks: the comparison must catch it."""
    from snncompile.targets.lava.processes import compartments

    net, x = _loop_case([LIF, ACC, RR], None)
    expected = simulate(net, x, record=True, record_internals=True)
    monkeypatch.setattr(compartments, "_idle", lambda model: False)
    actual = run_lava(net, x, record_internals=True)
    message = first_divergence(expected, actual, order=[p.name for p in net.populations])
    assert message is not None and "'lif" in message


# ---- random netlists -----------------------------------------------------------------

KINDS = ("accumulator", "ssm", "reset_refractory", "lif", "cuba_lif_sub", "heaviside", "glu")


@st.composite
def random_netlists(draw) -> tuple[Netlist, np.ndarray]:
    """2-4 populations of random kinds in a chain-with-skips DAG, weights on the 8-bit
    grid, exponents, delays, thresholds at the extremes and inputs at the 24-bit limits,
    state widths of 16, 24 and 32 bits."""
    fmt = Formats(  # 24-bit messages: the inputs and bias reach the 24-bit limits
        state_bits=draw(st.sampled_from([16, 24, 32])),
        ssm_frac_bits=draw(st.sampled_from([12, 16])),
    )
    n_in = draw(st.integers(1, 3))
    pops = [Population("in", "input", n_in)]
    if draw(st.booleans()):
        pops.append(Population("bias", "bias", 1, {"value": np.asarray(float(draw(int24)))}))
    syns = []
    for k in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        size = draw(st.integers(1, 3))
        new = Population(f"p{k}", kind, size, params(draw, kind, size, fmt), {"gate": "sigmoid"})
        sources = draw(st.lists(st.sampled_from(pops), min_size=1, max_size=2, unique=True))
        for i, src in enumerate(sources):
            syns.append(_synapse(draw, f"{src.name}->{new.name}.{i}", src, new, len(sources)))
        pops.append(new)
    out = Population("out", "readout", draw(st.integers(1, 2)), attrs={"mode": "mean"})
    computed = [p for p in pops if p.kind not in ("input", "bias")]
    others = draw(st.lists(st.sampled_from(computed[:-1]), unique=True)) if computed[1:] else []
    for src in [computed[-1], *others]:
        syns.append(_synapse(draw, f"{src.name}->out", src, out, 1))
    net = Netlist(fit_products([*pops, out], syns, fmt), syns, numeric="int", formats=fmt)
    batch, length = draw(st.integers(1, 2)), draw(st.integers(2, 5))
    values = draw(st.lists(inputs, min_size=batch * length * n_in, max_size=batch * length * n_in))
    return net, np.array(values, dtype=float).reshape(batch, length, n_in)


int24 = st.integers(-MAX24, MAX24)
inputs = st.one_of(int24, st.sampled_from([MAX24, -MAX24, 0, 1, -1, 2**16, -(2**16)]))


def _synapse(draw, name: str, src: Population, dst: Population, fan: int) -> Synapse:
    weight = grid_weights(draw, (dst.input_width, src.size))
    exp = draw(st.integers(-8, 3))
    if dst.kind == "lif":
        # Lava's LIF adds its input in int32 (docs/targets.md); with |a| <= 2^17 nothing
        # leaves int32 whatever du is. The +1: a floor shift can round away from zero.
        message = 1 if src.compartment.spiking else MAX24
        worst = min(np.abs(weight).sum(axis=1).max() * message, 2**31)
        while fan * (worst * 2.0**exp + 1) > 2**17:
            exp -= 1
    delay = draw(st.integers(0, 2))
    return Synapse(name, src.name, dst.name, weight, exp, delay)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_netlists())
def test_random_netlists_match_reference(case):
    net, x = case
    check(net, x)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_lagged_netlists())
def test_random_lagged_netlists_match_reference(case):
    """Lagged synapses (self-loops, cycles, lag 2), 1-4 ticks per model step, cuba_lif,
    every format and exponent range (tests/random_netlists.py)."""
    net, x = case
    check(net, x)


# ---- the bundled models --------------------------------------------------------------


@functools.cache
def compiled(name: str):
    from pathlib import Path

    from snncompile.compiler import compile_model

    return compile_model(
        Path(__file__).resolve().parents[1] / "examples/checkpoints" / f"{name}.pt"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spike-ssm-sdigits", "spiking-ssm-sdigits"])
def test_bundled_model_matches_reference(name):
    pytest.importorskip("torch")
    from snncompile.data import load_task

    net = compiled(name).netlist
    assert {"lif", "reset_refractory"} & {p.kind for p in net.populations}
    expected, actual = check(net, load_task("sdigits").test.inputs[:8])
    np.testing.assert_array_equal(expected.logits, actual.logits)
    # Every population's states were compared, and they move (not all-zero traces).
    for p in net.populations:
        for state in p.compartment.states:
            assert np.any(actual.traces[f"{p.name}.{state}"]), f"{p.name}.{state}"


@pytest.mark.slow
def test_a_large_batch_runs_as_equal_runs_of_copies_within_the_budget(monkeypatch):
    """Each copy of the network costs a Lava run megabytes (6 GB for 1,440 sdigits
    inputs in one run): by default a batch runs in equal runs of as many copies as fit
    COPIES_BUDGET_BYTES, with every value as in one run, and progress over all runs."""
    pytest.importorskip("torch")
    import snncompile.targets.lava.runner as runner
    from snncompile.data import load_task

    net = compiled("spike-ssm-sdigits").netlist
    x = load_task("sdigits").test.inputs[:5, :12]
    monkeypatch.setattr(runner, "COPIES_BUDGET_BYTES", 2 * runner.bytes_per_copy(net))
    sizes = []
    real = runner._run_once
    monkeypatch.setattr(
        runner, "_run_once", lambda net, xs, *a: sizes.append(len(xs)) or real(net, xs, *a)
    )
    seen: list[float] = []
    expected = simulate(net, x, record=True, record_internals=True)
    actual = run_lava(net, x, record_internals=True, progress=seen.append)
    assert sizes == [2, 2, 1]
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations])
    np.testing.assert_array_equal(expected.readout, actual.readout)
    assert actual.spike_rates.keys() == expected.spike_rates.keys()  # rates of all runs
    for name, rate in expected.spike_rates.items():
        assert actual.spike_rates[name] == pytest.approx(rate, rel=1e-12), name
    assert actual.steps == 3 * net.total_ticks(12)  # the network steps of the three runs
    assert seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.slow
def test_bundled_float64_netlist_matches_reference():
    pytest.importorskip("torch")
    from snncompile.data import load_task

    net = compiled("spike-ssm-sdigits").float_netlist
    x = load_task("sdigits").test.inputs[:4]
    expected = simulate(net, x, record=True)
    actual = run_lava(net, x)
    # Float sums may round differently (Lava adds the connections of an in-port in its own order).
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations], atol=1e-9)


# ---- float64 netlists, errors --------------------------------------------------------


def test_states_saturate_at_the_netlists_state_bits():
    """Every Lava test drew the default 24-bit states, so a builder passing 24 instead of
    the netlist's state_bits went unnoticed; at 16 bits the reset-refractory membrane,
    the SSM state and the readout saturate at 2^15 - 1 in both simulators."""
    fmt = Formats(state_bits=16)
    pops = [
        pop("rr", "reset_refractory", 2, decay=[0, 2048], theta=[2**23 - 1, 5], rho=[0, 3]),
        pop(
            "ssm",
            "ssm",
            1,
            a_re_q=[2**16],
            a_im_q=[0],
            b_re_q=[2**16],
            b_im_q=[0],
            out_shift=0,
            frac_cut=[0],
        ),
        pop("acc", "accumulator", 1),
    ]
    net = side_by_side(pops, fmt=fmt, mode="mean")
    x = np.full((1, 4, 4), 20_000.0)
    expected, _ = check(net, x)
    assert expected.traces["rr.v"][0, :, 0].max() == 2**15 - 1
    assert expected.traces["ssm.re"][0, -1, 0] == 2**15 - 1
    assert expected.events.get("rr", 0) > 0 and expected.events.get("out", 0) > 0


def test_a_lif_whose_inputs_lava_cannot_take_exactly_runs_on_our_process():
    """Lava's LIF computes a << 6, u and v in int32 (docs/targets.md): at a = 2^25 + 8
    (du = 4095) or a = 2^24 held over steps (du = 100) it left numerics.md. Where the
    netlist allows such inputs (netlist.input_bound) the target runs the same update in
    int64 on our process, resetting to zero; where it cannot, Lava's own LIF as before."""
    from snncompile.targets.lava.builder import lava_lif_is_exact

    pops = [
        pop("big", "lif", 1, du=4095, dv=0, vth=2**17 - 1),
        pop("current", "lif", 1, du=100, dv=4000, vth=2**17 - 1),
        pop("small", "lif", 1, du=100, dv=4000, vth=100),
        pop("wrapped", "lif", 1, du=0, dv=4000, vth=2**17 - 1),  # 2^18: the wrap bounds u
        pop("leaky", "lif", 1, du=1842, dv=4000, vth=2**17 - 1),  # 2^21: u <= 2^28.2
    ]
    net = side_by_side(pops)
    weights = {
        "in->big": (4.0, 1),
        "in->current": (2.0, 0),
        "in->small": (1.0, -7),
        "in->wrapped": (1.0, -5),
        "in->leaky": (1.0, -2),
    }
    syns = tuple(
        replace(s, weight=s.dense() * weights[s.name][0], weight_exp=weights[s.name][1])
        if s.name in weights else s
        for s in net.synapses
    )  # fmt: skip
    net = Netlist(net.populations, syns, "int")
    exact = {p.name: lava_lif_is_exact(net, net.population(p.name)) for p in pops}
    assert exact == {"big": False, "current": False, "small": True, "wrapped": True, "leaky": True}
    x = np.full((1, 6, 5), 2.0**23 - 1)  # a = (2^23 - 1) >> 5 = 2^18 - 1, >> 2 = 2^21 - 1, ...
    x[0, :, 0] = 2**22 + 1  # a = 8 (2^22 + 1) = 2^25 + 8
    x[0, :, 1] = 2**23 - 1  # a = 2 (2^23 - 1), about 2^24, every step
    expected, _ = check(net, x)
    assert np.abs(expected.traces["current.u"]).max() > 2**31  # beyond Lava's int32


def test_float_reset_refractory_multiplies_by_beta_itself():
    """The floating_pt model was given 1 - beta and computed (1 - (1 - beta)) v, which is
    0.09999999999999998 v for beta = 0.1: with theta between the two products the spike
    of step 1 differed from the reference's (the same float operations otherwise)."""
    beta, theta = 0.1, 0.09999999999999999
    assert 1 - (1 - beta) < theta < beta
    pops = (
        Population("in", "input", 1),
        Population("rr", "reset_refractory", 1, {"beta": np.array([beta]),
                   "theta": np.array([theta]), "rho": np.array([0.0])}),
        Population("out", "readout", 1, attrs={"mode": "mean"}),
    )  # fmt: skip
    syns = (Synapse("in->rr", "in", "rr", np.eye(1)), Synapse("rr->out", "rr", "out", np.eye(1)))
    net = Netlist(pops, syns, "float64")
    expected, _ = check(net, np.array([[[1.0 + theta], [0.0]]]))  # v = 1 after step 0
    np.testing.assert_array_equal(expected.traces["rr"].ravel(), [1.0, 1.0])


def test_float_membranes_exactly_at_the_threshold():
    """docs/numerics.md's float tests: lif spikes at v = vth (`>=`, SpikingSSM), the
    reset-refractory neuron and cuba_lif_sub do not (`>`); the reference and Lava's
    floating_pt models alike (float cuba_lif runs on the reference only; it shares
    cuba_lif_sub's test). The lowering tests' random inputs never land on a threshold,
    so flipping a test there went unnoticed."""
    pops = [
        Population("lif", "lif", 1, {"tau": np.asarray(0.5), "vth": np.asarray(1.0)}),
        Population("rr", "reset_refractory", 1, {"beta": np.array([0.5]),
                   "theta": np.array([1.0]), "rho": np.array([0.0])}),
        Population("sub", "cuba_lif_sub", 1, {"alpha_u": np.asarray(0.0),
                   "alpha_v": np.asarray(0.5), "vth": np.asarray(1.0), "vsub": np.asarray(1.0)}),
    ]  # fmt: skip
    net = side_by_side(pops, numeric="float64")
    # step 0 lands exactly on 1.0; step 1 just above it (0.5 * 1.0 + 0.5000001 for the
    # three that kept their membrane)
    x = np.array([[[1.0] * 3, [0.5000001] * 3]])
    expected, _ = check(net, x)
    spikes = {p.name: expected.traces[p.name][0, :, 0].tolist() for p in pops}
    assert spikes == {"lif": [1.0, 0.0], "rr": [0.0, 1.0], "sub": [0.0, 1.0]}


def test_float64_netlist_runs_floating_pt_models():
    pops = [
        Population(
            "ssm",
            "ssm",
            2,
            {
                "a_re": np.array([0.9, -0.5]),
                "a_im": np.array([0.1, 0.3]),
                "b_re": np.array([1.5, 0.25]),
                "b_im": np.array([0.0, -1.0]),
            },
        ),
        Population(
            "rr",
            "reset_refractory",
            2,
            {
                "beta": np.array([0.75, 0.2]),
                "theta": np.array([1.0, 0.5]),
                "rho": np.array([0.25, 0.0]),
            },
        ),
        Population("lif", "lif", 2, {"tau": np.asarray(0.875), "vth": np.asarray(0.5)}),
        Population(
            "sub",
            "cuba_lif_sub",
            2,
            {
                "alpha_u": np.asarray(0.5),
                "alpha_v": np.asarray(0.75),
                "vth": np.asarray(0.4),
                "vsub": np.asarray(0.55),
            },
        ),
        Population("glu", "glu", 1, {}, {"gate": "hard-sigmoid"}),
        Population("heav", "heaviside", 1),
    ]
    net = side_by_side(pops, numeric="float64")
    x = np.random.default_rng(0).normal(size=(2, 6, net.input.size)).round(3)
    expected = simulate(net, x, record=True, record_internals=True)
    actual = run_lava(net, x, record_internals=True)
    assert {"ssm.re", "ssm.im", "rr.v", "lif.u", "lif.v", "sub.u", "sub.v", "glu.in",
            "out.acc"} <= set(actual.traces)  # fmt: skip
    assert expected.spike_rates["sub"] > 0
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations], atol=1e-12)


def test_unmappable_kind_and_missing_lava(monkeypatch):
    net = side_by_side([pop("acc", "accumulator", 1), pop("h", "heaviside", 1)])
    monkeypatch.delitem(builder._BUILDERS, "heaviside")
    with pytest.raises(UnsupportedError, match="heaviside"):
        run_lava(net, np.zeros((1, 2, 2)))
    monkeypatch.undo()
    import sys

    monkeypatch.setitem(sys.modules, "lava.magma.core.run_configs", None)
    with pytest.raises(MissingDependencyError, match="lava-nc"):
        run_lava(net, np.zeros((1, 2, 2)))


def test_a_failing_process_ends_the_run_and_its_processes(monkeypatch):
    from snncompile.targets.lava.processes import compartments

    def fail(self, a):
        if self.time_step == 2:
            raise ValueError("deliberate")
        return a

    monkeypatch.setattr(compartments.PyAccumulatorFixed, "step", fail)
    net = side_by_side([pop("acc", "accumulator", 1)])
    with pytest.raises(RuntimeError, match="Exception"):
        run_lava(net, np.ones((1, 4, 1)))
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="Exception"):  # its states' Extractor waits too
        run_lava(net, np.ones((1, 4, 1)), record_internals=True)
    assert multiprocessing.active_children() == []


def test_an_error_in_the_sink_ends_the_run_and_its_processes():
    """A streamed comparison that raises while Lava is mid-run (a runner bug it caught)
    ends the run: the error propagates and no Lava process is left."""
    from snncompile.errors import SnnCompileError

    class Failing:
        def declare(self, key: str, width: int) -> None:
            pass

        def put(self, key: str, first: int, values: np.ndarray) -> None:
            if first == 2:
                time.sleep(1.0)  # Lava runs ahead meanwhile and fills its channels
                raise SnnCompileError("deliberate")

    net = side_by_side([pop("acc", "accumulator", 1)])
    with pytest.raises(SnnCompileError, match="deliberate"):
        run_lava(net, np.ones((1, 3000, 1)), record_internals=True, sink=Failing())
    assert multiprocessing.active_children() == []


def test_synapses_split_by_the_quantizer_run_exactly() -> None:
    """A cancelling constant's remainder synapse and a weight matrix's far-apart rows,
    each on its own exponent, are summed like any other synapses."""
    check(*split_synapse_netlist())


def test_messages_narrowed_where_their_sums_wrapped_run_exactly() -> None:
    """The calibration rounds' narrower messages (an input on a coarser input_scale, an
    accumulator's and a GLU's scales) are encoded and sent as the reference sends them."""
    check(*narrowed_messages_netlist())


def test_a_network_lavas_compiler_recurses_on_is_unsupported_not_corrupt(monkeypatch):
    """Lava's compiler flattens a group of connected processes recursively, so a network
    of some 1,100 processes in one loop (a NIR node split into 32 populations with a
    recurrent matrix, docs/nir.md) raised RecursionError, which the CLI reports as an
    input nested too deeply (exit 6, a corrupt input). It is a network Lava cannot take
    (exit 4), named so; the stand-in here is Lava's own run raising it."""
    from lava.magma.core.process.process import AbstractProcess

    def recurses(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(AbstractProcess, "run", recurses)
    pops = (Population("in", "input", 1), Population("out", "readout", 1, attrs={"mode": "mean"}))
    net = Netlist(pops, (Synapse("in->out", "in", "out", np.array([[1.0]])),), numeric="int")
    with pytest.raises(UnsupportedError, match="Lava's compiler recursed past Python's limit"):
        run_lava(net, np.ones((1, 2, 1)))


# ---- hand-computed edge cases (helper-101's mutation audit of the Lava models) --------


def test_glu_left_shift_and_falling_table_by_hand():
    """Two glu cases the table test above never reached, each by hand (numerics.md,
    glu), each failing a mutation of PyGluFixed that every other Lava test let through:
    - out_shift -1 on an unsaturated product: 3 * 4096 << 1 = 24576 (the left shift);
    - a falling table [4096, 4095] (the validator takes any table in 0..4096, not only
      a sigmoid's rising one) 1/4 of the way to the next knot: the interpolation is
      4096 + tz(-1 * 1, 2) = 4096 (toward zero; a floor gives 4095), then
      tz(4096 * 4096, 12) = 4096."""

    def glu(name: str, **params) -> Population:
        return pop(name, "glu", 1, {"gate": "sigmoid"}, pwl_x0=0, **params)

    pops = [
        glu("left", pwl_shift=0, pwl_table_q12=[4096, 4096], out_shift=-1),
        glu("falling", pwl_shift=2, pwl_table_q12=[4096, 4095], out_shift=12),
    ]
    x = np.array([[[3, 0, 4096, 1]]], dtype=float)  # [a0; a1] per glu
    expected, _ = check(side_by_side(pops), x)
    assert [expected.traces[name][0, 0, 0] for name in ("left", "falling")] == [24576, 4096]


def test_message_width_24_bit_membranes_and_reset_saturation_under_narrow_states_by_hand():
    """16-bit states, 24-bit messages: what clips at which width (numerics.md). An
    accumulator's and a glu's messages clip at G = 24 bits, not S, so 2^20 passes both
    (the glu at gate 4096 and out_shift 12); cuba_lif_sub's u and v are 24 bits whatever
    S is, so 2^10 << 6 = 2^16 stays in v (vth out of reach). The reset-refractory
    membrane clips after its reset too: m = 200 > theta = 100 leaves
    sat_16(200 - 100 - 2^20) = -(2^15 - 1), which only S < 24 can reach (rho has 23
    bits). The readout's 16-bit state clips 2^20 twice."""
    fmt = Formats(state_bits=16, message_bits=24)
    pops = [
        pop("acc", "accumulator", 1),
        pop("glu", "glu", 1, {"gate": "sigmoid"}, pwl_x0=0, pwl_shift=0,
            pwl_table_q12=[4096, 4096], out_shift=12),
        pop("sub", "cuba_lif_sub", 1, du=4095, dv=0, vth=2**17 - 1, vsub=2**17 - 1),
        pop("rr", "reset_refractory", 1, decay=[0], theta=[100], rho=[2**20]),
    ]  # fmt: skip
    x = np.array([[[2**20, 2**20, 0, 2**10, 200]]], dtype=float)
    expected, _ = check(side_by_side(pops, fmt=fmt), x)
    assert expected.traces["acc"][0, 0, 0] == expected.traces["glu"][0, 0, 0] == 2**20
    assert expected.traces["sub.v"][0, 0, 0] == 2**16
    assert expected.traces["rr.v"][0, 0, 0] == -(2**15 - 1)
    assert expected.events == {"out": 2, "rr": 1}


def test_shift_stage_at_exactly_int32_and_the_bias_window_by_hand():
    """Sums of exactly 2^31 after a positive exponent, which Lava's Dense would wrap to
    -2^31 in int32, so the builder must give them a Shift stage (needs_shift_stage's
    `>=`): a spike through weight 128 << 24, and the bias's 2^20 through weight 1 << 11
    (its bound is its value, not 1). Both saturate edge at 2^23 - 1, which reaches the
    readout as (2^23 - 1) >> 20 = 7 per step. The bias also feeds the mean readout
    directly, two steps before the data (delay 0, readout latency 3): exactly L = 2
    messages, 2^21, within the run of L + 3 steps (numerics.md: it sends for t < L only)."""
    pops = (
        Population("in", "input", 1),
        Population("bias", "bias", 1, {"value": np.asarray(2.0**20)}),
        pop("spk", "heaviside", 1),
        pop("edge", "accumulator", 2),
        Population("out", "readout", 3, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->spk", "in", "spk", np.eye(1)),
        Synapse("spk->edge", "spk", "edge", np.array([[128.0], [0.0]]), weight_exp=24),
        Synapse("bias->edge", "bias", "edge", np.array([[0.0], [1.0]]), weight_exp=11, delay=1),
        Synapse("edge->out", "edge", "out", np.eye(3, 2), weight_exp=-20),
        Synapse("bias->out", "bias", "out", np.array([[0.0], [0.0], [1.0]])),
    )
    net = Netlist(pops, syns, numeric="int")
    assert [s.name for s in syns if needs_shift_stage(net, s)] == ["spk->edge", "bias->edge"]
    expected, _ = check(net, np.ones((1, 2, 1)))
    assert expected.traces["edge"][0].tolist() == [[MAX24, MAX24]] * 2
    assert expected.readout.tolist() == [[14, 14, 2**21]]
