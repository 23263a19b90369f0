"""The quantizer's parameter formulas (docs/numerics.md, "How a float model maps to
integers"), checked value by value on a small float64 netlist: the end-to-end tests
measure accuracy and agreement, which a rounding direction hardly moves."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
from netlists import (
    CANCELLING,
    FAR_APART_GAINS,
    WIDE_SUM_FAN_IN,
    cancelling_inputs,
    constant_netlist,
    far_apart_inputs,
    pop,
    side_by_side,
    wide_sums_netlist,
)
from scipy import sparse

from snncompile.errors import HardwareRuleError
from snncompile.ir.netlist import Netlist, Population, Synapse, weight_grid
from snncompile.quantize.quantize import (
    MAX_ROW_GROUPS,
    QuantConfig,
    _row_groups,
    fewest_bits_to_fit,
    quantize,
    quantize_weights,
)
from snncompile.reference.simulator import simulate


def test_neuron_parameters_are_rounded_to_nearest():
    """reset_refractory: decay = round((1 - beta) 4096), theta = T, rho = round(rho T);
    lif: dv = 4096 - round(tau 4096), vth = T; T the neuron's integer threshold."""
    beta = np.array([0.3001, 0.8, 0.55, 0.1234])
    rho = np.array([0.37, 0.6789, 0.4321, 0.7777])
    tau = 0.30045
    pops = [
        pop("rr", "reset_refractory", 4, beta=beta, theta=np.ones(4), rho=rho),
        pop("lif", "lif", 1, tau=tau, vth=1.0),
    ]
    net = side_by_side(pops, numeric="float64")
    x = np.random.default_rng(0).normal(size=(4, 16, net.input.size))
    qnet, _ = quantize(net, x)
    rr, lif = qnet.population("rr").params, qnet.population("lif").params
    threshold = rr["theta"][0]
    assert threshold > 1 and np.all(rr["theta"] == threshold)
    assert np.log2(threshold) == int(np.log2(threshold))  # a power of two
    np.testing.assert_array_equal(rr["decay"], np.rint((1 - beta) * 4096))
    np.testing.assert_array_equal(rr["rho"], np.rint(rho * threshold))
    assert np.any(np.rint((1 - beta) * 4096) != np.floor((1 - beta) * 4096))  # not vacuous
    assert np.any(np.rint(rho * threshold) != np.floor(rho * threshold))
    assert float(lif["dv"]) == 4096 - round(tau * 4096) == 4096 - 1231
    assert float(lif["du"]) == 4095  # the current keeps nothing
    assert float(lif["vth"]) > 0 and np.log2(float(lif["vth"])) % 1 == 0


def test_wide_states_keep_reset_refractory_parameters_in_their_23_bits():
    """theta and rho are 23-bit parameters at any state width: with 28-bit states the
    threshold scale went past theta's range (2**24 here) and the build failed."""
    rho = np.array([0.5, 1.5, 0.25, 0.75])
    net = side_by_side(
        [pop("rr", "reset_refractory", 4, beta=np.full(4, 0.5), theta=np.ones(4), rho=rho)],
        numeric="float64",
    )
    x = np.random.default_rng(0).normal(scale=0.1, size=(4, 16, net.input.size))
    qnet, _ = quantize(net, x, QuantConfig(state_bits=28, message_bits=28))
    params = qnet.population("rr").params
    assert params["theta"].max() == 2**22  # rho = 1.5 theta keeps it below 2**23
    assert params["rho"].max() <= 2**23 - 1


def test_a_constant_cancelling_its_input_keeps_the_destination_precision():
    """A folded BatchNorm shift cancels a channel mean far larger than what is left: on
    one 8-bit grid its error was up to 2**-9 of the constant (about 2 here, against
    signals of about 1); with the remainder synapse what is left is the input's rounding."""
    x = cancelling_inputs()
    net = constant_netlist({"acc": CANCELLING})
    qnet, report = quantize(net, x)
    assert [s.name for s in qnet.synapses if s.src == "bias"] == ["bias->acc", "bias->acc.fine"]
    assert (
        report.synapses["bias->acc.fine"]["weight_exp"] < report.synapses["bias->acc"]["weight_exp"]
    )
    float_logits = simulate(net, x).logits
    error = np.abs(simulate(qnet, x).logits - float_logits).max()
    # What is left is the input's own rounding: x of about 1000 in act_bits = 16.
    input_unit = 2.0 ** report.populations["in"]["out_scale_log2"]
    assert error <= input_unit < 0.2


