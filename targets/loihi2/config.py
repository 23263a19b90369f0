"""The Loihi 2 target description: loihi2.toml, optionally overridden by the user's file.

    cfg = load_config()                       # the shipped description
    cfg = load_config("tiny.toml")            # with the user's entries on top
    cfg.limit("cores_per_chip")               # -> 128
    cfg.to_dict()                             # every entry with value, source, verified

An override file uses the same tables as loihi2.toml ([limits], [model], [energy]); an
entry may be a full table (value, source, verified) or just a value:

    [limits]
    cores_per_chip = 2
    delay_max = 1

Overridden entries keep the shipped `source` text prefixed by the file's name, and become
unverified unless the file says otherwise. Unknown entries are refused: a misspelled
limit must not silently fall back to the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snncompile.errors import CorruptInputError, UsageError
from snncompile.ir.serialize import without_python_advice

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport (a declared dependency)
    import tomli as tomllib

DEFAULT_PATH = Path(__file__).with_name("loihi2.toml")
SECTIONS = ("limits", "model", "energy")


@dataclass(frozen=True)
class Entry:
    """One number of the description and where it comes from."""

    value: int | float | bool
    source: str
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "verified": self.verified}


@dataclass(frozen=True)
class TargetConfig:
    """The entries of loihi2.toml by section, plus which file overrode what."""

    name: str
    sections: dict[str, dict[str, Entry]]
    overrides: dict[str, str] = field(default_factory=dict)  # "section.key" -> file

    def limit(self, key: str) -> Any:
        return self.sections["limits"][key].value

    def model(self, key: str) -> Any:
        return self.sections["model"][key].value

    def energy(self, key: str) -> float:
        return float(self.sections["energy"][key].value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "overrides": dict(self.overrides)}
        for section, entries in self.sections.items():
            out[section] = {key: entry.to_dict() for key, entry in entries.items()}
        return out


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    if path.exists() and not path.is_file():  # a FIFO would block the read
        raise CorruptInputError(f"{what} {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CorruptInputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise CorruptInputError(f"{what} {path} is unreadable ({exc})") from None
    except RecursionError:
        raise CorruptInputError(f"{what} {path} is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError, or an int too long
        detail = without_python_advice(exc)
        raise CorruptInputError(f"{what} {path} is not valid TOML ({detail})") from None


def _entry(raw: Any, where: str, default: Entry | None, origin: str | None) -> Entry:
    """An Entry from a full table or (in an override) a bare value; UsageError if bad."""
    if isinstance(raw, dict):
        unknown = set(raw) - {"value", "source", "verified"}
        if unknown or "value" not in raw:
            raise UsageError(f"{where}: needs 'value' (and optionally 'source', 'verified')")
        value, source, verified = raw["value"], raw.get("source"), raw.get("verified", False)
    else:
        value, source, verified = raw, None, False
    if default is not None and type(value) is not type(default.value):
        # An int limit given as 2.0, or a bool as 1, is a typo worth stopping for.
        if not (isinstance(default.value, float) and type(value) is int):
            kind = type(default.value).__name__
            raise UsageError(f"{where}: value must be {kind}, got {value!r}")
        value = float(value)
    if not isinstance(value, (int, float, bool)):
        raise UsageError(f"{where}: value must be a number or boolean, got {value!r}")
    if isinstance(value, float) and not abs(value) < 1e100:  # NaN, inf: the report is JSON
        raise UsageError(f"{where}: value must be a finite number below 1e100, got {value!r}")
    if not isinstance(verified, bool):
        raise UsageError(f"{where}: 'verified' must be true or false")
    if source is not None and not isinstance(source, str):  # before the prefix made it one
        raise UsageError(f"{where}: 'source' must be a string, got {source!r}")
    if source is None:
        source = f"set in {origin}"
    elif origin is not None:
        source = f"{origin}: {source}"
    return Entry(value=value, source=source, verified=verified)


def load_config(override: str | os.PathLike[str] | None = None) -> TargetConfig:
    """The shipped description, with the entries of `override` (a TOML file) on top."""
    base = _read_toml(DEFAULT_PATH, "Loihi 2 target description")
    sections: dict[str, dict[str, Entry]] = {}
    for section in SECTIONS:
        sections[section] = {
            key: _entry(raw, f"{DEFAULT_PATH.name} [{section}.{key}]", None, None)
            for key, raw in base.get(section, {}).items()
        }
    name = str(base.get("target", {}).get("name", "loihi2"))
    if override is None:
        return TargetConfig(name=name, sections=sections)
    path = Path(override)
    user = _read_toml(path, "--target-config")
    unknown = sorted(set(user) - {*SECTIONS, "target"})
    if unknown:
        raise UsageError(f"--target-config {path}: unknown table(s) {', '.join(unknown)}")
    overrides: dict[str, str] = {}
    for section, entries in user.items():
        if section == "target":  # as in the shipped file, so that a copy of it reads
            given = _target_name(user["target"], path, name)
            if given != name:
                name, overrides["target.name"] = given, str(path)
            continue
        if not isinstance(entries, dict):
            raise UsageError(f"--target-config {path}: [{section}] must be a table")
        for key, raw in entries.items():
            if key not in sections[section]:
                known = ", ".join(sorted(sections[section]))
                raise UsageError(
                    f"--target-config {path}: unknown entry {section}.{key} (known: {known})"
                )
            where = f"--target-config {path} [{section}.{key}]"
            default = sections[section][key]
            sections[section][key] = _entry(raw, where, default, path.name)
            overrides[f"{section}.{key}"] = str(path)
    config = TargetConfig(name=name, sections=sections, overrides=overrides)
    _check_ranges(config, str(path))
    return config


def _target_name(table: Any, path: Path, name: str) -> str:
    """The name an override's [target] table gives (its `description` is only checked);
    UsageError for anything else in it."""
    if not isinstance(table, dict):
        raise UsageError(f"--target-config {path}: [target] must be a table")
    unknown = sorted(set(table) - {"name", "description"})
    if unknown:
        raise UsageError(
            f"--target-config {path}: unknown entry target.{unknown[0]} (known: description, name)"
        )
    for key in ("name", "description"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise UsageError(
                f"--target-config {path} [target.{key}]: must be a non-empty string, "
                f"got {table[key]!r}"
            )
    return table.get("name", name)


# Every other limit is a capacity or a width, so at least 1 (delay_max at least 0).
_MAY_BE_NEGATIVE = {"weight_exp_min", "weight_exp_max"}
# Widths in bits of the netlist's int64 numbers: above 64 no value could exceed them, and
# the DRC's 1 << vth_bits of 2**63 ran out of memory (exit 1) instead of a usage error.
_WIDTHS = ("state_bits", "decay_bits", "graded_spike_bits", "vth_bits")
MAX_WIDTH = 64


def _check_ranges(config: TargetConfig, where: str) -> None:
    for key, entry in config.sections["limits"].items():
        low = 0 if key == "delay_max" else 1
        if key not in _MAY_BE_NEGATIVE and entry.value < low:
            raise UsageError(f"--target-config {where}: limits.{key} must be >= {low}")
    if config.model("sparse_index_bits") < 0:
        raise UsageError(f"--target-config {where}: model.sparse_index_bits must be >= 0")
    if config.limit("weight_exp_min") > config.limit("weight_exp_max"):
        raise UsageError(f"--target-config {where}: weight_exp_min > weight_exp_max")
    for key in _WIDTHS:
        if config.limit(key) > MAX_WIDTH:
            raise UsageError(f"--target-config {where}: limits.{key} must be <= {MAX_WIDTH}")
    if config.limit("weight_bits") > 8:
        raise UsageError(f"--target-config {where}: weight_bits must be <= 8 (Lava's grid)")
    for key, entry in config.sections["energy"].items():
        if entry.value < 0:
            raise UsageError(f"--target-config {where}: energy.{key} must be >= 0")
