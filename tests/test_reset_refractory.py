"""Reset-refractory neuron: exact PMBC spikes, filter error bound, gradients, step mode."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snncompile.errors import UsageError
from snncompile.models.neurons import compiled, pmbc
from snncompile.models.neurons.linear_filter import (
    filter_error_bound,
    linear_filter,
    recurrence_error_bound,
)
from snncompile.models.neurons.pmbc import pmbc_spikes, sequential_spikes
from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron

DTYPES = (torch.float32, torch.float64)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_params(channels: int, dtype: torch.dtype, seed: int):
    gen = _generator(seed)
    theta = (0.5 + torch.rand(channels, generator=gen)).to(dtype)
    rho = torch.rand(channels, generator=gen).to(dtype)
    return theta, rho


def _assert_same_spikes(x, beta, theta, rho, max_passes=pmbc.DEFAULT_MAX_PASSES):
    expected = sequential_spikes(x, beta, theta, rho)
    spikes, stats = pmbc_spikes(x, beta, theta, rho, max_passes=max_passes)
    mismatches = int((spikes != expected).sum())
    assert mismatches == 0, f"{mismatches} spikes differ from the reference ({stats})"
    assert spikes.dtype == x.dtype
    return stats


# --------------------------------------------------------------------------- filter


def _recurrence(x: torch.Tensor, beta: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """y_t = beta * y_{t-1} + x_t step by step, in x's dtype (time reversed if asked)."""
    y = torch.empty_like(x)
    acc = torch.zeros(x.shape[0], x.shape[2], dtype=x.dtype)
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    for t in steps:
        acc = beta * acc + x[:, t]
        y[:, t] = acc
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 7, 33, 300, 2000])
@pytest.mark.parametrize("reverse", [False, True])
def test_filter_within_stated_bound_of_recurrence(dtype, length, reverse):
    gen = _generator(length)
    beta = torch.tensor([0.0, 0.125, 0.5, 0.9, 0.99, 0.999], dtype=dtype)
    x = (torch.randn(2, length, beta.numel(), generator=gen) * 3).to(dtype)
    filtered = linear_filter(x, beta, reverse=reverse)
    same_dtype = _recurrence(x, beta, reverse)
    # sum_i beta^|t-i| |x_i| in float64, raised by 1e-9 relative to cover its own
    # rounding (at most ~length * 2^-53 relative, i.e. < 1e-12 here).
    magnitude = _recurrence(x.double().abs(), beta.double(), reverse) * (1 + 1e-9)
    bound = filter_error_bound(length, dtype)
    recurrence = [recurrence_error_bound(float(b), dtype) for b in beta]
    rec_rel = torch.tensor([rel for rel, _ in recurrence], dtype=torch.float64)
    rec_abs = torch.tensor([absolute for _, absolute in recurrence], dtype=torch.float64)
    peak = magnitude.amax(dim=1, keepdim=True)
    allowed = bound.rel * magnitude + bound.absolute * (1 + float(x.abs().max()))
    allowed = allowed + rec_rel * peak + rec_abs
    error = (filtered.double() - same_dtype.double()).abs()
    assert bool((error <= allowed).all()), f"worst excess {float((error - allowed).max())}"
    # The bound must be tight enough to be useful as a classification margin.
    assert bound.rel < 200 * (2.0**-24 if dtype == torch.float32 else 2.0**-53) * 8


@pytest.mark.parametrize("dtype", DTYPES)
def test_filter_bound_versus_exact_filter(dtype):
    """Against a float64 (float32 data) or exact rational (float64 data) filter."""
    from fractions import Fraction

    gen = _generator(5)
    beta = torch.tensor([0.3, 0.75], dtype=dtype)
    x = torch.randn(1, 70, 2, generator=gen).to(dtype)
    filtered = linear_filter(x, beta, exclusive=True)
    bound = filter_error_bound(70, dtype)
    for h in range(2):
        b = Fraction(float(beta[h]))
        acc = Fraction(0)
        mag = Fraction(0)
        for t in range(70):
            exact_excl = b * acc  # sum_{i<t} beta^(t-i) x_i
            mag_excl = b * mag
            err = abs(Fraction(float(filtered[0, t, h])) - exact_excl)
            assert err <= Fraction(bound.rel) * mag_excl + Fraction(bound.absolute) * 10
            acc = exact_excl + Fraction(float(x[0, t, h]))
            mag = mag_excl + abs(Fraction(float(x[0, t, h])))


