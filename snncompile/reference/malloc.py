"""glibc malloc settings for a process that runs the reference simulator.

The simulator allocates its tile arrays afresh every tile: at a batch of 8 of the bundled
spike-ssm an SSM's inputs and messages are about 2 MB each. glibc serves a block above
its mmap threshold with a fresh mmap; after a free it raises that threshold to the
block's size (up to 32 MiB) and sets its trim threshold to twice that, returning free
memory at the top of the heap to the system beyond it. A tile's arrays, freed together,
pass the trim threshold, so the next tile faults all its pages in again: in a fresh
process 20 rounds of four 2 MiB arrays cost 40,380 minor page faults, 2,043 with the
settings below (tests/test_malloc.py's probe, 2026-12-04). A Lava run in the same
process raises both thresholds too (freeing one 16 MiB array did the same in a probe),
which is why the same simulation ran twice as fast after a Lava run as in a fresh
process (batch 8: 6,160 against 3,180 steps/s). The settings give every process that
speed: blocks below 32 MiB come from the heap and up to 256 MiB of freed heap is kept
for reuse, which lets the simulator run tiles of 32 MiB instead of 8
(simulator.tile_budget_bytes): a tile frees a few times its budget at once, and with
64 MiB kept, tiles of 48 MiB ran 1.7x slower than tiles of 32 at batch 32 (2026-12-05).

No setting keeps a block above 32 MiB for reuse: the simulator runs a batch too large
for one model step within its tile budget in groups of samples instead
(simulator._Run.group_size).

The CLI applies this to its own process (snncompile.cli.main); a library user running
long simulations may call it too. It changes allocator behaviour for the whole process,
so the library does not apply it on import.
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD_BYTES = 256 << 20  # 8x the tuned tile budget (module docstring)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
_tuned = False


def tuned() -> bool:
    """Whether tune_malloc_for_tiles took effect in this process."""
    return _tuned


def tune_malloc_for_tiles() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring); False where there is no
    glibc mallopt (macOS, Windows, musl), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:  # the C library this process already loaded (find_library would run ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    global _tuned
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    return _tuned
