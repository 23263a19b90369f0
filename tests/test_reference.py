"""The reference simulator against an independent scalar transcription of docs/numerics.md."""

from __future__ import annotations

import re

import numerics_oracle as oracle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from snncompile.errors import UsageError
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.ir.ops import InvalidGraphError
from snncompile.reference.kinds import tz_shift
from snncompile.reference.simulator import simulate

FMT = Formats()
STEPS = 12


def _single(
    kind: str, size: int, params: dict, attrs: dict | None = None, fmt: Formats = FMT
) -> Netlist:
    """input -> one population of `kind` (identity synapse) -> readout (mode last)."""
    pop = Population(
        "p", kind, size, {k: np.asarray(v, float) for k, v in params.items()}, attrs or {}
    )
    width = pop.input_width
    out_size = size
    readout = Population("out", "readout", out_size, attrs={"mode": "last"})
    return Netlist(
        (Population("in", "input", width), pop, readout),
        (
            Synapse("in->p", "in", "p", np.eye(width)),
            Synapse("p->out", "p", "out", np.eye(out_size)),
        ),
        numeric="int",
        formats=fmt,
    )


def _check_against_oracle(net: Netlist, x: np.ndarray, step_fn, params: dict) -> None:
    result = simulate(net, x[None].astype(float), record=True, record_internals=True)
    pop = net.population("p")
    for ch in range(pop.size):
        state = {name: 0 for name in pop.compartment.states}
        scalar = {k: (int(v[ch]) if np.ndim(v) else int(v)) for k, v in params.items()}
        for t in range(x.shape[0]):
            expected = step_fn(scalar, state, int(x[t, ch]), net.formats)
            assert result.traces["p"][0, t, ch] == expected, (ch, t)
            for name, value in state.items():
                assert result.traces[f"p.{name}"][0, t, ch] == value, (name, ch, t)


int24 = st.integers(-(2**23) + 1, 2**23 - 1)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(-(2**16), 2**16), min_size=4, max_size=4),
    st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=4, max_size=4),
    st.lists(int24, min_size=STEPS * 2, max_size=STEPS * 2),
    st.integers(0, 23),
    st.sampled_from([24, 16, 6]),
    st.lists(st.integers(0, 16), min_size=2, max_size=2),
)
def test_ssm_matches_oracle(a_parts, b_parts, inputs, out_shift, message_bits, frac_cut):
    """Messages as wide as the states and narrower: then the shift must come before the
    clip (the other order agrees at equal widths)."""
    params = {
        "a_re_q": np.array(a_parts[:2]),
        "a_im_q": np.array(a_parts[2:]),
        "b_re_q": np.array(b_parts[:2]),
        "b_im_q": np.array(b_parts[2:]),
        "out_shift": np.array(out_shift),
        "frac_cut": np.array(frac_cut),
    }
    net = _single("ssm", 2, params, fmt=Formats(message_bits=message_bits))
    x = np.array(inputs).reshape(STEPS, 2)
    top = 2 ** (message_bits - 1) - 1  # what the input population can send
    _check_against_oracle(net, np.clip(x, -top, top), oracle.ssm, params)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 4096),
    st.integers(1, 2**20),
    st.integers(0, 2**20),
    st.lists(st.integers(-(2**21), 2**21), min_size=STEPS, max_size=STEPS),
)
def test_reset_refractory_matches_oracle(decay, theta, rho, inputs):
    # Inputs placed exactly at theta and theta + 1 as well as random ones; the first
    # lands the membrane exactly on theta (v starts at 0), which must not spike.
    inputs = [theta, *inputs[1:-2], theta, theta + 1]
    params = {"decay": np.array([decay]), "theta": np.array([theta]), "rho": np.array([rho])}
    net = _single("reset_refractory", 1, params)
    _check_against_oracle(net, np.array(inputs).reshape(STEPS, 1), oracle.reset_refractory, params)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 4095),
    st.integers(0, 4095),
    st.integers(0, 2**17 - 1),
    st.lists(st.integers(-(2**17), 2**17), min_size=STEPS, max_size=STEPS),
)
def test_lif_matches_oracle(du, dv, vth, inputs):
    params = {"du": np.array(du), "dv": np.array(dv), "vth": np.array(vth)}
    net = _single("lif", 1, params)
    _check_against_oracle(net, np.array(inputs).reshape(STEPS, 1), oracle.lif, params)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 4095),
    st.integers(0, 4095),
    st.integers(0, 2**17 - 1),
    st.one_of(st.just(None), st.integers(0, 2**17 - 1)),
    st.lists(st.integers(-(2**17), 2**17), min_size=STEPS, max_size=STEPS),
)
def test_cuba_lif_sub_matches_oracle(du, dv, vth, vsub, inputs):
    # Inputs exactly at vth and one above, as well as random ones; vsub = vth (reset in
    # the step that spikes) or any other (snnTorch's delayed reset subtracts vth / beta).
    inputs = [vth, *inputs[1:-2], vth, vth + 1]  # the first lands exactly on vth << 6
    vsub = vth if vsub is None else vsub
    params = {"du": np.array(du), "dv": np.array(dv), "vth": np.array(vth), "vsub": np.array(vsub)}
    net = _single("cuba_lif_sub", 1, params)
    _check_against_oracle(net, np.array(inputs).reshape(STEPS, 1), oracle.cuba_lif_sub, params)


