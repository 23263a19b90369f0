"""The compartment kinds a Netlist population can have, and the parameters each takes.

This module says what a kind *is* (its input width, whether it sends spikes or graded
messages, its parameters and their legal ranges); docs/numerics.md says what it
*computes*, and snncompile.reference implements exactly that. Names of parameters carry
their format: `_q` for a fixed-point value whose fractional bits are stated, `decay` in
units of 1/4096, `vth` in Lava's units (threshold = vth << 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from snncompile.ir.ops import InvalidGraphError

if TYPE_CHECKING:
    from snncompile.ir.netlist import Formats, Population


@dataclass(frozen=True)
class Param:
    """One parameter: shape "scalar" (0-d), "vector" (size,) or "table" (1-d, any length).

    `limit(formats)` gives the inclusive integer range allowed in int netlists. `above`
    is a float threshold's lower bound ("> 0" or ">= 0"): a threshold its spike test
    passes at zero would spike at rest (docs/numerics.md, "Rest").
    """

    shape: str
    limit: object = None  # callable(Formats) -> (low, high), or None for float-only params
    above: str | None = None

    def check(self, name: str, value: np.ndarray, size: int, numeric: str, fmt: Formats) -> None:
        expected = {"scalar": (), "vector": (size,)}.get(self.shape)
        if expected is not None and value.shape != expected:
            raise InvalidGraphError(f"{name} has shape {value.shape}, expected {expected}")
        if self.shape == "table" and (value.ndim != 1 or value.size < 2):
            raise InvalidGraphError(f"{name} must be a 1-d table of >= 2 entries")
        if not np.all(np.isfinite(value)):
            raise InvalidGraphError(f"{name} holds NaN or inf")
        low_ok = {"> 0": value > 0, ">= 0": value >= 0}.get(self.above) if self.above else None
        if low_ok is not None and not np.all(low_ok):
            first = np.asarray(value)[~low_ok].flat[0]
            raise InvalidGraphError(
                f"{name} must be {self.above} (its neuron would spike at rest), got {first:.4g}"
            )
        if numeric != "int" or self.limit is None:
            return
        fractional = value != np.round(value)
        if np.any(fractional):
            first = np.asarray(value)[fractional].flat[0]
            raise InvalidGraphError(f"{name} must hold integers in an int netlist, got {first:.4g}")
        low, high = self.limit(fmt)  # type: ignore[operator]
        bad = (value < low) | (value > high)
        if np.any(bad):
            raise InvalidGraphError(
                f"{name} = {np.asarray(value)[bad].flat[0]:.0f} is outside [{low}, {high}]"
            )


def _signed(bits_of) -> object:
    return lambda fmt: (-(2 ** (bits_of(fmt) - 1)) + 1, 2 ** (bits_of(fmt) - 1) - 1)


def _range(low: int, high: int) -> object:
    return lambda fmt: (low, high)


_STATE = _signed(lambda f: f.state_bits)
_MESSAGE = _signed(lambda f: f.message_bits)


@dataclass(frozen=True)
class Compartment:
    """A compartment kind: input width = input_factor * size (0: takes no input)."""

    kind: str
    input_factor: int
    sends: bool
    spiking: bool
    int_params: dict[str, Param] = field(default_factory=dict)
    float_params: dict[str, Param] = field(default_factory=dict)
    attrs: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    doc: str = ""

    def validate(self, pop: Population, numeric: str, fmt: Formats) -> None:
        schema = self.int_params if numeric == "int" else self.float_params
        extra = sorted(set(pop.params) - set(schema))
        missing = sorted(set(schema) - set(pop.params))
        if extra or missing:
            raise InvalidGraphError(
                f"{self.kind} ({numeric}) params: missing {missing or 'none'}, "
                f"unexpected {extra or 'none'}"
            )
        for name, param in schema.items():
            param.check(name, np.asarray(pop.params[name]), pop.size, numeric, fmt)
        missing_attrs = sorted(set(self.attrs) - set(pop.attrs))
        if missing_attrs:
            raise InvalidGraphError(f"{self.kind} needs attrs {missing_attrs}")
        if self.kind == "readout" and pop.attrs["mode"] not in ("mean", "last"):
            raise InvalidGraphError(f"readout mode {pop.attrs['mode']!r} is unknown")
        # An int netlist computes its gate from pwl_table_q12; its attr still names what
        # the table was made from (inspect, NIR), so it is checked alike.
        if self.kind == "glu":
            if pop.attrs.get("gate") not in ("sigmoid", "hard-sigmoid"):
                raise InvalidGraphError(f"glu gate {pop.attrs.get('gate')!r} is unknown")


COMPARTMENTS: dict[str, Compartment] = {}

# Params added to a compartment after files with it were first written (format version
# 1): kind -> {param: (a param the file must hold for it to apply, what the file's
# params give it when it lacks it)}. The first names the param's own mode: out_shift and
# frac_cut are an int ssm's (a float ssm holds no a_re_q and must not gain them).
_ADDED_PARAMS: dict[str, dict[str, tuple[str, Callable[[dict], np.ndarray]]]] = {
    "cuba_lif_sub": {"vsub": ("vth", lambda p: p["vth"])},
    "ssm": {
        "out_shift": ("a_re_q", lambda p: np.array(0.0)),
        "frac_cut": ("a_re_q", lambda p: np.zeros(np.shape(p["a_re_q"]))),
    },
}


def with_added_params(kind: str, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """params as read from a file, with any param added later filled in with what such
    files computed (a cuba_lif_sub written before vsub existed subtracted vth, an ssm
    written before out_shift and frac_cut sent its state unshifted and kept
    ssm_frac_bits in every mode); readers call this, writers never need to."""
    added = {
        name: fill(params)
        for name, (needs, fill) in _ADDED_PARAMS.get(kind, {}).items()
        if name not in params and needs in params
    }
    return {**params, **added}


def _register(comp: Compartment) -> None:
    COMPARTMENTS[comp.kind] = comp


_register(
    Compartment(
        "input",
        input_factor=0,
        sends=True,
        spiking=False,
        doc="external data: sends x[t] for t < L, then 0",
    )
)
_register(
    Compartment(
        "bias",
        input_factor=0,
        sends=True,
        spiking=False,
        int_params={"value": Param("scalar", _MESSAGE)},
        float_params={"value": Param("scalar")},
        doc="sends `value` for t < L, then 0 (biases enter as synapses from it)",
    )
)
_register(
    Compartment(
        "accumulator",
        input_factor=1,
        sends=True,
        spiking=False,
        doc="graded relay: sends its summed input, saturated to the message width",
    )
)
_register(
    Compartment(
        "ssm",
        input_factor=1,
        sends=True,
        spiking=False,
        int_params={
            "a_re_q": Param("vector", lambda f: (-(2**f.ssm_frac_bits), 2**f.ssm_frac_bits)),
            "a_im_q": Param("vector", lambda f: (-(2**f.ssm_frac_bits), 2**f.ssm_frac_bits)),
            "b_re_q": Param("vector", lambda f: (-(2**31) + 1, 2**31 - 1)),
            "b_im_q": Param("vector", lambda f: (-(2**31) + 1, 2**31 - 1)),
            # States wider than messages are sent shifted right (docs/numerics.md).
            "out_shift": Param("scalar", lambda f: (0, f.state_bits - 1)),
            # A mode whose b_q would pass int32 keeps F - frac_cut fractional bits.
            "frac_cut": Param("vector", lambda f: (0, f.ssm_frac_bits)),
        },
        float_params={
            "a_re": Param("vector"),
            "a_im": Param("vector"),
            "b_re": Param("vector"),
            "b_im": Param("vector"),
        },
        states=("re", "im"),
        doc="complex resonator z = a z + b x (a, b fixed point per compartment); sends Re z "
        "(int: shifted right by out_shift)",
    )
)
_register(
    Compartment(
        "reset_refractory",
        input_factor=1,
        sends=True,
        spiking=True,
        int_params={
            "decay": Param("vector", _range(0, 4096)),
            "theta": Param("vector", _range(1, 2**23 - 1)),
            "rho": Param("vector", _range(0, 2**23 - 1)),
        },
        float_params={
            "beta": Param("vector"),
            "theta": Param("vector", above=">= 0"),  # s = [m > theta]
            "rho": Param("vector"),
        },
        states=("v",),
        doc="m = beta v + a; s = [m > theta]; v = m - (theta + rho) s",
    )
)


def _lava_lif_params() -> dict[str, Param]:
    """Lava's bit-accurate LIF: decays du, dv in 1/4096, threshold vth << 6."""
    return {
        "du": Param("scalar", _range(0, 4095)),
        "dv": Param("scalar", _range(0, 4095)),
        "vth": Param("scalar", _range(0, 2**17 - 1)),
    }


