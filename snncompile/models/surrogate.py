"""Surrogate gradients for spike functions.

A spike is s = H(z) with z = membrane - threshold (the sign convention of the neuron
decides whether z = 0 spikes). The forward value is whatever exact spike train the
neuron computed; the backward pass replaces dH/dz by a smooth surrogate:

    triangle:      ds/dz = max(0, 1 - |z|)                 (SpikingSSM)
    fast_sigmoid:  ds/dz = 1 / (slope * |z| + 1)^2          (Binary S4D, slope 25)
"""

from __future__ import annotations

import torch

SURROGATES = ("triangle", "fast_sigmoid")


def surrogate_derivative(z: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """d(spike)/dz under the named surrogate."""
    if kind == "triangle":
        return torch.clamp(1.0 - z.abs(), min=0.0)
    if kind == "fast_sigmoid":
        return 1.0 / (slope * z.abs() + 1.0) ** 2
    raise ValueError(f"unknown surrogate {kind!r}; known: {', '.join(SURROGATES)}")


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, spikes, kind, slope):  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.kind = kind
        ctx.slope = slope
        return spikes

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return grad_out * surrogate_derivative(z, ctx.kind, ctx.slope), None, None, None


def surrogate_spike(
    z: torch.Tensor,
    spikes: torch.Tensor | None = None,
    kind: str = "fast_sigmoid",
    slope: float = 25.0,
) -> torch.Tensor:
    """Return `spikes` (default: the float tensor [z > 0]) with the surrogate gradient in z.

    Passing `spikes` lets a neuron use an exactly computed spike train (for example
    from PMBC, or a `>=` test) while gradients still flow through z.
    """
    if kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {kind!r}; known: {', '.join(SURROGATES)}")
    if spikes is None:
        spikes = (z > 0).to(z.dtype)
    return _SurrogateSpike.apply(z, spikes.detach().to(z.dtype), kind, float(slope))
