"""The first-order linear filter along time that PMBC's bounds and backward are made
of, with rigorous bounds of its floating-point error.

    F(x)_t = sum_{i<=t} beta^(t-i) x_i       (forward; F_ex: the strict past, i < t)
    R(x)_t = sum_{i>=t} beta^(i-t) x_i       (reverse, the adjoint)

computed as a blocked scan (matmuls with triangular matrices of powers of beta, see
`linear_filter`), whose error `filter_error_bound` bounds against the exact filter and
`recurrence_error_bound` against the step-by-step recurrence in the same dtype. Also
the argument checks and the unit roundoff that PMBC shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from snncompile.errors import UsageError

# Chunk length of the blocked filter. Within a chunk the filter is a matmul with a
# triangular matrix of decay powers (cost ~CHUNK multiply-adds per element); chunk ends
# are filtered recursively. 16 measured fastest on a 2-core AVX2 CPU for L in 1K..16K.
CHUNK = 16
# Sequences this short are filtered by one matmul, without recursion.
DIRECT = 32

SUPPORTED_DTYPES = (torch.float32, torch.float64)
U64 = 2.0**-53
# Relative slack on every bound computed in float64: the bound arithmetic is a few dozen
# operations on positive numbers, each off by at most 2^-53 relative.
BOUND_SLACK = 1.0 + 2.0**-40


class Decay:
    """Per-channel decay beta (H,) with cached powers and chunk matrices.

    Powers are computed in float64 as products of beta (any product tree of e factors has
    e - 1 roundings, so beta^e is within a factor (1 + 2^-53)^e of exact), then rounded
    once to the working dtype.
    """

    def __init__(self, beta: torch.Tensor) -> None:
        self.dtype = beta.dtype
        self.channels = beta.numel()
        self.uniform = bool((beta == beta[0]).all())
        beta64 = beta.double()
        self.base = beta64[:1] if self.uniform else beta64
        self._tables: dict[int, torch.Tensor] = {}
        self._mats: dict[tuple[int, int, bool, bool], torch.Tensor] = {}
        self._edges: dict[tuple[int, int, bool], torch.Tensor] = {}

    def _powers(self, stride: int, count: int) -> torch.Tensor:
        """(count, h) float64: row d holds beta^(stride * d); stride is a power of CHUNK."""
        table = self._tables.get(stride)
        if table is None or table.shape[0] < count:
            if stride == 1:
                step = self.base
            else:
                step = self._powers(stride // CHUNK, CHUNK + 1)[CHUNK]
            rows = torch.cat([torch.ones_like(step)[None], step.expand(max(count, 2) - 1, -1)])
            table = torch.cumprod(rows, dim=0)
            self._tables[stride] = table
        return table[:count]

    def matrix(self, size: int, stride: int, exclusive: bool, reverse: bool) -> torch.Tensor:
        """(size, size) or (H, size, size): P[j, i] = beta^(stride*(j-i)) for j >= i."""
        key = (size, stride, exclusive, reverse)
        mat = self._mats.get(key)
        if mat is None:
            powers = self._powers(stride, size)  # (size, h)
            idx = torch.arange(size)
            lag = idx[:, None] - idx[None, :]
            keep = lag > 0 if exclusive else lag >= 0
            mat = powers[lag.clamp(min=0)].permute(2, 0, 1) * keep  # (h, size, size)
            if reverse:
                mat = mat.transpose(1, 2)
            mat = mat.to(self.dtype).contiguous()
            mat = mat[0] if self.uniform else mat
            self._mats[key] = mat
        return mat

    def edge(self, size: int, stride: int, reverse: bool) -> torch.Tensor:
        """Weights of the carry entering a chunk: beta^(stride*(j+1)) (reversed: (size-j))."""
        key = (size, stride, reverse)
        weights = self._edges.get(key)
        if weights is None:
            powers = self._powers(stride, size + 1)[1:]  # beta^(stride*1..size)
            if reverse:
                powers = powers.flip(0)
            weights = powers.to(self.dtype)  # (size, h)
            weights = weights.view(1, 1, size, -1).contiguous()
            self._edges[key] = weights
        return weights

    def apply(self, mat: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (n, k, T, H) -> (n, k, T, H): out[..., j, h] = sum_i P[(h,) j, i] x[..., i, h]."""
        if self.uniform:
            return torch.matmul(mat, chunks)
        return torch.einsum("hji,nkih->nkjh", mat, chunks)


