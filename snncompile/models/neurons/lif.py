"""LIF neuron with hard reset (SpikingSSM, Shen et al. 2025), per-channel threshold by scaling.

Per channel, input x_t (the SSM output), learnable ln_vth (starts at 0), fixed tau:

    y_t = x_t / exp(ln_vth)            (threshold 1 on y == threshold exp(ln_vth) on x)
    m_t = tau * u_{t-1} + y_t          (u_{-1} = 0)
    s_t = [m_t >= 1]
    u_t = m_t * (1 - s_t)              (hard reset to zero)

Gradient: triangle surrogate in (m_t - 1). The reset uses the detached spike.

Training with mode="sdn" replaces the sequential leak by the SDN's prediction of
tau * u_{t-1} from y_{t-8..t-1} (snncompile.models.sdn), so all steps run in parallel:
s_t = [pred_t + y_t >= 1], gradient through y_t only. Evaluation (and mode="exact")
runs the exact recurrence above, which is what the compiled network computes.
"""

from __future__ import annotations

import torch
from torch import nn

from snncompile.errors import UsageError
from snncompile.models.checks import check_features, finite_number, positive_int
from snncompile.models.neurons.base import SpikingNeuron
from snncompile.models.surrogate import surrogate_spike

MODES = ("sdn", "exact")


class LIFNeuron(SpikingNeuron):
    """Hard-reset LIF over (B, L, H); see the module docstring for the math."""

    def __init__(
        self,
        channels: int,
        *,
        tau: float = 0.125,
        mode: str = "sdn",
        trainable_threshold: bool = True,
    ) -> None:
        positive_int("LIFNeuron", "channels", channels)
        tau = finite_number("LIFNeuron", "tau", tau)
        if not 0.0 <= tau < 1.0:
            raise UsageError(f"LIF tau must be in [0, 1), got {tau}")
        if mode not in MODES:
            raise UsageError(f"LIF mode must be one of {MODES}, got {mode!r}")
        super().__init__(channels)
        self.tau = float(tau)
        self.mode = mode
        ln_vth = torch.zeros(channels)
        if trainable_threshold:
            self.ln_vth = nn.Parameter(ln_vth)
        else:
            self.register_buffer("ln_vth", ln_vth)

    @property
    def threshold(self) -> torch.Tensor:
        """Per-channel threshold on the unscaled input x: exp(ln_vth)."""
        return torch.exp(self.ln_vth)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.exp(self.ln_vth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features("LIFNeuron", x, self.channels)
        y = self._scale(x)
        if self.training and self.mode == "sdn":
            spikes = self._forward_sdn(y)
        else:
            spikes = self._forward_exact(y)
        self.record_rate(spikes)
        return spikes

    def _forward_sdn(self, y: torch.Tensor) -> torch.Tensor:
        # The SDN is a fixed part of the package used only in training, so it is not a
        # submodule: checkpoints neither carry it nor depend on it.
        from snncompile.models.sdn import load_sdn

        leak = load_sdn(self.tau).predict_channels(y).to(y.dtype)
        z = leak + y - 1.0
        return surrogate_spike(z, (z >= 0).to(y.dtype), kind="triangle")

    def _forward_exact(self, y: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(y[:, 0])
        out = []
        # unbind rather than y[:, t]: indexing makes the backward pass quadratic in L.
        for y_t in y.unbind(dim=1):
            m = self.tau * u + y_t
            s = surrogate_spike(m - 1.0, (m >= 1.0).to(y.dtype), kind="triangle")
            u = m * (1.0 - s.detach())
            out.append(s)
        return torch.stack(out, dim=1)

    def init_state(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, self.channels, dtype=dtype, device=device),)

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        check_features("LIFNeuron.step", x_t, self.channels, dims=(2,))
        (u,) = state
        m = self.tau * u + self._scale(x_t)
        s = (m >= 1.0).to(x_t.dtype)
        return s, (m * (1.0 - s),)