def test_filter_exclusive_is_shifted_inclusive():
    gen = _generator(9)
    x = torch.randn(3, 100, 4, generator=gen, dtype=torch.float64)
    beta = torch.tensor([0.2, 0.5, 0.7, 0.95], dtype=torch.float64)
    inclusive = linear_filter(x, beta)
    exclusive = linear_filter(x, beta, exclusive=True)
    torch.testing.assert_close(exclusive, inclusive - x, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 0.125, 0.5, 0.9])
@pytest.mark.parametrize("max_passes", [1, 3, 8])
def test_pmbc_equals_sequential_on_random_inputs(dtype, beta, max_passes):
    gen = _generator(int(beta * 1000) + max_passes)
    x = (torch.randn(3, 700, 8, generator=gen) * 1.5 + 0.3).to(dtype)
    theta, rho = _random_params(8, dtype, seed=max_passes)
    stats = _assert_same_spikes(x, beta, theta, rho, max_passes)
    assert 1 <= stats.passes <= max_passes
    assert sum(stats.resolved_per_pass) + stats.finish_steps == x.numel()


@pytest.mark.parametrize("dtype", DTYPES)
def test_pmbc_per_channel_beta(dtype):
    gen = _generator(11)
    beta = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.5], dtype=dtype)
    x = (torch.randn(2, 900, 8, generator=gen) * 2).to(dtype)
    theta, rho = _random_params(8, dtype, seed=3)
    for max_passes in (1, 4):
        _assert_same_spikes(x, beta, theta, rho, max_passes)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pmbc_lock_step_and_cluster_replays_are_exact(dtype):
    """One pass leaves many steps open (lock-step block replay); six leave few (clusters)."""
    gen = _generator(21)
    x = torch.randn(2, 2048, 16, generator=gen).to(dtype)
    stats = _assert_same_spikes(x, 0.25, 1.0, 0.5, max_passes=1)
    assert stats.block_lanes > 0
    stats = _assert_same_spikes(x, 0.5, 1.0, 0.5, max_passes=6)
    assert stats.block_lanes == 0 and stats.cluster_lanes > 0


def _threshold_sequence(dtype, length, channels, seed, beta=0.5, theta=1.0, rho=0.5):
    """Inputs whose reference membrane lands exactly on theta, or a few ulps from it.

    x_t = target_t - fl(beta * v_{t-1}); other targets are on a 1/64 grid. With
    beta = 0.5 everything stays dyadic and short (filters round nothing); with beta = 0.7
    the history has full mantissas, so the filters and the reference round differently
    next to theta. The test counts the hits it claims.
    """
    gen = _generator(seed)
    beta_t = torch.tensor(beta, dtype=dtype)
    theta_t = torch.tensor(theta, dtype=dtype)
    c = theta_t + torch.tensor(rho, dtype=dtype)
    v = torch.zeros(channels, dtype=dtype)
    x = torch.empty(1, length, channels, dtype=dtype)
    up, down = torch.tensor(math.inf, dtype=dtype), torch.tensor(-math.inf, dtype=dtype)
    for t in range(length):
        kind = torch.rand(channels, generator=gen)
        target = torch.randint(-256, 320, (channels,), generator=gen).to(dtype) / 64
        target = torch.where(kind < 0.35, theta_t, target)
        ulps = torch.randint(1, 4, (channels,), generator=gen)
        direction = torch.where(kind < 0.45, up, down)
        near = theta_t.expand(channels).clone()
        for i in range(3):
            near = torch.where(ulps > i, torch.nextafter(near, direction), near)
        target = torch.where((kind >= 0.35) & (kind < 0.55), near, target)
        p = beta_t * v
        x[0, t] = target - p
        m = p + x[0, t]
        v = m - c * (m > theta_t).to(dtype)
    return x


