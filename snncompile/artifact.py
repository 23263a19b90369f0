"""Compiled artifacts: one directory a target can run without the model or torch.

    write_artifact(compiled, "model.ref")     # what `snncompile export` writes
    read_artifact("model.ref")                # checked against its manifest; no torch

Layout (format "snncompile-artifact", version 1; docs/formats.md):

    netlist.json + netlist.npz   the integer Netlist (snncompile.ir.serialize)
    graph.json + graph.npz       the float Graph after the passes (what was lowered)
    report.json                  scales, headroom, thresholds, weight errors, latency,
                                 spike rates and saturation events on the calibration data
    manifest.json                format, version, target, tool versions, source, output
                                 latency, compartment counts, message bits, and the sha256
                                 of every other file
    (target files)               a target may add its own files (extra_files), e.g.
                                 loihi2's network.net, resources.json, estimate.json

The directory is built beside its destination and renamed into place, so a failure
never leaves a half-written artifact. Reading imports neither torch nor the compiler
(only writing asks torch for its version): an artifact must be usable where only numpy
and scipy are installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile import __version__
from snncompile.errors import CorruptInputError, UsageError
from snncompile.ir.serialize import (
    load_graph,
    load_netlist,
    parse_json,
    peek_json_object,
    read_versioned_json,
    save_graph,
    save_netlist,
)
from snncompile.outputs import check_writable, write_directory
from snncompile.targets import TARGETS, get_target

if TYPE_CHECKING:
    from snncompile.compiler import Compiled
    from snncompile.ir.graph import Graph
    from snncompile.ir.netlist import Netlist

FORMAT_NAME = "snncompile-artifact"
FORMAT_VERSION = 1
# Files every version-1 artifact has (besides manifest.json, which lists their hashes).
FILES = ("netlist.json", "netlist.npz", "graph.json", "graph.npz", "report.json")


@dataclass(frozen=True)
class Artifact:
    """A read artifact: the integer netlist, the manifest and the report (plain dicts)."""

    path: Path
    netlist: Netlist
    manifest: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def graph(self) -> Graph:
        """The float graph the netlist was lowered from (loaded on demand)."""
        return load_graph(self.path)


# -- the report -------------------------------------------------------------------------


def build_report(compiled: Compiled, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What report.json holds (spike rates: the quantizer's run on the calibration data)."""
    net, quant, calib = compiled.netlist, compiled.report, compiled.calibration
    if net is None or quant is None or calib is None:
        raise UsageError(
            f"the pipeline stopped after {compiled.stopped_after!r}; an artifact needs the "
            "quantized netlist"
        )
    if net.numeric != "int":  # formats.md: an artifact holds the integer netlist
        raise UsageError(
            f"an artifact holds the int netlist that quantize makes, got a {net.numeric} one"
        )
    latency = net.latency()
    populations = {}
    for pop in net.populations:
        entry = {**quant.populations[pop.name], "latency": latency[pop.name]}
        if pop.compartment.spiking:
            entry["spike_rate"] = quant.calibration_spike_rates[pop.name]
        populations[pop.name] = entry
    synapses = {
        syn.name: {
            "src": syn.src,
            "dst": syn.dst,
            "shape": list(syn.shape),
            "stored_weights": int(np.size(syn.values())),
            **quant.synapses[syn.name],
        }
        for syn in net.synapses
    }
    report: dict[str, Any] = {
        "output_latency": net.output_latency,
        "ticks_per_step": net.ticks_per_step,
        "input_scale": net.input_scale,
        "output_scale": net.output_scale,
        "formats": net.formats.to_dict(),
        "quantization": dict(quant.config),
        "counts": net.counts(),
        "calibration": {
            "shape": list(calib.shape),
            "saturation_events": dict(quant.calibration_events),
            "rounds": quant.rounds,
            "origin": compiled.meta["calibration_origin"],
        },
        "populations": populations,
        "synapses": synapses,
    }
    for key, value in (extra or {}).items():
        if key in report:
            raise UsageError(f"extra_report key {key!r} would replace a built-in report entry")
        report[key] = value
    return report


