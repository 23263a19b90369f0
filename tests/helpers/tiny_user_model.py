"""A user's own model built from snncompile layers and torch.nn, for load_user_model tests.

Imported by entry "tiny_user_model:build" (the tests put this folder on sys.path).
"""

from __future__ import annotations

import torch
from torch import nn

from snncompile.models.neurons.lif import LIFNeuron
from snncompile.models.s4d import S4D

D_INPUT, D_MODEL, D_OUTPUT = 3, 6, 2


class TinySpikingSSM(nn.Module):
    """u (B, L, 3) -> encoder -> h + GLU(Linear(Dropout(LIF(S4D(h))))) -> last step -> decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(D_INPUT, D_MODEL)
        self.ssm = S4D(D_MODEL, 4, discretization="bilinear")
        self.spike = LIFNeuron(D_MODEL, tau=0.25, mode="exact")
        self.drop = nn.Dropout(0.2)
        self.expand = nn.Linear(D_MODEL, 2 * D_MODEL)
        self.glu = nn.GLU(dim=-1)
        self.decoder = nn.Linear(D_MODEL, D_OUTPUT)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.encoder(u)
        h = h + self.glu(self.expand(self.drop(self.spike(self.ssm(h)))))
        return self.decoder(h[:, -1])


def build() -> nn.Module:
    return TinySpikingSSM()


def not_a_module() -> object:
    return {"weights": 1}


def broken() -> nn.Module:
    raise RuntimeError("the factory needs a config file")


def exits() -> nn.Module:
    raise SystemExit(0)  # as a script's factory might; export ended with exit 0, silent


def closes() -> nn.Module:
    raise GeneratorExit  # not an Exception: it printed a traceback (helper-63)


VALUE = 3


class _Talkative(TinySpikingSSM):
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        print("forward called")  # a user's debugging print, under tracing and on inputs
        return super().forward(u)


def talkative() -> nn.Module:
    print("building the model")
    return _Talkative()
