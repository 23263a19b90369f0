"""The per-core peaks of a loihi2 artifact's resources.json beside their limits, as the
examples that map large networks print them."""

from __future__ import annotations

from typing import Any


def print_peaks(resources: dict[str, Any]) -> None:
    limits = resources["target"]["limits"]
    for key, limit in (
        ("compartments", "compartments_per_core"),
        ("synapse_bytes", "synapse_memory_bytes_per_core"),
        ("input_axons", "input_axons_per_core"),
        ("output_axons", "output_axons_per_core"),
    ):
        print(f"  most {key} on one core: {resources['peak_per_core'][key]:,} of "
              f"{limits[limit]['value']:,}")  # fmt: skip
