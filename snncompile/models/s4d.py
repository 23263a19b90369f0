"""S4D: the diagonal complex state-space layer (Gu et al. 2022), one SSM per channel.

Per channel h and mode n (N/2 complex modes for state size N):

    A_n = -exp(log_A_real_n) + i * A_imag_n          (continuous time, Re A < 0)
    dt  = exp(log_dt_h)                              (log-uniform in [dt_min, dt_max])
    ZOH:       A_bar = exp(dt A),  B_bar = (A_bar - 1) / A * B
    bilinear:  A_bar = (1 + dt A / 2) / (1 - dt A / 2),  B_bar = dt / (1 - dt A / 2) * B

    x_t = A_bar * x_{t-1} + B_bar * u_t              (complex state, x_{-1} = 0)
    y_t = 2 Re(sum_n C_n x_{t,n}) + D * u_t          (the conjugate modes give the factor 2)

Convolution mode (training) computes y = K * u + D u with the kernel
K_k = 2 Re(sum_n C_n B_bar_n A_bar_n^k) by FFT; step mode (deployment) runs the
recurrence with an explicit state. A bidirectional layer adds an anti-causal kernel
with its own C and cannot run step by step (it needs the future).

Inits: S4D-Lin A_n = -1/2 + i pi n; S4D-Inv A_n = -1/2 + i (N/pi) (N/(2n+1) - 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snncompile.errors import UnsupportedError, UsageError
from snncompile.models.checks import check_features, finite_number, positive_int

INITS = ("lin", "inv")
DISCRETIZATIONS = ("zoh", "bilinear")

# The kernel's powers A_bar^k are built this many bytes at a time (complex128, H x N/2 x
# steps): all at once they were 32 KB per step for H=64, N=64, and twice that at the peak,
# the most of a long sequence's memory in a forward without gradients (1.1 GB at 16,384
# steps against 0.17 GB in parts; training keeps autograd's saved tensors either way).
# Each kernel value is the same sum over modes in parts or not: the results are equal.
KERNEL_PART_BYTES = 16 << 20

# Parameter names the trainer puts in the low-lr, no-weight-decay group (SSM dynamics).
SSM_PARAMETER_NAMES = ("log_dt", "log_A_real", "A_imag", "B")


class S4D(nn.Module):
    """Diagonal complex SSM over (B, L, H) sequences; see the module docstring for the math."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        *,
        init: str = "lin",
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        trainable_B: bool = True,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        d_model = positive_int("S4D", "d_model", d_model)
        d_state = positive_int("S4D", "d_state", d_state)
        if d_state < 2 or d_state % 2:
            raise UsageError(f"S4D d_state must be an even number >= 2, got {d_state}")
        if init not in INITS:
            raise UsageError(f"S4D init must be one of {INITS}, got {init!r}")
        if discretization not in DISCRETIZATIONS:
            raise UsageError(
                f"S4D discretization must be one of {DISCRETIZATIONS}, got {discretization!r}"
            )
        dt_min = finite_number("S4D", "dt_min", dt_min)
        dt_max = finite_number("S4D", "dt_max", dt_max)
        if not 0 < dt_min <= dt_max:
            raise UsageError(f"S4D needs 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.d_model = d_model
        self.d_state = d_state
        self.n_modes = d_state // 2
        self.init = init
        self.discretization = discretization
        self.bidirectional = bidirectional

        h, n = d_model, self.n_modes
        n_dirs = 2 if bidirectional else 1
        # A skeleton on the meta device (checkpoint._check_shapes) needs shapes only, and
        # arithmetic there runs PyTorch's Python reference kernels, whose first call
        # imports torch._dynamo: 1-1.5 s of every command that loaded a checkpoint.
        # (torch.empty's device is the default one; torch.get_default_device needs 2.3.)
        if torch.empty(()).device.type == "meta":
            log_dt, a_imag = torch.empty(h), torch.empty(h, n, dtype=torch.float32)
            c = torch.empty(n_dirs, h, n, 2)
            d = torch.empty(h)  # randn here imported sympy (torch's reference kernel)
        else:
            log_dt = torch.rand(h) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            modes = torch.arange(n, dtype=torch.float32)
            if init == "lin":
                a_imag = math.pi * modes
            else:
                a_imag = (d_state / math.pi) * (d_state / (2 * modes + 1) - 1)
            a_imag = a_imag.repeat(h, 1)
            # Complex normal with unit variance (each part has variance 1/2).
            c = torch.randn(n_dirs, h, n, 2) * math.sqrt(0.5)
            d = torch.randn(h)  # drawn after c, as before: the same initial weights
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((h, n), math.log(0.5)))
        self.A_imag = nn.Parameter(a_imag)
        b = torch.view_as_real(torch.ones(h, n, dtype=torch.complex64))
        if trainable_B:
            self.B = nn.Parameter(b.clone())
        else:
            self.register_buffer("B", b.clone())
        self.C = nn.Parameter(c)
        self.D = nn.Parameter(d)

    @property
    def streamable(self) -> bool:
        """Whether the layer can run step by step (causal)."""
        return not self.bidirectional

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (A_bar, B_bar, C) as complex tensors of shape (H, N/2) (C: (dirs, H, N/2))."""
        dt = torch.exp(self.log_dt).unsqueeze(-1)
        a = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        b = torch.view_as_complex(self.B.contiguous())
        dta = dt * a
        if self.discretization == "zoh":
            a_bar = torch.exp(dta)
            b_bar = (a_bar - 1) / a * b
        else:
            denom = 1 - dta / 2
            a_bar = (1 + dta / 2) / denom
            b_bar = dt / denom * b
        c = torch.view_as_complex(self.C.contiguous())
        return a_bar, b_bar, c

    def kernel(self, length: int) -> torch.Tensor:
        """Convolution kernels K of shape (dirs, H, length)."""
        a_bar, b_bar, c = self.discretize()
        out_dtype = self.D.dtype
        # A_bar^k through exp(k log A_bar), one vectorized Vandermonde product. It runs in
        # float64 even for a float32 model: in float32 the phase error of k*log(A_bar)
        # grows with k and alone breaks 1e-5 agreement with step mode at L ~ 500.
        # A mode whose A_bar underflowed to 0 (dt |A| past ~103) would have log -inf, and
        # exp(-inf * 0) is NaN where its power is 1: a finite stand-in gives 1, 0, 0, ...
        # as step mode computes. log(1) in its place keeps the backward free of 0 / 0;
        # every other mode is computed as before.
        a_bar128 = a_bar.to(torch.complex128)
        underflowed = a_bar128 == 0
        log_a = torch.log(torch.where(underflowed, torch.ones_like(a_bar128), a_bar128))
        log_a = torch.where(underflowed, torch.full_like(log_a, -1e300), log_a)
        weights = (c * b_bar).to(torch.complex128)  # (dirs, H, N/2)
        steps = max(1, KERNEL_PART_BYTES // (16 * log_a.numel()))
        parts = []
        for first in range(0, length, steps):
            k = torch.arange(
                first, min(length, first + steps), device=a_bar.device, dtype=torch.float64
            )
            powers = torch.exp(log_a.unsqueeze(-1) * k)  # (H, N/2, steps)
            parts.append(2 * torch.einsum("dhn,hnl->dhl", weights, powers).real)
        return torch.cat(parts, dim=-1).to(out_dtype)

    # Set by `use_recurrence` (verification): forward runs the recurrence, not the FFT.
    exact_recurrence = False

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Convolution mode: u (B, L, H) -> y (B, L, H) (the recurrence under
        `use_recurrence`)."""
        check_features("S4D", u, self.d_model)
        if self.exact_recurrence and self.streamable:
            return self._recurrence(u)
        length = u.shape[1]
        kernels = self.kernel(length)
        u_t = u.transpose(1, 2)  # (B, H, L)
        n_fft = 2 * length
        u_f = torch.fft.rfft(u_t, n=n_fft)
        y = torch.fft.irfft(u_f * torch.fft.rfft(kernels[0], n=n_fft), n=n_fft)[..., :length]
        y = _zero_before_input(y, u_t)
        if self.bidirectional:
            u_rev = u_t.flip(-1)
            u_rev_f = torch.fft.rfft(u_rev, n=n_fft)
            y_rev = torch.fft.irfft(u_rev_f * torch.fft.rfft(kernels[1], n=n_fft), n=n_fft)
            y = y + _zero_before_input(y_rev[..., :length], u_rev).flip(-1)
        y = y + self.D.unsqueeze(-1) * u_t
        return y.transpose(1, 2)

    def _recurrence(self, u: torch.Tensor) -> torch.Tensor:
        """Step mode's operations over the whole sequence u (B, L, H) -> y (B, L, H)."""
        coefficients = self.discretize()
        state = self.init_state(u.shape[0], dtype=u.dtype, device=u.device)
        out = []
        for u_t in u.unbind(1):
            y_t, state = self._advance(coefficients, u_t, state)
            out.append(y_t)
        return torch.stack(out, dim=1).to(u.dtype)

    def _advance(
        self, coefficients: tuple[torch.Tensor, ...], u_t: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence from `discretize()`'s (A_bar, B_bar, C)."""
        a_bar, b_bar, c = coefficients
        state = a_bar * state + b_bar * u_t.unsqueeze(-1)
        return 2 * (c[0] * state).sum(-1).real + self.D * u_t, state

    def init_state(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> torch.Tensor:
        """Zero complex state (B, H, N/2)."""
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.n_modes, dtype=complex_dtype, device=device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step mode: u_t (B, H), state (B, H, N/2) -> (y_t (B, H), new state)."""
        if self.bidirectional:
            raise UnsupportedError(
                "a bidirectional S4D layer is non-causal (it reads future inputs) "
                "and cannot run step by step"
            )
        check_features("S4D.step", u_t, self.d_model, dims=(2,))
        return self._advance(self.discretize(), u_t, state)


def _zero_before_input(y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The causal convolution y (B, H, L) of u, exactly 0 up to u's first nonzero step.

    There the exact result, and step mode's state, are 0, but the FFT leaves rounding
    noise of either sign (~1e-17 in float64), which a Heaviside [y > 0] turns into
    spikes the deployed network never makes: a channel whose input starts with zeros
    (a bias rounded to 0, an image's blank first pixels) spiked at random. The values
    become y - y (exact zeros) so the gradient still flows as through y: dy_t/du_s is
    the kernel whatever u's values are.
    """
    nonzero = u != 0
    first = torch.where(
        nonzero.any(dim=-1), nonzero.to(torch.uint8).argmax(dim=-1), u.shape[-1]
    )  # argmax gives the first of equal maxima
    before = torch.arange(u.shape[-1], device=u.device) < first.unsqueeze(-1)
    return torch.where(before, y - y.detach(), y)


def use_recurrence(model: nn.Module) -> nn.Module:
    """Make every causal S4D layer of `model` (a copy: this changes it) compute forward
    by its recurrence, the operations of step mode and of the deployed network, instead
    of the FFT. The FFT's rounding noise, about 1e-16 of the sequence's largest value,
    decides a Heaviside's spikes where the exact output is smaller: after an input ends
    in a run of zeros the output decays below it, and a binary-s4d spiked on noise (rung
    1 failed, lowering error 0.02 after 1,500 zero steps; helper-85). Slower (a Python
    loop over the steps): for verification and export's checks, not training."""
    for module in model.modules():
        if isinstance(module, S4D):
            module.exact_recurrence = True
    return model