def _membranes(x, beta, theta, rho):
    c = torch.as_tensor(theta, dtype=x.dtype) + torch.as_tensor(rho, dtype=x.dtype)
    v = torch.zeros(x.shape[0], x.shape[2], dtype=x.dtype)
    out = torch.empty_like(x)
    for t in range(x.shape[1]):
        m = beta * v + x[:, t]
        out[:, t] = m
        v = m - c * (m > theta).to(x.dtype)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_passes", [1, 8])
@pytest.mark.parametrize("beta", [0.5, 0.7, 0.95])
def test_pmbc_exact_on_and_next_to_threshold(dtype, max_passes, beta):
    x = _threshold_sequence(dtype, 400, 12, seed=7, beta=beta)
    membranes = _membranes(x, beta, 1.0, 0.5)
    on = int((membranes == 1.0).sum())
    ulp = torch.finfo(dtype).eps
    near = int(((membranes - 1.0).abs() <= 3 * ulp).sum()) - on
    assert on > 500 and near > 300, (on, near)  # the construction really hits theta
    stats = _assert_same_spikes(x, beta, 1.0, 0.5, max_passes)
    assert stats.finish_steps >= on  # nothing on theta can be decided by a margin


@given(
    seed=st.integers(0, 2**31 - 1),
    beta=st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.875]),
    length=st.integers(1, 160),
    channels=st.integers(1, 5),
    dyadic=st.booleans(),
    double=st.booleans(),
    max_passes=st.integers(1, 6),
)
@settings(max_examples=60, deadline=None)
def test_pmbc_equals_sequential_property(seed, beta, length, channels, dyadic, double, max_passes):
    dtype = torch.float64 if double else torch.float32
    gen = _generator(seed)
    if dyadic:  # coarse grid: many membranes exactly on theta
        x = torch.randint(-8, 12, (2, length, channels), generator=gen).to(dtype) / 4
    else:
        x = (torch.randn(2, length, channels, generator=gen) * 2).to(dtype)
    _assert_same_spikes(x, beta, 1.0, 0.5, max_passes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999])
def test_beta_near_one_hits_cap_and_finishes_exactly(dtype, beta, record_property):
    gen = _generator(int(beta * 1e4))
    x = (torch.randn(2, 600, 6, generator=gen) * 0.3 + 0.05).to(dtype)
    stats = _assert_same_spikes(x, beta, 1.0, 0.5, max_passes=4)
    record_property("stats", repr(stats))
    assert stats.passes == 4 and stats.hit_cap
    assert stats.finish_steps > 0 and stats.replay_steps >= stats.finish_steps


def test_pass_counts_small_beta(record_property):
    """Recorded: at beta = 0.125 nearly everything resolves in a handful of passes."""
    gen = _generator(1)
    x = torch.randn(4, 1024, 16, generator=gen, dtype=torch.float64)
    stats = _assert_same_spikes(x, 0.125, 1.0, 0.5, max_passes=30)
    record_property("passes", stats.passes)
    record_property("resolved_per_pass", stats.resolved_per_pass)
    assert stats.passes <= 8
    assert stats.finish_steps <= 2  # only steps within the margin (~1e-14) of theta
    assert stats.resolved_per_pass[0] > 0.9 * x.numel()


def test_finish_is_exact_even_without_warmup(monkeypatch):
    """Replays that start on a wide interval fail and restart from t = 0: still exact."""
    monkeypatch.setattr(pmbc._PmbcRun, "_warmup_steps", lambda self, width: 1)
    gen = _generator(4)
    x = torch.randn(2, 500, 6, generator=gen)
    stats = _assert_same_spikes(x, 0.5, 1.0, 0.5, max_passes=1)
    assert stats.repair_lanes > 0  # blocks that cannot collapse are replayed exactly
    stats = _assert_same_spikes(x, 0.5, 1.0, 0.5, max_passes=6)
    assert stats.cluster_lanes > 0 and stats.exact_restarts > 0


