"""LIF with hard reset: exact recurrence, `>=` threshold, scaling, SDN training mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snncompile.errors import UsageError
from snncompile.models.neurons.lif import LIFNeuron


def _numpy_lif(x: np.ndarray, tau: float, vth: np.ndarray) -> np.ndarray:
    """Independent float64 reference on (B, L, H)."""
    u = np.zeros(x[:, 0].shape)
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        m = tau * u + x[:, t] / vth
        s = m >= 1.0
        out[:, t] = s
        u = np.where(s, 0.0, m)
    return out


def _steps(neuron: LIFNeuron, x: torch.Tensor) -> torch.Tensor:
    state = neuron.init_state(x.shape[0], dtype=x.dtype)
    out = []
    for t in range(x.shape[1]):
        s, state = neuron.step(x[:, t], state)
        out.append(s)
    return torch.stack(out, 1)


def test_exact_forward_matches_numpy_and_step_mode() -> None:
    torch.manual_seed(0)
    neuron = LIFNeuron(6, mode="exact").double()
    with torch.no_grad():
        neuron.ln_vth.copy_(torch.linspace(-0.5, 0.5, 6))
    x = torch.randn(3, 200, 6, dtype=torch.float64) * 1.5
    spikes = neuron(x)
    ref = _numpy_lif(x.numpy(), 0.125, neuron.threshold.detach().numpy())
    assert np.array_equal(spikes.detach().numpy(), ref)
    assert torch.equal(_steps(neuron, x), spikes.detach())
    assert 0.05 < spikes.mean() < 0.6


def test_eval_mode_runs_exact_even_in_sdn_mode() -> None:
    torch.manual_seed(1)
    neuron = LIFNeuron(4, mode="sdn").eval()
    x = torch.randn(2, 100, 4)
    assert torch.equal(neuron(x), _steps(neuron, x))


def test_membrane_exactly_at_threshold_spikes_and_resets() -> None:
    neuron = LIFNeuron(1, mode="exact", trainable_threshold=False)
    # m_0 = 1.0 (spike, reset); m_1 = 0.5; m_2 = 0.125*0.5 + 0.9375 = 1.0 (spike)
    x = torch.tensor([[[1.0], [0.5], [0.9375], [0.0]]])
    assert neuron(x).flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    just_below = torch.tensor([[[1.0 - 2**-20]]])
    assert neuron(just_below).item() == 0.0


def test_threshold_scales_per_channel() -> None:
    neuron = LIFNeuron(2, mode="exact")
    with torch.no_grad():
        neuron.ln_vth.copy_(torch.log(torch.tensor([1.0, 2.0])))
    x = torch.tensor([[[1.5, 1.5], [2.0, 2.0]]])
    assert neuron(x)[0].tolist() == [[1.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("mode", ["sdn", "exact"])
def test_training_gradients_reach_input_and_threshold(mode: str) -> None:
    torch.manual_seed(2)
    neuron = LIFNeuron(5, mode=mode).train()
    x = torch.randn(2, 50, 5, requires_grad=True)
    spikes = neuron(x)
    (spikes * torch.randn_like(spikes)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(neuron.ln_vth.grad).all() and neuron.ln_vth.grad.abs().sum() > 0


def test_sdn_training_spikes_agree_with_exact_on_the_model_path() -> None:
    torch.manual_seed(3)
    neuron = LIFNeuron(8, mode="sdn")
    x = torch.randn(16, 256, 8)
    with torch.no_grad():
        sdn_spikes = neuron.train()(x)
        exact_spikes = neuron.eval()(x)
    assert float((sdn_spikes == exact_spikes).float().mean()) >= 0.995


def test_sdn_is_not_in_the_state_dict() -> None:
    neuron = LIFNeuron(3, mode="sdn").train()
    neuron(torch.randn(1, 10, 3))
    assert set(neuron.state_dict()) == {"ln_vth"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be a positive int, got 0"),
        ({"channels": 2, "tau": 1.0}, r"tau must be in \[0, 1\), got 1.0"),
        ({"channels": 2, "mode": "fast"}, "mode must be one of .*, got 'fast'"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        LIFNeuron(**kwargs)


def test_tau_without_a_trained_sdn_is_refused_in_sdn_training() -> None:
    neuron = LIFNeuron(2, tau=0.25, mode="sdn").train()
    with pytest.raises(UsageError, match="tau"):
        neuron(torch.randn(1, 10, 2))


def test_exact_mode_gradient_does_not_flow_through_the_reset() -> None:
    """u_t = m_t (1 - s_t) with s_t detached: after the spike at t = 0 (m = 1.2) u_0 = 0,
    so s_1 (m_1 = 0.5) depends on x_1 alone: d s_1 / d x = [0, triangle(0.5 - 1)] = [0, 0.5]."""
    neuron = LIFNeuron(1, mode="exact", trainable_threshold=False).eval()
    x = torch.tensor([[[1.2], [0.5]]], requires_grad=True)
    neuron(x)[0, 1, 0].backward()
    assert x.grad.ravel().tolist() == [0.0, 0.5]


def test_sdn_mode_spikes_where_the_prediction_plus_input_reaches_one() -> None:
    """Training mode: s_t = [SDN(y)_t + y_t >= 1], also 5e-4 below the threshold."""
    from snncompile.models.sdn import load_sdn

    neuron = LIFNeuron(1, mode="sdn", trainable_threshold=False).train()
    sdn = load_sdn(0.125)
    y = torch.tensor([[[0.3], [0.6], [0.2]]])
    y[0, 2, 0] = 1 - 5e-4 - sdn.predict_channels(y)[0, 2, 0]  # depends on y_0, y_1 only
    expected = (sdn.predict_channels(y) + y >= 1).float()
    assert expected[0, 2, 0] == 0
    assert torch.equal(neuron(y), expected)
