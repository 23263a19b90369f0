"""Exact parallel spikes of the SPikE-SSM reset-refractory neuron (PMBC).

The neuron (per channel; beta in [0, 1), theta > 0, rho >= 0, c = theta + rho):

    m_t = beta * v_{t-1} + x_t,    s_t = [m_t > theta],    v_t = m_t - c * s_t,    v_{-1} = 0.

Unrolled, with the linear filter F(z)_t = sum_{i<=t} beta^(t-i) z_i and its strict-past
variant F_ex(z)_t = sum_{i<t} beta^(t-i) z_i,

    m_t = F(x)_t - c * F_ex(s)_t,

which is decreasing in every past spike. PMBC ("parallel max-min boundary compression",
SPikE-SSM) exploits that: with K the past spikes already known and Z the steps not yet
decided, U = F(x) - c F_ex(K) is an upper and L = U - c F_ex(Z) a lower bound of the
membrane. Where L clears theta the spike is certain, where U stays below it the silence
is; each pass is two filters over the whole sequence, and the earliest undecided step
always resolves.

Floating point turns "always" into "almost always". The reference (`sequential_spikes`)
rounds its own membrane, and the filters round differently, so a step is only declared
certain when its bound clears theta by a margin that provably covers both roundings
(see `filter_error_bound` and `_PmbcRun._row_bounds`). Steps inside the margin, and
whatever is left when the pass cap is hit, go to an exact sequential finish that
replays the reference's own float operations (see `_PmbcRun._finish`): on intervals
that provably hold the reference's membrane until they collapse onto it, in lock-step
over blocks of the sequence when many steps are open, and from t = 0 for the rows that
still need it. So `pmbc_spikes` returns the spikes of `sequential_spikes` bit for bit,
in float32 and float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from snncompile.errors import UsageError
from snncompile.models.neurons.linear_filter import (
    BOUND_SLACK,
    SUPPORTED_DTYPES,
    U64,
    Decay,
    channel_vector,
    check_sequence,
    filter_error_bound,
    scan,
    unit_roundoff,
)

# Rows of the batch processed together: keeps each temporary near 2 MB, so passes run
# in cache and temporaries are reused by the allocator instead of page-faulted afresh.
SLICE_ELEMENTS = 1 << 19
# Measured on a 2-core CPU (B=16, H=128, L=1K..16K, beta 0.125..0.9): a second pass
# costs more than the exact finish it saves, which is the same lock-step replay whether
# 18% or 1% of the steps are open. Raise it where passes are cheaper (on a GPU, which
# this code does not target: its temporaries are allocated on the CPU).
DEFAULT_MAX_PASSES = 1
# A slice with more undecided steps than this fraction makes the finish replay all
# blocks in lock-step (strided, no gathers); below it, open steps are replayed cluster
# by cluster.
DENSE_FINISH_FRACTION = 0.005
# Extra lock-step warm-up beyond the contraction estimate: a step whose interval
# straddles theta widens it again, and blocks that fail to collapse cost far more later.
WARMUP_SLACK = 8
# Lock-step block length ~ sqrt(BLOCK_SCALE * L): fewer, longer blocks mean more steps
# of smaller operations; measured best near 4 (two threads need >32K elements per op).
BLOCK_SCALE = 4.0
# Lane groups smaller than this run as one group whatever their lengths.
LANE_GROUP = 4096

# "No clip" offset of the interval replay: finite, and 2 * _BIG does not overflow.
_BIG = {dtype: torch.finfo(dtype).max / 16 for dtype in (torch.float32, torch.float64)}


# --------------------------------------------------------------------------- reference


def sequential_spikes(
    x: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor, rho: torch.Tensor
) -> torch.Tensor:
    """Step-by-step reference of the reset-refractory neuron, in x's dtype.

        c = theta + rho (rounded once), v_{-1} = 0, and for t = 0..L-1:
        m_t = beta * v_{t-1} + x_t;   s_t = [m_t > theta];   v_t = m_t - c * s_t

    Each line is one rounding per operation, no fused multiply-add: this order of float
    operations defines "the" spikes that `pmbc_spikes` reproduces exactly.
    x (B, L, H); beta, theta, rho per channel (H,) or scalars. Returns float 0/1 (B, L, H).
    """
    check_sequence(x)
    channels = x.shape[2]
    beta_v = channel_vector(beta, channels, x.dtype, "beta")
    theta_v = channel_vector(theta, channels, x.dtype, "theta")
    rho_v = channel_vector(rho, channels, x.dtype, "rho")
    _check_neuron_params(beta_v, theta_v, rho_v)
    c = theta_v + rho_v
    v = torch.zeros(x.shape[0], channels, dtype=x.dtype)
    spikes = torch.empty_like(x)
    for t, x_t in enumerate(x.unbind(1)):
        m = beta_v * v + x_t
        s = (m > theta_v).to(x.dtype)
        v = m - c * s
        spikes[:, t] = s
    return spikes


# --------------------------------------------------------------------------- PMBC


@dataclass
class PmbcStats:
    """What one `pmbc_spikes` call did.

    passes: PMBC passes of the slice that needed most (pass 1 is closed-form);
    resolved_per_pass: steps newly decided by each pass, summed over slices;
    finish_steps: steps left to the sequential finish (inside the margin, or open at
    the pass cap); the finish's replays: block_lanes (lock-step block replays that
    collapsed onto the reference), repair_lanes (exact replays of the other blocks'
    open steps), cluster_lanes (replays of clusters of open steps), exact_restarts
    (replays from t = 0), and replay_steps, the float steps they ran.
    """

    steps: int = 0
    passes: int = 0
    max_passes: int = 0
    resolved_per_pass: list[int] = field(default_factory=list)
    finish_steps: int = 0
    block_lanes: int = 0
    repair_lanes: int = 0
    cluster_lanes: int = 0
    exact_restarts: int = 0
    replay_steps: int = 0

    @property
    def hit_cap(self) -> bool:
        """True when the pass cap stopped the passes with steps still open."""
        return self.passes >= self.max_passes and self.finish_steps > 0


def pmbc_spikes(
    x: torch.Tensor,
    beta: torch.Tensor,
    theta: torch.Tensor,
    rho: torch.Tensor,
    max_passes: int = DEFAULT_MAX_PASSES,
) -> tuple[torch.Tensor, PmbcStats]:
    """Spikes of the reset-refractory neuron by PMBC, identical to `sequential_spikes`.

    Passes (at most `max_passes`), per slice of batch rows, with K/N the steps known to
    spike/stay silent and the rest undecided:

        U = F(x) - c F_ex(K)                      (undecided past spikes taken as 0)
        L = F(x) - c F_ex(1) + c F_ex(N)          (undecided past spikes taken as 1)
        spike certain where L > theta + margin; silence certain where U <= theta - margin

    Pass 1 has K = N = 0 and needs no spike filter. The loop stops when nothing is
    undecided, a pass decides nothing new, or the cap is hit. The margin (per batch row
    and channel) covers the filters' rounding and the reference's rounding, so certainty
    is certainty about the reference's float membrane. Remaining steps go to `_finish`.
    x (B, L, H) float32/float64; beta in [0, 1), theta > 0, rho >= 0 per channel.
    Returns spikes (B, L, H) float 0/1 in x's dtype and a PmbcStats.
    """
    run = _PmbcRun(x, beta, theta, rho, max_passes)
    return run.run(), run.stats


@dataclass
class _Lanes:
    """Sequential replays: lane k replays channel h[k] of batch row b[k] over steps
    start[k]..stop[k] from a float interval [lo[k], hi[k]] known to hold m_start."""

    b: torch.Tensor
    h: torch.Tensor
    start: torch.Tensor
    stop: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def select(self, index: torch.Tensor) -> _Lanes:
        return _Lanes(*(getattr(self, f)[index] for f in _LANE_FIELDS))

    @staticmethod
    def cat(parts: list[_Lanes]) -> _Lanes:
        return _Lanes(*(torch.cat([getattr(p, f) for p in parts]) for f in _LANE_FIELDS))


_LANE_FIELDS = ("b", "h", "start", "stop", "lo", "hi")


@dataclass
class _OpenSlice:
    """A batch slice that still has undecided steps after its passes. Its last bounds
    (lower, upper) are kept only when few steps are open: a slice with many open steps
    makes the finish replay all blocks, which needs only the bounds before each block."""

    b0: int
    b1: int
    a: torch.Tensor
    margin: torch.Tensor
    open_steps: int
    dense: bool
    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None


class _PmbcRun:
    """One PMBC evaluation; `finalize(b0, b1, a, spikes)` is called once per batch slice
    with F(x) of the slice and its final spikes (used by the neuron's fused forward)."""

    def __init__(self, x, beta, theta, rho, max_passes) -> None:
        check_sequence(x)
        if x.dtype not in SUPPORTED_DTYPES:
            raise UsageError(f"pmbc_spikes supports float32 and float64, got {x.dtype}")
        if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
            raise UsageError(f"max_passes must be an int >= 1, got {max_passes!r}")
        self.x = x.detach().contiguous()
        self.batch, self.length, self.channels = x.shape
        self.dtype = x.dtype
        self.beta = channel_vector(beta, self.channels, self.dtype, "beta").detach()
        self.theta = channel_vector(theta, self.channels, self.dtype, "theta").detach()
        self.rho = channel_vector(rho, self.channels, self.dtype, "rho").detach()
        _check_neuron_params(self.beta, self.theta, self.rho)
        self.c = self.theta + self.rho
        self.max_passes = max_passes
        self.decay = Decay(self.beta)
        self.stats = PmbcStats(steps=x.numel(), max_passes=max_passes)
        self.u = unit_roundoff(self.dtype)
        self.tiny = torch.finfo(self.dtype).tiny
        self.bound = filter_error_bound(self.length, self.dtype)
        self.rows_per_slice = max(1, SLICE_ELEMENTS // max(1, self.length * self.channels))
        self.code = torch.zeros(x.shape, dtype=torch.int8)  # +1 spike, -1 silent, 0 open
        self.open_slices: list[_OpenSlice] = []
        self.warmup = 0
        self.block: int | None = None  # lock-step layout, fixed at the first open slice
        self._conflict = torch.full((), -math.inf, dtype=self.dtype)
        self.magnitude = 0.0

    # ---- driver

    def run(self, finalize=None) -> torch.Tensor:
        spikes = torch.empty(self.x.shape, dtype=self.dtype)
        if self.x.numel() == 0:
            return spikes
        ones = torch.ones(1, self.length, self.channels, dtype=self.dtype)
        self.c_past = self.c * scan(ones, self.decay, 1, True, False)  # c F_ex(1)
        for b0 in range(0, self.batch, self.rows_per_slice):
            b1 = min(self.batch, b0 + self.rows_per_slice)
            a = self._slice_passes(b0, b1)
            if a is not None:
                self._emit(b0, b1, a, spikes, finalize)
        if self.open_slices:
            self._finish()
            for part in self.open_slices:
                self._emit(part.b0, part.b1, part.a, spikes, finalize)
        return spikes

    def _emit(self, b0, b1, a, spikes, finalize) -> None:
        out = spikes[b0:b1]
        torch.gt(self.code[b0:b1], 0, out=out)
        if finalize is not None:
            finalize(b0, b1, a, out)

    # ---- margins

    def _row_margins(self, xs: torch.Tensor) -> torch.Tensor:
        """Per (row, channel) margins in float64, shape (n, 1, H): err + D from
        `_row_bounds`, or inf where the bound is not valid."""
        err, d_bound, valid = self._row_bounds(xs)
        return torch.where(valid, (err + d_bound) * BOUND_SLACK, math.inf)

    def _row_bounds(self, xs: torch.Tensor):
        """(err, D, valid) per (row, channel) in float64, shape (n, 1, H).

        A step is declared certain when its bound clears theta by the margin, and the
        finish widens the bounds by it into an interval holding the reference's float
        membrane. margin = err + D with
          err >= |computed L or U - exact L or U|  (filter bound and the few roundings of
                 forming L and U; magnitudes bounded by A + 2 c S),
          D  >= |reference float membrane - exact membrane for the same spikes|,
        where S = min(1/(1-beta), L) >= sum_k beta^k and A = max_t |x_t| * S >= F(|x|).
        Derivation of D (u unit roundoff, eta smallest normal): if D_t <= theta, a spike
        needs M_t > theta - D_t >= 0, so |V_t| <= A + c =: Q and |M_t| <= Q. The three
        roundings of a step give e_t <= beta (1+u)^3 e_{t-1} + kappa Q + lam eta with
        kappa = u (1+u)(1 + beta(1+u)) + u, lam = (1+u)(2+u) + 1, hence
        e_t <= E = (kappa Q + lam eta) / (1 - beta (1+u)^3) and
        D = beta (1+u)^2 E + u (1 + beta (1+u)) Q + (2+u) eta.
        Where D > theta or beta (1+u)^3 >= 1 the argument fails: margin = inf (no step of
        that row is ever declared certain; the finish replays it exactly from t = 0).
        So is a row whose crude membrane bound 2 (max|x| + c) S reaches _BIG / 4: only an
        exact replay to its last step can tell whether the reference's membrane overflows,
        which the step loops refuse and so does PMBC.
        """
        u, eta = self.u, self.tiny
        beta = self.beta.double()
        theta = self.theta.double()
        c = self.c.double()
        geo = (1.0 / (1.0 - beta)).clamp(max=self.length) * (1.0 + 4 * U64)
        # max |x| without a temporary |x|
        xmax = torch.maximum(xs.amax(dim=1, keepdim=True), xs.amin(dim=1, keepdim=True).neg_())
        xmax = xmax.double()
        if not bool(torch.isfinite(xmax).all()):
            raise UsageError("a reset-refractory neuron's input holds inf or NaN (PMBC)")
        amag = xmax * geo
        # Crude bound of any float membrane, valid bound or not (block replay clamps).
        reach = 2.0 * (xmax + c) * geo
        self.magnitude = max(self.magnitude, float(reach.max()))
        rel = self.bound.rel
        err = ((1.0 + rel) * (1.0 + u) ** 6 - 1.0) * (amag + 2.0 * c * geo)
        err = err + 4.0 * self.bound.absolute * (1.0 + xmax + c) + 8.0 * eta
        q = amag + c
        damped = beta * (1.0 + u) ** 3
        kappa = u * (1.0 + u) * (1.0 + beta * (1.0 + u)) + u
        lam = (1.0 + u) * (2.0 + u) + 1.0
        e_bound = (kappa * q + lam * eta) / (1.0 - damped).clamp(min=1e-300)
        d_bound = beta * (1.0 + u) ** 2 * e_bound + u * (1.0 + beta * (1.0 + u)) * q
        d_bound = (d_bound + (2.0 + u) * eta) * BOUND_SLACK
        # A row whose membrane might leave the float range is replayed from t = 0 to the
        # end, where the finish checks its last potential (`_replay_rows_exactly`).
        valid = (damped < 1.0) & (d_bound <= theta) & (reach < _BIG[self.dtype] / 4)
        return err * BOUND_SLACK, d_bound, valid

    # ---- passes

    def _slice_passes(self, b0: int, b1: int) -> torch.Tensor | None:
        """PMBC passes over batch rows b0:b1; writes `code`. Returns F(x) of the slice if
        every step was decided, else None (the slice is kept in `open_slices`)."""
        xs = self.x[b0:b1]
        n = b1 - b0
        margin = self._row_margins(xs)
        theta64 = self.theta.double()
        # A row without a valid bound decides nothing, not even where a filter overflowed
        # to -inf (<= theta - inf held, and such a step was "silent" unreplayed): NaN
        # compares false.
        invalid = ~torch.isfinite(margin)
        hi = _round_to(theta64 + margin, self.dtype, up=True).masked_fill_(invalid, math.nan)
        lo = _round_to(theta64 - margin, self.dtype, up=False).masked_fill_(invalid, math.nan)
        a = scan(xs, self.decay, 1, False, False)
        a_low = a - self.c_past
        upper, lower = a, a_low  # pass 1: no past spike known
        # Rows 0..n-1: certain spikes, n..2n-1: certain silences. Flags are recomputed
        # each pass rather than accumulated: every pass's bounds are valid on their own.
        known = torch.empty((2 * n, *xs.shape[1:]), dtype=self.dtype)
        spike, silent = known[:n], known[n:]
        total = xs.numel()
        open_steps = total
        passes = 0
        while True:
            passes += 1
            torch.gt(lower, hi, out=spike)
            torch.le(upper, lo, out=silent)
            now_open = total - _count_ones(known)
            self._count_pass(passes, open_steps - now_open)
            progress = now_open < open_steps
            open_steps = now_open
            if open_steps == 0 or passes >= self.max_passes or not progress:
                break
            past = scan(known, self.decay, 1, True, False)
            upper = torch.addcmul(a, past[:n], self.c, value=-1)
            lower = torch.addcmul(a_low, past[n:], self.c)
        self.stats.passes = max(self.stats.passes, passes)
        code = self.code[b0:b1]
        code.copy_(spike)
        code.sub_(silent.to(torch.int8))
        if open_steps == 0:
            return a
        dense = open_steps > DENSE_FINISH_FRACTION * total
        part = _OpenSlice(b0, b1, a, margin, open_steps, dense)
        if not dense:
            part.lower, part.upper = lower, upper
        self.open_slices.append(part)
        self._keep_block_enclosures(part, lower, upper)
        return None

    def _count_pass(self, index: int, resolved: int) -> None:
        counts = self.stats.resolved_per_pass
        while len(counts) < index:
            counts.append(0)
        counts[index - 1] += resolved

    # ---- sequential finish

    def _warmup_steps(self, width: float) -> int:
        """Replay steps for an interval of `width` to contract (by beta per step) below
        the spacing of floats near theta, plus slack for steps whose interval straddles."""
        beta_max = float(self.beta.max())
        if not math.isfinite(width):
            return self.length
        if beta_max <= 0.0:
            return 8
        spacing = float(self.theta.min()) * self.u
        # In logs: width / spacing overflows for membranes near the float range, and
        # spacing underflows to 0 for a subnormal theta (then no warm-up is short enough).
        if spacing <= 0.0:
            return self.length
        contraction = math.log(width) - math.log(spacing) if width > 0 else 0.0
        steps = max(contraction, math.log(2.0)) / -math.log(beta_max)
        return int(min(self.length, math.ceil(steps) + 8))

    def _margin_width(self) -> float:
        """Largest interval width the finish starts from when the past is decided."""
        widths = [float(p.margin.max()) for p in self.open_slices]
        return 2.0 * max(widths, default=0.0)

    def _finish(self) -> None:
        """Exact sequential finish: replay the reference's float operations.

        Replays track an interval [lo, hi] holding the reference's float membrane.
        Every operation of a step (fl(beta*v), fl(p + x), fl(m - c)) is monotone in its
        input, so running it on both ends keeps the interval valid while the spike test
        agrees on both ends or is already known from the passes (the interval is then
        clipped to that side of theta). When the tests disagree on an open step, the hull
        of both outcomes is kept and the step stays open. The interval contracts by beta
        per step and collapses onto the reference trajectory (lo == hi); from then on the
        replay is the reference itself. A replay from t = 0 is exact from the start
        (m_0 = x_0).

        Stages, each only for what is still open: (1) when many steps are open, every
        block of the sequence is replayed in lock-step after a warm-up from the bounds
        just before it, and blocks whose interval did not collapse are replayed again
        exactly from the end state of the last block that did; (2) otherwise each
        cluster of open steps of a (row, channel) is replayed from `warmup` steps before
        it; (3) whatever is left is replayed from t = 0, which always decides it. When a
        membrane might come near the float range, only stage (3) runs; it refuses a
        membrane that overflows, as the step loops do.
        """
        self.stats.finish_steps = sum(part.open_steps for part in self.open_slices)
        dense = any(part.dense for part in self.open_slices)
        # The interval replays assume |m| well inside +-_BIG (their "no clip" offset);
        # where some membrane might not be, everything open is replayed by stage (3).
        bounded = self.magnitude < _BIG[self.dtype] / 4
        if dense and self.block and bounded:
            exact, v_end = self._replay_blocks()
            self._recount_open()
            repairs = self._repair_lanes(exact, v_end)
            if repairs is not None:
                self.stats.repair_lanes += repairs.b.numel()
                self._run_lanes(repairs)
                self._recount_open()
        sparse = [part for part in self.open_slices if part.open_steps and not part.dense]
        if sparse and bounded:
            self.warmup = self._warmup_steps(self._margin_width())
            lanes = [self._collect_lanes(part) for part in sparse]
            lanes = _Lanes.cat([lane for lane in lanes if lane is not None])
            self.stats.cluster_lanes += lanes.b.numel()
            self._run_lanes(lanes)
            self._recount_open()
        if any(part.open_steps for part in self.open_slices):
            self._replay_rows_exactly()
            self._recount_open()
        self._check_conflicts()
        if any(part.open_steps for part in self.open_slices):
            raise RuntimeError("internal error: PMBC finish left undecided steps")

    def _recount_open(self) -> None:
        for part in self.open_slices:
            code = self.code[part.b0 : part.b1]
            part.open_steps = code.numel() - int(torch.count_nonzero(code))

    def _replay_rows_exactly(self) -> None:
        """Stage (3) of `_finish`: the reference itself, from t = 0 up to the last open
        step, for the (row, channel) pairs that still have open steps. When most pairs
        need it the whole batch is stepped through strided views (no gathers)."""
        open_rows = self.code.abs().amin(dim=1) == 0  # (B, H)
        rows = open_rows.nonzero()
        self.stats.exact_restarts += rows.shape[0]
        open_time = (self.code.abs().amin(dim=2) == 0).any(dim=0).nonzero()
        stop = int(open_time.max()) + 1
        everything = rows.shape[0] * 2 > open_rows.numel()
        if everything:
            x, beta, theta, c = self.x, self.beta, self.theta, self.c
            v = torch.zeros(self.batch, self.channels, dtype=self.dtype)
        else:
            b, h = rows[:, 0], rows[:, 1]
            x = self.x[b, :stop, h].T.contiguous()[None]  # (1, stop, R)
            beta, theta, c = self.beta[h], self.theta[h], self.c[h]
            v = torch.zeros(1, h.numel(), dtype=self.dtype)
        self.stats.replay_steps += stop * (x.shape[0] * x.shape[2])
        fired = torch.empty((x.shape[0], stop, x.shape[2]), dtype=torch.int8)
        spike = torch.empty_like(v)
        for t in range(stop):
            m = beta * v + x[:, t]
            torch.gt(m, theta, out=spike)
            fired[:, t].copy_(spike)
            v = torch.addcmul(m, spike, c, value=-1)  # fl(m - c) or m, as the reference
        # An inf or NaN potential stays so (beta * inf, 0 * inf, NaN all propagate), and
        # every row that might overflow was replayed up to its last step (`_row_bounds`).
        check_final_potential(v, "pmbc")
        decided = fired.mul_(2).sub_(1)
        if everything:
            codes = self.code[:, :stop]
        else:
            codes = self.code[b, :stop, h].T[None]
        if int((codes * decided).min()) < 0:
            raise RuntimeError("internal error: PMBC bound contradicts the exact replay")
        if everything:
            codes.copy_(decided)
        else:
            self.code[b, :stop, h] = decided[0].T

    def _plan_blocks(self, margin: torch.Tensor) -> None:
        """Fix the lock-step layout (block length, warm-up) at the first open slice, and
        allocate the intervals at each block's warm-up start (no information: +-_BIG/4).

        With many steps open the bounds before a block can be as wide as the whole
        possible refractory drop c * sum_k beta^k, hence the warm-up estimate.
        """
        geo = (self.beta / (1 - self.beta)).clamp(max=self.length)
        finite = margin[torch.isfinite(margin)]
        largest = float(finite.max()) if finite.numel() else 0.0
        width = float((self.c * geo).max()) + 4.0 * largest
        self.block_warmup = self._warmup_steps(width) + WARMUP_SLACK
        target = max(2 ** round(math.log2(math.sqrt(BLOCK_SCALE * self.length))), 64)
        block = max(target, 2 ** math.ceil(math.log2(2 * self.block_warmup)))
        # A warm-up long against the natural block (beta near 1) rarely collapses and
        # costs more than replaying the rows exactly: no lock-step then.
        fits = self.block_warmup <= target and self.length >= 2 * block
        self.block = block if fits else 0
        if self.block:
            shape = (self.batch, self.length // block - 1, self.channels)
            big = _BIG[self.dtype] / 4
            self.enclosure_lo = torch.full(shape, -big, dtype=self.dtype)
            self.enclosure_hi = torch.full(shape, big, dtype=self.dtype)

    def _keep_block_enclosures(self, part: _OpenSlice, lower, upper) -> None:
        """Intervals holding the float membrane at t = k*block - warm-up, k = 1..nb-1."""
        if self.block is None:
            self._plan_blocks(part.margin)
        if not self.block:
            return
        nb = self.length // self.block
        at = slice(self.block - self.block_warmup, None, self.block)
        low = _round_to(lower[:, at][:, : nb - 1].double() - part.margin, self.dtype, up=False)
        high = _round_to(upper[:, at][:, : nb - 1].double() + part.margin, self.dtype, up=True)
        # Rows without a valid bound keep |m| <= _BIG / 4 (checked before the replay).
        big = _BIG[self.dtype] / 4
        self.enclosure_lo[part.b0 : part.b1] = low.clamp(min=-big)
        self.enclosure_hi[part.b0 : part.b1] = high.clamp(max=big)

    def _replay_blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage (1) of `_finish`: blocks k = 0..nb-1 of `block` steps, in lock-step.

        Block k >= 1 starts `block_warmup` steps early from the interval the passes'
        bounds give there; block 0 starts exactly (m_0 = x_0). A block whose interval
        has collapsed when its own steps begin is the reference from there on: its
        decisions are written and its final state is exact. Returns that per-block
        "exact" mask (B, nb, H) and the final states v (B, nb, H).
        """
        block, warm = self.block, self.block_warmup
        nb = self.length // block
        m_lo, m_hi = self.enclosure_lo, self.enclosure_hi
        v_lo = v_hi = m_lo
        params = self._step_params()
        for j in range(warm + 1):
            at = block - warm + j  # time of block 1 (block k: + (k-1)*block)
            x_j = self.x[:, at::block][:, : nb - 1]
            if j > 0:
                m_lo = self.beta * v_lo + x_j
                m_hi = self.beta * v_hi + x_j
            if j == warm:
                break
            known = self.code[:, at::block][:, : nb - 1]
            v_lo, v_hi = self._interval_step(m_lo, m_hi, known, params, record=False)[1:]
        collapsed = m_lo == m_hi
        m = torch.cat([self.x[:, :1], m_lo], dim=1)  # block 0 starts exactly at m_0 = x_0
        exact = torch.cat([torch.ones_like(collapsed[:, :1]), collapsed], dim=1)
        fired = torch.empty((self.batch, nb, block, self.channels), dtype=torch.int8)
        spike = torch.empty_like(m)
        for i in range(block):
            torch.gt(m, self.theta, out=spike)
            fired[:, :, i].copy_(spike)
            v = torch.addcmul(m, spike, self.c, value=-1)  # fl(m - c) or m, as reference
            if i + 1 < block:
                m = self.beta * v + self.x[:, i + 1 :: block][:, :nb]
        decided = fired.mul_(2).sub_(1)
        codes = self.code[:, : nb * block].view(self.batch, nb, block, self.channels)
        decided.mul_(exact[:, :, None, :].to(torch.int8))  # 0 where not exact
        if int((codes * decided).min()) < 0:
            raise RuntimeError("internal error: PMBC bound contradicts the exact replay")
        codes.add_(decided.mul_(1 - codes * codes))  # fill only the open steps
        self.stats.block_lanes += int(exact.sum())
        self.stats.replay_steps += (nb - 1) * self.batch * self.channels * (warm + block)
        self.stats.replay_steps += self.batch * self.channels * block
        return exact, v

    def _repair_lanes(self, exact: torch.Tensor, v_end: torch.Tensor) -> _Lanes | None:
        """Exact replays of the open steps the block replay left: each starts at the end
        of the last exact block before them (m = fl(fl(beta * v_end) + x), the
        reference's own step), so none can fail. The tail after the last whole block
        counts as one more, inexact, block."""
        block, channels = self.block, self.channels
        nb = exact.shape[1]
        codes = self.code[:, : nb * block].view(self.batch, nb, block, channels)
        # A step is open where its code is 0 (int8 min-reductions: no bool sums, fast).
        has_open = codes.abs().amin(dim=2) == 0  # (B, nb, H)
        tail = self.code[:, nb * block :]
        if tail.shape[1]:
            tail_open = tail.abs().amin(dim=1) == 0  # (B, H)
        else:
            tail_open = torch.zeros_like(has_open[:, 0])
        need = torch.cat([has_open & ~exact, tail_open[:, None]], dim=1)  # (B, nb+1, H)
        if not bool(need.any()):
            return None
        index = torch.arange(nb + 1)[None, :, None]
        exact_index = torch.cat([exact, torch.zeros_like(exact[:, :1])], dim=1) * index
        last_exact = torch.cummax(exact_index, dim=1).values  # block 0 is always exact
        b, k, h = need.nonzero(as_tuple=True)
        first = last_exact[b, k, h] + 1
        key = ((b * channels + h) * (nb + 1) + first).unique(return_inverse=True)
        keys, inverse = key
        stop_block = torch.full(keys.shape, -1, dtype=torch.long)
        stop_block = stop_block.scatter_reduce(0, inverse, k, reduce="amax")
        first = keys % (nb + 1)
        row = keys // (nb + 1)
        b, h = row // channels, row % channels
        start = first * block
        stop = torch.clamp((stop_block + 1) * block - 1, max=self.length - 1)
        stop = torch.where(stop_block == nb, self.length - 1, stop)
        m0 = self.beta[h] * v_end[b, first - 1, h] + self.x[b, start, h]
        return _Lanes(b, h, start, stop, m0, m0.clone())

    def _interval_step(self, m_lo, m_hi, known, params, record=True):
        """One step on an interval of membranes: (decision +1/-1/0 or None, v_lo, v_hi).

        `known` holds the passes' decisions (+1/-1, 0 open) for these steps; `params` is
        (theta, theta_up, c, floor_spike): per channel or per lane, theta_up the float
        after theta and floor_spike = fl(theta_up - c), the lowest v after a spike.
        A known decision clips the interval to its side of theta; then each end takes
        the reference's own reset (exact and monotone on each side); where the ends
        disagree (an open step straddled by the interval) the result is the hull of both
        branches, [min(m_lo, floor_spike), max(fl(m_hi - c), theta)]. Masks are 0/1
        floats and "no clip" is +-_BIG, which is several times faster than `where` on
        CPU and exact: a 0 mask adds 0 * _BIG = 0.
        """
        theta, theta_up, c, floor_spike = params
        big = _BIG[m_lo.dtype]
        known = known.to(m_lo.dtype)
        m_lo = torch.maximum(m_lo, torch.add(theta_up, known - 1, alpha=big))
        m_hi = torch.minimum(m_hi, torch.add(theta, known + 1, alpha=big))
        # A known decision contradicting the interval leaves it inverted: checked later.
        self._conflict = torch.maximum(self._conflict, (m_lo - m_hi).amax())
        spike_lo = torch.gt(m_lo, theta, out=torch.empty_like(m_lo))
        spike_hi = torch.gt(m_hi, theta, out=torch.empty_like(m_hi))
        v_lo = torch.addcmul(m_lo, spike_lo, c, value=-1)
        v_hi = torch.addcmul(m_hi, spike_hi, c, value=-1)
        straddle = spike_hi - spike_lo
        v_hi = torch.maximum(v_hi, torch.add(theta, straddle - 1, alpha=big))
        v_lo = torch.minimum(v_lo, torch.add(floor_spike, 1 - straddle, alpha=big))
        decided = (spike_lo + spike_hi - 1).to(torch.int8) if record else None
        return decided, v_lo, v_hi

    def _step_params(self, lane_channel=None):
        theta, c = self.theta, self.c
        if lane_channel is not None:
            theta, c = theta[lane_channel], c[lane_channel]
        theta_up = torch.nextafter(theta, torch.full_like(theta, math.inf))
        return theta, theta_up, c, theta_up - c

    def _check_conflicts(self) -> None:
        if float(self._conflict) > 0:  # some interval was inverted by a known decision
            raise RuntimeError("internal error: PMBC bound contradicts the replayed interval")

    def _collect_lanes(self, part: _OpenSlice) -> _Lanes | None:
        """Stage (2) of `_finish`: one lane per cluster of open steps of a (row, channel)."""
        length, channels = self.length, self.channels
        open_mask = self.code[part.b0 : part.b1] == 0
        bi, ti, hi_ = open_mask.nonzero(as_tuple=True)
        if bi.numel() == 0:
            return None
        row = bi * channels + hi_
        order = torch.argsort(row * length + ti)
        row, ti, bi, hi_ = row[order], ti[order], bi[order], hi_[order]
        new_lane = torch.ones_like(row, dtype=torch.bool)
        new_lane[1:] = (row[1:] != row[:-1]) | (ti[1:] - ti[:-1] > self.warmup)
        first = new_lane.nonzero().squeeze(1)
        last = torch.cat([first[1:] - 1, first.new_tensor([row.numel() - 1])])
        b, h = bi[first], hi_[first]
        row_margin = part.margin[b, 0, h]
        start = (ti[first] - self.warmup).clamp(min=0)
        start = torch.where(torch.isfinite(row_margin), start, 0)
        stop = ti[last]
        inside = start > 0
        lo = self.x[b + part.b0, 0, h]  # m_0 = x_0 exactly
        hi = lo.clone()
        bs, hs, ts = b[inside], h[inside], start[inside]
        mg = row_margin[inside]
        lo[inside] = _round_to(part.lower[bs, ts, hs].double() - mg, self.dtype, up=False)
        hi[inside] = _round_to(part.upper[bs, ts, hs].double() + mg, self.dtype, up=True)
        return _Lanes(b + part.b0, h, start, stop, lo, hi)

    def _run_lanes(self, lanes: _Lanes) -> None:
        lengths = lanes.stop - lanes.start + 1
        self.stats.replay_steps += int(lengths.sum())
        # Lanes of similar length run together (padding wastes at most half the steps),
        # but few lanes cost per step rather than per lane, so small groups are merged.
        order = torch.argsort(lengths, descending=True)
        sorted_lengths = lengths[order].tolist()
        begin = 0
        while begin < len(order):
            end = begin + 1
            while end < len(order) and (
                sorted_lengths[end] * 2 > sorted_lengths[begin] or end - begin < LANE_GROUP
            ):
                end += 1
            self._replay(lanes.select(order[begin:end]))
            begin = end

    def _replay(self, lanes: _Lanes) -> None:
        """Run one group of lanes: repairs of stage (1) and clusters of stage (2)."""
        channels = self.channels
        beta = self.beta[lanes.h]
        params = self._step_params(lanes.h)
        theta, _, c, _ = params
        x_flat = self.x.view(-1)
        code_flat = self.code.view(-1)
        pos = (lanes.b * self.length + lanes.start) * channels + lanes.h
        stop_pos = (lanes.b * self.length + lanes.stop) * channels + lanes.h
        steps = int((lanes.stop - lanes.start).max()) + 1
        m_lo, m_hi = lanes.lo.clone(), lanes.hi.clone()
        v_lo = v_hi = m_lo
        collapsed = bool(torch.equal(m_lo, m_hi))
        decided = torch.zeros((steps, pos.numel()), dtype=torch.int8)
        spike = torch.empty_like(m_lo)
        for k in range(steps):
            at = torch.minimum(pos + k * channels, stop_pos)
            if k > 0:
                x_k = x_flat.index_select(0, at)
                m_lo = beta * v_lo + x_k
                m_hi = m_lo if collapsed else beta * v_hi + x_k
            if collapsed:
                torch.gt(m_lo, theta, out=spike)
                decided[k] = spike.mul(2).sub_(1)
                v_lo = v_hi = torch.addcmul(m_lo, spike, c, value=-1)
                continue
            known = code_flat.index_select(0, at)
            decided[k], v_lo, v_hi = self._interval_step(m_lo, m_hi, known, params)
            if k % 4 == 3 and bool(torch.equal(v_lo, v_hi)):
                collapsed = True
        offsets = torch.arange(steps)[:, None] * channels + pos[None, :]
        valid = (offsets <= stop_pos[None, :]) & (decided != 0)
        targets = offsets[valid]
        values = decided[valid]
        current = code_flat[targets]
        if bool(((current != 0) & (current != values)).any()):
            raise RuntimeError("internal error: PMBC bound contradicts the exact replay")
        code_flat[targets] = values


# --------------------------------------------------------------------------- helpers


def _count_ones(flags: torch.Tensor) -> int:
    """Number of ones in a 0/1 float tensor (float32 sums integers exactly below 2^24)."""
    if flags.numel() < 2**24:
        return int(flags.sum())
    return int(flags.sum(dtype=torch.float64))


def _round_to(z64: torch.Tensor, dtype: torch.dtype, *, up: bool) -> torch.Tensor:
    """A value of `dtype` >= (up) or <= (down) the exact result the float64 input rounds.

    z64 came from one float64 operation, so stepping one float64 ulp outward covers its
    rounding; the cast to dtype is then corrected outward if it went the wrong way.
    """
    direction = torch.full_like(z64, math.inf if up else -math.inf)
    z64 = torch.nextafter(z64, direction)
    out = z64.to(dtype)
    wrong = out.double() < z64 if up else out.double() > z64
    return torch.where(wrong, torch.nextafter(out, direction.to(dtype)), out)


def check_final_potential(v_end: torch.Tensor, method: str) -> None:
    """UsageError unless every row's last potential v (B, H) of a step loop is finite.
    A non-finite input, or a membrane driven past the float range, leaves v inf or NaN
    from then on (beta * inf is inf; 0 * inf, and anything with NaN, are NaN; inf - c is
    inf), so this one test finds what a pass over the input would, at no cost to the loop.
    (PMBC checks its input in `_row_bounds`, and the potential of the rows that might
    overflow after replaying them, in `_replay_rows_exactly`.)"""
    if not bool(v_end.isfinite().all()):
        raise UsageError(
            "a reset-refractory neuron's input holds inf or NaN, or drove its membrane past "
            f"the float range ({method})"
        )


def _check_neuron_params(beta: torch.Tensor, theta: torch.Tensor, rho: torch.Tensor) -> None:
    if not bool(((beta >= 0) & (beta < 1)).all()):
        raise UsageError("beta must lie in [0, 1) for every channel")
    if not bool(((theta > 0) & torch.isfinite(theta)).all()):
        raise UsageError("theta must be positive and finite for every channel")
    if not bool(((rho >= 0) & torch.isfinite(rho)).all()):
        raise UsageError("rho must be >= 0 and finite for every channel")
    if not bool(torch.isfinite(theta + rho).all()):  # the reset c = theta + rho, rounded
        raise UsageError(f"theta + rho overflows {theta.dtype} for some channel")