def test_rows_without_valid_margin_are_replayed_exactly():
    """theta below the reference's rounding error: no step is certain, all are replayed."""
    gen = _generator(8)
    x = torch.randn(2, 300, 4, generator=gen) * 100
    stats = _assert_same_spikes(x, 0.5, 1e-6, 0.0, max_passes=3)
    assert stats.finish_steps == x.numel() and stats.passes == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_pmbc_is_exact_for_membranes_near_the_float_range(dtype):
    """Finite inputs within a factor ~3 of the largest float that never overflow the
    membrane: the replays run the reference's own operations (float64 used to crash
    computing the warm-up length, width / spacing overflowing)."""
    gen = _generator(5)
    scale = 1e37 if dtype == torch.float32 else 1e306
    x = torch.randn(3, 300, 4, generator=gen, dtype=dtype).clamp(-3.0, 3.0)
    kicks = (torch.rand(x.shape, generator=gen, dtype=dtype) < 0.3).to(dtype)
    x = x * kicks * scale + torch.randn(x.shape, generator=gen, dtype=dtype)
    beta = torch.tensor([0.0625, 0.25, 0.0, 0.45], dtype=dtype)  # |m| <= 3 scale / (1 - beta)
    theta = torch.tensor([1.0, scale, 0.5, 2.0], dtype=dtype)
    rho = torch.tensor([0.5, 0.0, scale, 0.1], dtype=dtype)
    stats = _assert_same_spikes(x, beta, theta, rho)
    assert stats.exact_restarts > 0 and stats.block_lanes == stats.cluster_lanes == 0


def test_pmbc_is_exact_for_a_subnormal_threshold():
    """theta * unit roundoff underflows to 0 (a division by zero computing the warm-up)."""
    gen = _generator(6)
    x = torch.randn(2, 700, 4, generator=gen, dtype=torch.float64) * 1e-318
    stats = _assert_same_spikes(x, 0.5, 1e-320, 1e-321)
    assert stats.finish_steps == x.numel()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_rounding_is_inside_the_margin(dtype):
    """The reference's float membrane stays within D of the exact (rational) membrane
    with the same spikes, and the classification margin covers D."""
    from fractions import Fraction

    gen = _generator(12)
    beta = torch.tensor([0.125, 0.5, 0.9, 0.99], dtype=dtype)
    x = (torch.randn(1, 150, 4, generator=gen) * 2).to(dtype)
    spikes = sequential_spikes(x, beta, 1.0, 0.5)
    floats = _membranes(x, beta, 1.0, 0.5)
    c = Fraction(float(torch.tensor(1.0, dtype=dtype) + torch.tensor(0.5, dtype=dtype)))
    worst = torch.zeros(1, 1, 4, dtype=torch.float64)
    for h in range(4):
        b = Fraction(float(beta[h]))
        v = Fraction(0)
        for t in range(150):
            m = b * v + Fraction(float(x[0, t, h]))
            gap = abs(Fraction(float(floats[0, t, h])) - m)
            worst[0, 0, h] = max(float(worst[0, 0, h]), float(gap))
            v = m - c * int(spikes[0, t, h])
    run = pmbc._PmbcRun(x, beta, 1.0, 0.5, 1)
    err, rounding, valid = run._row_bounds(x)
    assert bool(valid.all())
    assert bool((worst <= rounding).all()), float((worst - rounding).max())
    assert bool((worst > 0).any())  # the reference does round: the check is not vacuous
    assert bool((run._row_margins(x) >= err + rounding).all())


# --------------------------------------------------------------------------- module


