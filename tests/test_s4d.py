"""S4D: convolution mode equals step mode; gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from snncompile.errors import UnsupportedError, UsageError
from snncompile.models.s4d import S4D


def _run_steps(layer: S4D, u: torch.Tensor) -> torch.Tensor:
    state = layer.init_state(u.shape[0], dtype=u.dtype)
    out = []
    for t in range(u.shape[1]):
        y_t, state = layer.step(u[:, t], state)
        out.append(y_t)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("length", [64, 700])
def test_conv_mode_equals_step_mode(init: str, discretization: str, length: int) -> None:
    torch.manual_seed(1)
    layer = S4D(12, 32, init=init, discretization=discretization)
    u = torch.randn(3, length, 12)
    with torch.no_grad():
        conv, step = layer(u), _run_steps(layer, u)
    rel = (conv - step).abs().max() / step.abs().max()
    assert rel < 1e-5


def test_conv_mode_equals_step_mode_float64_tightly() -> None:
    torch.manual_seed(2)
    layer = S4D(8, 16, discretization="bilinear").double()
    u = torch.randn(2, 300, 8, dtype=torch.float64)
    with torch.no_grad():
        conv, step = layer(u), _run_steps(layer, u)
    assert (conv - step).abs().max() / step.abs().max() < 1e-12


def test_a_mode_whose_a_bar_underflows_to_zero_gives_no_nan() -> None:
    # exp(dt A) underflows to 0 once dt |A| passes ~103: conv mode took log(0) = -inf and
    # returned NaN (exp(-inf * 0) at lag 0) where step mode was fine (helper-66).
    torch.manual_seed(3)
    layer = S4D(4, 8)
    with torch.no_grad():
        layer.log_dt.fill_(-2.3)
        layer.log_A_real[0, 0] = 7.5
    a_bar = layer.discretize()[0]
    assert a_bar[0, 0] == 0 and bool((a_bar != 0).sum() > 1)
    u = torch.randn(2, 50, 4)
    conv = layer(u)
    with torch.no_grad():
        step = _run_steps(layer, u)
    assert torch.isfinite(conv).all()
    assert (conv - step).abs().max() / step.abs().max() < 1e-5
    conv.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_kernel_in_parts_equals_the_kernel_at_once_with_its_gradients(monkeypatch, bidirectional):
    """The powers are built a part of the steps at a time (memory); each kernel value is
    the same sum over modes, so values and gradients are equal, not just close."""
    import snncompile.models.s4d as s4d

    torch.manual_seed(6)
    layer = S4D(5, 16, trainable_B=True, bidirectional=bidirectional)
    u = torch.randn(2, 101, 5)

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        layer.zero_grad()
        y = layer(u)
        y.pow(2).mean().backward()
        return y.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}

    monkeypatch.setattr(s4d, "KERNEL_PART_BYTES", 1 << 30)
    whole, whole_grads = run()
    part_steps = 7  # 15 parts, the last of 3 steps
    monkeypatch.setattr(s4d, "KERNEL_PART_BYTES", 16 * 5 * 8 * part_steps)
    calls = []
    einsum = torch.einsum
    monkeypatch.setattr(torch, "einsum", lambda *a: calls.append(1) or einsum(*a))
    parts, parts_grads = run()
    assert len(calls) == 15  # the kernel was built in parts
    assert torch.equal(parts, whole)
    for name, grad in whole_grads.items():
        assert torch.equal(parts_grads[name], grad), name


def test_causal_output_ignores_the_future() -> None:
    torch.manual_seed(3)
    layer = S4D(4, 8)
    u = torch.randn(1, 50, 4)
    changed = u.clone()
    changed[:, 30:] += 5.0
    with torch.no_grad():
        before, after = layer(u), layer(changed)
    # FFT rounding touches every step slightly; a non-causal leak would be O(1).
    scale = float(before.abs().max())
    assert (before[:, :30] - after[:, :30]).abs().max() < 1e-5 * scale
    assert (before[:, 30:] - after[:, 30:]).abs().max() > 0.1 * scale


def test_bidirectional_reads_the_future_and_refuses_step_mode() -> None:
    torch.manual_seed(4)
    layer = S4D(4, 8, bidirectional=True)
    assert not layer.streamable
    u = torch.randn(1, 50, 4)
    changed = u.clone()
    changed[:, 30:] += 5.0
    with torch.no_grad():
        assert not torch.allclose(layer(u)[:, :30], layer(changed)[:, :30])
    with pytest.raises(UnsupportedError, match="non-causal"):
        layer.step(u[:, 0], layer.init_state(1))


@pytest.mark.parametrize("trainable_b", [True, False])
def test_gradient_reaches_every_parameter(trainable_b: bool) -> None:
    torch.manual_seed(5)
    layer = S4D(6, 16, trainable_B=trainable_b)
    layer(torch.randn(2, 40, 6)).pow(2).mean().backward()
    names = {name for name, _ in layer.named_parameters()}
    assert ("B" in names) == trainable_b
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_dt_is_log_uniform_in_range() -> None:
    torch.manual_seed(6)
    layer = S4D(2000, 4, dt_min=1e-3, dt_max=1e-1)
    dt = layer.log_dt.exp()
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    # log-uniform: about half of the samples lie below the geometric mean 1e-2
    assert 0.45 < float((dt < 1e-2).float().mean()) < 0.55


def test_inits_follow_their_formulas() -> None:
    lin = S4D(1, 8, init="lin")
    assert torch.allclose(lin.A_imag[0], torch.pi * torch.arange(4.0))
    inv = S4D(1, 8, init="inv")
    n = torch.arange(4.0)
    assert torch.allclose(inv.A_imag[0], (8 / torch.pi) * (8 / (2 * n + 1) - 1))
    assert torch.allclose(lin.log_A_real.exp(), torch.full((1, 4), 0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_state": 3}, "d_state must be an even number >= 2, got 3"),
        ({"init": "legs"}, "init must be one of .*, got 'legs'"),
        ({"discretization": "euler"}, "discretization must be one of .*, got 'euler'"),
        ({"dt_min": 0.0}, "needs 0 < dt_min <= dt_max, got 0.0, 0.1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"d_model": 4, "d_state": 8, **kwargs}
    with pytest.raises(UsageError, match=message):
        S4D(**args)


def test_bidirectional_is_the_two_sided_convolution() -> None:
    """y_t = D u_t + sum_{s<=t} K_fwd[t-s] u_s + sum_{s>=t} K_rev[s-t] u_s, summed here
    term by term (the FFT path must flip the reverse half back into time order)."""
    torch.manual_seed(0)
    layer = S4D(3, 8, bidirectional=True).double()
    length = 20
    u = torch.randn(2, length, 3, dtype=torch.float64)
    with torch.no_grad():
        kernel = layer.kernel(length)  # (2, H, L): forward and reverse halves
        want = layer.D * u
        for t in range(length):
            for s in range(length):
                if s <= t:
                    want[:, t] += kernel[0, :, t - s] * u[:, s]
                if s >= t:
                    want[:, t] += kernel[1, :, s - t] * u[:, s]
        got = layer(u)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_is_exactly_zero_while_the_input_has_been_zero(monkeypatch, bidirectional) -> None:
    """Step mode's y is exactly 0 until a channel's first nonzero input; conv mode's FFT
    left noise of either sign there (~1e-17), which a Heaviside turned into spikes the
    deployed network never makes (a 4-bit fine-tuned binary-s4d, whose rounded encoder
    bias left channels zero on sdigits' blank first pixels, failed verify's rung 1 with
    a lowering error of 0.07). Gradients are those of the unmasked convolution."""
    torch.manual_seed(7)
    layer = S4D(4, 16, bidirectional=bidirectional).double()
    u = torch.randn(3, 40, 4, dtype=torch.float64)
    u[:, :9, 1] = 0  # a zero prefix
    u[0, :, 2] = 0  # a channel silent throughout in one sample
    u.requires_grad_(True)
    y = layer(u)
    if not bidirectional:
        assert bool((y[:, :9, 1] == 0).all()) and bool((y[0, :, 2] == 0).all())
        with torch.no_grad():
            assert torch.equal(y[:, :9, 1] > 0, _run_steps(layer, u)[:, :9, 1] > 0)
    else:
        assert bool((y[0, :, 2] == 0).all())  # the whole sequence is zero there
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    # The same gradient as the plain FFT convolution's (the mask changes values only).
    import snncompile.models.s4d as s4d

    plain_u = u.detach().clone().requires_grad_(True)
    monkeypatch.setattr(s4d, "_zero_before_input", lambda y, u: y)
    (layer(plain_u) * weights).sum().backward()
    torch.testing.assert_close(u.grad, plain_u.grad, rtol=0, atol=0)
