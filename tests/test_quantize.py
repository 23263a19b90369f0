"""The quantizer's parameter formulas (docs/numerics.md, "How a float model maps to
integers"), checked value by value on a small float64 netlist: the end-to-end tests
measure accuracy and agreement, which a rounding direction hardly moves."""

from __future__ import annotations

import numpy as np
import pytest
from netlists import CANCELLING, cancelling_inputs, constant_netlist, pop, side_by_side

from snncompile.errors import HardwareRuleError
from snncompile.quantize.quantize import quantize
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


def test_a_constant_within_its_destination_range_keeps_one_synapse():
    """Ordinary biases (as in every bundled model) stay one synapse on one grid."""
    constant = np.array([0.37, -0.81, 0.123, 0.9])
    x = np.random.default_rng(0).normal(size=(8, 16, constant.size))
    qnet, _ = quantize(constant_netlist({"acc": constant}), x)
    assert [s.name for s in qnet.synapses if s.src == "bias"] == ["bias->acc"]


@pytest.mark.parametrize("tau", [0.0, 1e-5, 1.001])
def test_a_lif_decay_outside_its_12_bits_names_tau_not_the_bit_widths(tau: float) -> None:
    net = side_by_side([pop("lif", "lif", 1, tau=tau, vth=1.0)], numeric="float64")
    x = np.random.default_rng(0).normal(size=(2, 8, 1))
    with pytest.raises(HardwareRuleError, match=r"tau = .* gives dv = -?\d+, outside \[0, 4095\]"):
        quantize(net, x)
