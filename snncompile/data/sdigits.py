"""Sequential digits: scikit-learn's bundled handwritten digits read pixel by pixel.

Real data (UCI optical digits, 1797 images of 8x8 pixels with values 0..16, bundled
with scikit-learn, no download). Each image is a sequence of 64 steps with one
feature, the pixel intensity scaled to [0, 1], in row-major order. The split is
fixed: a stratified 80/20 split with seed 0 (1437 train, 360 test images), scikit-learn's
`train_test_split(..., test_size=360, random_state=0, stratify=labels)`.

Importing scikit-learn takes about 0.8 s, a fifth of a `verify` of a bundled model, for
a table and a permutation. So the permutation that split gives is stored beside this
file (sdigits_split.npz, the train and test image indices in its order; tests/test_data.py
checks it against scikit-learn's own call), and the table is read from scikit-learn's
data file (`digits.csv.gz`, found without importing the package); where that file is
not where it was, `load_digits` reads it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_CLASSES = 10
SEQ_LEN = 64
TEST_SIZE = 360
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """Inputs (n, L, d_input) float32 and integer labels (n,)."""

    inputs: np.ndarray
    labels: np.ndarray


SPLIT_FILE = Path(__file__).with_name("sdigits_split.npz")


def load_sdigits() -> tuple[Split, Split]:
    """Return the fixed (train, test) splits."""
    pixels, labels = _digits()
    inputs = (pixels.astype(np.float32) / 16.0).reshape(-1, SEQ_LEN, 1)
    with np.load(SPLIT_FILE) as split:
        train, test = split["train"], split["test"]
    return Split(inputs[train], labels[train]), Split(inputs[test], labels[test])


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) float64, labels (1797,) int64), as `load_digits` gives them."""
    spec = importlib.util.find_spec("sklearn")  # finds the package, imports nothing
    folder = spec.submodule_search_locations if spec is not None else None
    table = Path(folder[0]) / "datasets" / "data" / "digits.csv.gz" if folder else None
    if table is None or not table.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data, digits.target.astype(np.int64)
    data = np.loadtxt(table, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def sklearn_split() -> dict[str, np.ndarray]:
    """The train and test image indices, in order, of scikit-learn's split: what
    sdigits_split.npz holds (written by `np.savez(SPLIT_FILE, **sklearn_split())`)."""
    from sklearn.model_selection import train_test_split

    _, labels = _digits()
    train, test = train_test_split(
        np.arange(labels.size), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": train.astype(np.int16), "test": test.astype(np.int16)}
