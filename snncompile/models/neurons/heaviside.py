"""Heaviside spike on the SSM output (Binary S4D, Stan & Rhodes 2024)."""

from __future__ import annotations

import torch

from snncompile.errors import UsageError
from snncompile.models.checks import check_features, check_floating, finite_number
from snncompile.models.neurons.base import SpikingNeuron
from snncompile.models.surrogate import surrogate_spike


class HeavisideNeuron(SpikingNeuron):
    """Stateless spike: s_t = [y_t > 0]; no membrane, leak or reset.

    Gradient: fast sigmoid surrogate, ds/dy = 1 / (slope*|y| + 1)^2 with slope 25.
    """

    def __init__(self, channels: int, slope: float = 25.0) -> None:
        super().__init__(channels)
        self.slope = finite_number("HeavisideNeuron", "slope", slope)
        if self.slope <= 0:
            raise UsageError(f"HeavisideNeuron slope must be positive, got {slope!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Stateless, so any layout is the same math (the tracer compiles it in any; a
        # channels-first user model applies it so): only the kind of x is checked.
        check_floating("HeavisideNeuron", x)
        spikes = surrogate_spike(x, kind="fast_sigmoid", slope=self.slope)
        self.record_rate(spikes)
        return spikes

    def init_state(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> tuple[torch.Tensor, ...]:
        return ()

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        check_features("HeavisideNeuron.step", x_t, self.channels, dims=(2,))
        return (x_t > 0).to(x_t.dtype), ()
