"""How the reference simulator runs a netlist: the plan (components in order, cycles
together), whole-sequence kernels equal to the step functions of reference.kinds tick by
tick (values, states, event counts), and tiles of any length giving the same run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netlists import loop_netlist, loop_pops, pop, side_by_side
from random_netlists import random_lagged_netlists, random_netlists
from scipy import sparse
from trace_compare import assert_traces_equal

import snncompile.reference.loops as loops
import snncompile.reference.sequences as sequences
import snncompile.reference.simulator as simulator
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.reference.kinds import STEPS, Events
from snncompile.reference.plan import plan_for
from snncompile.reference.sequences import KERNELS, _step_loop

FMT = Formats()
TICKS, BATCH, SIZE = 9, 2, 3


def _ints(low: int, high: int, size: int) -> st.SearchStrategy:
    return st.lists(st.integers(low, high), min_size=size, max_size=size)


def _params(kind: str, draw) -> dict:
    if kind == "ssm":
        a, b = draw(_ints(-(2**16), 2**16, 4 * SIZE)), draw(_ints(-(2**20), 2**20, 2 * SIZE))
        return {
            "a_re_q": a[:SIZE], "a_im_q": a[SIZE : 2 * SIZE],
            "b_re_q": b[:SIZE], "b_im_q": b[SIZE:], "out_shift": draw(st.integers(0, 23)),
            "frac_cut": draw(_ints(0, 16, SIZE)),
        }  # fmt: skip
    if kind == "reset_refractory":
        return {
            "decay": draw(_ints(0, 4096, SIZE)),
            "theta": draw(_ints(1, 2**20, SIZE)),
            "rho": draw(_ints(0, 2**24, SIZE)),  # beyond the state range: v saturates
        }
    if kind == "readout":
        return {}
    du, dv, vth, vsub = draw(_ints(0, 4095, 2)) + draw(_ints(0, 2**17 - 1, 2))
    return {"du": du, "dv": dv, "vth": vth} | ({"vsub": vsub} if kind == "cuba_lif_sub" else {})


# Input magnitude (bits) that usually stays in range, and one that often clips or wraps.
INPUT_BITS = {
    "ssm": (14, 22), "reset_refractory": (18, 23), "lif": (11, 17), "cuba_lif": (11, 17),
    "cuba_lif_sub": (11, 17), "readout": (18, 23),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(k for n, k in KERNELS if n == "int"))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_kernel_equals_the_step_function_tick_by_tick(data, kind):
    """Messages, final states, state trajectories and event counts as TICKS calls of the
    step function, from a random starting state; the kernel declines exactly when the
    steps clip or wrap a state (in these ranges: its exactness bounds are conservative,
    so larger coefficients can make it decline with nothing clipped), and then the step
    loop runs. Messages narrower than the
    state (the SSM sends its state) are clipped and counted by the kernel itself."""
    draw = data.draw
    attrs = {"mode": draw(st.sampled_from(["mean", "last"]))} if kind == "readout" else {}
    population = pop("p", kind, SIZE, attrs, **_params(kind, draw))
    fmt = Formats(message_bits=draw(st.sampled_from([16, 24])))
    at_limits = draw(st.booleans())
    bits = INPUT_BITS[kind][at_limits]
    inputs = np.array(draw(_ints(-(2**bits), 2**bits, TICKS * BATCH * SIZE)), np.int64)
    inputs = inputs.reshape(TICKS, BATCH, SIZE)
    limit = ((1 << 22) if kind in ("lif", "cuba_lif", "cuba_lif_sub") else (1 << 23) - 1) // (
        1 if at_limits else 64
    )
    start = {
        name: np.array(draw(_ints(-limit, limit, BATCH * SIZE))).reshape(BATCH, SIZE)
        for name in population.compartment.states
    }

    def spec(fmt: Formats):
        states, events = {k: v.copy() for k, v in start.items()}, Events()
        step = STEPS["int"][kind]
        return *_step_loop(step, population, inputs, states, fmt, events, True), states, events

    want, want_states, spec_state, spec_events = spec(fmt)
    state, events = {k: v.copy() for k, v in start.items()}, Events()
    got = KERNELS[("int", kind)](population, inputs, state, fmt, events, True)
    states_clipped = bool(spec(FMT)[3].counts)  # messages as wide as the state
    clipped = states_clipped and not (kind == "readout" and attrs["mode"] == "last")
    assert (got is None) == clipped, (got is None, spec_events.counts)
    if got is None:
        return
    np.testing.assert_array_equal(got[0], want)
    for name in start:
        np.testing.assert_array_equal(got[1][name], want_states[name], err_msg=name)
        np.testing.assert_array_equal(state[name], spec_state[name], err_msg=name)
    assert events.counts == spec_events.counts


def _wide_params(kind: str, rng: np.random.Generator, size: int) -> dict:
    """Parameters as _params draws them, for a row wide enough to run the compiled loops'
    vector bodies (the hypothesis rows of SIZE values run only their scalar remainder)."""
    ints = lambda low, high, n=size: rng.integers(low, high + 1, n).tolist()  # noqa: E731
    if kind == "ssm":
        return {"a_re_q": ints(-(2**14), 2**14), "a_im_q": ints(-(2**14), 2**14),
                "b_re_q": ints(-(2**20), 2**20), "b_im_q": ints(-(2**20), 2**20),
                "out_shift": 5, "frac_cut": ints(0, 1)}  # fmt: skip
    if kind == "reset_refractory":
        return {"decay": ints(0, 4096), "theta": ints(1, 2**20), "rho": ints(0, 2**20)}
    du, dv, vth, vsub = ints(0, 4095, 2) + ints(0, 2**17 - 1, 2)
    return {"du": du, "dv": dv, "vth": vth} | ({"vsub": vsub} if kind == "cuba_lif_sub" else {})


@pytest.mark.parametrize("kind", ["ssm", "reset_refractory", "lif", "cuba_lif", "cuba_lif_sub"])
def test_kernel_equals_the_step_function_on_rows_that_vectorize(kind: str) -> None:
    """test_kernel_equals_the_step_function_tick_by_tick on 70-value rows of 3 samples:
    the loops' vectorized bodies (16 values a pass) run, not only their remainder."""
    rng = np.random.default_rng(7)
    size, batch = 70, 3
    population = pop("p", kind, size, {}, **_wide_params(kind, rng, size))
    bits = INPUT_BITS[kind][0]
    inputs = rng.integers(-(2**bits), 2**bits + 1, (TICKS, batch, size))
    start = {
        name: rng.integers(-(2**16), 2**16 + 1, (batch, size))
        for name in population.compartment.states
    }
    events, state = Events(), {k: v.copy() for k, v in start.items()}
    spec_events, spec_state = Events(), {k: v.copy() for k, v in start.items()}
    want, want_states = _step_loop(
        STEPS["int"][kind], population, inputs, spec_state, FMT, spec_events, True
    )
    got = KERNELS[("int", kind)](population, inputs, state, FMT, events, True)
    assert got is not None  # in range: the compiled loop ran
    np.testing.assert_array_equal(got[0], want)
    for name in start:
        np.testing.assert_array_equal(got[1][name], want_states[name], err_msg=name)
        np.testing.assert_array_equal(state[name], spec_state[name], err_msg=name)
    assert events.counts == spec_events.counts