def test_every_constant_arrives_as_close_as_its_two_grids_allow():
    """Beside a cancelling constant, a small one (its remainder far below the bias's
    message): each synapse floor-shifts its own product, so a remainder on too fine a
    grid added 0 or -1 units (-0.87 units of error were left)."""
    small = np.array([0.0997, -0.0611, 0.0423, -0.0902])
    net = constant_netlist({"acc": CANCELLING, "acc2": small})
    signal = np.random.default_rng(1).normal(scale=0.003, size=(8, 16, small.size))
    x = np.concatenate([cancelling_inputs(), signal], axis=2)
    qnet, report = quantize(net, x)
    message = int(qnet.population("bias").params["value"])
    for dst, constant in (("acc", CANCELLING), ("acc2", small)):
        parts = [s for s in qnet.synapses if s.src == "bias" and s.dst == dst]
        assert len(parts) == 2
        products = [s.dense().ravel().astype(np.int64) * message for s in parts]
        got = sum(  # floor_shift of each synapse's own sum (docs/numerics.md)
            p >> -s.weight_exp if s.weight_exp < 0 else p << s.weight_exp
            for p, s in zip(products, parts, strict=True)
        )
        exact = constant * 2.0 ** -report.populations[dst]["in_scale_log2"]
        # Two grids of 8 bits (7 with mixed signs) keep 2**-14 of the largest, and no
        # grid need be finer than whole units: the small constants land on the nearest.
        bound = max(0.5, 2.0**-14 * np.abs(exact).max())
        assert np.abs(got - exact).max() <= bound + 1e-9, dst


@pytest.mark.parametrize("weight_bits", [2, 3, 4, 6])
def test_a_cancelling_constant_arrives_within_half_a_unit_below_8_bit_weights(weight_bits):
    """One remainder grid holds weight_bits more bits: 7-8 at 8-bit weights, 1-4 at
    --weight-bits 2-4, where prenorm models fine-tuned for those widths kept 0.6% of
    their folded BatchNorm shift's error and more, and verify's argmax agreement fell
    to 41-75% (97-100% at 8 bits; helper-85). Below 8 bits remainders now follow one
    another until every constant arrives within half a unit of its destination (up to
    MAX_FINE_PARTS of them)."""
    x = cancelling_inputs()
    qnet, report = quantize(constant_netlist({"acc": CANCELLING}), x, QuantConfig(weight_bits))
    parts = [s for s in qnet.synapses if s.src == "bias"]
    assert [s.name for s in parts][:3] == ["bias->acc", "bias->acc.fine", "bias->acc.fine2"]
    message = int(qnet.population("bias").params["value"])
    products = [s.dense().ravel().astype(np.int64) * message for s in parts]
    got = sum(  # floor_shift of each synapse's own sum (docs/numerics.md)
        p >> -s.weight_exp if s.weight_exp < 0 else p << s.weight_exp
        for p, s in zip(products, parts, strict=True)
    )
    exact = CANCELLING * 2.0 ** -report.populations["acc"]["in_scale_log2"]
    # At 2 bits (a mixed grid of 4 values) the 8 parts allowed fall short of these 22-bit
    # constants, but not of what 8-bit weights keep with their one remainder (2**-14).
    bound = 0.5 if weight_bits > 2 else 2.0**-14 * np.abs(exact).max()
    assert np.abs(got - exact).max() <= bound + 1e-9
    # Exact through the simulator too: the parts sum like any synapses.
    float_logits = simulate(constant_netlist({"acc": CANCELLING}), x).logits
    input_unit = 2.0 ** report.populations["in"]["out_scale_log2"]
    assert np.abs(simulate(qnet, x).logits - float_logits).max() <= input_unit


@pytest.mark.parametrize("weight_bits", [2, 4, 6])
def test_below_8_bit_weights_every_constant_gets_its_remainders(weight_bits):
    """A constant no larger than what its destination sums cancels nothing, but on one
    grid of weight_bits it kept as little as 2**-(weight_bits + 1) of its largest entry:
    a depth-1 prenorm spike-ssm fine-tuned at 4 bits (its folded BatchNorm shift not
    cancelling) verified at 64% argmax agreement, 96% at 8 bits (helper-85). Below 8
    bits every constant now arrives within half a unit; at 8 bits it keeps one grid."""
    constant = np.array([0.8137, -0.3791, 0.5523, -0.1309])
    x = np.random.default_rng(2).normal(size=(8, 16, constant.size))
    net = constant_netlist({"acc": constant})
    qnet, report = quantize(net, x, QuantConfig(weight_bits))
    parts = [s for s in qnet.synapses if s.src == "bias"]
    assert len(parts) > 1
    message = int(qnet.population("bias").params["value"])
    got = sum(  # floor_shift of each synapse's own sum (docs/numerics.md)
        (s.dense().ravel().astype(np.int64) * message) >> -s.weight_exp for s in parts
    )
    exact = constant * 2.0 ** -report.populations["acc"]["in_scale_log2"]
    assert np.abs(got - exact).max() <= 0.5 + 1e-9
    qnet8, _ = quantize(net, x, QuantConfig(8))
    assert [s.name for s in qnet8.synapses if s.src == "bias"] == ["bias->acc"]


