"""The quantizer's parameter formulas (docs/numerics.md, "How a float model maps to
integers"), checked value by value on a small float64 netlist: the end-to-end tests
measure accuracy and agreement, which a rounding direction hardly moves."""

from __future__ import annotations

import numpy as np
from netlists import pop, side_by_side

from snncompile.quantize.quantize import quantize


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