def test_cuba_lif_sub_threshold_remainder_and_limits():
    """Strict threshold, the remainder kept after a spike, the 24-bit wrap of u and
    saturation of v, each against the oracle and by value."""
    cases = [
        # v lands exactly on vth << 6: no spike; one unit more: spike, remainder 64
        # (dv = 4095 keeps 1/4096 of v: the 64 left is gone a step later).
        ({"du": 4095, "dv": 4095, "vth": 10, "vsub": 10}, [10, 11, 0], [0, 1, 0],
         [640, 64, 0]),
        # 2.5 thresholds at once: one spike per step while the remainder stays above.
        ({"du": 4095, "dv": 0, "vth": 4, "vsub": 4}, [10, 0, 0, 0], [1, 1, 0, 0],
         [384, 128, 128, 128]),
        # vsub apart from vth: 320 > 256 spikes and leaves 320 - 384 = -64, kept (dv 0).
        ({"du": 4095, "dv": 0, "vth": 4, "vsub": 6}, [5, 0, 0], [1, 0, 0], [-64, -64, -64]),
        # the largest subtrahend from the smallest threshold: v = 65 - 8388544.
        ({"du": 4095, "dv": 0, "vth": 1, "vsub": 2**17 - 1}, [1, 0], [0, 0], [64, 64]),
        ({"du": 4095, "dv": 0, "vth": 1, "vsub": 2**17 - 1}, [2, 0], [1, 0],
         [128 - 8388544, 128 - 8388544]),
        # u at 2^23 exactly does not wrap; 2^17 + 1 wraps; v saturates at 2^23 - 1.
        ({"du": 4095, "dv": 0, "vth": 2**17 - 1, "vsub": 2**17 - 1},
         [2**17, 2**17 + 1, -(2**17) - 1, 0], None, None),
        ({"du": 0, "dv": 0, "vth": 0, "vsub": 0}, [2**16, 2**16, 2**16, -(2**17)], None, None),
    ]  # fmt: skip
    for params, inputs, spikes, voltages in cases:
        arrays = {k: np.array(v) for k, v in params.items()}
        net = _single("cuba_lif_sub", 1, arrays)
        x = np.array(inputs).reshape(-1, 1)
        _check_against_oracle(net, x, oracle.cuba_lif_sub, arrays)
        result = simulate(net, x[None].astype(float), record=True, record_internals=True)
        if spikes is not None:
            assert result.traces["p"][0, :, 0].tolist() == spikes
            assert result.traces["p.v"][0, :, 0].tolist() == voltages
        else:
            assert result.events.get("p", 0) > 0  # a wrap or a saturation happened