def test_a_remainder_synapse_takes_a_free_name():
    """Population names hold dots: the bias into `acc` and into `acc.fine` would both
    name a synapse `bias->acc.fine` (the build failed, blaming the bit widths)."""
    net = constant_netlist({"acc": CANCELLING, "acc.fine": CANCELLING})
    x = np.concatenate([cancelling_inputs(), cancelling_inputs(seed=1)], axis=2)
    qnet, _ = quantize(net, x)
    into = {s.name: s.dst for s in qnet.synapses if s.src == "bias"}
    assert into == {
        "bias->acc": "acc",
        "bias->acc.fine#1": "acc",
        "bias->acc.fine": "acc.fine",
        "bias->acc.fine.fine": "acc.fine",
    }


def test_a_constant_below_its_destinations_unit_arrives_at_the_nearest_unit():
    """A constant of a few units of its destination (the signal far larger) on the grid
    of its own largest entry was finer than a unit, and the synapse floor-shifted it:
    up to a unit lost, -1 for any small negative entry (helper-64; a GLU bias scaled
    by 1e-3 kept 0.86 relative rms error, 0.34 now). Each entry now arrives as the
    nearest whole unit, on both grids Lava has (mixed signs step 2 at 8 bits)."""
    rng = np.random.default_rng(3)
    for units in (np.array([2.3, -0.4, 0.7, -1.6]), np.array([2.3, 0.4, 0.7, 1.6])):
        x = rng.normal(scale=2000.0, size=(8, 16, units.size))
        _, report = quantize(constant_netlist({"acc": units}), x)
        unit = 2.0 ** report.populations["acc"]["in_scale_log2"]  # one unit, in float
        constant = units * unit
        qnet, report = quantize(constant_netlist({"acc": constant}), x)
        assert report.populations["acc"]["in_scale_log2"] == np.log2(unit)  # same units
        (syn,) = [s for s in qnet.synapses if s.src == "bias"]
        message = int(qnet.population("bias").params["value"])
        product = syn.dense().ravel().astype(np.int64) * message
        got = product >> -syn.weight_exp if syn.weight_exp < 0 else product << syn.weight_exp
        np.testing.assert_array_equal(got, np.rint(units))


def test_a_constant_within_its_destination_range_keeps_one_synapse():
    """Ordinary biases (as in every bundled model) stay one synapse on one grid."""
    constant = np.array([0.37, -0.81, 0.123, 0.9])
    x = np.random.default_rng(0).normal(size=(8, 16, constant.size))
    qnet, _ = quantize(constant_netlist({"acc": constant}), x)
    assert [s.name for s in qnet.synapses if s.src == "bias"] == ["bias->acc"]


def _far_apart_net(cancelling: bool, as_sparse: bool = False):
    constants = {"enc": np.array([0.1, -0.2, 0.05, 0.3])}
    if cancelling:
        constants = {"acc": CANCELLING, **constants}
    net = constant_netlist(constants, gains={"enc": FAR_APART_GAINS})
    if as_sparse:
        synapses = [
            replace(s, weight=sparse.csr_matrix(s.weight)) if s.name == "in->enc" else s
            for s in net.synapses
        ]
        net = replace(net, synapses=tuple(synapses))
    x = far_apart_inputs()
    return net, (x if cancelling else x[:, :, CANCELLING.size :])


@pytest.mark.parametrize("as_sparse", [False, True], ids=["dense", "sparse"])
def test_rows_far_apart_get_exponents_of_their_own_beside_a_cancelling_constant(as_sparse):
    """Downstream of a folded BatchNorm each channel is scaled by its 1 / std, so each
    row's error counts relative to the row: on one grid the row 45x below the top kept
    about three steps (32% wrong); split by rows every weight keeps 1/15 of its row."""
    net, x = _far_apart_net(cancelling=True, as_sparse=as_sparse)
    qnet, report = quantize(net, x)
    parts = [s for s in qnet.synapses if s.src == "in" and s.dst == "enc"]
    assert [s.name for s in parts] == ["in->enc", "in->enc.rows1"]
    assert parts[1].weight_exp < parts[0].weight_exp
    got = sum(s.dense().astype(np.float64) * 2.0**s.weight_exp for s in parts)
    scale = report.populations["in"]["out_scale_log2"] - report.populations["enc"]["in_scale_log2"]
    want = next(s for s in net.synapses if s.name == "in->enc").dense() * 2.0**scale
    peaks = np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= peaks / 15)
    assert not np.any((parts[0].dense() != 0) & (parts[1].dense() != 0))  # rows, not sums
    # The other parts' rows are not stored (dense parts counted their zeros: 2x).
    stored = [s.weight.nnz if sparse.issparse(s.weight) else s.weight.size for s in parts]
    assert sum(stored) == np.count_nonzero(want) == 4


def test_rows_far_apart_share_one_exponent_without_a_cancelling_constant():
    """Without a folded BatchNorm's gains downstream each row's error counts against the
    whole sum: one synapse, as in every bundled model."""
    net, x = _far_apart_net(cancelling=False)
    qnet, _ = quantize(net, x)
    assert [s.name for s in qnet.synapses if s.src == "in"] == ["in->enc"]