@pytest.mark.parametrize("size", [SIZE, 70])  # the loop's scalar remainder, its vector body
@pytest.mark.parametrize("keep", [False, True])
def test_float_ssm_kernel_equals_the_step_function_bit_for_bit(size: int, keep: bool) -> None:
    """The float64 SSM's compiled loop does the step's operations in its order (no fused
    multiply-add), so messages, trajectories and the final state are the same floats."""
    rng = np.random.default_rng(size)
    params = {k: rng.normal(size=size) for k in ("a_re", "a_im", "b_re", "b_im")}
    population = pop("p", "ssm", size, {}, **params)
    inputs = rng.normal(scale=100.0, size=(TICKS, 3, size))
    start = {name: rng.normal(size=(3, size)) for name in ("re", "im")}
    spec_state, state = {k: v.copy() for k, v in start.items()}, dict(start)
    want = _step_loop(STEPS["float64"]["ssm"], population, inputs, spec_state, FMT, Events(), keep)
    got = KERNELS[("float64", "ssm")](population, inputs, state, FMT, Events(), keep)
    assert got is not None
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1].keys() == want[1].keys() == ({"re", "im"} if keep else set())
    for name in got[1]:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)
    for name in start:
        np.testing.assert_array_equal(state[name], spec_state[name], err_msg=name)
        assert not np.array_equal(state[name], start[name])  # the state moved
    assert np.any(np.abs(want[0]) > 1e3)  # the products round: not a test on integers