def _grads(method, dtype, trainable_beta, surrogate, seed=0):
    gen = _generator(seed)
    neuron = ResetRefractoryNeuron(
        6,
        beta=[0.1, 0.3, 0.5, 0.7, 0.9, 0.5],
        trainable_beta=trainable_beta,
        theta_init=[0.8, 1.0, 1.2, 1.0, 0.9, 1.1],
        rho_init=[0.0, 0.2, 0.5, 1.0, 0.3, 0.4],
        method=method,
        surrogate=surrogate,
        slope=5.0,
    ).to(dtype)
    x = (torch.randn(3, 250, 6, generator=gen) * 1.5).to(dtype).requires_grad_()
    weight = torch.randn(3, 250, 6, generator=gen).to(dtype)
    spikes = neuron(x)
    (spikes * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in neuron.named_parameters()}
    return spikes.detach(), x.grad.clone(), grads, neuron


@pytest.mark.parametrize("trainable_beta", [False, True])
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "triangle"])
def test_pmbc_gradients_equal_sequential_bptt(trainable_beta, surrogate):
    s_p, gx_p, g_p, neuron = _grads("pmbc", torch.float64, trainable_beta, surrogate)
    s_s, gx_s, g_s, _ = _grads("sequential", torch.float64, trainable_beta, surrogate)
    assert torch.equal(s_p, s_s)
    assert gx_s.abs().max() > 0
    torch.testing.assert_close(gx_p, gx_s, rtol=1e-9, atol=1e-11)
    expected = {"log_theta", "raw_rho"} | ({"raw_beta"} if trainable_beta else set())
    assert set(g_p) == expected
    for name in expected:
        assert g_s[name].abs().max() > 0
        torch.testing.assert_close(g_p[name], g_s[name], rtol=1e-9, atol=1e-11)
    assert neuron.last_pmbc_stats is not None
    assert 0.0 < neuron.last_spike_rate < 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_float32_gradients_close(dtype):
    s_p, gx_p, g_p, _ = _grads("pmbc", dtype, True, "fast_sigmoid", seed=3)
    s_s, gx_s, g_s, _ = _grads("sequential", dtype, True, "fast_sigmoid", seed=3)
    assert torch.equal(s_p, s_s)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(gx_p, gx_s, rtol=tol, atol=tol)
    for name in g_s:
        torch.testing.assert_close(g_p[name], g_s[name], rtol=tol, atol=tol)


def _compiled_spikes(x, beta, theta, rho):
    """Spikes of method="compiled" and the parameters it ran with (in x's dtype)."""
    neuron = ResetRefractoryNeuron(
        x.shape[2], beta=beta, theta_init=theta, rho_init=rho, method="compiled"
    ).to(x.dtype)
    with torch.no_grad():
        beta_v, theta_v, rho_v = (p.detach() for p in neuron._params(x.dtype))
        return neuron(x), beta_v, theta_v, rho_v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.5, 0.7, 0.95])
def test_compiled_method_is_exact_on_and_next_to_threshold(dtype, beta):
    # The compiled loop must round as the reference does: no fused multiply-add, no
    # reordering. Membranes exactly on theta are where a contraction would show.
    x = _threshold_sequence(dtype, 400, 12, seed=7, beta=beta)
    spikes, beta_v, theta_v, rho_v = _compiled_spikes(x, beta, 1.0, 0.5)
    assert int((_membranes(x, beta, 1.0, 0.5) == 1.0).sum()) > 500
    assert torch.equal(spikes, sequential_spikes(x, beta_v, theta_v, rho_v))