def test_rows_far_below_get_no_exponent_out_of_range():
    """A row 2**-50 below the top would need an exponent beyond -31 (Loihi 2's default
    range; -32 is the netlist's): it stays at -31, where it rounds to zero, and stores
    nothing, instead of failing the build."""
    gains = {"enc": np.array([1.0, -0.3, 0.02, 1e-15])}
    net = constant_netlist({"acc": CANCELLING, "enc": np.zeros(4)}, gains=gains)
    qnet, _ = quantize(net, far_apart_inputs())
    parts = [s for s in qnet.synapses if s.src == "in" and s.dst == "enc"]
    assert [s.name for s in parts] == ["in->enc", "in->enc.rows1"]
    assert all(-31 <= s.weight_exp <= 31 for s in qnet.synapses)


def test_a_matrix_whose_one_sign_rounds_away_stays_on_the_one_sign_grid():
    """Mixed signs put the largest negative at -256; when every positive rounds to zero
    (likelier in a row group) Lava's grid is [-255, 0], and the build failed."""
    mant, _ = quantize_weights(np.array([-1.0, 1e-5, -0.5]), 8)
    low, high, step = weight_grid(mant, 8)
    assert list(mant) == [-255, 0, -128] and (low, high, step) == (-255, 0, 1)


def test_row_groups_span_three_octaves_each_and_at_most_four():
    """Rows group by floor(log2(top / row peak)) // 3, the last group taking the rest;
    a zero row stores nothing and goes with the first."""
    peaks = np.array([1.0, -0.5, 0.1, 0.01, 1e-4, 1e-9, 0.0, 0.12])
    rows = np.arange(peaks.size)
    groups = _row_groups(peaks.reshape(-1, 1))  # one value per row
    assert len(groups) == MAX_ROW_GROUPS == 4
    assert [list(rows[g]) for g in groups] == [[0, 1, 6], [2, 7], [3], [4, 5]]
    assert _row_groups(np.array([[1.0], [0.2], [-0.13], [0.0]])) == []  # one group


def _ssm_net(b_re: list[float], b_im: list[float] | None = None) -> Netlist:
    """Float64: input -> an SSM of one mode per input channel, fed that channel with
    weight 1 (as the lowering feeds modes) -> last-step readout of every mode."""
    n = len(b_re)
    modes = pop("ssm", "ssm", n, a_re=np.linspace(0.9, 0.6, n), a_im=np.linspace(0.1, 0.3, n),
                b_re=b_re, b_im=np.zeros(n) if b_im is None else b_im)  # fmt: skip
    syns = (
        Synapse("in->ssm", "in", "ssm", np.eye(n)),
        Synapse("ssm->out", "ssm", "out", np.eye(n)),
    )
    out = Population("out", "readout", n, attrs={"mode": "last"})
    return Netlist((pop("in", "input", n), modes, out), syns, numeric="float64")


# A channel 300x below the others with a b 600x larger (a BatchNorm's 1 / std folded
# into b): b_q = 5e9 on the SSM's one input scale, 2 bits past int32.
SMALL_CHANNEL = [1.0, -0.7, 1 / 300]
LARGE_B = [1.0, 0.5, 600.0]


def _ssm_inputs(gains: list[float]) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(8, 32, len(gains))) * np.array(gains)


def test_ssm_states_wider_than_their_messages_are_sent_shifted_not_clipped():
    """--message-bits 16 below 24-bit states: the SSM sends Re z shifted right onto the
    messages' scale (its peaks clipped before, 686,952 events on the bundled spike-ssm);
    the states keep their 24 bits. Equal widths shift nothing."""
    net, x = _ssm_net([1.0, -0.7, 0.3]), _ssm_inputs([1.0, 1.0, 1.0])
    wide, wide_report = quantize(net, x)
    narrow, report = quantize(net, x, QuantConfig(message_bits=16))
    assert int(wide.population("ssm").params["out_shift"]) == 0
    shift = int(narrow.population("ssm").params["out_shift"])
    assert shift in (8, 9)  # 24 - 16, or one more where the two widths' ceilings differ
    ssm, wide_ssm = report.populations["ssm"], wide_report.populations["ssm"]
    assert ssm["in_scale_log2"] == wide_ssm["in_scale_log2"]
    assert ssm["out_scale_log2"] == wide_ssm["out_scale_log2"] + shift
    assert (ssm["out_shift"], wide_ssm["out_shift"]) == (shift, 0)
    assert ssm["state_scale_log2"] == wide_ssm["state_scale_log2"] == wide_ssm["out_scale_log2"]
    assert report.calibration_events == {} and report.rounds == 1
    result = simulate(narrow, x, record=True)
    assert np.abs(result.traces["ssm"]).max() < 2**15 - 1  # unclipped, within 16 bits
    # The shift adds at most one message unit (its truncation) to the error in Re z
    # that 24-bit messages carry to the readout.
    float_logits = simulate(net, x).logits
    error = np.abs(result.logits - float_logits).max()
    wide_error = np.abs(simulate(wide, x).logits - float_logits).max()
    assert wide_error < error <= wide_error + 2.0 ** ssm["out_scale_log2"]