def scan(
    x: torch.Tensor, decay: Decay, stride: int, exclusive: bool, reverse: bool
) -> torch.Tensor:
    """Blocked filter of x (n, L, H) with decay beta^stride along dim 1."""
    n, length, channels = x.shape
    if length <= DIRECT:
        mat = decay.matrix(length, stride, exclusive, reverse)
        return decay.apply(mat, x.unsqueeze(1)).squeeze(1)
    chunks = -(-length // CHUNK)
    padded = chunks * CHUNK
    if padded != length:
        # Trailing zeros change no earlier output (forward) and add nothing (reverse).
        x = torch.nn.functional.pad(x, (0, 0, 0, padded - length))
    xv = x.reshape(n, chunks, CHUNK, channels)
    y = decay.apply(decay.matrix(CHUNK, stride, exclusive, reverse), xv)
    edge = 0 if reverse else CHUNK - 1
    ends = y[:, :, edge, :]
    ends = ends + xv[:, :, edge, :] if exclusive else ends.contiguous()
    carry = scan(ends, decay, stride * CHUNK, False, reverse)  # (n, chunks, H)
    weights = decay.edge(CHUNK, stride, reverse)
    if reverse:
        y[:, :-1].addcmul_(weights, carry[:, 1:, None, :])
    else:
        y[:, 1:].addcmul_(weights, carry[:, :-1, None, :])
    y = y.view(n, padded, channels)
    return y[:, :length] if padded != length else y


def linear_filter(
    x: torch.Tensor, beta: torch.Tensor, *, exclusive: bool = False, reverse: bool = False
) -> torch.Tensor:
    """First-order linear filter along time of x (B, L, H), decay beta (H,) in [0, 1).

        forward:            y_t = beta * y_{t-1} + x_t = sum_{i<=t} beta^(t-i) x_i
        forward exclusive:  y_t = sum_{i<t}  beta^(t-i) x_i        (= beta * F(x)_{t-1})
        reverse:            y_t = sum_{i>=t} beta^(i-t) x_i        (the adjoint of forward)

    Blocked scan: chunks of CHUNK steps are filtered by one matmul with the triangular
    matrix of powers beta^(j-i); the chunk ends form a sequence with decay beta^CHUNK that
    is filtered the same way (recursively), and each chunk then adds beta^(j+1) times the
    filtered end of the previous chunk. Error bound: `filter_error_bound`.
    """
    check_sequence(x)
    if x.dtype not in SUPPORTED_DTYPES:
        raise UsageError(f"linear_filter supports float32 and float64, got {x.dtype}")
    beta_v = channel_vector(beta, x.shape[2], x.dtype, "beta")
    if not bool(((beta_v >= 0) & (beta_v < 1)).all()):
        raise UsageError("beta must lie in [0, 1) for every channel")
    if x.numel() == 0:
        return x.clone()
    decay = Decay(beta_v)
    return scan(x.contiguous(), decay, 1, exclusive, reverse)


@dataclass(frozen=True)
class FilterErrorBound:
    """|linear_filter(x)_t - F(x)_t| <= rel * sum_i beta^|t-i| |x_i| + absolute * (1 + max|x|).

    F is the exact (real-arithmetic) filter of the same dtype-valued x and beta. `absolute`
    covers underflow (also with flush-to-zero); it is ~1e-34 or smaller.
    """

    rel: float
    absolute: float


def _gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): relative error of any n-term dot product."""
    return n * u / (1.0 - n * u)


def _plan_bound(length: int, u: float, stride: int) -> tuple[float, int, int]:
    """(relative bound, largest power exponent used, recursion depth) of `scan`."""
    if length <= DIRECT:
        return _gamma(length + 1, u), stride * length, 1
    chunks = -(-length // CHUNK)
    inner, inner_exp, inner_depth = _plan_bound(chunks, u, stride * CHUNK)
    # Path of x_i into y_t: dot product inside its chunk (CHUNK terms, +1 add for an
    # exclusive end), the carry filter of the chunk ends, the edge weight, the final add.
    local = 1.0 + _gamma(CHUNK + 1, u)
    rel = local * (1.0 + inner) * (1.0 + _gamma(2, u)) - 1.0
    return rel, max(inner_exp, stride * (CHUNK + 1)), inner_depth + 1


def filter_error_bound(length: int, dtype: torch.dtype) -> FilterErrorBound:
    """Rigorous bound of `linear_filter`'s rounding error versus the exact filter.

    Model: every float operation returns (exact)(1 + d) + e with |d| <= u (2^-24 float32,
    2^-53 float64) and |e| <= the smallest normal number (underflow, flush-to-zero).
    Any n-term dot product, in any order and with or without FMA, is then within
    gamma_n = n u / (1 - n u) of exact relative to the sum of |terms| (Higham, Accuracy and
    Stability of Numerical Algorithms, Lemma 3.1 and eq. 3.5). Every term beta^(t-i) x_i
    reaches y_t through at most one dot product per recursion level (CHUNK+1 terms), one
    edge multiply-add per level, and coefficients computed as float64 products of at most
    e_max factors then rounded to the dtype (relative error (1 + 2^-53)^e_max (1 + u) - 1).
    Multiplying the per-level factors gives `rel`. The versus-recurrence bound adds the
    recurrence's own error: `recurrence_error_bound`.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise UsageError(f"filter_error_bound supports float32 and float64, got {dtype}")
    u = unit_roundoff(dtype)
    rel, max_exp, depth = _plan_bound(max(int(length), 1), u, 1)
    alpha = (1.0 + U64) ** max_exp * (1.0 + u) - 1.0
    # Two coefficient roundings (the matrix entry and the edge weight) per level.
    rel = (1.0 + rel) * (1.0 + alpha) ** (2 * depth) - 1.0
    tiny = torch.finfo(dtype).tiny
    absolute = 8.0 * (depth + 2) * (CHUNK + DIRECT + max(int(length), 1)) * tiny
    return FilterErrorBound(rel * BOUND_SLACK, absolute * BOUND_SLACK)


