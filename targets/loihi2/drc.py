"""Design-rule check: an int Netlist and its core mapping against the Loihi 2 limits.

    violations = check(net, config, mapping)     # every violation, as one-line strings
    enforce(net, config, mapping)                # HardwareRuleError listing all of them

Checked (each against the entry of loihi2.toml named in brackets):

- number formats: the netlist's weight, state, message and decay widths [weight_bits,
  state_bits, graded_spike_bits, decay_bits];
- every synapse: mantissas on Lava's grid for the target's weight bits [weight_bits],
  exponent in range [weight_exp_min, weight_exp_max], delay [delay_max];
- neuron parameters: LIF vth [vth_bits], LIF du/dv and reset-refractory decay as 12-bit
  decays [decay_bits];
- every core: compartments [neurons_per_core, compartments_per_core], synapse memory
  [synapse_memory_bytes_per_core], input and output axons [input_axons_per_core,
  output_axons_per_core];
- the whole network: cores [cores_per_chip x chips_available], and per chip the
  compartments and stored weights [neurons_per_chip, synapses_per_chip].

Not checked, because Loihi 2's numbers for them are not public: the widths of the
parameters of our microcoded compartments (the SSM resonator's fixed-point a and b, its
per-mode fractional bits and message shift, the GLU table and shifts, the reset-refractory
neuron's theta and rho), and the 16-bit input of Lava's LIF, which the quantizer keeps on
the calibration data but no static check can bound. The weight exponent range is checked
against the target description's, which by default is a placeholder ([-31, 31]: Loihi
2's is not public, Loihi 1's was [-8, 7]).

Violations are joined with "; " in one line, so no rule's text holds "; ".
"""

from __future__ import annotations

import numpy as np

from snncompile.errors import HardwareRuleError
from snncompile.ir.netlist import Netlist, weight_grid

from .config import TargetConfig
from .mapping import Core, Mapping

# How many offenders a rule names before it summarizes ("and 12 more").
MAX_NAMED = 4


def _formats(net: Netlist, cfg: TargetConfig) -> list[str]:
    fmt = net.formats
    pairs = (
        ("weight_bits", fmt.weight_bits, "weight_bits"),
        ("state_bits", fmt.state_bits, "state_bits"),
        ("message_bits", fmt.message_bits, "graded_spike_bits"),
        ("decay_bits", fmt.decay_bits, "decay_bits"),
    )
    return [
        f"netlist {name} {value} > {limit} {cfg.limit(limit)}"
        for name, value, limit in pairs
        if value > cfg.limit(limit)
    ]


def _synapses(net: Netlist, cfg: TargetConfig) -> list[str]:
    out = []
    bits = cfg.limit("weight_bits")
    low_exp, high_exp = cfg.limit("weight_exp_min"), cfg.limit("weight_exp_max")
    for syn in net.synapses:
        values = syn.values()
        if values.size:
            low, high, step = weight_grid(values, bits)
            off = (values < low) | (values > high) | (values % step != 0)
            if np.any(off):
                out.append(
                    f"synapse {syn.name}: {int(off.sum())} weight(s) off the {bits}-bit grid "
                    f"[{low}, {high}] step {step} (e.g. {values[off][0]:.0f})"
                )
        if not low_exp <= syn.weight_exp <= high_exp:
            out.append(
                f"synapse {syn.name}: weight_exp {syn.weight_exp} outside "
                f"[{low_exp}, {high_exp}] (weight_exp_min/max)"
            )
        if syn.delay > cfg.limit("delay_max"):
            out.append(
                f"synapse {syn.name}: delay {syn.delay} > delay_max {cfg.limit('delay_max')}"
            )
    return out


def _neurons(net: Netlist, cfg: TargetConfig) -> list[str]:
    out = []
    decay_max = (1 << cfg.limit("decay_bits")) - 1
    vth_max = (1 << cfg.limit("vth_bits")) - 1
    checks = {
        "lif": (("vth", vth_max, "vth_bits"), ("du", decay_max, "decay_bits"),
                ("dv", decay_max, "decay_bits")),
        "reset_refractory": (("decay", decay_max, "decay_bits"),),
    }  # fmt: skip
    checks["cuba_lif"] = checks["lif"]
    checks["cuba_lif_sub"] = (*checks["lif"], ("vsub", vth_max, "vth_bits"))
    for pop in net.populations:
        for param, high, limit in checks.get(pop.kind, ()):
            value = np.asarray(pop.params[param])
            if np.any(value > high) or np.any(value < 0):
                worst = int(value.max()) if np.any(value > high) else int(value.min())
                out.append(
                    f"population {pop.name}: {param} {worst} outside [0, {high}] ({limit} "
                    f"{cfg.limit(limit)})"
                )
    return out


def _names(core: Core) -> list[str]:
    """The populations on a core, each once (one placed in locality order has several
    runs there)."""
    return list(dict.fromkeys(name for name, _, _ in core.slices))


def _cores(mapping: Mapping, cfg: TargetConfig) -> list[str]:
    rules = (
        ("compartments", "neurons_per_core"),
        ("compartments", "compartments_per_core"),
        ("synapse_bytes", "synapse_memory_bytes_per_core"),
        ("input_axons", "input_axons_per_core"),
        ("output_axons", "output_axons_per_core"),
    )
    out = []
    for attr, limit in rules:
        over = [c for c in mapping.cores if getattr(c, attr) > cfg.limit(limit)]
        if not over:
            continue
        named = ", ".join(
            f"core {c.index} ({'+'.join(_names(c))}) {getattr(c, attr)}" for c in over[:MAX_NAMED]
        )
        more = f" and {len(over) - MAX_NAMED} more" if len(over) > MAX_NAMED else ""
        out.append(f"{attr} per core > {limit} {cfg.limit(limit)}: {named}{more}")
    return out


def _chips(mapping: Mapping, cfg: TargetConfig) -> list[str]:
    out = []
    available = cfg.limit("cores_per_chip") * cfg.limit("chips_available")
    if mapping.n_cores > available:
        out.append(
            f"needs {mapping.n_cores} cores on {mapping.n_chips} chip(s), more than the "
            f"{available} available (cores_per_chip {cfg.limit('cores_per_chip')} x "
            f"chips_available {cfg.limit('chips_available')})"
        )
    for chip, totals in enumerate(mapping.chip_totals()):
        for attr, limit in (
            ("compartments", "neurons_per_chip"),
            ("stored_weights", "synapses_per_chip"),
        ):
            if totals[attr] > cfg.limit(limit):
                out.append(f"chip {chip}: {attr} {totals[attr]} > {limit} {cfg.limit(limit)}")
    return out


def check(net: Netlist, config: TargetConfig, mapping: Mapping) -> list[str]:
    """Every violated rule, one line each (empty when the network fits)."""
    return [
        *_formats(net, config),
        *_synapses(net, config),
        *_neurons(net, config),
        *_cores(mapping, config),
        *_chips(mapping, config),
    ]


def enforce(net: Netlist, config: TargetConfig, mapping: Mapping) -> None:
    """Raise HardwareRuleError (exit 5) naming every violation at once."""
    violations = check(net, config, mapping)
    if violations:
        noun = "violation" if len(violations) == 1 else "violations"
        raise HardwareRuleError(f"{len(violations)} design-rule {noun}: " + "; ".join(violations))