@given(
    seed=st.integers(0, 2**31 - 1),
    length=st.integers(1, 120),
    channels=st.integers(1, 9),
    batch=st.integers(1, 5),
    dyadic=st.booleans(),
    double=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_compiled_method_equals_sequential_property(seed, length, channels, batch, dyadic, double):
    dtype = torch.float64 if double else torch.float32
    gen = _generator(seed)
    if dyadic:  # coarse grid: many membranes exactly on theta
        x = torch.randint(-8, 12, (batch, length, channels), generator=gen).to(dtype) / 4
    else:
        x = (torch.randn(batch, length, channels, generator=gen) * 2).to(dtype)
    beta = torch.rand(channels, generator=gen) * 0.95
    spikes, beta_v, theta_v, rho_v = _compiled_spikes(x, beta, 1.0, 0.5)
    assert torch.equal(spikes, sequential_spikes(x, beta_v, theta_v, rho_v))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("trainable_beta", [False, True])
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "triangle"])
def test_compiled_gradients_equal_sequential_bptt(trainable_beta, surrogate, threads, monkeypatch):
    # Rows are split among threads: 2 split the batch of 3 unevenly, 3 take one row each
    # (this small batch would run on one thread without the patch).
    monkeypatch.setattr(compiled, "THREAD_MIN_VALUES", 0)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        s_c, gx_c, g_c, neuron = _grads("compiled", torch.float64, trainable_beta, surrogate)
    finally:
        torch.set_num_threads(previous)
    s_s, gx_s, g_s, _ = _grads("sequential", torch.float64, trainable_beta, surrogate)
    assert torch.equal(s_c, s_s)
    assert gx_s.abs().max() > 0
    torch.testing.assert_close(gx_c, gx_s, rtol=1e-12, atol=1e-13)
    assert set(g_c) == set(g_s)
    for name in g_s:
        assert g_s[name].abs().max() > 0
        torch.testing.assert_close(g_c[name], g_s[name], rtol=1e-9, atol=1e-11)
    assert 0.0 < neuron.last_spike_rate < 1.0


def test_compiled_method_float32_gradients_close():
    s_c, gx_c, g_c, _ = _grads("compiled", torch.float32, True, "fast_sigmoid", seed=3)
    s_s, gx_s, g_s, _ = _grads("sequential", torch.float32, True, "fast_sigmoid", seed=3)
    assert torch.equal(s_c, s_s)
    torch.testing.assert_close(gx_c, gx_s, rtol=1e-5, atol=1e-5)
    for name in g_s:
        torch.testing.assert_close(g_c[name], g_s[name], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["compiled", "pmbc"])
def test_a_graph_kept_for_higher_derivatives_still_gives_the_first(method):
    # create_graph=True made the compiled backward call .numpy() on tensors that then
    # carry gradients ("Can't call numpy() on Tensor that requires grad").
    gen = _generator(4)
    neuron = ResetRefractoryNeuron(3, method=method).double()
    x = torch.randn(2, 40, 3, generator=gen, dtype=torch.float64).requires_grad_()
    weight = torch.randn(2, 40, 3, generator=gen, dtype=torch.float64)
    (plain,) = torch.autograd.grad((neuron(x) * weight).sum(), x)
    (kept,) = torch.autograd.grad((neuron(x) * weight).sum(), x, create_graph=True)
    assert plain.abs().max() > 0
    torch.testing.assert_close(kept.detach(), plain, rtol=0, atol=0)


