"""Which layers of a netlist lava-dl's netx can load from network.net, and its loader.

    chain = netx_chain(net)        # the layers netx builds and Lava runs as numerics.md says
    netx_warnings(net)             # why the chain from the input is shorter, or dead
    hdf5 = netx_hdf5()             # lava-dl's netx loader (netx.netx_network uses it)

netx_chain is the int netlist's lif_chain (snncompile.ir.netlist) up to its first layer
where netx and Lava would compute something else (_inexact). What netx does with the
weights was read from lava-dl 0.6.0 (netx/utils.py optimize_weight_bits, netx/hdf5.py)
and Lava 0.10.0 (proc/dense/models.py, utils/weightutils.py) and is checked against
them by tests/test_netx.py, which runs every case in netx.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from typing import Any

import numpy as np

from snncompile.errors import MissingDependencyError
from snncompile.ir.netlist import (
    CHAIN_KINDS,
    ChainLayer,
    Netlist,
    Synapse,
    input_bound,
    lif_chain,
    weight_grid,
)
from snncompile.targets.lava.builder import lava_lif_is_exact


def netx_weight(syn: Synapse) -> np.ndarray | None:
    """The synapse's weights as whole numbers at exponent 0 (a chain layer's `weight` or
    `weight_rec`: netx takes them as the weights), or None where they are not whole."""
    weight = syn.dense() * 2.0**syn.weight_exp + 0.0  # + 0.0: no -0.0 in the file
    return weight if np.all(weight == np.round(weight)) else None


def netx_scaling(joint: np.ndarray) -> tuple[int, int] | None:
    """What lava-dl 0.6.0's netx does with a layer's weights (a dense_rec layer's two
    matrices side by side, as it takes them; utils.optimize_weight_bits): (shift, bits),
    the weights it gives Lava's Dense being ours shifted left by `shift`, with
    weight_exp -shift and num_weight_bits `bits`. None where netx itself changes them: a
    largest weight of 0 (it takes the matrix as mixed with an infinite scale; with a
    negative weight its layer never spiked where ours did, measured; all zero, it raised
    OverflowError), or weights it clips (above 254 beside a negative one, below -256
    beside a positive one)."""
    top, bottom = float(joint.max()), float(joint.min())
    if top == 0 or (top > 254 and bottom < 0) or (bottom < -256 and top > 0):
        return None
    mixed = top > 0 and bottom < 0
    if mixed:  # scaled up as far as both signs stay inside [-128, 127]
        scale = min(127 / top, -128 / bottom)
    else:  # one sign: inside 255, or -256
        scale = 255 / top if bottom >= 0 else -256 / bottom
    shift = math.floor(math.log2(scale)) + int(mixed)
    # ... then it counts the low zero bits every weight has (up to 8; one less mixed).
    ints, zeros = joint.astype(np.int64), 8
    while zeros and np.any(ints % (1 << zeros)):
        zeros -= 1
    return shift, 8 - shift - (zeros - int(mixed))


def lava_keeps(weight: np.ndarray, weight_bits: int) -> bool:
    """Whether Lava's Dense (fixed_pt) computes with these weights as they are: they lie
    on its grid for their signs at `weight_bits` (weight_grid). netx may ask for 9 bits,
    which Lava takes for mixed signs (no bit dropped) but which, for one sign, is a
    negative count of bits to drop, with which Lava zeroed them (measured)."""
    mixed = weight.max() > 0 and weight.min() < 0
    if weight_bits > 8 + int(mixed):
        return False
    low, high, step = weight_grid(weight, weight_bits)
    return bool(np.all((low <= weight) & (weight <= high) & (weight % step == 0)))


def _inexact(net: Netlist, layer: ChainLayer) -> str | None:
    """Why netx would not hand Lava our weights for this layer, Lava's Dense would not
    sum them exactly, or Lava's LIF would not compute it as numerics.md says for every
    input its synapses can deliver; None when none of these holds."""
    syns = layer.synapses
    if not lava_lif_is_exact(net, layer.pop):
        return (
            f"its summed input can reach {input_bound(net, layer.pop.name):.4g}, beyond what "
            "Lava's int32 LIF computes exactly (narrower input messages: --message-bits and "
            "--act-bits, e.g. 8)"
        )
    weights = [netx_weight(s) for s in syns]
    for syn, weight in zip(syns, weights, strict=True):
        if weight is None:
            return f"the weights of {syn.name!r} at weight_exp {syn.weight_exp} are not whole"
    joint = np.hstack(weights)
    scaling = netx_scaling(joint)
    if scaling is None:
        what = "0 is its largest weight" if joint.max() == 0 else "it clips weights"
        return f"netx would change its weights ({what})"
    shift, bits = scaling
    for syn, weight in zip(syns, weights, strict=True):
        if not lava_keeps(weight * 2.0**shift, bits):
            return (
                f"Lava's Dense would change the weights of {syn.name!r} as netx hands them "
                f"over (shifted {shift} bits, {bits}-bit)"
            )
        src = net.population(syn.src)
        message = 1 if src.compartment.spiking else 2 ** (net.formats.message_bits - 1) - 1
        if float(np.abs(weight).sum(axis=1).max()) * message * 2.0**shift >= 2.0**31:
            return f"netx's sums of {syn.name!r}, shifted {shift} bits, could wrap int32"
    return None


def netx_chain(net: Netlist) -> list[ChainLayer]:
    """The layers after the input that netx's loader builds and Lava then runs as
    numerics.md says: the int netlist's lif_chain up to its first layer that does not
    run exactly (_inexact)."""
    if net.numeric != "int":
        return []
    chain = lif_chain(net)
    exact = [_inexact(net, layer) is None for layer in chain] + [False]
    return chain[: exact.index(False)]


# What narrows the input's messages: the hint for weights the input's scale crowds out.
NARROW_INPUT_HINT = (
    "weights at exponent 0 have little room beside the input's graded messages: "
    "narrower ones, --message-bits 8 --act-bits 8, give them more"
)


def _why_no_chain(net: Netlist) -> str:
    """Why lif_chain is empty: the first population the input feeds, and what keeps it
    from being a chain layer."""
    if net.ticks_per_step > 1:
        return (
            f"a time-multiplexed network ({net.ticks_per_step} ticks per step) has no netx "
            "layer: netx's neuron cannot idle between ticks"
        )
    fed = [p for p in net.populations if any(s.src == net.input.name for s in net.incoming(p.name))]
    if not fed:
        return "the input feeds no population"
    pop = fed[0]
    if pop.kind not in CHAIN_KINDS:
        return (
            f"the input feeds {pop.name!r}, a population of kind {pop.kind}; netx's dense layers "
            f"hold {' and '.join(CHAIN_KINDS)} (Lava's LIF, reset to 0)"
        )
    others = [s.name for s in net.incoming(pop.name) if s.src != net.input.name]
    if not others:
        return f"the input's synapse into {pop.name!r} has a delay; the chain's take none"
    return (
        f"{pop.name!r} takes {', '.join(others)} besides the input (a bias, a second "
        "source); netx's dense layer takes one synapse, and dense_rec one more from the "
        "layer itself"
    )


def netx_warnings(net: Netlist) -> list[str]:
    """What export says under --netx-weights: why netx loads fewer layers than the
    netlist's lif_chain holds (or none), and chain layers whose input weights are all 0
    (netx loads them, but they never spike)."""
    chain = lif_chain(net)
    if not chain:
        return [f"netx can load no layer: {_why_no_chain(net)}"]
    loaded = netx_chain(net)
    warnings = [
        f"every weight of {layer.feed.name!r} is 0 at exponent 0, so {layer.pop.name!r} "
        "never spikes" + (f" ({NARROW_INPUT_HINT})" if layer.feed.src == net.input.name else "")
        for layer in loaded
        if not np.any(layer.feed.dense())
    ]
    if len(loaded) < len(chain):
        layer = chain[len(loaded)]
        reason = str(_inexact(net, layer))
        crowded = layer.feed.src == net.input.name and not reason.startswith("its summed")
        warnings.append(
            f"netx can load {len(loaded)} of the {len(chain)} LIF layers of the chain from "
            f"the input: at {layer.pop.name!r}, {reason}"
            + (f" ({NARROW_INPUT_HINT})" if crowded else "")
        )
    return warnings


def netx_hdf5() -> Any:
    """lava-dl's netx.hdf5. lava-dl as `make setup` installs it (without its
    dependencies: it pins torch 2.3) cannot import its slayer package (torchvision,
    matplotlib), of which netx's loader imports one helper, for RF neurons; a file of
    ours has none, so where those are missing a stand-in module takes slayer's place
    while netx's loader is imported (it reads the helper then only), and leaves
    sys.modules after: an `import lava.lib.dl.slayer` of the user's own still fails as
    it would have."""
    try:
        if importlib.util.find_spec("lava.lib.dl.netx") is None:
            raise ModuleNotFoundError("lava.lib.dl.netx")
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "loading network.net in netx needs lava-dl 0.6.0 (make setup installs it)"
        ) from None
    standing_in: list[str] = []
    if "lava.lib.dl.netx.hdf5" not in sys.modules and any(
        importlib.util.find_spec(name) is None for name in ("matplotlib", "torchvision")
    ):
        rf = "lava.lib.dl.slayer.neuron.rf"
        for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", rf):
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                sys.modules[name].__path__ = []  # type: ignore[attr-defined]
                standing_in.append(name)
        if rf in standing_in:
            sys.modules[rf].neuron_params = None  # type: ignore[attr-defined]
    try:
        from lava.lib.dl.netx import hdf5
    finally:
        for name in standing_in:
            del sys.modules[name]
    return hdf5