LIF_LIMITS = {  # kind, params, inputs -> spikes, u, v, events (docs/numerics.md "lif")
    # 10 << 6 == 640 exactly: no spike (strict threshold); (2^17 + 5) << 6 wraps u.
    "strict threshold, then u wraps": (
        "lif", {"du": 4095, "dv": 0, "vth": 10}, [10, 0, 2**17 + 5, 0],
        [0, 0, 0, 0], [640, 0, 2**23 + 320 - 2**24, 0], [640, 640, -8387648, -8387648], 1,
    ),
    # V lands exactly on 2^23: saturated to 2^23 - 1 (an event), then it spikes. Alone in
    # its sequence, so the compiled loop's exactness bound decides it (audit43).
    "V exactly 2^23 saturates": (
        "lif", {"du": 4095, "dv": 0, "vth": 2**17 - 1}, [2**17, 0],
        [1, 0], [2**23, 0], [0, 0], 1,
    ),
    # u1 = -2^23 wraps to +2^23 (one event), then V saturates (another).
    "u exactly -2^23 wraps": (
        "lif", {"du": 4095, "dv": 0, "vth": 2**17 - 1}, [-(2**17), 0],
        [1, 0], [2**23, 0], [0, 0], 2,
    ),
    # The subtractive reset shows the saturation in v: 2^23 - 1 - (2^17 - 1) * 64 = 63.
    "cuba_lif_sub: V exactly 2^23": (
        "cuba_lif_sub", {"du": 4095, "dv": 0, "vth": 2**17 - 1, "vsub": 2**17 - 1}, [2**17, 0],
        [1, 0], [2**23, 0], [63, 63], 1,
    ),
}  # fmt: skip


def test_reset_refractory_exact_threshold_where_the_state_saturates():
    """A sequence that saturates somewhere runs on the step functions, not the compiled
    loop: there too a membrane exactly on theta must not spike (m = 5 = theta at step 0;
    m = 5 + 2^23 - 1 saturates at step 1)."""
    params = {"decay": np.array([0]), "theta": np.array([5]), "rho": np.array([0])}
    net = _single("reset_refractory", 1, params)
    x = np.array([[5], [2**23 - 1], [0]])
    _check_against_oracle(net, x, oracle.reset_refractory, params)
    result = simulate(net, x[None].astype(float), record=True, record_internals=True)
    assert result.traces["p"][0, :, 0].tolist() == [0, 1, 1]
    assert result.events == {"p": 1}


@pytest.mark.parametrize("case", LIF_LIMITS, ids=list(LIF_LIMITS))
def test_lif_limits_by_value_and_event_count(case: str) -> None:
    kind, params, inputs, spikes, u, v, events = LIF_LIMITS[case]
    arrays = {key: np.array(value) for key, value in params.items()}
    net = _single(kind, 1, arrays)
    x = np.array(inputs).reshape(-1, 1)
    _check_against_oracle(net, x, getattr(oracle, kind), arrays)
    result = simulate(net, x[None].astype(float), record=True, record_internals=True)
    assert result.traces["p"][0, :, 0].tolist() == spikes
    assert result.traces["p.u"][0, :, 0].tolist() == u
    assert result.traces["p.v"][0, :, 0].tolist() == v
    assert result.events == {"p": events}


def test_heaviside_and_accumulator_saturation():
    net = _single("heaviside", 3, {})
    x = np.array([[-1, 0, 1]] * 3)
    result = simulate(net, x[None].astype(float), record=True)
    assert result.traces["p"][0, 0].tolist() == [0, 0, 1]
    acc = _single("accumulator", 1, {})
    big = np.array([[2**23 + 7], [-(2**23) - 7]])
    result = simulate(acc, big[None].astype(float), record=True)
    # The input population saturates first (message width), then nothing more to clip.
    assert result.traces["p"][0, :, 0].tolist() == [2**23 - 1, -(2**23) + 1]
    assert result.events["in"] == 2


def test_glu_table_interpolation_matches_oracle():
    table = np.array([0, 100, 2048, 4000, 4096])
    params = {
        "pwl_x0": np.array(-40),
        "pwl_shift": np.array(4),
        "pwl_table_q12": table,
        "out_shift": np.array(12),
    }
    net = _single("glu", 1, params, {"gate": "sigmoid"})
    b_values = [-1000, -40, -39, -25, 0, 7, 23, 24, 1000]
    x = np.array([[1000, b] for b in b_values])
    result = simulate(net, x[None].astype(float), record=True)
    scalar = {k: (v.tolist() if v.ndim else int(v)) for k, v in params.items()}
    expected = [oracle.glu(scalar, 1000, b, FMT) for b in b_values]
    assert result.traces["p"][0, :, 0].tolist() == expected


