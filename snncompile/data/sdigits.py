"""Sequential digits: scikit-learn's bundled handwritten digits read pixel by pixel.

Real data (UCI optical digits, 1797 images of 8x8 pixels with values 0..16, bundled
with scikit-learn, no download). Each image is a sequence of 64 steps with one
feature, the pixel intensity scaled to [0, 1], in row-major order. The split is
fixed: a stratified 80/20 split with seed 0 (1437 train, 360 test images).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def load_sdigits() -> tuple[Split, Split]:
    """Return the fixed (train, test) splits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    inputs = (digits.data.astype(np.float32) / 16.0).reshape(-1, SEQ_LEN, 1)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        inputs, labels, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    return Split(x_tr, y_tr), Split(x_te, y_te)