def test_ssm_kernel_declines_sums_beyond_exact_float64():
    """b * input above 2**53 cannot be summed exactly in float64: the step loop runs."""
    population = pop("p", "ssm", 1, a_re_q=[1], a_im_q=[0], b_re_q=[2**31], b_im_q=[0],
                     out_shift=0, frac_cut=[0])  # fmt: skip
    inputs = np.full((2, 1, 1), 2**23, np.int64)
    state = {"re": np.zeros((1, 1), np.int64), "im": np.zeros((1, 1), np.int64)}
    assert KERNELS[("int", "ssm")](population, inputs, state, FMT, Events(), False) is None


def test_ssm_loop_declines_inputs_beyond_its_conversion_range():
    """The loop converts inputs to float64 through a bias that holds |x| < 2**51: past
    that it declines, whatever input_max the caller allows (here b = 0, so the sums
    themselves would be exact)."""
    size = 20  # wide enough for the vectorized body

    def run(value: int) -> tuple[bool, np.ndarray]:
        inputs = np.zeros((1, 1, size), np.int64)
        inputs[0, 0, 3] = value
        zeros, messages = np.zeros((1, size), np.int64), np.empty((1, 1, size), np.int64)
        states, no_trace = np.empty((2, 1, size), np.int64), np.empty((0, 0, 0), np.int64)
        exact, _ = loops.ssm_sequence(
            inputs, 2**62, np.zeros(4 * size), zeros, zeros, 2**23, 1.0, 2**23 - 1, messages,
            states[0], states[1], no_trace, no_trace, False,
        )  # fmt: skip
        return exact, messages

    assert not run(2**60)[0]
    exact, messages = run(2**51 - 1)  # the largest it converts
    assert exact and not messages.any()


EDGES = {
    "reset_refractory: m beyond the state range for one tick": (
        pop("p", "reset_refractory", 1, decay=[0], theta=[10], rho=[2**10]),
        [2**23 + 5],
        {"v": 0},
    ),
    "reset_refractory: v beyond the state range after the last tick's spike": (
        pop("p", "reset_refractory", 1, decay=[4096], theta=[10], rho=[2**24]),
        [0, 0, 100],
        {"v": 0},
    ),
    "lif: u wraps below while the voltage stays inside": (
        pop("p", "lif", 1, du=4095, dv=0, vth=2**17 - 1),
        [-(2**17)],
        {"u": 0, "v": 2**22},
    ),
    "lif: u wraps above while the voltage stays inside": (
        pop("p", "lif", 1, du=4095, dv=0, vth=2**17 - 1),
        [2**17 + 1],
        {"u": 0, "v": -(2**22)},
    ),
}


@pytest.mark.parametrize("name", EDGES)
def test_kernel_declines_a_state_leaving_its_range_once(name):
    """A single out-of-range value, one that later ticks would not reveal: the kernel
    declines (the step functions clip or wrap it and count an event)."""
    population, values, start = EDGES[name]
    inputs = np.array(values, np.int64).reshape(-1, 1, 1)
    state = {k: np.full((1, 1), v, np.int64) for k, v in start.items()}
    step, kernel, events = STEPS["int"][population.kind], KERNELS["int", population.kind], Events()
    _step_loop(step, population, inputs, {k: v.copy() for k, v in state.items()}, FMT, events, 0)
    assert events.counts  # the case is real: the steps clip or wrap
    assert kernel(population, inputs, state, FMT, Events(), False) is None