def _cuba_float_params() -> dict[str, Param]:
    """Float mode of the NIR current-based neurons: u and v decay factors, threshold."""
    return {
        "alpha_u": Param("scalar"),
        "alpha_v": Param("scalar"),
        "vth": Param("scalar", above=">= 0"),  # s = [v > vth]: 0 does not spike at rest
    }


_register(
    Compartment(
        "lif",
        input_factor=1,
        sends=True,
        spiking=True,
        int_params=_lava_lif_params(),
        float_params={"tau": Param("scalar"), "vth": Param("scalar", above="> 0")},  # v >= vth
        states=("u", "v"),
        doc="Lava's bit-accurate LIF (reset to 0); float mode: v = tau v + a, s = [v >= vth]",
    )
)
_register(
    Compartment(
        "cuba_lif",
        input_factor=1,
        sends=True,
        spiking=True,
        int_params=_lava_lif_params(),
        float_params=_cuba_float_params(),
        states=("u", "v"),
        doc="Lava's bit-accurate LIF with a current (du < 4095 allowed); float mode: "
        "u = alpha_u u + a, v = alpha_v v + u, s = [v > vth] (strict, as NIR), reset to 0",
    )
)
_register(
    Compartment(
        "cuba_lif_sub",
        input_factor=1,
        sends=True,
        spiking=True,
        # vsub: what a spike subtracts (vth for a reset in the step that spikes, vth / beta
        # for snnTorch's delayed one); int: in vth's format, subtracted as vsub << 6.
        int_params={**_lava_lif_params(), "vsub": Param("scalar", _range(0, 2**17 - 1))},
        float_params={**_cuba_float_params(), "vsub": Param("scalar")},
        states=("u", "v"),
        doc="cuba_lif with a subtractive reset: the same current and voltage decays, "
        "s = [v > vth] (strict), then v -= vsub where s instead of v = 0",
    )
)
_register(
    Compartment(
        "heaviside",
        input_factor=1,
        sends=True,
        spiking=True,
        doc="stateless spike s = [a > 0]",
    )
)
_register(
    Compartment(
        "glu",
        input_factor=2,
        sends=True,
        spiking=False,
        int_params={
            "pwl_x0": Param("scalar", _MESSAGE),
            "pwl_shift": Param("scalar", _range(0, 23)),
            "pwl_table_q12": Param("table", _range(0, 4096)),
            "out_shift": Param("scalar", _range(-23, 40)),
        },
        attrs=("gate",),
        doc="[a; b] -> a * gate(b); int mode: gate by a piecewise-linear table in Q12",
    )
)
_register(
    Compartment(
        "readout",
        input_factor=1,
        sends=False,
        spiking=False,
        attrs=("mode",),
        states=("acc",),
        doc="mode mean: acc += a; mode last: acc = a; the network output is acc",
    )
)
