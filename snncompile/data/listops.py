"""An LRA-style ListOps generator: nested list operations on digits, label = the value.

    [MAX 2 9 [MIN 4 7 ] 0 ]   ->  9

Operators: MAX, MIN, MED (lower median: the element at index (n-1)//2 once sorted),
SM (sum modulo 10). Vocabulary (token id): 0 PAD, 1..10 the digits 0..9, 11 "[MAX",
12 "[MIN", 13 "[MED", 14 "[SM", 15 "]". Sequences are padded on the LEFT to `length`
so a causal model sees the expression end at the last step (last-step pooling works).
Generation is deterministic in `seed`.
"""

from __future__ import annotations

import numpy as np

from snncompile.data.sdigits import Split
from snncompile.errors import UsageError

OPERATORS = ("MAX", "MIN", "MED", "SM")
PAD = 0
DIGIT0 = 1
OP0 = 11
CLOSE = 15
VOCAB_SIZE = 16
N_CLASSES = 10
MAX_ARGS = 5
# Generation draws random trees and keeps those of min_length..length tokens. Where such
# trees are rare it would draw for hours (depth 4, length 1024: none in 3,700 draws), so
# it gives up once it has drawn WARMUP_DRAWS plus DRAWS_PER_KEPT per
# tree kept (a keep rate below about 1/DRAWS_PER_KEPT), naming the length and depth.
WARMUP_DRAWS = 2000
# 1 in 1000: length 512 at depth 4 keeps 0.4% of draws and took 7 minutes, but worked
DRAWS_PER_KEPT = 1000

Tree = int | tuple[str, list["Tree"]]


def _apply(op: str, values: list[int]) -> int:
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "MED":
        return sorted(values)[(len(values) - 1) // 2]
    return sum(values) % 10


def evaluate(tree: Tree) -> int:
    """Value of an expression tree (a digit or (operator, arguments))."""
    if isinstance(tree, int):
        return tree
    op, args = tree
    return _apply(op, [evaluate(a) for a in args])


def tokens(tree: Tree) -> list[int]:
    """Token ids of a tree, in reading order."""
    if isinstance(tree, int):
        return [DIGIT0 + tree]
    op, args = tree
    out = [OP0 + OPERATORS.index(op)]
    for arg in args:
        out.extend(tokens(arg))
    out.append(CLOSE)
    return out


def _random_tree(rng: np.random.Generator, depth: int, max_args: int, branch_p: float) -> Tree:
    op = OPERATORS[rng.integers(len(OPERATORS))]
    args: list[Tree] = []
    for _ in range(int(rng.integers(2, max_args + 1))):
        if depth > 1 and rng.random() < branch_p:
            args.append(_random_tree(rng, depth - 1, max_args, branch_p))
        else:
            args.append(int(rng.integers(10)))
    return (op, args)


def max_tokens(depth: int, max_args: int = MAX_ARGS) -> int:
    """The most tokens an expression of depth <= `depth` can have: an operator, its
    arguments (each a deepest subtree) and the closing bracket."""
    most = 0  # a digit is one token; depth 0 is a lone digit
    for _ in range(depth):
        most = 2 + max_args * max(most, 1)
    return max(most, 1)


def check_reachable(length: int, depth: int, max_args: int = MAX_ARGS) -> None:
    """UsageError unless expressions of depth <= `depth` can fill length // 4 tokens."""
    most = max_tokens(depth, max_args)
    if most < length // 4:
        raise UsageError(
            f"listops length {length} needs expressions of at least {length // 4} tokens, "
            f"and at depth {depth} they have at most {most}: raise the depth or lower the length"
        )


def generate_listops(
    n: int,
    *,
    length: int = 128,
    depth: int = 4,
    max_args: int = MAX_ARGS,
    branch_p: float = 0.4,
    min_length: int | None = None,
    seed: int = 0,
) -> Split:
    """n expressions of `min_length` (default length // 4) to `length` tokens, depth <= `depth`.

    Returns token ids (n, length) int64, left-padded with PAD, and labels (n,).
    """
    if n <= 0 or length < 4 or depth < 1 or max_args < 2 or not 0 <= branch_p <= 1:
        raise UsageError(
            f"listops needs n > 0, length >= 4, depth >= 1, max_args >= 2, 0 <= branch_p <= 1; "
            f"got n={n}, length={length}, depth={depth}, max_args={max_args}, branch_p={branch_p}"
        )
    if min_length is None:
        check_reachable(length, depth, max_args)
        min_length = length // 4
    rng = np.random.default_rng(seed)
    ids = np.full((n, length), PAD, dtype=np.int64)
    labels = np.empty(n, dtype=np.int64)
    made = draws = 0
    while made < n:
        tree = _random_tree(rng, depth, max_args, branch_p)
        seq = tokens(tree)
        draws += 1
        if not min_length <= len(seq) <= length:
            if draws > WARMUP_DRAWS + DRAWS_PER_KEPT * made:
                raise UsageError(
                    f"listops expressions of {min_length} to {length} tokens at depth {depth} "
                    f"are too rare ({made} of {draws} random ones): raise the depth or lower the "
                    "length"
                )
            continue
        ids[made, length - len(seq) :] = seq
        labels[made] = evaluate(tree)
        made += 1
    return Split(ids, labels)


def one_hot(ids: np.ndarray) -> np.ndarray:
    """(n, L) token ids -> (n, L, VOCAB_SIZE) float32 one-hot features."""
    return np.eye(VOCAB_SIZE, dtype=np.float32)[ids]