def test_lif_kernel_declines_a_current_beyond_int64_bounds():
    """Lava wraps u once, so a tile can start with |u| near 2**57; the kernel's bound is
    then past int64 and it declines (it raised once) and the step loop runs."""
    population = pop("p", "lif", 1, du=4095, dv=0, vth=1)
    inputs = np.zeros((3, 1, 1), np.int64)
    start = {"u": np.full((1, 1), 2**56, np.int64), "v": np.zeros((1, 1), np.int64)}
    state = {k: v.copy() for k, v in start.items()}
    assert KERNELS["int", "lif"](population, inputs, state, FMT, Events(), False) is None
    np.testing.assert_array_equal(state["u"], start["u"])  # left untouched
    want_state, got_state = {k: v.copy() for k, v in start.items()}, state
    want = _step_loop(STEPS["int"]["lif"], population, inputs, want_state, FMT, Events(), 0)
    got = sequences.run_sequence(population, inputs, got_state, FMT, "int", Events(), False)
    np.testing.assert_array_equal(got[0], want[0])
    for name in start:
        np.testing.assert_array_equal(got_state[name], want_state[name])


NETS = {
    "loop of lif, reset-refractory, accumulator (3 ticks per step)": lambda: loop_netlist(
        loop_pops("lra"), seed=3
    ),
    "loop of ssm, glu, cuba_lif_sub, heaviside, 5 ticks per step": lambda: loop_netlist(
        loop_pops("sgch"), seed=4, ticks=5
    ),
    "every kind side by side": lambda: side_by_side(loop_pops("lrasgch"), mode="mean"),
}


@pytest.mark.parametrize("name", NETS)
def test_tiles_of_any_length_give_the_same_run(name, monkeypatch):
    net = NETS[name]()
    x = np.random.default_rng(0).integers(-60, 61, (3, 11, net.input.size)).astype(float)
    kwargs = {"record": True, "record_internals": True, "peaks": True}
    whole = simulator.simulate(net, x, **kwargs)
    data = simulator.encode_input(net, x)
    assert whole.steps <= simulator._Run(net, data, set(), False, False, Events()).tile_ticks()
    for steps in (1, 2, 3):  # tiles of one model step and of a few (the last one shorter)
        tile = steps * net.ticks_per_step
        monkeypatch.setattr(simulator._Run, "tile_ticks", lambda self, tile=tile: tile)
        tiled = simulator.simulate(net, x, **kwargs)
        assert_traces_equal(whole, tiled)
        assert (tiled.events, tiled.peaks) == (whole.events, whole.peaks)
        assert tiled.spike_rates == pytest.approx(whole.spike_rates, abs=0)
    assert any(np.any(t) for t in whole.traces.values())


class _Collected:
    """A trace sink (verify.stream.TraceSink) that keeps what it is put, checking that
    each trace comes in model-step order from 0, for the whole batch each time."""

    def __init__(self, batch: int) -> None:
        self.batch, self.parts = batch, {}

    def declare(self, key: str, width: int) -> None:
        self.parts[key] = []

    def put(self, key: str, first_step: int, values: np.ndarray) -> None:
        assert first_step == sum(v.shape[1] for v in self.parts[key])
        assert values.shape[0] == self.batch
        self.parts[key].append(values.copy())

    def traces(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v, axis=1) for k, v in self.parts.items()}


@pytest.mark.parametrize("name", NETS)
def test_a_batch_run_in_groups_of_samples_is_the_same_run(name, monkeypatch):
    """A batch one model step of which exceeds the tile budget runs in groups of samples,
    each with its own states and message histories: groups of any size, equal or not,
    over tiles of one model step, a few or the whole run, give the whole batch's traces,
    readout, events, peaks and rates, and a sink still gets the batch's traces tile by
    tile."""
    net = NETS[name]()
    x = np.random.default_rng(1).integers(-60, 61, (5, 11, net.input.size)).astype(float)
    kwargs = {"record": True, "record_internals": True, "peaks": True, "activity": True}
    whole = simulator.simulate(net, x, **kwargs)
    data = simulator.encode_input(net, x)
    assert len(simulator._Run(net, data, set(), False, False, Events()).row_groups) == 1
    streamed = _streamed(net, x)
    for size, steps in ((1, 1), (2, 3), (3, None), (4, 2)):  # 5 samples: a smaller last group
        tile = steps * net.ticks_per_step if steps else None
        monkeypatch.setattr(simulator._Run, "group_size", lambda self, size=size: size)
        monkeypatch.setattr(simulator._Run, "tile_ticks", lambda self, t=tile: t or self.total)
        grouped = simulator.simulate(net, x, **kwargs)
        assert_traces_equal(whole, grouped)
        assert (grouped.events, grouped.peaks) == (whole.events, whole.peaks)
        assert grouped.spike_rates == pytest.approx(whole.spike_rates, abs=0)
        assert grouped.activity == pytest.approx(whole.activity, abs=0)
        streamed_grouped = _streamed(net, x)
        assert streamed_grouped.keys() == streamed.keys()
        for key, values in streamed.items():
            assert np.array_equal(streamed_grouped[key], values), key
    assert any(np.any(t) for t in whole.traces.values())


