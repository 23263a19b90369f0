"""snncompile: compile trained spiking state-space models to neuromorphic targets.

The package imports torch lazily: `import snncompile` alone does not load torch, so
simulating a compiled artifact never needs it.
"""

from __future__ import annotations

from typing import Any

from snncompile.errors import SnnCompileError

__version__ = "0.1.0"

# name -> (module, attribute); resolved on first access (PEP 562).
_LAZY = {
    "save": ("snncompile.checkpoint", "save"),
    "compile": ("snncompile.compiler", "compile_model"),
    # Not "verify": snncompile.verify is a subpackage, whose import replaces the name.
    "verify_model": ("snncompile.api", "verify_model"),
    "load": ("snncompile.checkpoint", "load"),
    "ModelConfig": ("snncompile.models.backbone", "ModelConfig"),
    "SequenceModel": ("snncompile.models.backbone", "SequenceModel"),
    "build_model": ("snncompile.models.backbone", "build_model"),
    "S4D": ("snncompile.models.s4d", "S4D"),
    "ResetRefractoryNeuron": (
        "snncompile.models.neurons.reset_refractory",
        "ResetRefractoryNeuron",
    ),
    "LIFNeuron": ("snncompile.models.neurons.lif", "LIFNeuron"),
    "HeavisideNeuron": ("snncompile.models.neurons.heaviside", "HeavisideNeuron"),
    "GLUMixer": ("snncompile.models.mixing", "GLUMixer"),
    "GSUMixer": ("snncompile.models.mixing", "GSUMixer"),
}

__all__ = ["SnnCompileError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'snncompile' has no attribute {name!r}")