def recurrence_error_bound(beta: float, dtype: torch.dtype) -> tuple[float, float]:
    """(g, h): the recurrence y_t = fl(fl(beta*y_{t-1}) + x_t) satisfies
    |y_t - F(x)_t| <= g * max_s F(|x|)_s + h.

    With e_t its error and A = F(|x|): y_t = (beta y_{t-1}(1+d1) + x_t)(1+d2) + underflow,
    so |e_t| <= beta (1+u)^2 |e_{t-1}| + 2u(1+u) A_t + 3 eta, giving
    g = 2u(1+u) / (1 - beta') and h = 3 eta / (1 - beta') with beta' = beta (1+u)^2
    (both inf if beta' >= 1). Together with `filter_error_bound` this bounds the
    filter against the step-by-step recurrence in the same dtype.
    """
    u = unit_roundoff(dtype)
    damped = beta * (1.0 + u) ** 2
    if damped >= 1.0:
        return math.inf, math.inf
    tiny = torch.finfo(dtype).tiny
    scale = BOUND_SLACK / (1.0 - damped)
    return 2.0 * u * (1.0 + u) * scale, 3.0 * tiny * scale


def unit_roundoff(dtype: torch.dtype) -> float:
    return 2.0**-24 if dtype == torch.float32 else U64


def check_sequence(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"expected a tensor of shape (B, L, H), got {type(x).__name__}")
    if x.dim() != 3:
        raise UsageError(f"expected x of shape (B, L, H), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UsageError(f"expected a floating-point x, got {x.dtype}")


def channel_vector(
    value: float | torch.Tensor, channels: int, dtype: torch.dtype, name: str
) -> torch.Tensor:
    vec = torch.as_tensor(value, dtype=dtype)
    if vec.dim() == 0:
        vec = vec.expand(channels)
    if vec.shape != (channels,):
        raise UsageError(f"{name} must be a scalar or shape ({channels},), got {tuple(vec.shape)}")
    return vec.contiguous()
