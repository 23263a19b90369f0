"""Entries whose own code fails after the import (load_user_model tests): a lazy module
attribute, a model's load_state_dict, eval or forward, a part that cannot be copied."""

from __future__ import annotations

import sys
import threading

import torch
from tiny_user_model import TinySpikingSSM
from torch import nn


def __getattr__(name: str) -> object:
    if name == "lazy":  # a lazily built attribute whose construction fails
        raise ValueError("the lazy factory needs a GPU")
    raise AttributeError(name)


class _BadLoader(TinySpikingSSM):
    def load_state_dict(self, *args: object, **kwargs: object) -> object:
        raise ValueError("custom loader failed")


class _BadEval(TinySpikingSSM):
    def train(self, mode: bool = True) -> nn.Module:
        if not mode:
            raise ValueError("no eval mode")
        return super().train(mode)


class _ForwardExits(TinySpikingSSM):
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        sys.exit(3)  # ended export with exit 3, "an equivalence check failed", silently


class _Exits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise GeneratorExit  # escaped the CLI as a traceback


class _PartExits(TinySpikingSSM):
    def __init__(self) -> None:
        super().__init__()
        self.part = _Exits()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.part(super().forward(u))


class _HoldsLock(TinySpikingSSM):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()  # deepcopy refuses it: a TypeError, exit 1


def bad_loader() -> nn.Module:
    return _BadLoader()


def bad_eval() -> nn.Module:
    return _BadEval()


def forward_exits() -> nn.Module:
    return _ForwardExits()


def part_exits() -> nn.Module:
    return _PartExits()


def holds_lock() -> nn.Module:
    return _HoldsLock()


class _RefusesRealInputs(TinySpikingSSM):
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if isinstance(u, torch.Tensor):  # under tracing u is a Proxy: the trace succeeds
            raise ValueError("real inputs\n refused")
        return super().forward(u)


def refuses_real_inputs() -> nn.Module:
    return _RefusesRealInputs()
