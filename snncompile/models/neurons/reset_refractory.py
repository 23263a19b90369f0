"""The SPikE-SSM reset-refractory neuron (the project's definition, PAPERS.md section 1).

Per channel, with decay beta in [0, 1), threshold theta > 0 and refractory magnitude
rho >= 0:

    m_t = beta * v_{t-1} + x_t            membrane before the spike test
    s_t = [m_t > theta]                   strict, like Loihi and NIR
    v_t = m_t - (theta + rho) * s_t       soft reset by theta plus a decaying refractory drop

Training gradient (every method): the spike is surrogate_spike(m_t - theta, s_t), and
the reset term uses the spike detached, so m = F(x) - (theta + rho) F_ex(sg(s)) with
F the filter y_t = beta y_{t-1} + x_t and F_ex its strict-past variant. Gradients reach
x, theta, rho, and beta when it is trainable.

method="pmbc" computes the exact spikes in parallel (`pmbc.pmbc_spikes`) and the
gradient in closed form with reverse filters; method="sequential" is plain BPTT through
a Python loop over time; method="compiled" is that loop compiled with numba, with the
closed-form backward (`compiled.py`; the fastest on a CPU). They give the same spikes
and, to rounding, the same gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from snncompile.errors import UsageError
from snncompile.models.checks import check_features, finite_number, positive_int
from snncompile.models.neurons import pmbc
from snncompile.models.neurons.base import SpikingNeuron
from snncompile.models.neurons.linear_filter import scan
from snncompile.models.surrogate import SURROGATES, surrogate_derivative, surrogate_spike

METHODS = ("pmbc", "sequential", "compiled")
_OWNER = "ResetRefractoryNeuron"
# A trainable beta is BETA_MAX * sigmoid(raw): strictly below 1 in every float format,
# so the neuron can never turn into an integrator whose membrane grows without bound.
BETA_MAX = 1.0 - 2.0**-12
# softplus(-30) ~ 9e-14: how rho_init = 0 is stored (softplus never reaches 0 exactly).
_RHO_ZERO_RAW = -30.0


class ResetRefractoryNeuron(SpikingNeuron):
    """Reset-refractory spiking neuron with trainable theta = exp(log_theta) and
    rho = softplus(raw_rho) per channel, and fixed or trainable decay beta per channel.

    forward(x (B, L, H)) -> spikes (B, L, H) float 0/1 with surrogate gradients.
    After a PMBC forward, `last_pmbc_stats` holds its `pmbc.PmbcStats`.
    """

    def __init__(
        self,
        channels: int,
        beta: float | Sequence[float] | torch.Tensor = 0.5,
        trainable_beta: bool = False,
        theta_init: float | Sequence[float] | torch.Tensor = 1.0,
        rho_init: float | Sequence[float] | torch.Tensor = 0.5,
        method: str = "pmbc",
        max_passes: int = pmbc.DEFAULT_MAX_PASSES,
        surrogate: str = "fast_sigmoid",
        slope: float = 25.0,
    ) -> None:
        super().__init__(channels)
        _check_choice("method", method, METHODS)
        _check_choice("surrogate", surrogate, SURROGATES)
        self.max_passes = positive_int(_OWNER, "max_passes", max_passes)
        self.slope = finite_number(_OWNER, "slope", slope)
        if self.slope <= 0:
            raise UsageError(f"{_OWNER} slope must be positive, got {slope!r}")
        self.method = method
        self.surrogate = surrogate
        self.trainable_beta = bool(trainable_beta)
        self.last_pmbc_stats: pmbc.PmbcStats | None = None

        beta_v = _per_channel("beta", beta, channels)
        theta_v = _per_channel("theta_init", theta_init, channels)
        rho_v = _per_channel("rho_init", rho_init, channels)
        if not bool((theta_v > 0).all()):
            raise UsageError(f"{_OWNER} theta_init must be > 0 for every channel")
        if not bool((rho_v >= 0).all()):
            raise UsageError(f"{_OWNER} rho_init must be >= 0 for every channel")
        self.log_theta = nn.Parameter(theta_v.log())
        raw_rho = torch.where(rho_v > 0, torch.log(torch.expm1(rho_v)), _RHO_ZERO_RAW)
        self.raw_rho = nn.Parameter(raw_rho)
        if self.trainable_beta:
            if not bool(((beta_v > 0) & (beta_v < BETA_MAX)).all()):
                raise UsageError(f"{_OWNER} trainable beta must lie in (0, {BETA_MAX}) per channel")
            self.raw_beta = nn.Parameter(torch.logit(beta_v / BETA_MAX))
        else:
            if not bool(((beta_v >= 0) & (beta_v < 1)).all()):
                raise UsageError(f"{_OWNER} beta must lie in [0, 1) for every channel")
            self.register_buffer("beta_fixed", beta_v)

    # ---- parameters in their natural units

    @property
    def beta(self) -> torch.Tensor:
        if self.trainable_beta:
            return BETA_MAX * torch.sigmoid(self.raw_beta)
        return self.beta_fixed

    @property
    def theta(self) -> torch.Tensor:
        return self.log_theta.exp()

    @property
    def rho(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_rho)

    def _params(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.beta.to(dtype), self.theta.to(dtype), self.rho.to(dtype)

    # ---- sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        beta, theta, rho = self._params(x.dtype)
        if self.method == "compiled":
            spikes = self._forward_compiled(x, beta, theta, rho)
        elif self.method == "pmbc":
            stats: list[pmbc.PmbcStats] = []
            needs_grad = any(t.requires_grad for t in (x, beta, theta, rho))
            if torch.is_grad_enabled() and needs_grad:
                spikes = _PmbcNeuron.apply(
                    x, beta, theta, rho, self.max_passes, self.surrogate, self.slope, stats
                )
            else:  # inference: spikes only, no surrogate bookkeeping
                spikes, run_stats = pmbc.pmbc_spikes(x, beta, theta, rho, self.max_passes)
                stats.append(run_stats)
            self.last_pmbc_stats = stats[0]
        else:
            state = (x.new_zeros(x.shape[0], self.channels),)
            reset = theta + rho  # once, not per step: the loop is the BPTT baseline
            steps = []
            for x_t in x.unbind(1):
                s_t, state = _advance(x_t, state, beta, theta, reset, self.surrogate, self.slope)
                steps.append(s_t)
            spikes = torch.stack(steps, dim=1) if steps else x.new_zeros(x.shape)
            pmbc.check_final_potential(state[0].detach(), "sequential")
        self.record_rate(spikes)
        return spikes

    def _forward_compiled(self, x, beta, theta, rho) -> torch.Tensor:
        from snncompile.models.neurons import compiled

        if torch.is_grad_enabled() and any(t.requires_grad for t in (x, beta, theta, rho)):
            return _CompiledNeuron.apply(x, beta, theta, rho, self.surrogate, self.slope)
        return compiled.forward(x, beta, theta, rho, None, self.slope, keep_v=False)[0]

    def _check_input(self, x: torch.Tensor) -> None:
        check_features("ResetRefractoryNeuron", x, self.channels)
        if self.method != "sequential" and x.dtype not in (torch.float32, torch.float64):
            raise UsageError(f"method={self.method!r} supports float32 and float64, got {x.dtype}")

    # ---- single steps (deployment semantics)

    def init_state(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> tuple[torch.Tensor, ...]:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
            raise UsageError(f"batch must be an int >= 0, got {batch!r}")
        return (torch.zeros(batch, self.channels, dtype=dtype, device=device),)

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One exact update: the same float operations as `pmbc.sequential_spikes`."""
        check_features("ResetRefractoryNeuron.step", x_t, self.channels, dims=(2,))
        if len(state) != 1 or state[0].shape != x_t.shape:
            raise UsageError("state must be the 1-tuple (v,) from init_state, shaped like x_t")
        beta, theta, rho = self._params(x_t.dtype)
        return _advance(x_t, state, beta, theta, theta + rho, self.surrogate, self.slope)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, method={self.method!r}, "
            f"trainable_beta={self.trainable_beta}, surrogate={self.surrogate!r}"
        )