def test_glu_output_rounds_toward_zero_for_a_negative_a0():
    """out = sat_G(tz(a0 g, out_shift)) (docs/numerics.md "glu"), computed by hand on the
    table above: a1 = -25 gives x = 15, i = 0, f = 15, g = 0 + tz(100 * 15, 4) = 93, and
    tz(-1000 * 93, 12) = -22 (a floor gives -23); a1 = 7 gives x = 47, i = 2, f = 15,
    g = 2048 + tz(1952 * 15, 4) = 3878, and tz(-3878000, 12) = -946 (floor: -947)."""
    params = {
        "pwl_x0": np.array(-40),
        "pwl_shift": np.array(4),
        "pwl_table_q12": np.array([0, 100, 2048, 4000, 4096]),
        "out_shift": np.array(12),
    }
    net = _single("glu", 1, params, {"gate": "sigmoid"})
    x = np.array([[[-1000, -25], [1000, -25], [-1000, 7], [1000, 7]]], dtype=float)
    result = simulate(net, x, record=True)
    assert result.traces["p"][0, :, 0].tolist() == [-22, 22, -946, 946]


def test_tz_shift_rounds_toward_zero():
    x = np.array([-7, -4, -1, 0, 1, 4, 7])
    assert tz_shift(x, 2).tolist() == [-1, -1, 0, 0, 0, 1, 1]
    assert tz_shift(x, -1).tolist() == [-14, -8, -2, 0, 2, 8, 14]


