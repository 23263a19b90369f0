"""Backbone: every family builds, trains (gradients), and its step mode equals its parallel mode."""

from __future__ import annotations

import pytest
import torch

from snncompile.errors import UnsupportedError, UsageError
from snncompile.models.backbone import FAMILIES, ModelConfig, build_model
from snncompile.models.mixing import GLUMixer, GSUMixer, ternarize
from snncompile.models.neurons.heaviside import HeavisideNeuron

AVAILABLE = list(FAMILIES)


def _model(family: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(family=family, d_input=3, d_output=4, d_model=16, n_layers=2, d_state=8)
    cfg.update(overrides)
    return build_model(ModelConfig(**cfg))


@pytest.mark.parametrize("family", AVAILABLE)
@pytest.mark.parametrize("prenorm", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_step_mode_equals_parallel_mode(family: str, prenorm: bool, pooling: str) -> None:
    model = _model(family, prenorm=prenorm, pooling=pooling).double()
    x = torch.randn(4, 40, 3, dtype=torch.float64)
    model.train()
    model(x)  # moves BatchNorm running statistics away from their init
    model.eval()
    with torch.no_grad():
        parallel = model(x)
        parallel_rates = model.spike_rates()
        steps = model.forward_steps(x)
        step_rates = model.spike_rates()
    assert torch.allclose(parallel, steps, rtol=1e-9, atol=1e-9)
    assert parallel_rates.keys() == step_rates.keys()
    for name in parallel_rates:
        assert parallel_rates[name] == pytest.approx(step_rates[name], abs=1e-12)


@pytest.mark.parametrize("family", AVAILABLE)
def test_gradients_are_finite_and_reach_the_encoder(family: str) -> None:
    model = _model(family)
    model.train()
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(4, 30, 3)), torch.tensor([0, 1, 2, 3])
    )
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert model.encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", AVAILABLE)
def test_spiking_families_record_per_layer_rates(family: str) -> None:
    model = _model(family).eval()
    with torch.no_grad():
        model(torch.randn(2, 20, 3))
    rates = model.spike_rates()
    if FAMILIES[family].spiking:
        assert set(rates) == {"blocks.0.act", "blocks.1.act"}
        assert all(0.0 <= r <= 1.0 for r in rates.values())
    else:
        assert rates == {}


def test_rates_follow_the_input() -> None:
    model = _model("binary-s4d").eval()
    with torch.no_grad():
        model(torch.zeros(2, 20, 3))
        quiet = model.spike_rates()
        model(torch.randn(2, 20, 3) * 5)
        busy = model.spike_rates()
    assert quiet != busy


def test_bidirectional_model_is_not_streamable() -> None:
    model = _model("s4d", bidirectional=True).eval()
    assert not model.streamable
    with pytest.raises(UnsupportedError):
        model.forward_steps(torch.randn(1, 5, 3))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"family": "lstm"}, "unknown model family 'lstm'"),
        ({"d_model": 0}, "d_model must be positive, got 0"),
        ({"pooling": "max"}, "pooling must be one of .*, got 'max'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_config(override: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _model(override.pop("family", "s4d"), **override)


def test_config_round_trips_through_dict() -> None:
    cfg = ModelConfig(family="spike-ssm", d_input=1, d_output=10, beta=0.25)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_glu_linear_and_conv1d_compute_the_same_map() -> None:
    torch.manual_seed(0)
    lin = GLUMixer(5, projection="linear")
    conv = GLUMixer(5, projection="conv1d")
    with torch.no_grad():
        conv.proj.weight.copy_(lin.proj.weight.unsqueeze(-1))
        conv.proj.bias.copy_(lin.proj.bias)
    s = (torch.rand(2, 7, 5) > 0.5).float()
    assert torch.allclose(lin(s), conv(s), atol=1e-6)
    assert torch.allclose(lin(s[:, 0]), conv(s[:, 0]), atol=1e-6)


def test_hard_sigmoid_gate() -> None:
    glu = GLUMixer(1, gate="hard-sigmoid")
    z = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 9.0])
    assert torch.equal(glu.gate_fn(z), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_ternarize_threshold_and_straight_through_gradient() -> None:
    z = torch.tensor([[1.0, -0.1, 0.2, -0.16, 0.14, 0.15, -0.15]], requires_grad=True)
    ter = ternarize(z, dim=-1)
    # threshold 0.15 * max|z| = 0.15: strictly larger magnitudes survive, 0.15 itself not
    assert ter.tolist() == [[1.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0]]
    ter.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_gsu_products_are_multiplication_free() -> None:
    torch.manual_seed(0)
    gsu = GSUMixer(6)
    y = torch.randn(3, 6)
    w_ter = ternarize(gsu.weight, dim=None)
    assert set(w_ter.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert set(ternarize(y, dim=-1).unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert gsu(y).shape == (3, 6)
    # GELU(LN((Ter(y) W + b) * (y Ter(W)))): ternary activations against the float
    # weights, float activations against the ternary weights (models/mixing.py).
    gated = (ternarize(y, dim=-1) @ gsu.weight + gsu.bias) * (y @ w_ter)
    expected = torch.nn.functional.gelu(gsu.norm(gated))
    torch.testing.assert_close(gsu(y), expected, rtol=0, atol=0)


def test_heaviside_step_equals_forward_at_exactly_zero() -> None:
    """s = [y > 0] in both modes: y = 0 does not spike (the deployment step used >= once)."""
    neuron = HeavisideNeuron(3)
    y = torch.tensor([[0.0, 1e-30, -1e-30]])
    assert neuron.step(y, ())[0].tolist() == [[0.0, 1.0, 0.0]]
    assert neuron(y[:, None])[:, 0].tolist() == [[0.0, 1.0, 0.0]]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_pooling_reads_the_steps_it_names(pooling: str) -> None:
    """A change at the last input step reaches the output (with causal blocks it changes
    only the last step's features, which "last" must read), and so does dropping that
    step."""
    torch.manual_seed(0)
    cfg = ModelConfig(family="s4d", d_input=2, d_output=3, d_model=8, n_layers=1, d_state=4,
                      pooling=pooling)  # fmt: skip
    model = build_model(cfg).eval()
    u = torch.randn(2, 6, 2)
    changed = u.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        base, moved = model(u), model(changed)
        trimmed = model(u[:, :-1])
    assert not torch.allclose(base, moved)
    assert not torch.allclose(base, trimmed)
