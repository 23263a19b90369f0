"""Quantization-aware fine-tuning: train a model with its layer weights on export's grid.

Export rounds every synapse's float weights to Lava's 8-bit mantissas times one power of
two per synapse (`quantize.quantize_weights`). The synapses of the encoder, the decoder
and each GLU projection (a Linear, or a pointwise Conv1d) carry that layer's weight, or
its bias, times powers of two only (the populations' scales, docs/compiler.md), and a
power of two moves the exponent without changing the mantissas. So export's rounding of
such a tensor W depends on W alone:

    grid(W) = mant * 2**exp,   (mant, exp) = quantize_weights(W, weight_bits)

Fine-tuning runs the model with grid(W) in the forward pass and passes the gradient
straight through to W (W + (grid(W) - W).detach()), as quantization-aware training
does; at the end each W is replaced by grid(W), which is what the fine-tuned model
computed. Export then has nothing left to round in those synapses (relative_rms_error 0
in report.json), and what verify's rung 2 measures is the rest of quantization: states,
thresholds, decays and graded messages. Two exceptions: a bias whose grid is finer than
one unit of its destination's input, which export rounds to the nearest whole unit
(delivered constants, docs/numerics.md), and another --weight-bits at export, which
rounds again;
`api.finetune_checkpoint` compiles the result once and reports what remains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from snncompile.models.backbone import SequenceModel
from snncompile.models.mixing import GLUMixer
from snncompile.quantize.quantize import quantize_weights

GRID_PARAMETERS = ("weight", "bias")


def on_grid(values: torch.Tensor, weight_bits: int) -> torch.Tensor:
    """The values export's weight rounding gives this tensor (same dtype and shape):
    mantissas on Lava's weight_bits grid times the one exponent that fits the largest."""
    array = values.detach().to("cpu", torch.float64).numpy()
    mant, exp = quantize_weights(array.ravel(), weight_bits)
    return torch.from_numpy(mant.reshape(array.shape) * 2.0**exp).to(values.device, values.dtype)


class _OnGrid(nn.Module):
    """Parametrization: grid(W) forward, the identity's gradient backward."""

    def __init__(self, weight_bits: int) -> None:
        super().__init__()
        self.weight_bits = weight_bits

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value + (on_grid(value, self.weight_bits) - value).detach()


def grid_layers(model: SequenceModel) -> dict[str, nn.Module]:
    """name -> the layers whose weights and biases each become one synapse's (encoder,
    GLU projections, decoder); SSM coefficients and neuron parameters are not weights."""
    layers = {"encoder": model.encoder}
    for name, module in model.named_modules():
        if isinstance(module, GLUMixer):
            layers[f"{name}.proj"] = module.proj
    layers["decoder"] = model.decoder
    return layers


@contextlib.contextmanager
def weights_on_grid(model: SequenceModel, weight_bits: int) -> Iterator[list[str]]:
    """Within: the grid layers' forward uses grid(W) (straight-through). After, the
    parameters hold what was trained, unrounded; `snap_to_grid` rounds them. Yields the
    parameter names it covers."""
    covered = []
    try:
        for layer_name, layer in grid_layers(model).items():
            for name in GRID_PARAMETERS:
                if getattr(layer, name, None) is not None:
                    parametrize.register_parametrization(layer, name, _OnGrid(weight_bits))
                    covered.append(f"{layer_name}.{name}")
        yield covered
    finally:
        for layer in grid_layers(model).values():
            for name in GRID_PARAMETERS:
                if parametrize.is_parametrized(layer, name):
                    parametrize.remove_parametrizations(layer, name, leave_parametrized=False)


@torch.no_grad()
def snap_to_grid(model: SequenceModel, weight_bits: int) -> None:
    """Replace each grid layer's weight and bias by grid(W), in place."""
    for layer in grid_layers(model).values():
        for name in GRID_PARAMETERS:
            param = getattr(layer, name, None)
            if param is not None:
                param.copy_(on_grid(param, weight_bits))