def _streamed(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    """The traces simulate_into hands a sink (checked against its readout and tiles)."""
    sink = _Collected(len(x))
    tiles, result = simulator.simulate_into(net, x, sink)
    assert list(tiles)[-1] == 1.0
    assert np.array_equal(result().readout, simulator.simulate(net, x).readout)
    return sink.traces()


def test_plan_runs_a_loop_together_after_what_feeds_it():
    net = loop_netlist(loop_pops("lra"), seed=1)
    plan = plan_for(net)
    names = [[p.name for p in c.populations] for c in plan.components]
    assert ["p0", "p1", "p2"] in names
    loop = next(c for c in plan.components if len(c.populations) == 3)
    assert loop.cyclic and {s.name for s in loop.inside} == {
        "p0->p1@0", "p1->p2@0", "p2->p0@1", "p0->p0@1"
    }  # fmt: skip
    position = {n: i for i, group in enumerate(names) for n in group}
    for i, comp in enumerate(plan.components):
        assert all(position[s.src] < i for s in comp.incoming)
    assert position["out"] == len(names) - 1


def test_plan_of_a_feed_forward_netlist_is_one_population_at_a_time():
    net = side_by_side(loop_pops("lrs"))
    plan = plan_for(net)
    assert all(len(c.populations) == 1 and not c.cyclic for c in plan.components)
    assert [c.populations[0].name for c in plan.components][-1] == "out"


def test_kernel_starting_beyond_24_bits_matches_the_step_function():
    """Lava wraps u once, so a tile can start with |u| near 2**50 (after a huge input in
    the tile before); u * (4096 - du - 1) is then not exact in float64, and the kernel
    must leave that tile to the step loop."""
    population = pop("p", "lif", 1, du=0, dv=0, vth=1)
    u_start = 2**50 + 12345
    decayed = (u_start * 4095) >> 12  # u's decay (du = 0 keeps 4095 / 4096), exactly
    inputs = np.zeros((TICKS, 1, 1), np.int64)
    inputs[0] = -(decayed // 64)  # brings u back within 24 bits on the first tick
    start = {"u": np.array([[u_start]]), "v": np.zeros((1, 1), np.int64)}
    spec_state = {k: v.copy() for k, v in start.items()}
    step = STEPS["int"]["lif"]
    want, _ = _step_loop(step, population, inputs, spec_state, FMT, Events(), False)
    state = {k: v.copy() for k, v in start.items()}
    got = KERNELS[("int", "lif")](population, inputs, state, FMT, Events(), False)
    assert abs(spec_state["u"][0, 0]) < 2**23
    assert got is None or (np.array_equal(got[0], want) and state["u"] == spec_state["u"])


def test_a_cycle_sums_its_float_inputs_in_netlist_order():
    """p0 (accumulator with a lag-1 self-loop) sums in, self, bias in that order, as one
    tick at a time does: 1 + 2**-54 rounds to 1 before the bias cancels it. Sizes 1, so
    every product is one multiplication and only the order of the sum matters."""
    w = lambda value: np.array([[value]])  # noqa: E731
    pops = (
        Population("in", "input", 1),
        Population("bias", "bias", 1, {"value": np.asarray(1.0)}),
        Population("p0", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->p0", "in", "p0", w(1.0)),
        Synapse("p0->p0", "p0", "p0", w(0.25), lag=1),
        Synapse("bias->p0", "bias", "p0", w(-1.0)),
        Synapse("p0->out", "p0", "out", w(1.0)),
    )
    net = Netlist(pops, syns, "float64")
    x = np.array([1 + 2**-52, 1.0, 1.0])
    result = simulator.simulate(net, np.tile(x[None, :, None], (2, 1, 1)), record=["p0"])
    want, previous = [], 0.0
    for value in x:
        previous = (value + 0.25 * previous) + -1.0
        want.append(previous)
    assert want == [2**-52, 0.0, 0.0]
    np.testing.assert_array_equal(result.traces["p0"][:, :, 0], [want, want])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_netlists())
def test_random_netlists_run_alike_with_kernels_and_tick_by_tick(case):
    """The schedule on random formats, delays, exponents and inputs at their limits: one
    tile per run, with the kernels wherever they accept (they decline often here, at
    the limits; the test above checks each one) and the compiled sparse synapses, gives
    the run of one tick at a time with the step functions only and every synapse dense
    (traces, states, inputs, events, peaks)."""
    _run_alike_with_kernels_and_tick_by_tick(*case)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_lagged_netlists())
def test_random_lagged_netlists_run_alike_with_kernels_and_tick_by_tick(case):
    """As above on cycles of lagged synapses (lag 1 and 2), 1-4 ticks per model step (a
    population idle between its active ticks), cuba_lif and every format. The second run
    takes tiles of one model step, so each cycle's messages cross tile boundaries."""
    _run_alike_with_kernels_and_tick_by_tick(*case)


def _run_alike_with_kernels_and_tick_by_tick(net: Netlist, x: np.ndarray) -> None:
    kwargs = {"record": True, "record_internals": True, "peaks": True}
    dense = [replace(syn, weight=syn.dense()) for syn in net.synapses]
    with pytest.MonkeyPatch.context() as patch:
        with_kernels = simulator.simulate(net, x, **kwargs)
        patch.setattr(sequences, "KERNELS", {})
        patch.setattr(simulator._Run, "tile_ticks", lambda self: self.ticks)
        tick_by_tick = simulator.simulate(replace(net, synapses=tuple(dense)), x, **kwargs)
    assert_traces_equal(tick_by_tick, with_kernels)
    assert (with_kernels.events, with_kernels.peaks) == (tick_by_tick.events, tick_by_tick.peaks)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_sparse_int_synapse_equals_the_dense_product(data):
    """The compiled loops of a sparse int synapse (exact int64 sum, Lava's int32 wrap,
    the shift; a CSR, or a gather when each destination has at most one weight) give
    what the dense path gives, values and wrap counts, added into what the target held
    or (add=False) written over it, on random shapes, zeros, exponents of both signs and
    messages up to 32 bits."""
    rows, dst, src = (data.draw(st.integers(1, 5)) for _ in range(3))
    cells = st.one_of(st.just(0), st.integers(-256, 255))
    weight = np.array(data.draw(_ints_of(cells, dst * src)), float).reshape(dst, src)
    if data.draw(st.booleans()):  # at most one weight per destination: the gather
        keep = np.array(data.draw(_ints_of(st.integers(0, src - 1), dst)))
        weight = np.where(np.arange(src) == keep[:, None], weight, 0.0)
    message_limit = 2 ** data.draw(st.sampled_from([8, 24, 32])) // 2 - 1
    messages = np.array(
        data.draw(_ints_of(st.integers(-message_limit, message_limit), rows * src)), np.int64
    ).reshape(rows, src)
    exp = data.draw(st.integers(-14, 8))
    dense = Synapse("d", "a", "b", weight, exp)
    stored = data.draw(st.sampled_from([sparse.csr_matrix, sparse.csc_matrix]))
    stored_sparse = Synapse("s", "a", "b", stored(weight), exp)
    start = np.array(data.draw(_ints_of(st.integers(-(2**40), 2**40), rows * dst)))
    start = start.reshape(rows, dst)
    add = data.draw(st.booleans())
    dense_events, sparse_events = Events(), Events()
    want = simulator._apply(dense, messages, "int", Events()) + (start if add else 0)
    got, got_dense = start.copy(), start.copy()
    simulator._deliver(stored_sparse, messages, got, "int", sparse_events, add)
    simulator._deliver(dense, messages, got_dense, "int", dense_events, add)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_dense, want)
    assert sparse_events.counts.get("s", 0) == dense_events.counts.get("d", 0)


