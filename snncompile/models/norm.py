"""BatchNorm over the channels of a channels-last sequence.

nn.BatchNorm1d wants channels first, (B, H, L), or one step (B, H); the backbone keeps
sequences channels last, (B, L, H). SequenceBatchNorm takes (B, L, H) or (B, H) and
normalizes each channel h exactly as nn.BatchNorm1d does:

    y = (x - mean_h) / sqrt(var_h + eps) * weight_h + bias_h

It is a subclass with no new state, so its state_dict keys (weight, bias, running_mean,
running_var, num_batches_tracked) are those of nn.BatchNorm1d and checkpoints written
with a plain nn.BatchNorm1d load unchanged. Being one module (a leaf for torch.fx), it
hides the dimension test that a traced forward could not branch on.
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceBatchNorm(nn.BatchNorm1d):
    """nn.BatchNorm1d for channels-last sequences (B, L, H) and single steps (B, H)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # one step: a length-1 sequence; only meaningful in eval mode
            return super().forward(x.unsqueeze(-1)).squeeze(-1)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)
