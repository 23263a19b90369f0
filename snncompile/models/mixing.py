"""Feature-mixing layers that follow the spiking neuron in a block.

GLUMixer (SPikE-SSM, SpikingSSM, Binary S4D):
    [a, b] = W s + c            (Linear(H, 2H), or Conv1d(H, 2H, k=1) which is the same map)
    out    = a * gate(b)        gate = sigmoid, or hard_sigmoid(z) = clamp(z/6 + 1/2, 0, 1)

GSUMixer (Stan & Rhodes 2024, "gated spiking unit"), y the SSM output (B, L, H):
    Ter(z) = sign(z) * [|z| > 0.15 * max|z|]      (activations: max over channels per step;
                                                    weight: max over the whole matrix)
    out    = GELU(LayerNorm((Ter(y) W + b) * (y Ter(W))))
Both products are multiplication-free (one factor is ternary). Ter passes gradients
straight through (identity). GSU has no Loihi compartment (per-step max, LayerNorm,
GELU); it deploys only to float targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snncompile.errors import UsageError
from snncompile.models.checks import check_features, positive_int

GATES = ("sigmoid", "hard-sigmoid")
PROJECTIONS = ("linear", "conv1d")
TERNARY_FRACTION = 0.15


class GLUMixer(nn.Module):
    """Linear (or pointwise Conv1d) H -> 2H, then a gated linear unit: (B, L, H) -> (B, L, H)."""

    def __init__(self, d_model: int, *, gate: str = "sigmoid", projection: str = "linear") -> None:
        super().__init__()
        self.d_model = positive_int("GLUMixer", "d_model", d_model)
        if gate not in GATES:
            raise UsageError(f"GLU gate must be one of {GATES}, got {gate!r}")
        if projection not in PROJECTIONS:
            raise UsageError(f"GLU projection must be one of {PROJECTIONS}, got {projection!r}")
        self.gate = gate
        self.projection = projection
        if projection == "linear":
            self.proj: nn.Module = nn.Linear(d_model, 2 * d_model)
        else:
            self.proj = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)

    def _project(self, s: torch.Tensor) -> torch.Tensor:
        if self.projection == "linear":
            return self.proj(s)
        # Conv1d wants channels first; a (B, H) step is a length-1 sequence.
        if s.dim() == 2:
            return self.proj(s.unsqueeze(-1)).squeeze(-1)
        return self.proj(s.transpose(1, 2)).transpose(1, 2)

    def gate_fn(self, z: torch.Tensor) -> torch.Tensor:
        if self.gate == "sigmoid":
            return torch.sigmoid(z)
        return F.hardsigmoid(z)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """s (B, L, H) or one step (B, H)."""
        check_features("GLUMixer", s, self.d_model, dims=(3, 2))
        a, b = self._project(s).chunk(2, dim=-1)
        return a * self.gate_fn(b)


def ternarize(z: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Ter(z) in {-1, 0, 1} with threshold 0.15 * max|z| (over `dim`, or all of z if None).

    Forward is the ternary map; the gradient passes straight through.
    """
    if dim is None:
        limit = z.abs().max()
    else:
        limit = z.abs().amax(dim=dim, keepdim=True)
    ternary = torch.sign(z) * (z.abs() > TERNARY_FRACTION * limit).to(z.dtype)
    return z + (ternary - z).detach()


class GSUMixer(nn.Module):
    """Gated spiking unit with one shared weight W (H, H); (B, L, H) or (B, H) -> same shape."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = positive_int("GSUMixer", "d_model", d_model)
        # In place: on the meta device (checkpoint._check_shapes) an out-of-place divide
        # runs a Python reference kernel that imports torch._dynamo (1.5 s; see S4D).
        self.weight = nn.Parameter(torch.randn(d_model, d_model).div_(d_model**0.5))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.norm = nn.LayerNorm(d_model)
        self.last_spike_rate: float = float("nan")

    def ternary_activations(self, y: torch.Tensor) -> torch.Tensor:
        """Ter(y) over the channels: the GSU's "spikes" (its nonzero entries), which the
        float ONNX export also outputs for spike rates."""
        return ternarize(y, dim=-1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        check_features("GSUMixer", y, self.d_model, dims=(3, 2))
        y_ter = self.ternary_activations(y)
        w_ter = ternarize(self.weight, dim=None)
        # Activity of the ternary activations: the GSU's "spikes" (nonzero entries).
        self.last_spike_rate = float((y_ter.detach() != 0).float().mean())
        gated = (y_ter @ self.weight + self.bias) * (y @ w_ter)
        return F.gelu(self.norm(gated))
