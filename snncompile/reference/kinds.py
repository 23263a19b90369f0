"""Per-step update of each compartment kind, in both numeric modes (docs/numerics.md).

Every function takes the population, its state dict (arrays (B, size), updated in
place), the summed synaptic input `a` (B, input width) and an Events counter, and
returns the messages the population sends this step. Int mode works on int64 arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snncompile.ir.netlist import Formats, Population

LIF_STATE_BITS = 24  # Lava's bit-accurate LIF has 24-bit u and v whatever the formats say


@dataclass
class Events:
    """Saturation, wrap and overflow counts per population (and per synapse)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, where: str, n: int) -> None:
        if n:
            self.counts[where] = self.counts.get(where, 0) + int(n)


def tz_shift(x: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """x / 2**n rounded toward zero (sign-magnitude shift, as Lava's decays); n < 0 shifts
    left. An array n (one per compartment) must be >= 0."""
    if np.ndim(n) == 0 and n < 0:
        return x << -n
    return np.sign(x) * (np.abs(x) >> n)


def saturate(x: np.ndarray, bits: int, events: Events, where: str) -> np.ndarray:
    """Clip to the symmetric signed range +-(2**(bits-1) - 1), counting clipped values."""
    limit = (1 << (bits - 1)) - 1
    if x.size == 0 or (x.max() <= limit and x.min() >= -limit):
        return x
    clipped = np.clip(x, -limit, limit)
    events.add(where, np.count_nonzero(clipped != x))
    return clipped


def zeros_state(pop: Population, batch: int, numeric: str) -> dict[str, np.ndarray]:
    dtype = np.int64 if numeric == "int" else np.float64
    return {name: np.zeros((batch, pop.size), dtype) for name in pop.compartment.states}


Step = Callable[[Population, dict, np.ndarray, Formats, Events], np.ndarray]


# ---- int mode ----------------------------------------------------------------------


def _accumulator_int(pop, state, a, fmt, ev):
    return saturate(a, fmt.message_bits, ev, pop.name)


def _ssm_int(pop, state, a, fmt, ev):
    ar, ai = pop.params["a_re_q"].astype(np.int64), pop.params["a_im_q"].astype(np.int64)
    br, bi = pop.params["b_re_q"].astype(np.int64), pop.params["b_im_q"].astype(np.int64)
    re, im = state["re"], state["im"]
    frac = fmt.ssm_frac_bits - pop.params["frac_cut"].astype(np.int64)  # per mode, >= 0
    # One rounding per step: the whole Q(frac) sum is shifted once.
    new_re = tz_shift(ar * re - ai * im + br * a, frac)
    new_im = tz_shift(ai * re + ar * im + bi * a, frac)
    state["re"] = saturate(new_re, fmt.state_bits, ev, pop.name)
    state["im"] = saturate(new_im, fmt.state_bits, ev, pop.name)
    sent = tz_shift(state["re"], int(pop.params["out_shift"]))
    return saturate(sent, fmt.message_bits, ev, pop.name)


def _reset_refractory_int(pop, state, a, fmt, ev):
    decay = pop.params["decay"].astype(np.int64)
    theta = pop.params["theta"].astype(np.int64)
    rho = pop.params["rho"].astype(np.int64)
    m = saturate(tz_shift(state["v"] * (4096 - decay), 12) + a, fmt.state_bits, ev, pop.name)
    spikes = (m > theta).astype(np.int64)
    state["v"] = saturate(m - (theta + rho) * spikes, fmt.state_bits, ev, pop.name)
    return spikes


def _lava_lif_int(pop: Population, state: dict, a: np.ndarray, ev: Events, subtract: bool):
    du, dv, vth = (int(pop.params[k]) for k in ("du", "dv", "vth"))
    half = 1 << (LIF_STATE_BITS - 1)
    # Current: Lava keeps du + 1 (so du = 4095 clears it) and wraps once at 24 bits;
    # its wrap test is `> 2**23` then `<= -2**23` on the unwrapped value.
    current = tz_shift(state["u"] * (4096 - (du + 1)), 12) + (a << 6)
    wrapped = np.where(current > half, current - 2 * half, current)
    wrapped = np.where(wrapped <= -half, current + 2 * half, wrapped)
    ev.add(pop.name, np.count_nonzero(wrapped != current))
    state["u"] = wrapped
    voltage = tz_shift(state["v"] * (4096 - dv), 12) + wrapped
    voltage = saturate(voltage, LIF_STATE_BITS, ev, pop.name)
    spikes = voltage > (vth << 6)
    # Subtractive reset: voltage > vth << 6 >= 0 where it applies and 0 <= vsub < 2**17,
    # so the result lies in (-2**23, voltage] and needs no saturation.
    reset = voltage - (int(pop.params["vsub"]) << 6) if subtract else 0
    state["v"] = np.where(spikes, reset, voltage)
    return spikes.astype(np.int64)


def _lif_int(pop, state, a, fmt, ev):
    return _lava_lif_int(pop, state, a, ev, subtract=False)


def _cuba_lif_sub_int(pop, state, a, fmt, ev):
    return _lava_lif_int(pop, state, a, ev, subtract=True)


def _cuba_lif_float(pop, state, a, fmt, ev):
    # Current first, then the voltage from the new current (as Lava's LIF and snnTorch).
    state["u"] = float(pop.params["alpha_u"]) * state["u"] + a
    voltage = float(pop.params["alpha_v"]) * state["v"] + state["u"]
    spikes = voltage > float(pop.params["vth"])
    state["v"] = np.where(spikes, 0.0, voltage)
    return spikes.astype(np.float64)


def _cuba_lif_sub_float(pop, state, a, fmt, ev):
    state["u"] = float(pop.params["alpha_u"]) * state["u"] + a
    voltage = float(pop.params["alpha_v"]) * state["v"] + state["u"]
    spikes = voltage > float(pop.params["vth"])
    state["v"] = np.where(spikes, voltage - float(pop.params["vsub"]), voltage)
    return spikes.astype(np.float64)


def _heaviside(pop, state, a, fmt, ev):
    return (a > 0).astype(a.dtype)


def _glu_int(pop, state, a, fmt, ev):
    n = pop.size
    table = pop.params["pwl_table_q12"].astype(np.int64)
    shift = int(pop.params["pwl_shift"])
    offset = a[:, n:] - int(pop.params["pwl_x0"])
    index = np.clip(offset >> shift, 0, table.size - 2)
    frac = np.clip(offset - (index << shift), 0, 1 << shift)
    gate_q12 = table[index] + tz_shift((table[index + 1] - table[index]) * frac, shift)
    out = tz_shift(a[:, :n] * gate_q12, int(pop.params["out_shift"]))
    return saturate(out, fmt.message_bits, ev, pop.name)


def _readout_int(pop, state, a, fmt, ev):
    acc = state["acc"] + a if pop.attrs["mode"] == "mean" else a
    state["acc"] = saturate(acc, fmt.state_bits, ev, pop.name)
    return state["acc"]


# ---- float64 mode ------------------------------------------------------------------


def _accumulator_float(pop, state, a, fmt, ev):
    return a


def _ssm_float(pop, state, a, fmt, ev):
    p = pop.params
    re, im = state["re"], state["im"]
    state["re"] = p["a_re"] * re - p["a_im"] * im + p["b_re"] * a
    state["im"] = p["a_im"] * re + p["a_re"] * im + p["b_im"] * a
    return state["re"]


def _reset_refractory_float(pop, state, a, fmt, ev):
    theta, rho = pop.params["theta"], pop.params["rho"]
    m = pop.params["beta"] * state["v"] + a
    spikes = (m > theta).astype(np.float64)
    state["v"] = m - (theta + rho) * spikes
    return spikes


def _lif_float(pop, state, a, fmt, ev):
    voltage = float(pop.params["tau"]) * state["v"] + a
    spikes = voltage >= float(pop.params["vth"])
    state["v"] = np.where(spikes, 0.0, voltage)
    return spikes.astype(np.float64)


def gate_float(gate: str, b: np.ndarray) -> np.ndarray:
    if gate == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * b))  # = 1 / (1 + exp(-b)) without overflow
    return np.clip(b / 6.0 + 0.5, 0.0, 1.0)


def _glu_float(pop, state, a, fmt, ev):
    n = pop.size
    return a[:, :n] * gate_float(pop.attrs["gate"], a[:, n:])


def _readout_float(pop, state, a, fmt, ev):
    state["acc"] = state["acc"] + a if pop.attrs["mode"] == "mean" else a
    return state["acc"]


STEPS: dict[str, dict[str, Step]] = {
    "int": {
        "accumulator": _accumulator_int,
        "ssm": _ssm_int,
        "reset_refractory": _reset_refractory_int,
        "lif": _lif_int,
        "cuba_lif": _lif_int,  # the same integer model as lif (Lava's bit-accurate LIF)
        "cuba_lif_sub": _cuba_lif_sub_int,
        "heaviside": _heaviside,
        "glu": _glu_int,
        "readout": _readout_int,
    },
    "float64": {
        "accumulator": _accumulator_float,
        "ssm": _ssm_float,
        "reset_refractory": _reset_refractory_float,
        "lif": _lif_float,
        "cuba_lif": _cuba_lif_float,
        "cuba_lif_sub": _cuba_lif_sub_float,
        "heaviside": _heaviside,
        "glu": _glu_float,
        "readout": _readout_float,
    },
}