WIDE_LOOPS = {
    "fan-out": loops.fan_out_synapse_int,
    "fan-in spans": loops.span_synapse_int,
    "fan-in csr": loops.csr_synapse_int,
}


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("structure", list(WIDE_LOOPS))
@pytest.mark.parametrize("exp", [-9, 0, 3])
def test_wide_sparse_int_synapse_equals_the_dense_product(
    structure: str, exp: int, add: bool
) -> None:
    """As above at an SSM's widths (64 channels, 33 modes each), so that the compiled
    loops run their vectorized bodies (the hypothesis shapes are shorter than one
    vector), with messages that make some sums wrap: an SSM's fan-out, its readout
    (each channel reads its consecutive modes) and the readout with the modes shuffled
    (indexed reads). Some weights are 0, so readout rows have gaps."""
    rng = np.random.default_rng(exp + 20)
    channels, modes = 64, 33
    fan_out = np.kron(np.eye(channels), np.ones((modes, 1)))  # (2112, 64), one per row
    mask = {
        "fan-out": fan_out,
        "fan-in spans": fan_out.T,  # channel c reads modes 33 c .. 33 c + 32
        "fan-in csr": np.kron(np.ones((1, modes)), np.eye(channels)),  # c, c + 64, ...
    }[structure]
    weight = mask * rng.integers(-256, 256, mask.shape)
    messages = rng.integers(-(2**31) + 1, 2**31, (7, weight.shape[1]))
    # A mix of sums that wrap and sums that do not: small messages into every third sum.
    small = np.arange(channels) % 3 == 0 if structure == "fan-out" else mask[::3].any(axis=0)
    messages[:, small] //= 2**20
    dense = Synapse("d", "a", "b", weight, exp)
    stored_sparse = Synapse("s", "a", "b", sparse.csr_matrix(weight), exp)
    start = rng.integers(-(2**40), 2**40, (7, weight.shape[0]))
    dense_events, sparse_events = Events(), Events()
    want = simulator._apply(dense, messages, "int", dense_events) + (start if add else 0)
    got = start.copy()
    simulator._deliver(stored_sparse, messages, got, "int", sparse_events, add)
    np.testing.assert_array_equal(got, want)
    assert 0 < sparse_events.counts["s"] == dense_events.counts["d"] < got.size
    assert simulator._sparse_int(stored_sparse)[0] is WIDE_LOOPS[structure]


