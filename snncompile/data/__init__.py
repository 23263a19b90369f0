"""Bundled tasks. Each task gives fixed train/test splits and turns a batch into features.

sdigits  sequential 8x8 handwritten digits from scikit-learn (real data), L=64, 1 feature
listops  LRA-style ListOps, generated deterministically (length, depth configurable)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snncompile.data.listops import check_reachable
from snncompile.data.sdigits import Split
from snncompile.errors import UsageError


@dataclass(frozen=True)
class Task:
    """A classification task: splits of raw inputs and the map from raw batch to features."""

    name: str
    d_input: int
    n_classes: int
    train: Split
    test: Split
    featurize: Callable[[np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


MAX_LISTOPS_LENGTH = 1 << 14  # the 9000 expressions load_task makes then hold 1.2 GB of ids
# LRA's ListOps uses depth 10. Generation grows about 1.7x per level: load_task's 9000
# expressions take about a minute at depth 10 and would take hours at 20 (measured here).
MAX_LISTOPS_DEPTH = 10


def check_task_args(*, length: int = 128, depth: int = 4, seed: int = 0) -> None:
    """UsageError unless the task arguments are integers in range."""
    for arg, value in (("length", length), ("depth", depth), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"task {arg} must be a non-negative integer, got {value!r}")
    if length < 4 or depth < 1:  # what generate_listops needs; it refused them only later
        raise UsageError(
            f"task length must be at least 4 and depth at least 1, got {length}, {depth}"
        )
    if length > MAX_LISTOPS_LENGTH:
        raise UsageError(f"task length must be at most {MAX_LISTOPS_LENGTH}, got {length}")
    if depth > MAX_LISTOPS_DEPTH:
        raise UsageError(f"task depth must be at most {MAX_LISTOPS_DEPTH}, got {depth}")
    check_reachable(length, depth)


def task_shape(name: str) -> tuple[int, int]:
    """(d_input, n_classes) of a bundled task, without making its data (a listops
    generation takes seconds to a minute)."""
    if name == "sdigits":
        from snncompile.data.sdigits import N_CLASSES

        return 1, N_CLASSES
    if name == "listops":
        from snncompile.data import listops

        return listops.VOCAB_SIZE, listops.N_CLASSES
    raise UsageError(f"unknown task {name!r}; known: {', '.join(TASKS)}")


def load_task(name: str, *, length: int = 128, depth: int = 4, seed: int = 0) -> Task:
    """Load a bundled task by name. `length`, `depth` and `seed` apply to listops."""
    check_task_args(length=length, depth=depth, seed=seed)
    if name == "sdigits":
        from snncompile.data.sdigits import N_CLASSES, load_sdigits

        train, test = load_sdigits()
        return Task("sdigits", 1, N_CLASSES, train, test, _identity)
    if name == "listops":
        from snncompile.data import listops

        train = listops.generate_listops(8000, length=length, depth=depth, seed=seed)
        test = listops.generate_listops(1000, length=length, depth=depth, seed=seed + 1)
        return Task("listops", listops.VOCAB_SIZE, listops.N_CLASSES, train, test, listops.one_hot)
    raise UsageError(f"unknown task {name!r}; known: {', '.join(TASKS)}")


TASKS = ("sdigits", "listops")