def test_an_ssm_mode_whose_b_passes_int32_alone_keeps_fewer_fractional_bits():
    """b_q = b 2**(F + in - state) of the third mode is 2 bits past int32: that mode keeps
    F - 2 fractional bits in a and b, the others all F (one such mode made the whole
    population's F smaller, by an option the refusal named, until 2026-12-06)."""
    net, x = _ssm_net(LARGE_B), _ssm_inputs(SMALL_CHANNEL)
    qnet, report = quantize(net, x)
    params = qnet.population("ssm").params
    assert list(params["frac_cut"]) == [0, 0, 2]
    assert 2**30 <= np.abs(params["b_re_q"]).max() < 2**31
    a_re = net.population("ssm").params["a_re"]
    assert list(params["a_re_q"]) == list(np.rint(a_re * 2.0 ** np.array([16, 16, 14])))
    notes = report.populations["ssm"]
    assert (notes["modes_with_fewer_frac_bits"], notes["fewest_frac_bits"]) == (1, 14)
    # The third mode is what --ssm-frac-bits 14 made of it, the others are F = 16's.
    whole, _ = quantize(net, x, QuantConfig(ssm_frac_bits=14))
    for key in ("a_re_q", "a_im_q", "b_re_q", "b_im_q"):
        assert params[key][2] == whole.population("ssm").params[key][2], key


def test_the_fewest_bits_to_fit_count_the_rounding():
    """rint(v 2**-c) must fit, not v 2**-c: limit + 0.25 fits unshifted, limit + 0.5
    rounds past it; each doubled needs one bit more; inf is left to the netlist."""
    limit = 2**31 - 1
    values = np.array([0.0, limit, limit + 0.25, limit + 0.5, 2 * limit + 0.5,
                       2 * limit + 1.5, 2**40, 2**40 + 2**9, np.inf])  # fmt: skip
    assert list(fewest_bits_to_fit(values, limit)) == [0, 0, 0, 1, 1, 2, 10, 10, 0]


def test_the_larger_of_an_ssms_b_re_and_b_im_sets_its_fractional_bits():
    """b_im 2x b_re (the state scale grows with it): b_re_q is 1 bit over, b_im_q 2; both
    must fit, so the mode keeps F - 2 bits."""
    net, x = _ssm_net(LARGE_B, b_im=[0.0, 0.0, 2 * LARGE_B[2]]), _ssm_inputs(SMALL_CHANNEL)
    params = quantize(net, x)[0].population("ssm").params
    assert list(params["frac_cut"]) == [0, 0, 2]
    assert 2**30 <= np.abs(params["b_im_q"]).max() < 2**31


def test_an_ssm_b_past_what_fractional_bits_can_take_names_the_other_options():
    """The channel 2**6 further down and its b 2**6 larger: 8 bits over (the state
    scale follows b x, so a larger b alone would not do it); a mode keeps 12 fractional
    bits at least, 4 short, and 4 bits fewer of --state-bits make up the rest."""
    net = _ssm_net([*LARGE_B[:2], LARGE_B[2] * 2**6])
    x = _ssm_inputs([*SMALL_CHANNEL[:2], SMALL_CHANNEL[2] / 2**6])
    with pytest.raises(
        HardwareRuleError,
        match=r"population 'ssm': mode 2's b_q .* is outside int32 by 8 bit\(s\), 4 more "
        r"than its fractional bits can give \(12 at least\); each bit fewer of --state-bits "
        r"or more of --act-bits halves it",
    ):
        quantize(net, x)
    qnet, _ = quantize(net, x, QuantConfig(state_bits=20))
    assert list(qnet.population("ssm").params["frac_cut"]) == [0, 0, 4]


@pytest.mark.parametrize("tau", [0.0, 1e-5, 1.001])
def test_a_lif_decay_outside_its_12_bits_names_tau_not_the_bit_widths(tau: float) -> None:
    net = side_by_side([pop("lif", "lif", 1, tau=tau, vth=1.0)], numeric="float64")
    x = np.random.default_rng(0).normal(size=(2, 8, 1))
    with pytest.raises(HardwareRuleError, match=r"tau = .* gives dv = -?\d+, outside \[0, 4095\]"):
        quantize(net, x)