def test_compiled_method_refuses_other_dtypes():
    neuron = ResetRefractoryNeuron(3, method="compiled")
    with pytest.raises(UsageError, match="method='compiled' supports float32 and float64"):
        neuron(torch.zeros(1, 4, 3, dtype=torch.float16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["pmbc", "sequential", "compiled"])
def test_step_reproduces_forward(dtype, method):
    gen = _generator(2)
    neuron = ResetRefractoryNeuron(5, beta=[0.2, 0.5, 0.5, 0.8, 0.95], method=method)
    x = (torch.randn(2, 300, 5, generator=gen) * 1.5).to(dtype)
    with torch.no_grad():
        spikes = neuron(x)
        state = neuron.init_state(2, dtype=dtype)
        stepped = []
        for t in range(x.shape[1]):
            s_t, state = neuron.step(x[:, t], state)
            stepped.append(s_t)
    assert torch.equal(torch.stack(stepped, dim=1), spikes)
    beta, theta, rho = (p.detach() for p in neuron._params(dtype))
    assert torch.equal(spikes, sequential_spikes(x, beta, theta, rho))


def test_parameters_and_rate():
    neuron = ResetRefractoryNeuron(3, beta=0.25, theta_init=[1.0, 2.0, 0.5], rho_init=0.5)
    torch.testing.assert_close(neuron.theta, torch.tensor([1.0, 2.0, 0.5]))
    torch.testing.assert_close(neuron.rho, torch.full((3,), 0.5))
    assert torch.equal(neuron.beta, torch.full((3,), 0.25))
    assert "beta_fixed" in dict(neuron.named_buffers())
    trainable = ResetRefractoryNeuron(3, beta=0.25, trainable_beta=True)
    torch.testing.assert_close(trainable.beta, torch.full((3,), 0.25))
    assert bool((trainable.beta < 1).all())
    x = torch.ones(1, 10, 3) * 5
    neuron(x)
    assert 0.0 < neuron.last_spike_rate <= 1.0
    assert neuron.last_pmbc_stats.steps == 30


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be a positive int, got 0"),
        ({"channels": -2}, "channels must be a positive int, got -2"),
        ({"channels": 2.5}, "channels must be a positive int, got 2.5"),
        ({"channels": True}, "channels must be a positive int, got True"),
        ({"beta": 1.0}, r"beta must lie in \[0, 1\)"),
        ({"beta": -0.1}, r"beta must lie in \[0, 1\)"),
        ({"beta": [0.5, 0.5]}, r"beta must be a scalar or have shape \(4,\), got \(2,\)"),
        ({"beta": float("nan")}, "beta must be finite"),
        ({"beta": 0.0, "trainable_beta": True}, r"trainable beta must lie in \(0, 0.9997"),
        ({"beta": 0.99999, "trainable_beta": True}, r"trainable beta must lie in \(0, 0.9997"),
        ({"theta_init": 0.0}, "theta_init must be > 0"),
        ({"theta_init": -1.0}, "theta_init must be > 0"),
        ({"rho_init": -0.5}, "rho_init must be >= 0"),
        ({"rho_init": "x"}, "rho_init must be a number or a sequence of numbers"),
        ({"method": "fft"}, "method must be one of pmbc, sequential, compiled; got 'fft'"),
        ({"surrogate": "sigmoid"}, "surrogate must be one of triangle, fast_sigmoid"),
        ({"slope": 0.0}, "slope must be positive, got 0.0"),
        ({"max_passes": 0}, "max_passes must be a positive int, got 0"),
        ({"max_passes": 2.0}, "max_passes must be a positive int, got 2.0"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    args = {"channels": 4, **kwargs}
    with pytest.raises(UsageError, match=f"^ResetRefractoryNeuron {message}"):
        ResetRefractoryNeuron(**args)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 5, 3), r"expects x of shape \(B, L, 4\), got \(2, 5, 3\)"),
        (torch.zeros(5, 4), r"expects x of shape \(B, L, 4\), got \(5, 4\)"),
        (torch.zeros(2, 5, 4, dtype=torch.int32), "expects a floating-point x, got torch.int32"),
        (torch.zeros(2, 5, 4, dtype=torch.float16), "supports float32 and float64, got torch.f"),
    ],
)
def test_bad_forward_input(x, message):
    with pytest.raises(UsageError, match=message):
        ResetRefractoryNeuron(4)(x)


