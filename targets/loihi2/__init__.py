"""The Loihi 2 deployment target: core mapping, design-rule check, energy estimate, and
the artifact's extra files (network.net, resources.json, estimate.json).

    from snncompile.targets.loihi2 import load_config, prepare
    build = prepare(compiled, load_config("my-chip.toml"))   # HardwareRuleError if it does not fit
    write_artifact(compiled, "model.loihi2", target="loihi2",
                   extra_files=build.files(), extra_manifest=build.manifest())

`snncompile export model.pt --target loihi2 -o model.loihi2` does exactly this
(snncompile.api.export_model). Layout of the files: docs/formats.md, "Loihi 2 artifact";
the limits and the algorithms: docs/targets.md, "## loihi2".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snncompile.errors import CorruptInputError, UsageError
from snncompile.ir.netlist import first_difference
from snncompile.ir.serialize import parse_json

from .config import TargetConfig, load_config
from .drc import check, enforce
from .estimate import activity_rates, dense_model_macs, estimate, measure_graded_rates
from .mapping import Mapping, map_netlist
from .netx import netx_layers, read_network, write_network
from .netx_chain import netx_warnings

if TYPE_CHECKING:
    from snncompile.compiler import Compiled
    from snncompile.ir.netlist import Netlist

TARGET = "loihi2"
FILES = ("network.net", "resources.json", "estimate.json")
# What the DRC leaves out (docs/targets.md says why); recorded in resources.json.
NOT_CHECKED = (
    "parameter widths of microcoded compartments (ssm a, b, frac_cut and out_shift, "
    "glu table and shifts, reset_refractory theta and rho)",
    "weight exponents against Loihi 2's own range, which is not public: only against the "
    "target description's weight_exp_min and weight_exp_max (by default [-31, 31], a "
    "placeholder; Loihi 1's was [-8, 7])",
    "Lava LIF 16-bit input (bounded on the calibration data by the quantizer only)",
    "neuron state memory per core (each compartment counts as one neuron)",
)


@dataclass
class Build:
    """What the target computed for one compiled network, ready to be written."""

    netlist: Netlist
    config: TargetConfig
    mapping: Mapping
    estimate: dict[str, Any]

    def resources(self) -> dict[str, Any]:
        return {
            "label": "resource estimate from snncompile's mapping model (docs/targets.md)",
            "target": self.config.to_dict(),
            "design_rules": {"violations": [], "not_checked": list(NOT_CHECKED)},
            **self.mapping.to_dict(),
        }

    def files(self) -> dict[str, Callable[[Path], None]]:
        """File name -> writer, for write_artifact(extra_files=...)."""
        return {
            "network.net": lambda path: write_network(self.netlist, path),
            "resources.json": lambda path: _write_json(path, self.resources()),
            "estimate.json": lambda path: _write_json(path, self.estimate),
        }

    def manifest(self) -> dict[str, Any]:
        """Entries for manifest.json (write_artifact(extra_manifest=...))."""
        return {
            "loihi2": {
                "cores": self.mapping.n_cores,
                "chips": self.mapping.n_chips,
                "target_config_overrides": dict(self.config.overrides),
            }
        }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def check_options(options: dict[str, Any]) -> TargetConfig:
    """The target description with `options["target_config"]` (a TOML path) applied."""
    unknown = sorted(set(options) - {"target_config"})
    if unknown:
        raise UsageError(f"the loihi2 target does not take {', '.join(unknown)}")
    return load_config(options.get("target_config"))


def prepare(compiled: Compiled, config: TargetConfig | None = None) -> Build:
    """Map, check (HardwareRuleError listing every violation) and estimate `compiled`.

    Writes nothing. The graded sources' activity is measured by one reference run on the
    compiled network's calibration inputs.
    """
    net = compiled.netlist
    if net is None or compiled.report is None:
        raise UsageError("the Loihi 2 target needs the quantized netlist (pipeline stopped early)")
    config = config or load_config()
    if compiled.report.config.get("netx_weights"):
        found = [f"--netx-weights: {warning}" for warning in netx_warnings(net)]
        compiled.meta.setdefault("warnings", []).extend(found)
    mapping = map_netlist(net, config)
    enforce(net, config, mapping)
    calib = compiled.calibration
    graded = measure_graded_rates(net, calib) if calib is not None else None
    rates = activity_rates(net, compiled.report.calibration_spike_rates, graded)
    steps = int(calib.shape[1]) if calib is not None else 1
    # The dense model is the float model as traced: the passes fold a BatchNorm into its
    # neighbour, which the PyTorch model still computes (a prenorm model's were uncounted).
    dense = compiled.traced if compiled.traced is not None else compiled.graph
    est = estimate(net, dense, steps=steps, rates=rates, config=config)
    return Build(netlist=net, config=config, mapping=mapping, estimate=est)


def check_artifact(path: str | Path, netlist: Netlist) -> None:
    """network.net (what a Loihi 2 host deploys) holds the netlist that simulate and verify
    run: a file edited and rehashed into the manifest must not deploy something else."""
    file = Path(path) / "network.net"
    difference = first_difference(netlist, read_network(file))
    if difference is not None:
        raise CorruptInputError(f"{file}: differs from netlist.npz ({difference})")
    _check_manifest_summary(Path(path))
    _check_placement(Path(path), netlist)


def _check_placement(path: Path, netlist: Netlist) -> None:
    """resources.json's placement (what a host would load onto which core) places every
    compartment of the netlist once, and its totals, peaks and chips are its cores':
    an edit rehashed into the manifest (a core's compartments set to 300) was read. What
    each core costs is the mapping model's, not checked here (a later model may differ)."""
    file = path / "resources.json"
    try:
        problem = _placement_problem(parse_json(file.read_text(encoding="utf-8")), netlist)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptInputError(f"{path}: unreadable Loihi 2 files ({exc})") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        problem = f"lacks what export writes ({type(exc).__name__} {exc})"
    if problem:
        raise CorruptInputError(f"{file}: {problem}")


def _placement_problem(res: Any, netlist: Netlist) -> str | None:
    from .mapping import Core, Mapping

    per_chip = res["cores_per_chip"]
    if type(per_chip) is not int or per_chip < 1 or not isinstance(res["per_core"], list):
        raise TypeError("cores_per_chip or per_core is not what export writes")
    cores = [Core.from_dict(core) for core in res["per_core"]]
    placed: dict[str, list[tuple[int, int]]] = {pop.name: [] for pop in netlist.populations}
    for i, core in enumerate(cores):
        if (core.index, core.chip) != (i, i // per_chip):
            return f"core {i} is numbered {core.index} on chip {core.chip}"
        if core.compartments != sum(b - a for _, a, b in core.slices):
            return f"core {i}'s compartments are not those of its populations"
        for name, a, b in core.slices:
            placed[name].append((a, b))  # KeyError: a population the netlist has not
    for pop in netlist.populations:
        pieces = sorted(placed[pop.name])
        ends = [0] + [b for _, b in pieces]
        if not pieces or [a for a, _ in pieces] != ends[:-1] or ends[-1] != pop.size:
            return f"{pop.name}'s {pop.size} compartments are not placed once each"
    # The totals, peaks and chips export derives from these cores (Mapping.to_dict).
    for key, value in Mapping(cores, per_chip).to_dict().items():
        if key != "per_core" and res[key] != value:
            return f"{key} {res[key]!r} is not its cores' {value!r} (edited after export)"
    return None


def _check_manifest_summary(path: Path) -> None:
    """The manifest's cores, chips and target_config_overrides (not hashed; inspect
    --json shows them) are resources.json's (hashed): an edit to -5 cores was shown beside
    the text's 12, an edited override list beside resources.json's. A resources.json
    without them is refused by `summarize_artifact`."""
    manifest_file = path / "manifest.json"
    try:
        resources = parse_json((path / "resources.json").read_text(encoding="utf-8"))
        summary = parse_json(manifest_file.read_text(encoding="utf-8")).get("loihi2")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise CorruptInputError(f"{path}: unreadable Loihi 2 files ({exc})") from None
    keys = ("cores", "chips")
    if not (isinstance(resources, dict) and all(type(resources.get(k)) is int for k in keys)):
        return
    if not isinstance(summary, dict):
        raise CorruptInputError(f"{manifest_file}: has no loihi2 summary")
    stated = {key: summary.get(key) for key in keys}
    expected = {key: resources[key] for key in keys}
    if stated != expected or any(type(value) is not int for value in stated.values()):
        raise CorruptInputError(
            f"{manifest_file}: loihi2 {stated} is not resources.json's {expected}"
        )
    target = resources.get("target")
    overrides = target.get("overrides") if isinstance(target, dict) else None
    if summary.get("target_config_overrides") != overrides:
        raise CorruptInputError(
            f"{manifest_file}: loihi2 target_config_overrides "
            f"{summary.get('target_config_overrides')!r} is not resources.json's {overrides!r}"
        )


def summarize_artifact(path: str | Path) -> dict[str, Any]:
    """Cores, chips, per-core peaks and the energy estimate of a read-checked artifact."""
    path = Path(path)
    try:
        resources = parse_json((path / "resources.json").read_text(encoding="utf-8"))
        est = parse_json((path / "estimate.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptInputError(f"{path}: unreadable Loihi 2 files ({exc})") from None
    try:
        summary = _summary(resources, est)
        summary["netx_layers"] = netx_layers(path / "network.net")
        return _checked(summary)
    except (KeyError, TypeError, AttributeError) as exc:  # an edited (rehashed) file
        what = f"{type(exc).__name__} {exc}"
        raise CorruptInputError(
            f"{path}: resources.json or estimate.json lacks what export writes ({what})"
        ) from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checked(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's values have the types export writes (inspect formats them as
    numbers); TypeError naming the first that does not."""
    est = summary["estimate"]
    numbers = {
        "netx_layers": summary["netx_layers"],
        "cores": summary["cores"],
        "chips": summary["chips"],
        "cores_per_chip": summary["cores_per_chip"],
        "steps_per_inference": est["steps_per_inference"],
        "compartment_macs_per_inference": est["compartment_macs_per_inference"],
        "weight_exp_min": summary["weight_exp_range"][0],
        "weight_exp_max": summary["weight_exp_range"][1],
    }
    printed = {  # the keys inspect's text output reads (the dense model is optional)
        "peak_per_core": ("compartments", "synapse_bytes", "input_axons", "output_axons"),
        "limits_per_core": ("compartments", "synapse_bytes", "input_axons", "output_axons"),
        "synaptic_ops": ("per_inference", "accumulates_per_inference", "macs_per_inference"),
        "energy_pj": ("synaptic_per_inference", "total_per_inference"),
        "dense_model": ("macs_per_inference", "energy_pj_per_inference")
        if est["dense_model"]
        else (),
    }
    for group, keys in printed.items():
        values = summary[group] if group in summary else est[group]
        numbers.update({f"{group}.{k}": v for k, v in values.items()})
        missing = [k for k in keys if k not in values]
        if missing:
            raise KeyError(f"{group}.{missing[0]}")
    for name, value in numbers.items():
        if not _number(value):
            raise TypeError(f"{name} is {value!r}, not a number")
    if not isinstance(est["label"], str) or not all(isinstance(a, str) for a in est["assumptions"]):
        raise TypeError("the estimate's label and assumptions are not text")
    if not all(isinstance(name, str) for name in summary["overrides"]):
        raise TypeError("the target overrides are not names")
    return summary


def _summary(resources: Any, est: Any) -> dict[str, Any]:
    limits = resources["target"]["limits"]
    return {
        "cores": resources["cores"],
        "chips": resources["chips"],
        "cores_per_chip": resources["cores_per_chip"],
        "peak_per_core": resources["peak_per_core"],
        "limits_per_core": {  # the mapping's: a compartment is one neuron
            "compartments": min(
                limits["compartments_per_core"]["value"], limits["neurons_per_core"]["value"]
            ),
            "synapse_bytes": limits["synapse_memory_bytes_per_core"]["value"],
            "input_axons": limits["input_axons_per_core"]["value"],
            "output_axons": limits["output_axons_per_core"]["value"],
        },
        "weight_exp_range": [limits["weight_exp_min"]["value"], limits["weight_exp_max"]["value"]],
        "overrides": resources["target"]["overrides"],
        "estimate": {
            "label": est["label"],
            "steps_per_inference": est["steps_per_inference"],
            "synaptic_ops": est["synaptic_ops_estimate"],
            "compartment_macs_per_inference": est["compartment_ops_estimate"]["macs_per_inference"],
            "energy_pj": est["energy_estimate_pj"],
            "dense_model": {
                k: v
                for k, v in est.get("dense_model_estimate", {}).items()
                if k in ("macs_per_inference", "energy_pj_per_inference")
            },
            "assumptions": est["assumptions"],
        },
    }


__all__ = [
    "FILES",
    "TARGET",
    "Build",
    "Mapping",
    "TargetConfig",
    "activity_rates",
    "check",
    "check_options",
    "dense_model_macs",
    "enforce",
    "estimate",
    "load_config",
    "map_netlist",
    "measure_graded_rates",
    "prepare",
    "read_network",
    "summarize_artifact",
    "write_network",
]