def _advance(x_t, state, beta, theta, reset, kind: str, slope: float):
    """m = beta v + x; s = [m > theta]; v' = m - reset sg(s) with reset = theta + rho;
    the spike carries the surrogate gradient in m - theta."""
    (v,) = state
    m = beta * v + x_t
    s = (m > theta).to(x_t.dtype)
    spikes = surrogate_spike(m - theta, s, kind=kind, slope=slope)
    return spikes, (m - reset * s,)


class _PmbcNeuron(torch.autograd.Function):
    """Fused PMBC forward and closed-form backward of the reset-refractory neuron.

    Forward: exact spikes s by PMBC; per batch slice m = F(x) - c F_ex(s), c = theta + rho,
    and the surrogate derivative sd = surrogate'(m - theta) is kept.
    Backward, with g = grad_out * sd and R the reverse filter (R(g)_i = sum_{t>=i}
    beta^(t-i) g_t, the adjoint of F):
        dL/dx = R(g)
        dL/dc = -sum_t g_t F_ex(s)_t = -sum_i s_i (R(g)_i - g_i)
        dL/dtheta = -sum_t g_t + dL/dc,   dL/drho = dL/dc
        dL/dbeta = sum_t g_t dm_t/dbeta = sum_{t>=1} v_{t-1} R(g)_t, v = m - c s
    (dm_t/dbeta = v_{t-1} + beta dm_{t-1}/dbeta since the reset uses the detached spike.)
    Sums run over batch and time. Everything is done per batch slice so the temporaries
    stay small.
    """

    @staticmethod
    def forward(ctx, x, beta, theta, rho, max_passes, kind, slope, stats_out):  # type: ignore[override]
        run = pmbc._PmbcRun(x, beta, theta, rho, max_passes)
        need_grad = any(ctx.needs_input_grad[:4])
        need_beta = ctx.needs_input_grad[1]
        parts: dict[int, tuple[int, torch.Tensor, torch.Tensor | None]] = {}

        def keep_surrogate(b0, b1, a, spikes) -> None:
            past = scan(spikes, run.decay, 1, True, False)
            m = past.mul_(run.c).neg_().add_(a)  # a - c F_ex(s), reusing the buffer
            sd = _surrogate_derivative_inplace(m - run.theta, kind, slope)
            v = m.sub_(run.c * spikes) if need_beta else None
            parts[b0] = (b1, sd, v)

        spikes = run.run(keep_surrogate if need_grad else None)
        stats_out.append(run.stats)
        if need_grad:
            ctx.parts = [(b0, *parts[b0]) for b0 in sorted(parts)]
            ctx.decay = run.decay
            ctx.save_for_backward(spikes)
        return spikes

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (spikes,) = ctx.saved_tensors
        channels = spikes.shape[2]
        grad_x = torch.empty_like(spikes)
        sum_g = spikes.new_zeros(channels)
        grad_c = spikes.new_zeros(channels)
        grad_beta = spikes.new_zeros(channels)
        for b0, b1, sd, v in ctx.parts:
            g = grad_out[b0:b1] * sd
            r = scan(g, ctx.decay, 1, False, True)
            grad_x[b0:b1] = r
            sum_g += g.sum(dim=(0, 1))
            grad_c -= (r - g).mul_(spikes[b0:b1]).sum(dim=(0, 1))
            if v is not None:
                grad_beta += (v[:, :-1] * r[:, 1:]).sum(dim=(0, 1))
        grad_theta = grad_c - sum_g
        need = ctx.needs_input_grad
        return (
            grad_x if need[0] else None,
            grad_beta if need[1] else None,
            grad_theta if need[2] else None,
            grad_c if need[3] else None,
            None,
            None,
            None,
            None,
        )


