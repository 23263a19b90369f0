"""The interface every spiking neuron module implements.

Layout: sequences are (batch, time, channels) = (B, L, H); one step is (B, H).
"""

from __future__ import annotations

import torch
from torch import nn

from snncompile.models.checks import positive_int


class SpikingNeuron(nn.Module):
    """Base class of the neurons in snncompile.models.neurons.

    Subclasses implement:
      forward(x: (B, L, H)) -> spikes (B, L, H), float 0/1 with surrogate gradients;
      init_state(batch, *, dtype, device) -> tuple of state tensors (each (B, H));
      step(x_t: (B, H), state) -> (spikes_t (B, H), new_state): the exact per-step
          update deployment uses (no surrogate networks, no parallel tricks).
    Every forward (and `record_rate`) stores the mean spike rate in `last_spike_rate`.
    """

    channels: int

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive_int(type(self).__name__, "channels", channels)
        self.last_spike_rate: float = float("nan")

    def record_rate(self, spikes: torch.Tensor) -> None:
        self.last_spike_rate = float(spikes.detach().float().mean())

    def init_state(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        raise NotImplementedError
