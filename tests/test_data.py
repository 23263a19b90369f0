"""Bundled tasks: real sdigits with a fixed split, a deterministic ListOps generator."""

from __future__ import annotations

import numpy as np
import pytest

from snncompile.data import load_task
from snncompile.data.listops import (
    CLOSE,
    DIGIT0,
    OP0,
    PAD,
    evaluate,
    generate_listops,
    max_tokens,
    one_hot,
    tokens,
)
from snncompile.errors import UsageError


def test_sdigits_split_is_fixed_and_disjoint() -> None:
    a, b = load_task("sdigits"), load_task("sdigits")
    assert a.train.inputs.shape == (1437, 64, 1) and a.test.inputs.shape == (360, 64, 1)
    assert np.array_equal(a.test.inputs, b.test.inputs)
    assert np.array_equal(a.test.labels, b.test.labels)
    assert 0.0 <= a.train.inputs.min() and a.train.inputs.max() <= 1.0
    train_rows = {row.tobytes() for row in a.train.inputs}
    overlap = sum(row.tobytes() in train_rows for row in a.test.inputs)
    assert overlap <= 2  # the UCI set has a couple of duplicate images, nothing more
    assert np.bincount(a.test.labels).min() >= 35  # stratified


def test_sdigits_is_scikit_learns_split_without_importing_it() -> None:
    """The stored permutation and the table read from scikit-learn's data file give
    what `load_digits` and `train_test_split` give (the split the bundled models were
    trained and measured on, in the same order), and loading imports no scikit-learn
    (0.8 s of every verify)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from snncompile.data.sdigits import SPLIT_FILE, load_sdigits, sklearn_split

    with np.load(SPLIT_FILE) as stored:
        assert {k: stored[k].tolist() for k in stored.files} == {
            k: v.tolist() for k, v in sklearn_split().items()
        }
    digits = load_digits()
    inputs = (digits.data.astype(np.float32) / 16.0).reshape(-1, 64, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(
        inputs, digits.target, test_size=360, random_state=0, stratify=digits.target
    )
    train, test = load_sdigits()
    for got, want in ((train.inputs, x_tr), (test.inputs, x_te), (train.labels, y_tr),
                      (test.labels, y_te)):  # fmt: skip
        assert got.dtype == want.dtype or got.dtype == np.int64
        assert np.array_equal(got, want)
    code = "import sys; from snncompile.data import load_task; load_task('sdigits'); "
    code += "print(any(m.split('.')[0] == 'sklearn' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_listops_semantics() -> None:
    tree = ("MAX", [2, 9, ("MIN", [4, 7]), 0])
    assert evaluate(tree) == 9
    assert evaluate(("MED", [5, 1, 9, 3])) == 3  # lower median of 1 3 5 9
    assert evaluate(("SM", [7, 8, ("MAX", [1, 2])])) == 7
    assert tokens(("MIN", [4, 7])) == [OP0 + 1, DIGIT0 + 4, DIGIT0 + 7, CLOSE]


def _parse(ids: np.ndarray) -> int:
    """Evaluate a token sequence with a stack (independent of the generator's tree)."""
    ops = ["MAX", "MIN", "MED", "SM"]
    stack: list[list] = [[]]
    for tok in ids[ids != PAD]:
        if tok >= OP0 and tok != CLOSE:
            stack.append([ops[tok - OP0]])
        elif tok == CLOSE:
            op, *args = stack.pop()
            stack[-1].append(evaluate((op, args)))
        else:
            stack[-1].append(int(tok - DIGIT0))
    return stack[0][0]


def test_listops_is_deterministic_left_padded_and_labelled_right() -> None:
    a = generate_listops(50, length=64, depth=3, seed=7)
    b = generate_listops(50, length=64, depth=3, seed=7)
    c = generate_listops(50, length=64, depth=3, seed=8)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.inputs, c.inputs)
    assert (a.inputs[:, -1] == CLOSE).all()  # expression ends at the last step
    lengths = (a.inputs != PAD).sum(1)
    assert lengths.min() >= 16 and lengths.max() <= 64
    assert [_parse(row) for row in a.inputs] == a.labels.tolist()
    assert one_hot(a.inputs).shape == (50, 64, 16)


def test_listops_bad_arguments() -> None:
    with pytest.raises(UsageError, match=r"listops needs .*length >= 4.*got n=10, length=2"):
        generate_listops(10, length=2)


def test_max_tokens_is_reached_by_the_fullest_tree() -> None:
    full = ("MAX", [("MIN", [("SM", [1] * 5)] * 5)] * 5)  # depth 3, five arguments each
    assert len(tokens(full)) == max_tokens(3) == 187
    assert (max_tokens(1), max_tokens(4)) == (7, 937)


def test_a_listops_length_out_of_reach_is_refused_at_once() -> None:
    # Depth 4 makes at most 937 tokens; length 4096 keeps only trees of >= 1024: the
    # generator drew forever (audit41).
    message = "listops length 4096 needs expressions of at least 1024 tokens, and at depth 4"
    with pytest.raises(UsageError, match=message):
        load_task("listops", length=4096, depth=4)
    with pytest.raises(UsageError, match="depth at least 1, got 16, 0"):
        load_task("listops", length=16, depth=0)


def test_listops_lengths_too_rare_to_draw_are_refused() -> None:
    # Reachable, but no tree of 256..1024 tokens in thousands of draws at depth 4.
    with pytest.raises(UsageError, match=r"at depth 4 are too rare \(0 of 2001 random ones\)"):
        generate_listops(10, length=1024, depth=4)
    assert generate_listops(10, length=1024, depth=8).inputs.shape == (10, 1024)


def test_unknown_task() -> None:
    with pytest.raises(UsageError, match="unknown task"):
        load_task("imagenet")


def test_listops_draws_every_argument_count_and_the_reach_bound_is_tight() -> None:
    """Depth 1 with up to 5 arguments makes 4..7 tokens (operator, 2..5 digits, close),
    and every count occurs; length 28 (>= 7 tokens needed) is reachable at depth 1,
    length 32 (>= 8) is refused at once, before any draw."""
    from snncompile.data import listops

    split = generate_listops(400, length=7, depth=1, min_length=4)
    sizes = set((split.inputs != listops.PAD).sum(axis=1).tolist())
    assert sizes == {4, 5, 6, 7} and listops.max_tokens(1) == 7
    assert generate_listops(5, length=28, depth=1).inputs.shape == (5, 28)
    with pytest.raises(
        UsageError,
        match="needs expressions of at least 8 tokens, and at depth 1 they have at most 7",
    ):
        generate_listops(5, length=32, depth=1)