def test_a_lif_membrane_past_its_state_names_the_membrane_not_the_input() -> None:
    # tau near 1 under a steady negative input: the membrane (never reset) reaches some
    # 180 times the input, which bounds the scale; the refusal said "its input reaches
    # 200 ..., beyond what a 16-bit input holds", true of neither (helper-83).
    net = side_by_side([pop("lif", "lif", 1, tau=0.999, vth=1.0)], numeric="float64")
    x = np.full((2, 200, 1), -200.0)
    with pytest.raises(
        HardwareRuleError,
        match=r"population 'lif': its membrane's calibrated range reaches 3\.\d+e\+04 against a "
        r"threshold of 1 \(its input 200\), beyond what Lava's 24-bit LIF state holds with the "
        r"threshold at one unit or more and 2 headroom bits \(--headroom-bits\): ",
    ):
        quantize(net, x)


@pytest.mark.parametrize("gate", ["sigmoid", "hard-sigmoid"])
@pytest.mark.parametrize("peak", [1e-3, 1e-6])
def test_a_glu_of_tiny_inputs_keeps_its_table_inside_its_formats(gate: str, peak: float) -> None:
    # A GLU calibrated on inputs far below the gate's range (its projection's weights
    # 0.001 of a unit's in a spike-ssm, at the default widths) was refused: the table
    # from -8 started at pwl_x0 = -2**26, outside the 24-bit messages (helper-83).
    net = side_by_side([pop("glu", "glu", 2, {"gate": gate})], numeric="float64")
    x = np.random.default_rng(0).uniform(-peak, peak, size=(4, 16, 4))
    qnet, report = quantize(net, x)
    params = qnet.population("glu").params
    limit = 2 ** (qnet.formats.message_bits - 1) - 1
    assert -limit <= params["pwl_x0"] and params["pwl_shift"] <= 23
    q = simulate(qnet, x, record=["glu"], record_internals=True).traces
    scales = report.populations["glu"]
    a = q["glu.in"] * 2.0 ** scales["in_scale_log2"]
    g = 1 / (1 + np.exp(-a[..., 2:])) if gate == "sigmoid" else np.clip(a[..., 2:] / 6 + 0.5, 0, 1)
    expected = a[..., :2] * g
    out = q["glu"] * 2.0 ** scales["out_scale_log2"]
    assert np.abs(out - expected).max() <= 1e-3 * np.abs(expected).max()