def _manifest(
    compiled: Compiled, net: Netlist, target: str, files: dict[str, str]
) -> dict[str, Any]:
    tools = {
        "snncompile": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        import torch
    except ImportError:
        pass
    else:
        tools["torch"] = str(torch.__version__)
    meta = compiled.meta
    keys = ("checkpoint", "entry", "weights", "family", "task", "nir_file", "dt_s", "reset")
    source = {key: meta.get(key) for key in keys}
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "target": target,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": tools,
        "source": {key: value for key, value in source.items() if value is not None},
        **_summary(net),
        "files": files,
    }


# -- writing ----------------------------------------------------------------------------


def check_output_dir(out_dir: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Refuse (UsageError) an existing destination, unless overwrite and it is an artifact.

    Overwriting is limited to empty directories and snncompile exports (of any target)
    holding only the files their manifest lists, so that a mistyped -o never deletes an
    unrelated directory, nor a user's own files kept inside an artifact.
    """
    out = check_writable(out_dir)  # also refuses a destination inside an artifact
    if not (out.exists() or out.is_symlink()):
        return out
    # What --overwrite would not replace is refused first, so the hint to pass it is
    # given only where it helps (a file named as -o was told to pass it, then refused).
    if out.is_symlink():  # replacing would swap the link for a directory, not its target
        raise UsageError(f"refusing to replace {out}: it is a symbolic link; name its target")
    if not out.is_dir():
        raise UsageError(f"refusing to replace {out}: it is not a directory")
    if any(out.iterdir()):
        why = _not_replaceable(out)
        if why is not None:
            raise UsageError(f"refusing to replace {out}: {why}")
    if not overwrite:
        raise UsageError(
            f"{out} already exists; pass --overwrite to replace it (overwrite=True from Python)"
        )
    return out


def artifact_above(out: Path) -> Path | None:
    """The snncompile artifact directory that `out` would be created inside, if any
    (after symbolic links and "..": "art/../x" is not inside art, a link into it is)."""
    for parent in Path(os.path.realpath(out)).parents:
        manifest = peek_json_object(parent / "manifest.json")
        if manifest is not None and _is_export_tag(manifest.get("format")):
            return parent
    return None


def _is_export_tag(tag: Any) -> bool:
    # Every export's format tag starts so (snncompile-artifact, snncompile-onnx-float).
    return isinstance(tag, str) and tag.startswith("snncompile-")


def _not_replaceable(path: Path) -> str | None:
    """Why the non-empty directory `path` is not an export --overwrite may delete, or None."""
    manifest = peek_json_object(path / "manifest.json")
    if manifest is None:
        return "it is not an snncompile artifact (no readable manifest.json)"
    listed = manifest.get("files")
    if not (_is_export_tag(manifest.get("format")) and isinstance(listed, dict)):
        return "it is not an snncompile artifact"
    present = {
        str(entry.relative_to(path))
        for entry in path.rglob("*")
        if entry.is_symlink() or not entry.is_dir()
    }
    extra = sorted(present - set(listed) - {"manifest.json"})
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        return f"it holds files its manifest does not list ({shown}); move them first"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_artifact(
    compiled: Compiled,
    out_dir: str | os.PathLike[str],
    *,
    target: str = "reference",
    extra_report: dict[str, Any] | None = None,
    extra_files: Mapping[str, Callable[[Path], None]] | None = None,
    extra_manifest: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `compiled` (which reached "quantize") as an artifact directory, atomically.

    extra_files: a target's own files, name -> writer(path); each is written into the
    directory under construction and hashed into the manifest like the others.
    extra_manifest: a target's additional manifest entries (may not replace built-in ones).
    """
    get_target(target)
    extra_files = dict(extra_files or {})
    _check_extra_names(target, extra_files)
    out = check_output_dir(out_dir, overwrite)
    report = build_report(compiled, extra_report)  # the slow part, before touching the disk

    def fill(tmp: Path) -> None:
        save_netlist(compiled.netlist, tmp)  # type: ignore[arg-type]
        save_graph(compiled.graph, tmp)
        _write_json(tmp / "report.json", report)
        for name, writer in extra_files.items():
            writer(tmp / name)
        files = {name: _sha256(tmp / name) for name in (*FILES, *extra_files)}
        manifest = _manifest(compiled, compiled.netlist, target, files)
        for key, value in (extra_manifest or {}).items():
            if key in manifest:
                raise UsageError(f"extra_manifest key {key!r} would replace a built-in entry")
            manifest[key] = value
        _write_json(tmp / "manifest.json", manifest)

    return write_directory(out, fill, overwrite=overwrite)


def _check_extra_names(target: str, extra: dict[str, Any]) -> None:
    """A target writes exactly its declared files, plain names beside the built-in ones."""
    expected = TARGETS[target].files
    if set(extra) != set(expected):
        raise UsageError(f"target {target!r} writes {sorted(expected)}, got {sorted(extra)}")
    for name in extra:
        if Path(name).name != name or name in (*FILES, "manifest.json"):
            raise UsageError(f"extra artifact file name {name!r} is not allowed")


# -- reading ----------------------------------------------------------------------------


def read_artifact(directory: str | os.PathLike[str]) -> Artifact:
    """Read and check an artifact: format, version, every file's sha256, then the netlist.

    Raises CorruptInputError naming the file for anything missing, changed or invalid.
    """
    from snncompile.arguments import check_path

    path = Path(check_path(directory, "directory", reading=True))
    if not path.is_dir():
        if path.exists():
            raise CorruptInputError(
                f"{path}: is a file, not an artifact directory (snncompile export writes one)"
            )
        raise CorruptInputError(f"{path}: no such artifact directory")
    if not (path / "manifest.json").exists():  # was "manifest.json: no such file"
        raise CorruptInputError(
            f"{path}: not an artifact directory (no manifest.json; snncompile export writes one)"
        )
    manifest = read_versioned_json(path / "manifest.json", FORMAT_NAME)
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CorruptInputError(f"{path / 'manifest.json'}: no valid 'files' table")
    if not isinstance(manifest.get("target"), str):
        raise CorruptInputError(f"{path / 'manifest.json'}: 'target' is not a name")
    target = TARGETS.get(manifest["target"])
    if target is None:  # from a newer snncompile, or edited: its files mean nothing to us
        raise CorruptInputError(
            f"{path / 'manifest.json'}: target {manifest['target']!r} is not one this "
            f"snncompile knows ({', '.join(TARGETS)})"
        )
    target_files = target.files
    unlisted = [name for name in (*FILES, *target_files) if name not in files]
    if unlisted:
        raise CorruptInputError(f"{path / 'manifest.json'}: does not list {', '.join(unlisted)}")
    for name, expected in files.items():
        # Only plain names: a manifest must not make us read outside the artifact.
        if Path(name).name != name or name in ("", ".", ".."):
            raise CorruptInputError(f"{path / 'manifest.json'}: bad file name {name!r}")
        file = path / name
        if not file.is_file():
            raise CorruptInputError(f"{file}: missing (the manifest lists it)")
        if _sha256(file) != expected:
            raise CorruptInputError(
                f"{file}: sha256 does not match the manifest (changed after export)"
            )
    _check_no_other_targets_files(path, manifest["target"], files)
    netlist = load_netlist(path)
    load_graph(path)  # nothing here runs it, but an edited (rehashed) one is refused too
    module = target.load()
    check = getattr(module, "check_artifact", None)
    if check is not None:  # e.g. loihi2's network.net must hold this very netlist
        check(path, netlist)
    try:
        report = parse_json((path / "report.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptInputError(f"{path / 'report.json'}: not valid JSON ({exc})") from None
    if not isinstance(report, dict):
        raise CorruptInputError(f"{path / 'report.json'}: not a JSON object")
    _check_fields(path, manifest, report)
    _check_summary(path, manifest, netlist)
    return Artifact(path=path, netlist=netlist, manifest=manifest, report=report)


def _check_no_other_targets_files(path: Path, target: str, files: dict[str, Any]) -> None:
    """The manifest is not hashed: its target, edited from loihi2 to reference, made the
    reader skip the check that network.net holds this netlist. So the manifest lists only
    its target's files, and no other target's file lies in the directory (a file a
    target writes, left unlisted: a user's own notes are kept, not these names). Without
    a signature a manifest rewritten whole, its target's files moved out too, is still
    a consistent artifact of the target it names."""
    own = (*FILES, *TARGETS[target].files)
    listed = [name for name in files if name not in own]
    others = {name for other in TARGETS.values() for name in other.files} - set(own)
    lying = sorted(name for name in others if (path / name).exists())
    if listed or lying:
        raise CorruptInputError(
            f"{path / 'manifest.json'}: {'lists' if listed else 'sits beside'} "
            f"{', '.join(listed or lying)}, which a {target} artifact does not hold "
            "(edited after export?)"
        )


def _summary(net: Netlist) -> dict[str, Any]:
    """What the manifest repeats of its netlist (for a reader that does not load it)."""
    return {
        "input_size": net.input.size,
        "output_size": net.readout.size,
        "output_latency": net.output_latency,
        "ticks_per_step": net.ticks_per_step,
        "compartments": {k: v for k, v in net.counts().items() if k != "synapses"},
        "message_bits": net.formats.message_bits,
    }


def _shown(value: object, limit: int = 120) -> str:
    """repr(value), its middle cut out past `limit` characters: an edited value may be
    4,000 digits or a megabyte of text, which the one-line error printed whole."""
    text = repr(value)
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


def _check_summary(path: Path, manifest: dict[str, Any], net: Netlist) -> None:
    """The manifest is the one file no hash covers: what it says of the netlist must be
    what the (hashed) netlist says, or inspect would show an edited latency or size."""
    for key, value in _summary(net).items():
        if key in manifest and manifest[key] != value:
            raise CorruptInputError(
                f"{path / 'manifest.json'}: {key} is {_shown(manifest[key])}, the "
                f"netlist's {value!r} (edited after export)"
            )


# Per-population numbers of report.json that inspect shows.
POPULATION_NUMBERS = ("in_scale_log2", "out_scale_log2", "threshold_int", "vth", "spike_rate")


def _check_fields(path: Path, manifest: dict[str, Any], report: dict[str, Any]) -> None:
    """The entries readers (inspect, the targets' summaries) use have the types export
    writes: a file edited and rehashed by hand is refused here, not in a traceback later."""
    where = path / "manifest.json"
    for key in ("tools", "source", "compartments"):
        if not isinstance(manifest.get(key, {}), dict):
            raise CorruptInputError(f"{where}: {key!r} is not an object")
    for key in ("tools", "source"):  # names, versions, paths, a dt: inspect prints them
        for name, value in manifest.get(key, {}).items():
            if not isinstance(value, (str, int, float)) and value is not None:
                raise CorruptInputError(f"{where}: {key}.{name} is a {type(value).__name__}")
    for key in ("formats", "quantization", "counts", "calibration", "synapses"):
        if not isinstance(report.get(key, {}), dict):
            raise CorruptInputError(f"{path / 'report.json'}: {key!r} is not an object")
    populations = report.get("populations", {})
    if not isinstance(populations, dict) or not all(
        isinstance(entry, dict) for entry in populations.values()
    ):
        raise CorruptInputError(f"{path / 'report.json'}: 'populations' holds a non-object")
    for name, entry in populations.items():
        for key in POPULATION_NUMBERS:
            value = entry.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CorruptInputError(
                    f"{path / 'report.json'}: population {name!r} {key} is not a number"
                )


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Artifact",
    "build_report",
    "check_output_dir",
    "read_artifact",
    "write_artifact",
]
