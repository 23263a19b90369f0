"""Netlist validation: every broken rule is refused with a message naming it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import sparse

from snncompile.ir.netlist import (
    Formats,
    Netlist,
    Population,
    Synapse,
    current_reach,
    first_difference,
    input_bound,
    synapse_input_bound,
    weight_grid,
)
from snncompile.ir.ops import InvalidGraphError


def _net(weight, *, numeric="int", params=None, kind="accumulator", fmt=None, delay=0):
    pops = (
        Population("in", "input", 2),
        Population("p", kind, 2, params=params or {}),
        Population("out", "readout", 2, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->p", "in", "p", np.asarray(weight, float), delay=delay),
        Synapse("p->out", "p", "out", np.eye(2)),
    )
    return Netlist(pops, syns, numeric=numeric, formats=fmt or Formats())


def test_valid_netlist_counts_and_latency():
    net = _net([[2, -4], [254, -256]])
    assert net.latency() == {"in": 0, "p": 1, "out": 2}
    assert net.counts() == {"input": 2, "accumulator": 2, "readout": 2, "synapses": 8}


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ([[3, -4], [0, 0]], "off the 8-bit grid"),  # odd value in a mixed-sign matrix
        ([[256, 0], [0, 0]], "off the 8-bit grid"),  # single-sign range is [0, 255]
        ([[0.5, 0], [0, 0]], "must be integers"),
        ([[1, 0, 0], [0, 0, 0]], "weight shape"),
        ([[np.nan, 0], [0, 0]], "NaN"),
    ],
)
def test_bad_weights_refused(weight, message):
    with pytest.raises(InvalidGraphError, match=message):
        _net(weight)


def test_weight_grid_follows_lava_sign_modes():
    assert weight_grid(np.array([0, 5]), 8) == (0, 255, 1)
    assert weight_grid(np.array([0, -5]), 8) == (-255, 0, 1)
    assert weight_grid(np.array([-1, 5]), 8) == (-256, 254, 2)
    assert weight_grid(np.array([-1, 5]), 6) == (-256, 254, 8)


def test_parameter_out_of_range_names_it():
    params = {"decay": np.array([0, 5000]), "theta": np.array([1, 1]), "rho": np.array([0, 0])}
    with pytest.raises(InvalidGraphError, match=r"'p'.*decay = 5000 is outside \[0, 4096\]"):
        _net(np.eye(2), kind="reset_refractory", params=params)


def test_missing_parameters_and_unknown_kind():
    with pytest.raises(InvalidGraphError, match="missing"):
        _net(np.eye(2), kind="lif", params={"du": np.array(1)})
    with pytest.raises(InvalidGraphError, match="unknown kind"):
        _net(np.eye(2), kind="nonsense")


def test_negative_delay_and_cycles_refused():
    with pytest.raises(InvalidGraphError, match="delay"):
        _net(np.eye(2), delay=-1)
    pops = (
        Population("in", "input", 1),
        Population("a", "accumulator", 1),
        Population("b", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    one = np.ones((1, 1))
    syns = (
        Synapse("in->a", "in", "a", one),
        Synapse("a->b", "a", "b", one),
        Synapse("b->a", "b", "a", one),
        Synapse("b->out", "b", "out", one),
    )
    with pytest.raises(InvalidGraphError, match="cycle"):
        Netlist(pops, syns, numeric="int")


def test_damaged_sizes_and_scales_refused():
    """Values a damaged file could carry: refused before any buffer is sized from them."""
    with pytest.raises(InvalidGraphError, match=r"delay must be in \[0, 65536\], got 1000000000"):
        _net(np.eye(2), delay=10**9)
    _net(np.eye(2), delay=1 << 16)  # the bound itself is allowed
    net = _net(np.eye(2))
    for change, message in (
        ({"ticks_per_step": 10**9}, "ticks_per_step must be an integer in"),
        (
            {"input_scale": 0.0},
            r"input_scale must be a positive number within 2\*\*\+-200, got 0.0",
        ),
        ({"input_scale": float("nan")}, "input_scale must be a positive number within"),
        ({"output_scale": float("inf")}, "output_scale must be a positive number within"),
        ({"output_scale": 1e308}, "output_scale must be a positive number within"),
        ({"input_scale": 5e-324}, "input_scale must be a positive number within"),
    ):
        fields = {"formats": net.formats, "input_scale": 1.0, "output_scale": 1.0, **change}
        with pytest.raises(InvalidGraphError, match=message):
            Netlist(net.populations, net.synapses, numeric="int", **fields)


def test_float_netlist_accepts_real_weights():
    net = _net([[0.3, -1.7], [2.5, 0.0]], numeric="float64")
    assert net.numeric == "float64"


@pytest.mark.parametrize(
    "stored",
    [
        np.asarray,
        sparse.csr_matrix,
        sparse.csc_matrix,
        sparse.coo_matrix,
        sparse.csr_array,
        sparse.csc_array,
        lambda w: sparse.bsr_matrix(w, blocksize=(2, 1)),
    ],
)
def test_max_row_nnz_counts_per_destination_in_any_format(stored):
    """The validator's sum bound uses the largest fan-in; a CSC's indptr counts columns."""
    weight = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    assert Synapse("s", "a", "b", stored(weight)).max_row_nnz == 3


@pytest.mark.parametrize("exp", [-33, 33, 64, -64])
def test_weight_exponent_beyond_32_refused(exp):
    """Shifts of 64 or more differ between numpy and compiled code; an int32 sum shifted
    by 32 still fits int64, so [-32, 32] is the range (8-bit messages keep the summed
    input below 2**53 at 32)."""
    with pytest.raises(InvalidGraphError, match=f"weight_exp must be in \\[-32, 32\\], got {exp}"):
        _net_with_exp(exp)
    _net_with_exp(32 if exp > 0 else -32)  # the limits themselves are fine


def _net_with_exp(exp: int, message_bits: int = 8) -> Netlist:
    pops = (
        Population("in", "input", 2),
        Population("out", "readout", 2, attrs={"mode": "last"}),
    )
    syn = Synapse("in->out", "in", "out", np.eye(2), exp)
    return Netlist(pops, (syn,), numeric="int", formats=Formats(message_bits=message_bits))


def test_first_difference_names_what_differs_and_ignores_meta():
    from dataclasses import replace

    net = _net([[2, -4], [254, -256]], delay=1)
    same = replace(_net([[2, -4], [254, -256]], delay=1), meta={"note": "described only"})
    assert first_difference(net, same) is None
    sparse_twin = replace(
        net, synapses=(replace(net.synapses[0], weight=sparse.csr_matrix(net.synapses[0].weight)),
                       net.synapses[1]),
    )  # fmt: skip
    assert first_difference(net, sparse_twin) is None  # the same weights, stored sparse
    changes = {
        "weights differ": _net([[2, -4], [254, -254]], delay=1),
        "ends, exponent, delay or lag differ": _net([[2, -4], [254, -256]], delay=2),
        "input_scale 1.0 != 2.0": replace(net, input_scale=2.0),
        "dt_s None != 0.001": replace(net, dt_s=1e-3),
        "kind, size or settings differ": _net([[2, -4], [254, -256]], delay=1, kind="heaviside"),
    }
    for message, other in changes.items():
        found = first_difference(net, other)
        assert found is not None and message in found, (message, found)
    rr = {"decay": np.array([2048, 0]), "theta": np.array([5, 5]), "rho": np.array([1, 1])}
    a = _net([[2, -4], [254, -256]], kind="reset_refractory", params=rr)
    b = _net(
        [[2, -4], [254, -256]], kind="reset_refractory", params={**rr, "rho": np.array([1, 2])}
    )
    assert first_difference(a, b) == "population 'p': parameters differ"


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("sign", ["mixed", "positive", "negative"])
def test_quantized_weights_stay_on_the_grid_at_every_width(bits: int, sign: str) -> None:
    """At 2 bits the mixed-sign grid is multiples of 128 in [-256, 254]: the largest
    weight must land on 128, not be clipped to 254 (off the grid: the netlist's validation
    refuses exactly what this asserts against)."""
    from snncompile.quantize.quantize import quantize_weights

    values = np.random.default_rng(bits).normal(size=(6, 5))
    values = {"mixed": values, "positive": np.abs(values), "negative": -np.abs(values)}[sign]
    mant, exp = quantize_weights(values, bits)
    low, high, step = weight_grid(values, bits)
    assert np.all(mant % step == 0) and low <= mant.min() and mant.max() <= high
    assert np.abs(mant).max() > 0 and np.abs(mant * 2.0**exp - values).max() <= 2.0**exp * step


@pytest.mark.parametrize(("fan_in_log2", "refused"), [(13, False), (14, True)])
def test_fan_in_past_exact_float_sums_is_refused(fan_in_log2: int, refused: bool) -> None:
    """The simulators sum integer products in float64: fan-in * 2^8 * 2^31 (32-bit graded
    messages) must stay below 2^53, so 2^14 inputs are refused and 2^13 taken."""
    fan_in = 2**fan_in_log2
    pops = (
        Population("in", "input", fan_in),
        Population("p", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->p", "in", "p", sparse.csr_matrix(np.ones((1, fan_in)))),
        Synapse("p->out", "p", "out", np.eye(1)),
    )
    fmt = Formats(message_bits=32, state_bits=32)
    if refused:
        with pytest.raises(InvalidGraphError, match=f"fan-in {fan_in} is too large to sum exactly"):
            Netlist(pops, syns, numeric="int", formats=fmt)
    else:
        assert Netlist(pops, syns, numeric="int", formats=fmt).counts()["synapses"] == fan_in + 1


@pytest.mark.parametrize(("max_rounds", "rounds", "headroom", "saturated"),
                         [(4, 3, 4, False), (2, 2, 3, True), (1, 1, 2, True)])  # fmt: skip
def test_saturating_calibration_adds_headroom_round_by_round(
    monkeypatch: pytest.MonkeyPatch, max_rounds: int, rounds: int, headroom: int, saturated: bool
) -> None:
    """The readout's range is under-reported 16x (4 bits; headroom_bits gives 2): each
    round that saturates adds one bit to the population it names, up to max_rounds."""
    import snncompile.quantize.quantize as qz

    pops = (
        Population("in", "input", 2),
        Population("p", "accumulator", 2),
        Population("out", "readout", 2, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->p", "in", "p", np.array([[1.0, 0.5], [0.25, 1.0]])),
        Synapse("p->out", "p", "out", np.eye(2)),
    )
    net = Netlist(pops, syns, numeric="float64", formats=Formats())
    real = qz.calibration_ranges

    def under_reported(net: Netlist, x: np.ndarray) -> dict[str, float]:
        ranges = real(net, x)
        return {**ranges, "out.acc": ranges["out.acc"] / 16}

    monkeypatch.setattr(qz, "calibration_ranges", under_reported)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 10, 2))
    _, report = qz.quantize(net, x, qz.QuantConfig(max_rounds=max_rounds))
    assert report.rounds == rounds
    assert report.populations["out"]["headroom_bits"] == headroom
    assert report.populations["p"]["headroom_bits"] == 2
    assert bool(report.calibration_events) == saturated
    assert set(report.calibration_events) <= {"out"}


# ---- input bounds and sparse entries (docs/numerics.md, "Input bounds") ---------------


def _relay(exps: list[int], weight: float = 255.0, message_bits: int = 24) -> Netlist:
    """input (2 values) -> accumulator through one synapse per exponent -> readout."""
    pops = (
        Population("in", "input", 2),
        Population("acc", "accumulator", 1),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    syns = [Synapse(f"in->acc.{i}", "in", "acc", np.full((1, 2), weight), e)
            for i, e in enumerate(exps)]  # fmt: skip
    syns.append(Synapse("acc->out", "acc", "out", np.ones((1, 1))))
    return Netlist(pops, tuple(syns), "int", Formats(message_bits=message_bits))


def test_a_summed_input_that_could_reach_2_53_is_refused():
    """|W @ m| of 510 * (2^23 - 1) wraps to at most 2^31; shifted by 21 it is 2^52,
    by 22 (or two synapses at 21) 2^53, which float64 (Lava's recorded traces) cannot
    hold exactly and the overflowing sums of larger exponents wrapped int64 silently."""
    net = _relay([21])
    assert input_bound(net, "acc") == 2**52
    for exps in ([22], [21, 21], [32, 32]):
        with pytest.raises(InvalidGraphError, match=r"population 'acc': its summed input can "
                           r"reach .* not below 2\*\*53"):  # fmt: skip
            _relay(exps)
    _relay([21, 20])  # 1.5 * 2^52


def test_synapse_input_bound_rounds_a_right_shift_away_from_zero():
    """floor_shift(-3, -1) = -2: the bound of |W @ m| = 3 shifted right by one is 2."""
    src = Population("s", "heaviside", 1)
    syn = Synapse("s->d", "s", "d", np.array([[3.0]]), weight_exp=-1)
    assert synapse_input_bound(syn, src, Formats()) == 2
    assert synapse_input_bound(replace(syn, weight_exp=2), src, Formats()) == 12
    graded = Population("g", "accumulator", 2)  # messages up to 2^23 - 1
    one_row = replace(syn, weight=np.array([[255.0]]))
    assert synapse_input_bound(one_row, graded, Formats()) == -(-255 * (2**23 - 1) // 2)
    wrapped = replace(syn, weight=np.array([[255.0, 255.0]]))  # 510 (2^23 - 1) > 2^31
    assert synapse_input_bound(wrapped, graded, Formats()) == 2**30


def _after_input(
    pop: Population, weight: np.ndarray, exp: int = 0, numeric: str = "int"
) -> Netlist:
    """input -> pop (weight, exp) -> readout: pop's summed input bound is set by weight."""
    pops = (
        Population("in", "input", weight.shape[1]),
        pop,
        Population("out", "readout", pop.size, attrs={"mode": "last"}),
    )
    syns = (
        Synapse(f"in->{pop.name}", "in", pop.name, weight, exp),
        Synapse(f"{pop.name}->out", pop.name, "out", np.eye(pop.size)),
    )
    return Netlist(pops, syns, numeric)


def _ssm_after(gain: int, exp: int) -> Netlist:
    params = {"a_re_q": [2.0**16], "a_im_q": [0.0], "b_re_q": [float(gain)], "b_im_q": [0.0],
              "out_shift": 0.0, "frac_cut": [0.0]}  # fmt: skip
    ssm = Population("ssm", "ssm", 1, {k: np.array(v) for k, v in params.items()})
    return _after_input(ssm, np.array([[255.0]]), exp)


def test_an_ssm_whose_update_could_leave_int64_is_refused_at_the_exact_limit():
    """2^(F+1) (2^(S-1) - 1) + |b_q| A <= 2^63 - 1 with A the input bound."""
    exp = 10
    bound = input_bound(_ssm_after(1, exp), "ssm")
    assert bound == 255 * (2**23 - 1) * 2**exp
    largest = (2**63 - 1 - 2**17 * (2**23 - 1)) // bound
    _ssm_after(largest, exp)
    _ssm_after(-largest, exp)
    with pytest.raises(InvalidGraphError, match="population 'ssm': a_re_q re - a_im_q im"):
        _ssm_after(largest + 1, exp)
    with pytest.raises(InvalidGraphError, match="beyond int64"):
        _ssm_after(-(largest + 1), exp)


@pytest.mark.parametrize("numeric", ["int", "float64"])
def test_a_glu_gate_no_target_knows_is_refused(numeric: str) -> None:
    # An int GLU computes from its table, but its gate attr is what inspect and the NIR
    # export report; only the float netlist's was checked (helper-63).
    params = (
        {"pwl_x0": 0.0, "pwl_shift": 2.0, "pwl_table_q12": [0.0, 4095.0], "out_shift": 12.0}
        if numeric == "int"
        else {}
    )
    for gate, refused in (("sigmoid", False), ("hard-sigmoid", False), ("tanh", True)):
        glu = Population("glu", "glu", 1, {k: np.asarray(v) for k, v in params.items()},
                         {"gate": gate})  # fmt: skip
        if not refused:
            _after_input(glu, np.full((2, 2), 1.0), numeric=numeric)
            continue
        with pytest.raises(InvalidGraphError, match="glu gate 'tanh' is unknown"):
            _after_input(glu, np.full((2, 2), 1.0), numeric=numeric)


def test_a_glu_whose_gated_product_could_leave_int64_is_refused():
    """a0 g with g up to the table's largest Q12 entry: 4096 * 2^51 is 2^63."""

    def glu(exp: int, top: float, out_shift: float = 12.0) -> Netlist:
        params = {"pwl_x0": 0.0, "pwl_shift": 2.0, "pwl_table_q12": [0.0, top],
                  "out_shift": out_shift}  # fmt: skip
        pop = Population("glu", "glu", 1, {k: np.asarray(v) for k, v in params.items()},
                         {"gate": "sigmoid"})  # fmt: skip
        return _after_input(pop, np.full((2, 2), 255.0), exp)

    glu(20, 4095.0)  # 2^31 * 2^20 * 4095 < 2^63
    # A negative out_shift is a left shift of a0 g: 2^31 * 4096 * 2^20 is 2^63 again.
    glu(0, 4096.0, out_shift=-19)
    with pytest.raises(InvalidGraphError, match="beyond int64"):
        glu(0, 4096.0, out_shift=-20)
    with pytest.raises(InvalidGraphError, match=r"population 'glu': a0 g \(shifted by out_sh"):
        glu(20, 4096.0)  # exactly 2^63


@pytest.mark.parametrize("fmt", ["csr", "coo"])
def test_a_sparse_weight_storing_an_entry_twice_is_refused(fmt):
    """Two stored 200s at one position act as 400, off the grid Lava clips to (it sent
    255 where the reference and ONNX sent 400), and the grid check saw only 200s."""
    if fmt == "csr":
        weight = sparse.csr_matrix((np.array([200.0, 200.0]), np.array([0, 0]), np.array([0, 2])),
                                   shape=(1, 2))  # fmt: skip
    else:
        weight = sparse.coo_matrix((np.array([200.0, 200.0]), (np.array([0, 0]), np.array([1, 1]))),
                                   shape=(1, 2))  # fmt: skip
    pops = (
        Population("in", "input", 2),
        Population("out", "readout", 1, attrs={"mode": "last"}),
    )
    with pytest.raises(InvalidGraphError, match="synapse 'in->out': sparse weight stores an "
                       "entry more than once"):  # fmt: skip
        Netlist(pops, (Synapse("in->out", "in", "out", weight),), "int")
    # an explicit zero is a stored entry, not a duplicate
    zero = sparse.csr_matrix((np.array([200.0, 0.0]), np.array([0, 1]), np.array([0, 2])),
                             shape=(1, 2))  # fmt: skip
    Netlist(pops, (Synapse("in->out", "in", "out", zero),), "int")


@pytest.mark.parametrize(
    ("kind", "params", "refused"),
    [
        ("lif", {"tau": 0.5, "vth": 0.0}, "vth must be > 0"),  # s = [v >= vth]
        ("lif", {"tau": 0.5, "vth": 1e-9}, None),
        ("cuba_lif", {"alpha_u": 0.5, "alpha_v": 0.5, "vth": -1e-9}, "vth must be >= 0"),
        ("cuba_lif", {"alpha_u": 0.5, "alpha_v": 0.5, "vth": 0.0}, None),  # s = [v > vth]
        ("reset_refractory", {"beta": [0.5], "theta": [-1e-9], "rho": [0.0]}, "theta must be >= 0"),
        ("reset_refractory", {"beta": [0.5], "theta": [0.0], "rho": [0.0]}, None),  # m > theta
    ],
)
def test_a_float_threshold_that_spikes_at_rest_is_refused(kind, params, refused):
    """A float lif with vth = 0 spiked at rest, before any data reached it, and the readout
    counted those spikes: the latency shift was no longer exact (logits 1.33 for 1.0)."""
    neuron = Population("n", kind, 1, {k: np.asarray(v, dtype=float) for k, v in params.items()})
    if refused is None:
        _after_input(neuron, np.ones((1, 1)), numeric="float64")
        return
    with pytest.raises(InvalidGraphError, match=f"population 'n': {refused} .*spike at rest"):
        _after_input(neuron, np.ones((1, 1)), numeric="float64")


def _lif_after(exp: int, du: int) -> Netlist:
    params = {"du": float(du), "dv": 0.0, "vth": 100.0}
    lif = Population("lif", "lif", 1, {k: np.asarray(v) for k, v in params.items()})
    return _after_input(lif, np.array([[255.0]]), exp)


def test_a_lif_current_that_could_pass_2_53_or_int64_is_refused():
    """u wraps only once, so with du < 4095 it accumulates up to 64 A 4096 / (du + 1);
    u (4095 - du) then overflowed int64 (exp 16, du 100: the reference's spikes left
    numerics.md at step 17), and above 2^53 Lava's float64 records of u lose bits."""
    net = _lif_after(0, 4095)
    bound = input_bound(net, "lif")
    assert current_reach(net.population("lif"), bound) == 64 * bound  # nothing kept
    assert current_reach(_lif_after(0, 0).population("lif"), bound) == 64 * 4096 * bound
    _lif_after(16, 4095)  # u = a << 6 < 2^53 each step
    with pytest.raises(InvalidGraphError, match="population 'lif': its current u can reach"):
        _lif_after(16, 100)
    # below 2^53 but its product u (4095 - du) is not inside int64
    exp = 12
    reach = current_reach(_lif_after(exp, 4095).population("lif"), 255 * (2**23 - 1) * 2**exp)
    du = next(d for d in range(4095) if -(-reach * 4096 // (d + 1)) < 2**53)
    with pytest.raises(InvalidGraphError, match=r"u \(4095 - du\) can reach .* beyond int64"):
        _lif_after(exp, du)