def test_sources_lost_ignores_float_residue_and_counts_sparse_columns() -> None:
    """A column of 1e-16 beside weights of 2 and 4 (residue of composing two linear NIR
    nodes) was reported as an input channel lost (helper-87); a real one is."""
    from scipy import sparse as sp

    from snncompile.quantize.quantize import _sources_lost

    dense = np.array([[2.0, 5.55e-17, 1e-6], [4.0, 1.1e-16, 0.0]])
    stored = np.array([[2.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    assert _sources_lost(dense, dense.ravel(), stored.ravel()) == [2]
    matrix = sp.csr_matrix(dense)
    kept = np.array([2.0, 0.0, 0.0, 4.0, 0.0])  # matrix.data order: row by row
    assert _sources_lost(matrix, matrix.data, kept) == [2]


def _coherent_ssm_net(n: int) -> Netlist:
    """Float64: input -> n identical SSM modes fed by its one channel -> their sum (weights
    1, as an SSM's C feeds its activation) in an accumulator -> last-step readout. The
    modes move together, so the int32 sum of their messages is n times one's peak."""
    modes = pop("ssm", "ssm", n, a_re=np.full(n, 0.8), a_im=np.zeros(n), b_re=np.ones(n),
                b_im=np.zeros(n))  # fmt: skip
    syns = (
        Synapse("in->ssm", "in", "ssm", np.ones((n, 1))),
        Synapse("ssm->acc", "ssm", "acc", np.ones((1, n))),
        Synapse("acc->out", "acc", "out", np.eye(1)),
    )
    pops = (pop("in", "input", 1), modes, pop("acc", "accumulator", 1),
            Population("out", "readout", 1, attrs={"mode": "last"}))  # fmt: skip
    return Netlist(pops, syns, numeric="float64")


def _coherent_inputs() -> np.ndarray:
    return 1.0 + 0.1 * np.random.default_rng(0).normal(size=(4, 32, 1))


def test_a_wrapping_sum_narrows_its_sources_messages_not_its_destination() -> None:
    """32 modes' 24-bit states (peaks at 2**20.45) times mantissas of 128 sum to 2**32.45
    in ssm->acc: two bits narrower messages from the SSM (out_shift, its states
    unchanged) fit int32. The rounds gave the destination headroom instead until
    2026-12-07, which left the sum as it was, and refused (narrow --message-bits 24)."""
    net, x = _coherent_ssm_net(32), _coherent_inputs()
    qnet, report = quantize(net, x)
    ssm = report.populations["ssm"]
    assert ssm["message_headroom_bits"] == 2 and report.rounds == 3
    assert int(qnet.population("ssm").params["out_shift"]) == ssm["out_shift"] == 2
    assert ssm["out_scale_log2"] == ssm["state_scale_log2"] + 2
    assert ssm["headroom_bits"] == report.populations["acc"]["headroom_bits"] == 2
    assert "message_headroom_bits" not in report.populations["acc"]
    assert report.calibration_events == {}
    float_logits = simulate(net, x).logits
    error = np.abs(simulate(qnet, x).logits - float_logits).max()
    # Within the accumulator's 16-bit rounding and the messages' truncation: no wrap.
    assert error < 2 * 2.0 ** report.populations["acc"]["out_scale_log2"]


def test_a_sum_that_narrower_messages_cannot_fit_in_the_rounds_is_refused_with_them() -> None:
    """128 coherent modes need 4 bits narrower messages; four rounds take 3, and the
    refusal says each bit of the narrowing it advises adds to them: one bit is enough
    (it said "by more than the 3 bits", which asked for four; helper-92)."""
    with pytest.raises(HardwareRuleError) as refused:
        quantize(_coherent_ssm_net(128), _coherent_inputs())
    message = str(refused.value)
    assert "ssm->acc (" in message and "source kind ssm" in message
    assert message.endswith(
        "narrow --message-bits 24 below --state-bits 24 (the SSMs then send their states "
        "shifted) (each bit narrower adds to the 3 bits the calibration rounds took off "
        "those messages)"
    )
    quantize(_coherent_ssm_net(128), _coherent_inputs(), QuantConfig(message_bits=23))


def test_a_wrapping_sum_from_the_bias_is_refused_without_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bias's value is 2**(act_bits - 2), whatever the rounds do: at --act-bits 32 its
    sums wrap, and the refusal comes after the first calibration run (four until
    2026-12-07, each giving the destination a headroom bit that changed nothing)."""
    import snncompile.quantize.quantize as module

    runs: list[int] = []

    def counted(*args: object, **kwargs: object) -> object:
        runs.append(1)
        return simulate_in_parts(*args, **kwargs)

    simulate_in_parts = module.simulate_in_parts
    monkeypatch.setattr(module, "simulate_in_parts", counted)
    net = constant_netlist({"acc": np.array([3.0])})
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 8, 1))
    with pytest.raises(HardwareRuleError, match=r"bias->acc \(\d+ times; source kind bias\)"):
        quantize(net, x, QuantConfig(act_bits=32, message_bits=32))
    assert len(runs) == 1


def test_a_wrapping_constants_parts_are_named_as_one_entry() -> None:
    """Below 8-bit weights a constant is up to 9 synapses (its remainders), which wrap
    together: the refusal named each (dozens of entries at --weight-bits 2 on a bundled
    model); it names the first and counts the rest."""
    net = constant_netlist({"acc": np.array([3.0, -1.37, 0.61])})
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 8, 3))
    with pytest.raises(HardwareRuleError) as refused:
        quantize(net, x, QuantConfig(weight_bits=2, act_bits=32, message_bits=32))
    message = str(refused.value)
    assert re.search(
        r"bias->acc and \d+ more of its parts \(\d+ times; source kind bias\)", message
    )
    assert ".fine" not in message


def test_wrapping_sums_from_an_input_an_accumulator_and_a_glu_narrow_those_sources() -> None:
    """Each of 64 channels moving together, from the input, an accumulator and a GLU,
    wraps its int32 sum at --act-bits 24 unless 3 bits narrower: the rounds coarsen each
    source's message scale by 3 bits (an input's is its input_scale, which simulate and
    every target encode with), its headroom unchanged. Before 2026-12-07 the rounds gave
    the destination headroom, which moved no sum, and the model was refused."""
    net, x = wide_sums_netlist()
    qnet, report = quantize(net, x, QuantConfig(act_bits=24))
    pops = report.populations
    assert {name: p.get("message_headroom_bits") for name, p in pops.items()} == {
        "in": 3, "mid": 3, "gate": 3, "sum": None, "out": None
    }  # fmt: skip
    assert report.rounds == 4 and report.calibration_events == {}
    assert all(p["headroom_bits"] == 2 for p in pops.values())
    # The value's own scale (its peak, 2 headroom bits, in act_bits) and 3 bits more.
    value_log2 = math.ceil(math.log2(np.abs(x).max() * 4 / (2**23 - 1)))
    assert pops["in"]["out_scale_log2"] == pops["mid"]["out_scale_log2"] == value_log2 + 3
    assert qnet.input_scale == 2.0 ** pops["in"]["out_scale_log2"]
    gate = qnet.population("gate").params
    assert (
        float(gate["out_shift"])
        == 12 + pops["gate"]["out_scale_log2"] - pops["gate"]["in_scale_log2"]
    )
    float_logits = simulate(net, x).logits
    error = np.abs(simulate(qnet, x).logits - float_logits).max(axis=0)
    # Input and accumulator rows: 64 messages rounded by half a unit each, and the sum's
    # floor shift (one unit of it); a wrapped sum would be 2**32 units off.
    unit = 2.0 ** np.array([pops[s]["out_scale_log2"] for s in ("in", "sum")])
    assert error[:2].max() <= WIDE_SUM_FAN_IN * unit[0] / 2 + unit[1]
    assert error[2] < 1e-3 * np.abs(float_logits[:, 2]).max()  # the GLU's table, no wrap


def test_a_peak_of_a_power_of_two_keeps_its_headroom_inside_the_range():
    """A graded scale 2**k is the smallest with peak 2**headroom_bits / 2**k <= 2**(act_bits
    - 1) - 1: a peak of exactly 1.0 at the defaults needs 4 / 2**k <= 32767, so k = -12
    (4.0 at 16384). 2**-13 would put 4.0 at 32768, one past the 16-bit range."""
    net = side_by_side([pop("acc", "accumulator", 1)], numeric="float64")
    x = np.array([[[1.0], [-0.5], [0.25]]])
    qnet, report = quantize(net, x)
    assert qnet.input_scale == 2.0**-12
    assert report.populations["acc"]["in_scale_log2"] == -12


def test_an_ssms_coefficients_round_to_nearest_on_their_scales():
    """a_q = round(a 2**F) and b_q = round(b 2**(F + in - state)) (docs/numerics.md, ssm:
    the input's scale 2**in and the states' 2**state, from the report), signs kept."""
    net, x = _ssm_net([1.0, -0.7, 0.3], b_im=[0.45, -0.2, 0.8]), _ssm_inputs([1.0, 1.0, 1.0])
    qnet, report = quantize(net, x)
    params, float_params = qnet.population("ssm").params, net.population("ssm").params
    scales = report.populations["ssm"]
    frac = qnet.formats.ssm_frac_bits
    gain = 2.0 ** (frac + scales["in_scale_log2"] - scales["state_scale_log2"])
    assert not params["frac_cut"].any()
    for name, scale in (("a_re", 2.0**frac), ("a_im", 2.0**frac), ("b_re", gain), ("b_im", gain)):
        exact = float_params[name] * scale
        np.testing.assert_array_equal(params[f"{name}_q"], np.rint(exact), err_msg=name)
        assert np.any(np.rint(exact) != np.trunc(exact)), name  # not vacuous


def test_a_glu_table_has_knots_every_quarter_over_minus_8_to_8():
    """Sigmoid's table: knots spaced 0.25 over [-8, 8] (docs/numerics.md, glu), 65 of
    them, on an input scale 2**in that divides 0.25: pwl_x0 2**in = -8, 2**(pwl_shift +
    in) = 0.25, and each entry round(sigmoid(knot) 4096)."""
    net = side_by_side([pop("glu", "glu", 2, {"gate": "sigmoid"})], numeric="float64")
    x = np.random.default_rng(0).uniform(-3.0, 3.0, size=(4, 16, 4))
    qnet, report = quantize(net, x)
    params = qnet.population("glu").params
    unit = 2.0 ** report.populations["glu"]["in_scale_log2"]
    assert unit <= 0.25
    assert float(params["pwl_x0"]) * unit == -8.0
    assert 2.0 ** float(params["pwl_shift"]) * unit == 0.25
    knots = -8.0 + 0.25 * np.arange(65)
    expected = np.rint(4096 / (1 + np.exp(-knots)))
    np.testing.assert_array_equal(params["pwl_table_q12"], expected)


def test_a_subtractive_reset_rounds_vsub_to_nearest():
    """cuba_lif_sub: vsub_int = round(vsub T) with T = vth_int / vth (docs/numerics.md):
    snnTorch's delayed reset subtracts vth / beta = 1 / 0.7 thresholds."""
    vsub = 1 / 0.7
    neuron = pop("sub", "cuba_lif_sub", 2, alpha_u=0.5, alpha_v=0.7, vth=1.0, vsub=vsub)
    net = side_by_side([neuron], numeric="float64")
    x = np.random.default_rng(0).uniform(0.0, 0.5, size=(4, 16, 2))
    qnet, _ = quantize(net, x)
    params = qnet.population("sub").params
    threshold = float(params["vth"])
    assert float(params["vsub"]) == round(vsub * threshold)
    assert round(vsub * threshold) != math.floor(vsub * threshold)  # not vacuous


def test_message_bits_below_the_act_bits_default_says_to_pass_act_bits() -> None:
    """QuantConfig(message_bits=12) said only 'act_bits must be in [2, message_bits = 12],
    got 16', a value the caller never passed."""
    from snncompile.errors import UsageError

    with pytest.raises(
        UsageError, match=r"got 16 \(act_bits defaults to 16\): pass act_bits=12 or less$"
    ):
        QuantConfig(message_bits=12)
    with pytest.raises(UsageError) as info:
        QuantConfig(message_bits=12, act_bits=14)
    assert str(info.value) == "act_bits must be in [2, message_bits = 12], got 14"
    assert QuantConfig(message_bits=12, act_bits=12).act_bits == 12