class _CompiledNeuron(torch.autograd.Function):
    """method="compiled": the reference's step loop and `_PmbcNeuron`'s closed-form
    backward, both compiled (snncompile.models.neurons.compiled). The surrogate is taken
    at the loop's own membrane, which PMBC's filters match to rounding."""

    @staticmethod
    def forward(ctx, x, beta, theta, rho, kind, slope):  # type: ignore[override]
        from snncompile.models.neurons import compiled

        keep_v = ctx.needs_input_grad[1]
        spikes, sd, v = compiled.forward(x, beta, theta, rho, kind, slope, keep_v)
        ctx.save_for_backward(spikes, sd, v, beta.detach())
        return spikes

    @staticmethod
    @once_differentiable  # the compiled loops have no graph (create_graph gets grad 1)
    def backward(ctx, grad_out):  # type: ignore[override]
        from snncompile.models.neurons import compiled

        spikes, sd, v, beta = ctx.saved_tensors
        grad_x, sum_g, sum_sr, sum_vr = compiled.backward(grad_out, sd, spikes, v, beta)
        grad_c = -sum_sr
        need = ctx.needs_input_grad
        return (
            grad_x if need[0] else None,
            sum_vr if need[1] else None,
            grad_c - sum_g if need[2] else None,
            grad_c if need[3] else None,
            None,
            None,
        )


def _surrogate_derivative_inplace(z: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """`surrogate.surrogate_derivative(z)` computed in z's storage (same float operations;
    the fused forward runs it on every slice, where temporaries cost memory traffic)."""
    if kind == "triangle":
        return z.abs_().neg_().add_(1.0).clamp_(min=0.0)
    if kind == "fast_sigmoid":
        return z.abs_().mul_(slope).add_(1.0).square_().reciprocal_()
    return surrogate_derivative(z, kind, slope)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f"{_OWNER} {name} must be one of {', '.join(choices)}; got {value!r}")


def _per_channel(name: str, value, channels: int) -> torch.Tensor:
    try:
        # On the CPU whatever the default device: these are checked values (the loader
        # builds a shape-only skeleton on the meta device first).
        vec = torch.as_tensor(value, dtype=torch.float32, device="cpu").detach().clone()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(
            f"{_OWNER} {name} must be a number or a sequence of numbers: {exc}"
        ) from None
    if vec.dim() == 0:
        vec = vec.expand(channels).clone()
    if vec.shape != (channels,):
        shape = tuple(vec.shape)
        raise UsageError(
            f"{_OWNER} {name} must be a scalar or have shape ({channels},), got {shape}"
        )
    if not bool(torch.isfinite(vec).all()):
        raise UsageError(f"{_OWNER} {name} must be finite")
    return vec
