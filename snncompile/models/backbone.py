"""The sequence classifier every family shares, its config, and the family registry.

    h_0      = Encoder(u)                                   Linear(d_input, H)
    h_{l+1}  = h_l + Block_l(h_l)                           l = 0 .. n_layers-1 (residual)
    Block(x) = Mix(Dropout(Act(S4D(Norm(x)))))              Norm: optional prenorm BatchNorm
    logits   = Decoder(Pool_t(h_L))                         Pool: mean over time or last step

Act and Mix per family (PAPERS.md):
    spike-ssm       reset-refractory neuron (PMBC)   -> Linear + GLU
    spiking-ssm     LIF, hard reset (SDN training)   -> Conv1d(k=1) + GLU
    binary-s4d      Heaviside                        -> Linear + GLU
    binary-s4d-gsu  GSU (ternary gated unit, LayerNorm, GELU); no separate mixer
    s4d             GELU (non-spiking baseline)      -> Linear + GLU
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from snncompile.errors import ArgumentTypeError, UsageError
from snncompile.models.checks import check_features
from snncompile.models.mixing import GATES, GLUMixer, GSUMixer
from snncompile.models.neurons.base import SpikingNeuron
from snncompile.models.norm import SequenceBatchNorm
from snncompile.models.s4d import DISCRETIZATIONS, INITS, S4D

POOLINGS = ("mean", "last")
_FIELD_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def _plain(value: Any) -> Any:
    """numpy's scalars as Python's (np.int64(8) was "must be an integer, got 8")."""
    numpy_scalar = (np.integer, np.floating, np.bool_, np.str_)  # np.str_ pickled on save
    return value.item() if isinstance(value, numpy_scalar) else value


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in checkpoints as a plain dict."""

    family: str
    d_input: int
    d_output: int
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 64
    ssm_init: str = "lin"
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    trainable_B: bool = True
    bidirectional: bool = False
    prenorm: bool = False
    pooling: str = "mean"
    gate: str = "sigmoid"
    dropout: float = 0.0
    # reset-refractory neuron (spike-ssm)
    beta: float = 0.5
    trainable_beta: bool = False
    theta_init: float = 1.0
    rho_init: float = 0.5
    # LIF neuron (spiking-ssm)
    tau: float = 0.125
    lif_mode: str = "sdn"

    def __post_init__(self) -> None:
        # Types first: a config read from a file may hold anything plain data can.
        for f in dataclasses.fields(self):
            value = _plain(getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # the config is stored as plain data
            allowed = _FIELD_TYPES[str(f.type)]
            if not isinstance(value, allowed) or (f.type != "bool" and isinstance(value, bool)):
                raise ArgumentTypeError(
                    f"{f.name} must be {_TYPE_NAMES[str(f.type)]}, got {value!r}"
                )
            if f.type == "float" and not math.isfinite(value):
                raise UsageError(f"{f.name} must be finite, got {value!r}")
        if self.family not in FAMILIES:
            raise UsageError(f"unknown model family {self.family!r}; known: {', '.join(FAMILIES)}")
        for name in ("d_input", "d_output", "d_model", "n_layers", "d_state"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
        choices = {
            "ssm_init": INITS,
            "discretization": DISCRETIZATIONS,
            "pooling": POOLINGS,
            "gate": GATES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ArgumentTypeError(f"a model config must be a dict, got {type(data).__name__}")
        fields = dataclasses.fields(cls)
        unknown = sorted(set(data) - {f.name for f in fields})
        if unknown:
            raise UsageError(f"unknown model config keys: {', '.join(unknown)}")
        required = (f.name for f in fields if f.default is dataclasses.MISSING)
        missing = [name for name in required if name not in data]
        if missing:
            raise UsageError(f"model config lacks required keys: {', '.join(missing)}")
        return cls(**data)


def _reset_refractory(cfg: ModelConfig) -> nn.Module:
    from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron

    return ResetRefractoryNeuron(
        cfg.d_model,
        beta=cfg.beta,
        trainable_beta=cfg.trainable_beta,
        theta_init=cfg.theta_init,
        rho_init=cfg.rho_init,
    )


def _lif(cfg: ModelConfig) -> nn.Module:
    from snncompile.models.neurons.lif import LIFNeuron

    return LIFNeuron(cfg.d_model, tau=cfg.tau, mode=cfg.lif_mode)


def _heaviside(cfg: ModelConfig) -> nn.Module:
    from snncompile.models.neurons.heaviside import HeavisideNeuron

    return HeavisideNeuron(cfg.d_model)


def _gelu(cfg: ModelConfig) -> nn.Module:
    return nn.GELU()


def _gsu(cfg: ModelConfig) -> nn.Module:
    return GSUMixer(cfg.d_model)


def _glu(projection: str) -> Callable[[ModelConfig], nn.Module]:
    def make(cfg: ModelConfig) -> nn.Module:
        return GLUMixer(cfg.d_model, gate=cfg.gate, projection=projection)

    return make


def _no_mixer(cfg: ModelConfig) -> nn.Module:
    return nn.Identity()


@dataclass(frozen=True)
class Family:
    """How a family builds its activation and mixer; `spiking` says whether it emits spikes."""

    activation: Callable[[ModelConfig], nn.Module]
    mixer: Callable[[ModelConfig], nn.Module]
    spiking: bool
    description: str


FAMILIES: dict[str, Family] = {
    "spike-ssm": Family(
        _reset_refractory, _glu("linear"), True, "SPikE-SSM: reset-refractory neuron, PMBC"
    ),
    "spiking-ssm": Family(_lif, _glu("conv1d"), True, "SpikingSSM: LIF with hard reset, SDN"),
    "binary-s4d": Family(_heaviside, _glu("linear"), True, "Binary S4D: Heaviside spike"),
    "binary-s4d-gsu": Family(_gsu, _no_mixer, True, "Binary S4D with the gated spiking unit"),
    "s4d": Family(_gelu, _glu("linear"), False, "non-spiking S4D baseline (GELU)"),
}


class Block(nn.Module):
    """One residual block: x + Mix(Dropout(Act(S4D(Norm(x)))))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        family = FAMILIES[cfg.family]
        self.norm: nn.Module = SequenceBatchNorm(cfg.d_model) if cfg.prenorm else nn.Identity()
        self.ssm = S4D(
            cfg.d_model,
            cfg.d_state,
            init=cfg.ssm_init,
            discretization=cfg.discretization,
            dt_min=cfg.dt_min,
            dt_max=cfg.dt_max,
            trainable_B=cfg.trainable_B,
            bidirectional=cfg.bidirectional,
        )
        self.act = family.activation(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.mix = family.mixer(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.dropout(self.act(self.ssm(self.norm(x)))))

    def init_state(self, batch: int, *, dtype: torch.dtype, device: torch.device | None) -> tuple:
        act_state = (
            self.act.init_state(batch, dtype=dtype, device=device)
            if isinstance(self.act, SpikingNeuron)
            else ()
        )
        return self.ssm.init_state(batch, dtype=dtype, device=device), act_state

    def step(self, x_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """One step: x_t (B, H) -> (out_t, activation_t, new state). Eval mode only."""
        ssm_state, act_state = state
        y_t, ssm_state = self.ssm.step(self.norm(x_t), ssm_state)
        if isinstance(self.act, SpikingNeuron):
            a_t, act_state = self.act.step(y_t, act_state)
        else:
            a_t = self.act(y_t)
        return x_t + self.mix(a_t), a_t, (ssm_state, act_state)

    def step_activity(self, a_t: torch.Tensor) -> float:
        """Spike rate of one step's activation (GSU: its nonzero ternary activations)."""
        if isinstance(self.act, GSUMixer):
            return self.act.last_spike_rate
        return float((a_t != 0).float().mean())


class SequenceModel(nn.Module):
    """Encoder -> residual blocks -> pooling -> decoder; (B, L, d_input) -> (B, d_output)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise ArgumentTypeError(
                f"SequenceModel needs a ModelConfig (or build_model(dict)), "
                f"got {type(config).__name__}"
            )
        self.config = config
        self.encoder = nn.Linear(config.d_input, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.decoder = nn.Linear(config.d_model, config.d_output)
        self._step_rates: dict[str, float] = {}

    @property
    def spiking(self) -> bool:
        return FAMILIES[self.config.family].spiking

    @property
    def streamable(self) -> bool:
        return all(block.ssm.streamable for block in self.blocks)

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1) if self.config.pooling == "mean" else h[:, -1]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Parallel (training) mode: convolution-mode SSMs, parallel neurons."""
        # Not checked while torch.fx traces (u is then a Proxy, whose tests cannot branch).
        if not isinstance(u, torch.fx.Proxy):
            self._check_input(u)
        self._step_rates = {}
        h = self.encoder(u)
        for block in self.blocks:
            h = block(h)
        return self.decoder(self._pool(h))

    def _check_input(self, u: torch.Tensor, owner: str = "SequenceModel") -> None:
        """UsageError for what failed deep inside torch (an empty batch in the FFT, a dtype
        other than the weights' in a matmul, a numpy array in Linear) or returned NaN
        logits (NaN input: spike-ssm alone refused it, naming its neuron)."""
        check_features(owner, u, self.config.d_input)
        if u.shape[0] == 0 or u.shape[1] == 0:
            raise UsageError(
                f"{owner} expects at least one sequence of at least one step, got "
                f"shape {tuple(u.shape)}"
            )
        dtype = self.encoder.weight.dtype
        if u.dtype != dtype:
            raise UsageError(
                f"{owner} x is {u.dtype} but its weights are {dtype}: convert one "
                f"(x.to({dtype}) or model.to({u.dtype}))"
            )
        if not bool(torch.isfinite(u).all()):
            raise UsageError(f"{owner} x holds NaN or inf")

    @torch.no_grad()
    def forward_steps(self, u: torch.Tensor) -> torch.Tensor:
        """Step (deployment) mode over a whole sequence: same result as forward in eval mode.

        Runs every layer step by step with explicit state, as the compiled network does.
        """
        self._check_input(u, "SequenceModel.forward_steps")
        batch, length, _ = u.shape
        states = [blk.init_state(batch, dtype=u.dtype, device=u.device) for blk in self.blocks]
        activity = torch.zeros(len(self.blocks))
        hidden = []
        for t in range(length):
            h_t = self.encoder(u[:, t])
            for i, block in enumerate(self.blocks):
                h_t, a_t, states[i] = block.step(h_t, states[i])
                activity[i] += block.step_activity(a_t)
            hidden.append(h_t)
        self._step_rates = {
            f"blocks.{i}.act": float(rate) for i, rate in enumerate(activity / max(length, 1))
        }
        return self.decoder(self._pool(torch.stack(hidden, dim=1)))

    def spike_rates(self) -> dict[str, float]:
        """Per-layer spike rate of the last forward (or forward_steps) pass.

        For the GSU family the rate is the fraction of nonzero ternary activations.
        Empty for the non-spiking baseline.
        """
        if not self.spiking:
            return {}
        if self._step_rates:
            return dict(self._step_rates)
        rates = {}
        for i, block in enumerate(self.blocks):
            source = block.act
            rates[f"blocks.{i}.act"] = float(getattr(source, "last_spike_rate", float("nan")))
        return rates


def build_model(config: ModelConfig | dict[str, Any]) -> SequenceModel:
    """Build a fresh (untrained) model from a config or its dict form."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return SequenceModel(config)
