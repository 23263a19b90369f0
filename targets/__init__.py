"""Compilation targets, installed as snncompile.targets, and their registry.

Targets consume a Netlist only; they never import torch or the frontend. Each target is
one `Target` entry in TARGETS; export, inspect, simulate and the `targets` command read
what a target is and can do from here instead of naming targets themselves.

A target with a `module` provides in that module:

    check_options(options) -> parsed      # reads and checks its options before compiling
    check_traced(graph)                   # optional: refuses ops right after tracing
    prepare(compiled, parsed) -> Build    # checks and computes, writes nothing
    summarize_artifact(path) -> dict      # what inspect and export print
    check_artifact(path, netlist)         # optional: its files compute what the netlist
                                          # does (read_artifact calls it; CorruptInputError)

and Build has `files()` (name -> writer(path)) and `manifest()` (extra manifest
entries), which write_artifact puts into the artifact atomically with the rest.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from snncompile.errors import UsageError


@dataclass(frozen=True)
class Target:
    """One compilation target.

    name:    what --target takes.
    summary: one line for help texts and the `targets` table.
    files:   the files it adds to an artifact beside the netlist (none for reference).
    module:  submodule of snncompile.targets with the functions above, or None
             when the artifact is the plain netlist (the target runs it as it is).
    options: the export options it accepts besides the common ones (e.g. target_config).
    takes:   what it can express: "netlist" (every op the lowering turns into compartments,
             after the graph passes), "float-model" (any causal sequence model
             with encoder, blocks and decoder, its own modules included), or "ops"
             (the traced graph op kinds its module's supported_ops() lists).
             A target with the option "float" takes such models with --float.
    """

    name: str
    summary: str
    files: tuple[str, ...] = ()
    module: str | None = None
    options: tuple[str, ...] = field(default_factory=tuple)
    takes: str = "netlist"

    def __post_init__(self) -> None:
        if self.takes not in ("netlist", "float-model", "ops"):
            raise UsageError(f"target {self.name!r}: takes must be netlist, float-model or ops")

    def load(self) -> ModuleType | None:
        """The target's module (imported on first use: Lava and h5py are slow to load)."""
        if self.module is None:
            return None
        return importlib.import_module(f"snncompile.targets.{self.module}")


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in TARGETS:
        raise UsageError(f"target {target.name!r} is registered twice")
    TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    """The registered target `name`; UsageError (exit 2) listing the others if unknown."""
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}; available: {', '.join(TARGETS)}") from None


register_target(
    Target(
        "reference",
        "the integer netlist, run by snncompile's numpy simulator (docs/numerics.md)",
    )
)
register_target(
    Target(
        "lava",
        "the integer netlist, run in Lava 0.10.0's bit-accurate CPU simulator "
        "(simulate --backend lava)",
    )
)
register_target(
    Target(
        "loihi2",
        "a Loihi 2 deployment artifact: netx network.net with extension groups, core "
        "mapping, design-rule check (exit 5), energy estimate",
        files=("network.net", "resources.json", "estimate.json"),
        module="loihi2",
        options=("target_config",),
    )
)
register_target(
    Target(
        "nir",
        "a NIR 1.0.8 graph (model.nir) for other SNN frameworks, with the exact ops in "
        "its metadata for the round trip back to snncompile",
        files=("model.nir",),
        module="nir",
        options=("nir_ssm", "nir_dt"),
        takes="ops",
    )
)
register_target(
    Target(
        "onnx",
        "one time step of the integer netlist as an ONNX graph with state in/out "
        "(onnxruntime, simulate --backend onnx); with --float the float PyTorch model",
        files=("model.onnx",),
        module="onnx",
        options=("float",),
    )
)
