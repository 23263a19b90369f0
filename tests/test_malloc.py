"""snncompile.reference.malloc: the CLI's glibc malloc settings take effect."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# A fresh process runs 20 "tiles" of four 2 MiB arrays (an SSM's inputs and messages at
# batch 8 are about that), allocated, touched and freed together, and prints the minor
# page faults they cost.
_PROBE = """
import resource, sys
import numpy as np
from snncompile.reference.malloc import tune_malloc_for_tiles
if sys.argv[1] == "tuned":
    assert tune_malloc_for_tiles()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    tile = [np.ones(1 << 18) for _ in range(4)]  # 2 MiB each
    del tile
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    # glibc's defaults, whatever the environment sets (MALLOC_*_ variables or tunables).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_tuned_malloc_reuses_tile_sized_blocks_instead_of_faulting_them_in_again():
    """Untuned, glibc returns the freed tile to the system and the next faults it in
    again (40,380 faults measured); tuned, only the first tile faults its 2,048 pages in
    (2,043 measured)."""
    assert _faults("default") > 5 * 2048
    assert _faults("tuned") < 2048 + 512


_BUDGET_PROBE = """
from snncompile.reference import malloc, simulator
before = simulator.tile_budget_bytes()
malloc.tune_malloc_for_tiles()
after = simulator.tile_budget_bytes()
print(before == simulator.TILE_BUDGET_BYTES, after == simulator.TUNED_TILE_BUDGET_BYTES)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_simulator_runs_larger_tiles_only_once_malloc_keeps_them():
    """Tiles of 32 MiB ran faster than 8 only with the tuned thresholds, slower without."""
    out = subprocess.run(
        [sys.executable, "-c", _BUDGET_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True"]