def test_spans_pad_gaps_with_zeros_and_give_up_on_scattered_rows():
    # Row 0 reads sources 1-3 with a 0 weight at 2 (not stored), row 1 nothing, row 2
    # reads 0-1, row 3 reads 3 (stored twice: the products add).
    weight = sparse.csr_matrix(
        (np.array([2, 3, 5, 6, 7, 1]), np.array([1, 3, 0, 1, 3, 3]), np.array([0, 2, 2, 4, 6])),
        shape=(4, 4),
    )
    indptr, firsts, padded = simulator._spans(weight)
    np.testing.assert_array_equal(indptr, [0, 3, 3, 5, 6])
    np.testing.assert_array_equal(firsts, [1, 0, 0, 3])
    np.testing.assert_array_equal(padded, [2, 0, 3, 5, 6, 8])
    messages = np.arange(1, 9, dtype=np.int64).reshape(2, 4)
    got = np.zeros((2, 4), np.int64)
    loops.span_synapse_int(indptr, firsts, padded, 0, messages, got, True)
    np.testing.assert_array_equal(got, messages @ weight.toarray().T)
    # Row 0 reads sources 0 and 9: a range of 10 for 2 weights (5x), so indexed reads.
    scattered = sparse.csr_matrix(np.eye(10)[[0, 9]].sum(axis=0, keepdims=True))
    assert simulator._spans(scattered) is None


def _ints_of(strategy, size: int) -> st.SearchStrategy:
    return st.lists(strategy, min_size=size, max_size=size)


def test_traces_come_in_netlist_order_whatever_order_they_were_asked_in():
    # A streamed comparison reports its per-trace counts in the order the reference
    # declared them; a set's order changed from one process to the next.
    net = side_by_side(loop_pops("lrasgch"), mode="mean")
    x = np.ones((1, 3, net.input.size))
    names = [p.name for p in net.populations]
    result = simulator.simulate(net, x, record=names[::-1])
    sending = [n for n in names if net.population(n).compartment.sends]
    assert list(result.traces) == sending
