"""Netlist validation: every broken rule is refused with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from snncompile.ir.netlist import (
    Formats,
    Netlist,
    Population,
    Synapse,
    first_difference,
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
    by 32 still fits int64, so [-32, 32] is the range."""
    with pytest.raises(InvalidGraphError, match=f"weight_exp must be in \\[-32, 32\\], got {exp}"):
        _net_with_exp(exp)
    _net_with_exp(32 if exp > 0 else -32)  # the limits themselves are fine


def _net_with_exp(exp: int) -> Netlist:
    pops = (
        Population("in", "input", 2),
        Population("out", "readout", 2, attrs={"mode": "last"}),
    )
    return Netlist(pops, (Synapse("in->out", "in", "out", np.eye(2), exp),), numeric="int")


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