def test_synapse_exponent_floors_and_delay_aligns():
    # Two paths into one accumulator: direct (delay 1) and through a relay (delay 0).
    pops = (
        Population("in", "input", 1),
        Population("relay", "accumulator", 1),
        Population("sum", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->relay", "in", "relay", np.array([[1.0]])),
        Synapse("relay->sum", "relay", "sum", np.array([[3.0]]), weight_exp=-1),
        Synapse("in->sum", "in", "sum", np.array([[1.0]]), delay=1),
        Synapse("sum->out", "sum", "out", np.array([[1.0]])),
    )
    net = Netlist(pops, syns, numeric="int")
    assert net.latency() == {"in": 0, "relay": 1, "sum": 2, "out": 3}
    x = np.array([[[-3.0], [5.0]]])
    result = simulate(net, x, record=True)
    # floor(3 * -3 / 2) = -5 (not -4: the exponent shift floors) plus the aligned -3.
    assert result.traces["sum"][0, :, 0].tolist() == [-5 - 3, 7 + 5]
    assert result.readout[0, 0] == -8 + 12


def test_simulate_rejects_bad_input_shape():
    net = _single("heaviside", 3, {})
    with pytest.raises(UsageError, match="shape"):
        simulate(net, np.zeros((1, 4, 2)))
    with pytest.raises(UsageError, match="NaN"):
        simulate(net, np.full((1, 4, 3), np.nan))
    with pytest.raises(UsageError, match="no samples"):
        simulate(net, np.zeros((0, 4, 3)))
    with pytest.raises(UsageError, match="no time steps"):
        simulate(net, np.zeros((1, 0, 3)))


def _backend(name: str):  # type: ignore[no-untyped-def]
    if name == "lava":
        from snncompile.targets.lava import run_lava

        return run_lava
    if name == "onnx":
        from snncompile.targets.onnx import run_onnx

        return run_onnx
    return simulate


BAD_INPUTS = {
    "batch 0": (np.zeros((0, 4, 3)), "no samples (batch size 0)"),
    "complex": (np.zeros((1, 4, 3), complex), "input must hold real numbers, got complex128"),
    "objects": (np.zeros((1, 4, 3), object), "input must hold real numbers, got object"),
    "no steps": (np.zeros((1, 0, 3)), "no time steps"),
    "NaN": (np.full((1, 4, 3), np.nan), "NaN or inf"),
    "beyond float64": (np.full((1, 4, 3), np.longdouble("1e4000")), "beyond the float64 range"),
}


@pytest.mark.parametrize("backend", ["reference", "lava", "onnx"])
@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_every_backend_refuses_the_same_bad_inputs_alike(backend: str, case: str) -> None:
    # run_onnx divided by zero on a batch of 0; complex inputs lost their imaginary part.
    net = _single("heaviside", 3, {})
    x, message = BAD_INPUTS[case]
    with pytest.raises(UsageError, match=re.escape(message)):
        _backend(backend)(net, x)


@pytest.mark.parametrize("batch_size", [1.5, 0, True, "2", np.int64(0)])
def test_run_lava_refuses_a_batch_size_that_is_not_a_positive_int(batch_size) -> None:
    # 1.5 reached range() as a TypeError; True ran as 1.
    net = _single("heaviside", 3, {})
    with pytest.raises(UsageError, match="batch_size must be a positive int"):
        _backend("lava")(net, np.ones((1, 4, 3)), batch_size=batch_size)


def test_record_names_one_population_by_its_name() -> None:
    net = _single("heaviside", 3, {})
    result = simulate(net, np.ones((1, 4, 3)), record="in")  # it was read as "i", "n"
    assert list(result.traces) == ["in"]


@pytest.mark.parametrize("stored", ["dense", "sparse"])
@pytest.mark.parametrize("value", [2**23 - 1, 2**30, -(2**30) - 7])
def test_synapse_fan_out_wraps_to_int32_exactly(value: int, stored: str) -> None:
    """One message into three sums (the path that bounds the sums by the message): with
    32-bit messages the sums leave int32 and wrap; with 24-bit ones they stay inside.
    A sparse weight runs the compiled int64 loop, a dense one BLAS."""
    fmt = Formats(message_bits=32, state_bits=32)
    weight = np.array([[254.0], [-256.0], [2.0]])  # on the mixed-sign grid
    stored_weight = weight if stored == "dense" else sparse.csr_matrix(weight)
    net = Netlist(
        (
            Population("in", "input", 1),
            Population("p", "accumulator", 3),
            Population("out", "readout", 3, attrs={"mode": "last"}),
        ),
        (Synapse("in->p", "in", "p", stored_weight), Synapse("p->out", "p", "out", np.eye(3))),
        numeric="int",
        formats=fmt,
    )
    result = simulate(net, np.full((1, 2, 1), float(value)), record=True)
    exact = weight[:, 0].astype(np.int64) * value
    wrapped = (exact + 2**31) % 2**32 - 2**31
    sent = np.clip(wrapped, -(2**31) + 1, 2**31 - 1)  # the accumulator's 32-bit message
    assert result.traces["p"][0, 0].tolist() == sent.tolist()
    assert result.events.get("in->p", 0) == 2 * int(np.count_nonzero(wrapped != exact))


# ---- time-multiplexing (ticks_per_step > 1) ---------------------------------------------


def _model_step_oracle(net: Netlist, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """What a loop netlist computes, evaluated one model step at a time in population
    order with the scalar oracle: lag-0 synapses read this step's message, lag-1 the
    previous one's, the bias its value. No ticks, delays or idle steps involved."""
    kinds = {"lif": oracle.lif, "reset_refractory": oracle.reset_refractory,
             "accumulator": oracle.accumulator}  # fmt: skip
    length = x_int.shape[0]
    msgs = {p.name: np.zeros((length + 1, p.size), np.int64) for p in net.populations}
    states = {p.name: [{s: 0 for s in p.compartment.states} for _ in range(p.size)]
              for p in net.populations}  # fmt: skip
    for t in range(length):
        msgs["in"][t + 1] = x_int[t]
        msgs["bias"][t + 1] = int(net.population("bias").params["value"])
        for p in net.populations:
            if p.kind in ("input", "bias", "readout"):
                continue
            a = np.zeros(p.size, np.int64)
            for s in net.incoming(p.name):
                a += (s.weight @ msgs[s.src][t + 1 - s.lag]).astype(np.int64)
            for ch in range(p.size):
                scalar = {k: int(np.ravel(v)[ch] if np.ndim(v) else v) for k, v in p.params.items()}
                msgs[p.name][t + 1, ch] = kinds[p.kind](scalar, states[p.name][ch], int(a[ch]), FMT)
    return {name: m[1:] for name, m in msgs.items()}


@pytest.mark.parametrize("n_loop", [2, 3])
def test_time_multiplexed_loop_equals_model_step_evaluation(n_loop):
    from netlists import loop_netlist, loop_pops

    net = loop_netlist(loop_pops("lra"[:n_loop]), seed=n_loop)
    rng = np.random.default_rng(0)
    x_int = rng.integers(-30, 31, (20, 3))
    result = simulate(net, x_int[None].astype(float), record=True)
    want = _model_step_oracle(net, x_int)
    for p in net.populations[2:-1]:
        np.testing.assert_array_equal(result.traces[p.name][0], want[p.name], err_msg=p.name)
    assert result.steps == net.total_ticks(20) == n_loop * 19 + n_loop + 2
    assert all(np.any(want[p.name]) for p in net.populations[2:-1])


def test_extra_idle_ticks_change_nothing():
    from netlists import loop_netlist, loop_pops
    from trace_compare import assert_traces_equal

    x = np.random.default_rng(1).integers(-30, 31, (2, 15, 3)).astype(float)
    tight = simulate(loop_netlist(loop_pops("lra"), seed=5), x, record=True, record_internals=True)
    loose = simulate(
        loop_netlist(loop_pops("lra"), seed=5, ticks=5), x, record=True, record_internals=True
    )
    assert_traces_equal(tight, loose)


def test_misaligned_synapse_in_a_time_multiplexed_netlist_is_refused():
    from netlists import loop_netlist, loop_pops

    net = loop_netlist(loop_pops("lra")[:2])
    bad = [
        Synapse(s.name, s.src, s.dst, s.weight, s.weight_exp, s.delay + 1, s.lag)
        if s.name.startswith("in->p1") else s
        for s in net.synapses
    ]  # fmt: skip
    with pytest.raises(InvalidGraphError, match="ticks_per_step"):
        Netlist(net.populations, tuple(bad), "int", ticks_per_step=2)


def test_float_cuba_lif_at_its_threshold_does_not_spike():
    """Float cuba_lif's test is strict, as NIR's and the integer one (docs/numerics.md):
    v exactly at vth stays, just above spikes and resets to 0."""
    from netlists import side_by_side

    cuba = Population("cuba", "cuba_lif", 1, {"alpha_u": np.asarray(0.0),
                      "alpha_v": np.asarray(0.5), "vth": np.asarray(1.0)})  # fmt: skip
    net = side_by_side([cuba], numeric="float64")
    result = simulate(net, np.array([[[1.0], [0.5000001], [0.0]]]), record=True)
    np.testing.assert_array_equal(result.traces["cuba"].ravel(), [0.0, 1.0, 0.0])


def test_float_lif_spikes_exactly_at_its_threshold():
    """Float lif's test is `>=` (SpikingSSM; docs/numerics.md "lif"), unlike the strict
    integer test: v = tau v + a lands exactly on vth = 1 at steps 0 and 2 (0.5 * 0.5 +
    0.75 = 1) and spikes, resetting to 0; 0.5 just below it does not."""
    from netlists import side_by_side

    lif = Population("lif", "lif", 1, {"tau": np.asarray(0.5), "vth": np.asarray(1.0)})
    net = side_by_side([lif], numeric="float64")
    x = np.array([[[1.0], [0.5], [0.75], [0.0]]])
    result = simulate(net, x, record=True, record_internals=True)
    np.testing.assert_array_equal(result.traces["lif"].ravel(), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(result.traces["lif.v"].ravel(), [0.0, 0.5, 0.0, 0.0])


def test_float_reset_refractory_at_its_threshold_does_not_spike():
    """Float reset_refractory: m = beta v + a, s = [m > theta] (strict), v' = m - (theta +
    rho) s. m = 1 = theta at step 0 stays; m = 0.5 + 1.5 = 2 spikes and leaves
    2 - (1 + 0.5) = 0.5, which decays to 0.25."""
    from netlists import side_by_side

    params = {"beta": [0.5], "theta": [1.0], "rho": [0.5]}
    rr = Population("rr", "reset_refractory", 1, {k: np.asarray(v) for k, v in params.items()})
    net = side_by_side([rr], numeric="float64")
    result = simulate(net, np.array([[[1.0], [1.5], [0.0]]]), record=True, record_internals=True)
    np.testing.assert_array_equal(result.traces["rr"].ravel(), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(result.traces["rr.v"].ravel(), [1.0, 0.5, 0.25])


@pytest.mark.parametrize("stored", ["dense", "sparse"])
def test_a_synapse_sum_of_exactly_2_31_wraps_to_minus_2_31(stored: str) -> None:
    """wrap32 (docs/numerics.md "Time and synapses") maps 2^31 itself to -2^31, as Lava's
    int32 accumulator does: 2 * 2^30 is the only sum and it is exactly 2^31. The
    accumulator then clips -2^31 to its 32-bit message, -(2^31 - 1); 2^31 - 1 is one wrap
    short and stays."""
    fmt = Formats(message_bits=32, state_bits=32)
    weight = np.array([[2.0]])
    net = Netlist(
        (
            Population("in", "input", 1),
            Population("p", "accumulator", 1),
            Population("out", "readout", 1, attrs={"mode": "last"}),
        ),
        (
            Synapse("in->p", "in", "p", weight if stored == "dense" else sparse.csr_matrix(weight)),
            Synapse("p->out", "p", "out", np.eye(1)),
        ),
        numeric="int",
        formats=fmt,
    )
    x = np.array([[[2.0**30], [2.0**30 - 1], [-(2.0**30)]]])
    result = simulate(net, x, record=True)
    assert result.traces["p"][0, :, 0].tolist() == [-(2**31) + 1, 2**31 - 2, -(2**31) + 1]
    assert result.events == {"in->p": 1, "p": 2}


def test_input_rounds_half_to_even():
    """x_int = round_half_even(x / input_scale) (docs/numerics.md "input"): with a scale of
    0.5, 0.25 -> 0.5 -> 0, 0.75 -> 1.5 -> 2, 1.25 -> 2.5 -> 2, -0.25 -> -0.5 -> 0 and
    -0.75 -> -1.5 -> -2 (half-up would give 1, 2, 3, 0, -1)."""
    net = _single("accumulator", 1, {})
    net = Netlist(net.populations, net.synapses, "int", input_scale=0.5)
    x = np.array([[[0.25], [0.75], [1.25], [-0.25], [-0.75]]])
    result = simulate(net, x, record=True)
    assert result.traces["p"][0, :, 0].tolist() == [0, 2, 2, 0, -2]


def test_a_mean_readout_saturates_at_its_state_width_by_hand() -> None:
    """docs/numerics.md, readout: acc' = sat_S(acc + a). 100 three times into an 8-bit
    state: 100, then 200 and 227 clip to 127 (two events); logits 127 / 3 steps. Pinned
    by hand: only the kernel-vs-step and ONNX agreement tests held it (helper-97)."""
    fmt = Formats(state_bits=8, message_bits=8)
    readout = Population("out", "readout", 1, attrs={"mode": "mean"})
    net = Netlist((Population("in", "input", 1), readout),
                  (Synapse("in->out", "in", "out", np.eye(1)),), "int", formats=fmt)  # fmt: skip
    result = simulate(net, np.full((1, 3, 1), 100.0))
    assert result.readout.tolist() == [[127]] and result.events == {"out": 2}
    assert result.logits.tolist() == [[127 / 3]]


def test_the_bias_sends_during_the_input_window_only_by_hand() -> None:
    """docs/numerics.md, bias: it sends `value` for t < L, then 0. A bias synapse into a
    mean readout one step earlier than the data (delay 0, readout latency 2) still
    delivers exactly L messages within the run of L + 2 steps: 4 x 5 = 20, not 25 as a
    bias sending at t = L too would give (helper-97: only random agreement tests held it)."""
    pops = (
        Population("in", "input", 1),
        Population("acc", "accumulator", 1),
        Population("bias", "bias", 1, {"value": np.asarray(5.0)}),
        Population("out", "readout", 1, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->acc", "in", "acc", np.eye(1)),
        Synapse("acc->out", "acc", "out", np.eye(1)),
        Synapse("bias->out", "bias", "out", np.eye(1)),
    )
    net = Netlist(pops, syns, "int")
    assert net.output_latency == 2
    assert simulate(net, np.zeros((1, 4, 1))).readout.tolist() == [[20]]