def test_bad_step_input():
    neuron = ResetRefractoryNeuron(4)
    state = neuron.init_state(2)
    with pytest.raises(UsageError, match=r"step expects x of shape \(B, 4\), got \(2, 3\)"):
        neuron.step(torch.zeros(2, 3), state)
    with pytest.raises(UsageError, match=r"state must be the 1-tuple \(v,\) from init_state"):
        neuron.step(torch.zeros(2, 4), (torch.zeros(3, 4),))
    with pytest.raises(UsageError, match="batch must be an int >= 0, got -1"):
        neuron.init_state(-1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pmbc_spikes(torch.zeros(1, 4, 2), 1.0, 1.0, 0.5), r"beta must lie in \[0, 1\)"),
        (lambda: pmbc_spikes(torch.zeros(1, 4, 2), 0.5, 0.0, 0.5), "theta must be positive"),
        (lambda: pmbc_spikes(torch.zeros(1, 4, 2), 0.5, 1.0, -0.5), "rho must be >= 0"),
        (
            lambda: pmbc_spikes(torch.zeros(1, 4, 2), [0.5, 0.5, 0.5], 1.0, 0.5),
            r"beta must be a scalar or shape \(2,\), got \(3,\)",
        ),
        (
            lambda: pmbc_spikes(torch.zeros(4, 2), 0.5, 1.0, 0.5),
            r"expected x of shape \(B, L, H\), got shape \(4, 2\)",
        ),
        (
            lambda: pmbc_spikes(torch.zeros(1, 4, 2, dtype=torch.float16), 0.5, 1.0, 0.5),
            "pmbc_spikes supports float32 and float64, got torch.float16",
        ),
        (
            lambda: pmbc_spikes(torch.full((1, 4, 2), float("nan")), 0.5, 1.0, 0.5),
            "input holds inf or NaN",
        ),
        (
            lambda: pmbc_spikes(torch.zeros(1, 4, 2), 0.5, 1.0, 0.5, max_passes=0),
            "max_passes must be an int >= 1, got 0",
        ),
        (
            lambda: sequential_spikes(torch.zeros(1, 4, 2), 0.5, 1.0, float("inf")),
            "rho must be >= 0 and finite",
        ),
        (  # c overflows
            lambda: pmbc_spikes(torch.zeros(1, 4, 2), 0.5, 3e38, 3e38),
            "theta \\+ rho overflows torch.float32",
        ),
        (
            lambda: sequential_spikes(torch.zeros(1, 4, 2), 0.5, 3e38, 3e38),
            "theta \\+ rho overflows torch.float32",
        ),
        (
            lambda: linear_filter(torch.zeros(1, 4, 2, dtype=torch.int64), 0.5),
            "expected a floating-point x, got torch.int64",
        ),
        (lambda: linear_filter(torch.zeros(1, 4, 2), 1.5), r"beta must lie in \[0, 1\)"),
        (
            lambda: filter_error_bound(10, torch.float16),
            "filter_error_bound supports float32 and float64, got torch.float16",
        ),
    ],
)
def test_bad_functional_arguments(call, message):
    with pytest.raises(UsageError, match=message):
        call()


@pytest.mark.parametrize("method", ["pmbc", "sequential", "compiled"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("grad", [False, True])
def test_every_method_refuses_a_non_finite_input(method, bad, beta, grad):
    """PMBC refused inf/NaN while the step loops gave spikes from it (silence after NaN,
    a spike at every step after +inf): the three methods now refuse alike."""
    neuron = ResetRefractoryNeuron(3, beta=beta, method=method)
    x = torch.randn(2, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[1, 4, 2] = bad
    x.requires_grad_(grad)
    with pytest.raises(UsageError, match=r"reset-refractory neuron's input holds inf or NaN"):
        neuron(x)


@pytest.mark.parametrize("method", ["pmbc", "sequential", "compiled"])
@pytest.mark.parametrize("beta", [0.5, 0.9])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("kick", ["up from step 7", "down in the last two steps"])
def test_every_method_refuses_a_membrane_past_the_float_range(method, beta, grad, kick):
    """Finite input whose float32 membrane overflows in one (row, channel) of three rows:
    PMBC gave a spike at every step from there on, as the reference's inf membrane does;
    below -inf its filter's bound declared the last steps silent, never replayed."""
    up = kick == "up from step 7"
    neuron = ResetRefractoryNeuron(2, beta=beta, method=method, theta_init=3e38 if up else 1.0)
    x = torch.zeros(3, 40, 2)
    if up:
        x[1, 7:, 1] = 3e38
    else:
        x[1, 38:, 1] = -3e38
    x.requires_grad_(grad)
    with pytest.raises(UsageError, match=rf"past the float range \({method}\)"):
        neuron(x)
