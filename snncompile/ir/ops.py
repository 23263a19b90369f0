"""Graph ops: what one node of the float IR computes at every time step.

Every op is a small frozen dataclass holding float64 numpy arrays; its docstring gives
its math. Signals are per-step vectors: the value a node produces at step t from the
values its inputs produce at step t (and from its own state). `Pool` is the one op that
reduces over time. Shapes use H for a node's own width and n_in for its input width.

`validate(input_sizes)` checks the op against the widths of its inputs and returns its
output width; it raises InvalidGraphError naming what is wrong (never `assert`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
from scipy import sparse

from snncompile.errors import SnnCompileError, invalid_model


class InvalidGraphError(SnnCompileError):
    """A Graph or Netlist breaks its own rules (wrong shape, dangling edge, bad value)."""


@contextmanager
def blame_model_values(source: object = None) -> Iterator[None]:
    """Building a graph from a model (tracing, passes, lowering): an InvalidGraphError
    raised inside is the model's values' fault (a dt so small the discretized pole rounds
    to 1, a neuron decay >= 1), not ours. errors.invalid_model names the file `source`
    they came from (exit 6), or, for None, says the in-memory model is invalid (exit 2)."""
    try:
        yield
    except InvalidGraphError as exc:
        raise invalid_model(str(exc), None if source is None else str(source)) from None


def _vector(name: str, value: np.ndarray, size: int) -> None:
    if value.shape != (size,):
        raise InvalidGraphError(f"{name} has shape {value.shape}, expected ({size},)")
    _finite(name, value)


def _finite(name: str, value: np.ndarray) -> None:
    if not np.all(np.isfinite(value)):
        raise InvalidGraphError(f"{name} holds NaN or inf")


def _arity(op: Op, sizes: tuple[int, ...], n: int) -> None:
    if len(sizes) != n:
        raise InvalidGraphError(f"{op.kind} takes {n} input(s), got {len(sizes)}")


@dataclass(frozen=True, eq=False)
class Op:
    """Base class. `kind` is the serialized name; arrays are the float64 fields."""

    kind: ClassVar[str] = ""

    def validate(self, sizes: tuple[int, ...]) -> int:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if _is_array(self, f.name)}

    def attributes(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not _is_array(self, f.name)}

    def references(self) -> dict[str, int]:
        """Nodes this op reads other than through its inputs, with the width it expects
        of each (a Feedback's later node; the Graph checks them)."""
        return {}

    def detail(self) -> str:
        """What a refusal names beside the op's kind where the kind alone does not say
        which part it is (an Activation's function, an Opaque's module); else ""."""
        return ""


def _is_array(op: Op, name: str) -> bool:
    value = getattr(op, name)
    return isinstance(value, np.ndarray) or sparse.issparse(value)


@dataclass(frozen=True, eq=False)
class Input(Op):
    """The network input: x_t (size,), given at every step."""

    kind: ClassVar[str] = "input"
    size: int

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 0)
        if self.size <= 0:
            raise InvalidGraphError(f"input size must be positive, got {self.size}")
        return self.size


@dataclass(frozen=True, eq=False)
class Linear(Op):
    """y_t = W x_t + b;  W (H, n_in), b (H,). Also nn.Conv1d with kernel size 1."""

    kind: ClassVar[str] = "linear"
    weight: np.ndarray
    bias: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        if self.weight.ndim != 2 or self.weight.shape[1] != sizes[0]:
            raise InvalidGraphError(
                f"linear weight has shape {self.weight.shape}, input width is {sizes[0]}"
            )
        _vector("linear bias", self.bias, self.weight.shape[0])
        _finite("linear weight", self.weight)
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """Eval-mode batch norm per channel: y = (x - mean) / sqrt(var + eps) * weight + bias."""

    kind: ClassVar[str] = "batchnorm"
    mean: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        for name in ("mean", "var", "weight", "bias"):
            _vector(f"batchnorm {name}", getattr(self, name), sizes[0])
        if np.any(self.var + self.eps <= 0):
            raise InvalidGraphError("batchnorm var + eps must be positive")
        return sizes[0]

    def as_affine(self) -> ChannelAffine:
        scale = self.weight / np.sqrt(self.var + self.eps)
        return ChannelAffine(scale=scale, shift=self.bias - self.mean * scale)


@dataclass(frozen=True, eq=False)
class ChannelAffine(Op):
    """y = scale * x + shift, per channel (a BatchNorm that could not be folded away)."""

    kind: ClassVar[str] = "affine"
    scale: np.ndarray
    shift: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        _vector("affine scale", self.scale, sizes[0])
        _vector("affine shift", self.shift, sizes[0])
        return sizes[0]


@dataclass(frozen=True, eq=False)
class Dropout(Op):
    """y = x at inference (dropped by the `drop_identity` pass)."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.0

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return sizes[0]


@dataclass(frozen=True, eq=False)
class Identity(Op):
    """y = x (dropped by the `drop_identity` pass)."""

    kind: ClassVar[str] = "identity"

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return sizes[0]


@dataclass(frozen=True, eq=False)
class S4D(Op):
    """Continuous-time diagonal SSM per channel h and mode n (M = N/2 modes), as trained.

        A = a_real + i a_imag (a_real < 0),   dt_h = exp(log_dt_h)
        ZOH:      A_bar = exp(dt A),               B_bar = (A_bar - 1) / A * B
        bilinear: A_bar = (1 + dt A/2)/(1 - dt A/2), B_bar = dt / (1 - dt A/2) * B
        x_t = A_bar x_{t-1} + B_bar u_t;   y_t = 2 Re(sum_n C_n x_{t,n}) + D u_t

    Arrays: log_dt (H,), a (H, M) complex, b (H, M) complex, c (H, M) complex, d (H,).
    The `discretize_ssm` pass turns it into `SSM`.
    """

    kind: ClassVar[str] = "s4d"
    log_dt: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    discretization: str

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        h = sizes[0]
        _vector("s4d log_dt", self.log_dt, h)
        _vector("s4d d", self.d, h)
        for name in ("a", "b", "c"):
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[0] != h or value.shape != self.a.shape:
                raise InvalidGraphError(f"s4d {name} has shape {value.shape}, expected ({h}, M)")
            _finite(f"s4d {name}", value)
        if self.discretization not in ("zoh", "bilinear"):
            raise InvalidGraphError(f"s4d discretization {self.discretization!r} is unknown")
        if np.any(self.a.real >= 0):
            raise InvalidGraphError("s4d A must have a negative real part (a stable system)")
        return h


@dataclass(frozen=True, eq=False)
class SSM(Op):
    """Discrete diagonal complex SSM per channel h and mode n:

        u_t = x_t + u_shift                      (u_shift: a folded BatchNorm shift, else 0)
        z_t = a_bar * z_{t-1} + b_bar * u_t      (complex, z_{-1} = 0)
        y_t = 2 Re(sum_n c_n z_{t,n}) + d u_t

    Arrays: a_bar, b_bar, c (H, M) complex; d, u_shift (H,) real. |a_bar| < 1.
    """

    kind: ClassVar[str] = "ssm"
    a_bar: np.ndarray
    b_bar: np.ndarray
    c: np.ndarray
    d: np.ndarray
    u_shift: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        h = sizes[0]
        for name in ("a_bar", "b_bar", "c"):
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[0] != h or value.shape != self.a_bar.shape:
                raise InvalidGraphError(f"ssm {name} has shape {value.shape}, expected ({h}, M)")
            _finite(f"ssm {name}", value)
        _vector("ssm d", self.d, h)
        _vector("ssm u_shift", self.u_shift, h)
        if np.any(np.abs(self.a_bar) >= 1.0):
            raise InvalidGraphError("ssm |a_bar| must be < 1 (a stable system)")
        return h

    @property
    def n_modes(self) -> int:
        return self.a_bar.shape[1]


@dataclass(frozen=True, eq=False)
class ResetRefractory(Op):
    """SPikE-SSM neuron, per channel (v_{-1} = 0):

        m_t = beta * v_{t-1} + x_t;   s_t = [m_t > theta];   v_t = m_t - (theta + rho) * s_t

    Arrays (H,): beta in [0, 1), theta > 0, rho >= 0. Output: spikes in {0, 1}.
    """

    kind: ClassVar[str] = "reset_refractory"
    beta: np.ndarray
    theta: np.ndarray
    rho: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        for name in ("beta", "theta", "rho"):
            _vector(f"reset_refractory {name}", getattr(self, name), sizes[0])
        if np.any((self.beta < 0) | (self.beta >= 1)):
            raise InvalidGraphError("reset_refractory beta must be in [0, 1)")
        if np.any(self.theta <= 0) or np.any(self.rho < 0):
            raise InvalidGraphError("reset_refractory needs theta > 0 and rho >= 0")
        return sizes[0]


@dataclass(frozen=True, eq=False)
class LIF(Op):
    """SpikingSSM LIF with hard reset, per channel (u_{-1} = 0):

        m_t = tau * u_{t-1} + x_t / threshold;   s_t = [m_t >= 1];   u_t = m_t * (1 - s_t)

    tau in [0, 1) shared; threshold (H,) > 0. Output: spikes in {0, 1}.
    """

    kind: ClassVar[str] = "lif"
    tau: float
    threshold: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        _vector("lif threshold", self.threshold, sizes[0])
        if not 0.0 <= self.tau < 1.0:
            raise InvalidGraphError(f"lif tau must be in [0, 1), got {self.tau}")
        if np.any(self.threshold <= 0):
            raise InvalidGraphError("lif threshold must be positive")
        return sizes[0]


@dataclass(frozen=True, eq=False)
class Heaviside(Op):
    """Binary S4D spike, stateless: s_t = [x_t > 0]."""

    kind: ClassVar[str] = "heaviside"

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return sizes[0]


GATES = ("sigmoid", "hard-sigmoid")


@dataclass(frozen=True, eq=False)
class GLU(Op):
    """Gated linear unit over a 2H input [a; b]: y = a * gate(b).

    gate = sigmoid(b) = 1 / (1 + exp(-b)), or hard-sigmoid(b) = clamp(b / 6 + 1/2, 0, 1).
    """

    kind: ClassVar[str] = "glu"
    gate: str = "sigmoid"

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        if sizes[0] % 2:
            raise InvalidGraphError(f"glu input width must be even, got {sizes[0]}")
        if self.gate not in GATES:
            raise InvalidGraphError(f"glu gate {self.gate!r} is unknown; known: {GATES}")
        return sizes[0] // 2


@dataclass(frozen=True, eq=False)
class Add(Op):
    """y = x_1 + x_2 + ... (residual connections); all inputs have the same width."""

    kind: ClassVar[str] = "add"

    def validate(self, sizes: tuple[int, ...]) -> int:
        if len(sizes) < 2 or len(set(sizes)) != 1:
            raise InvalidGraphError(f"add takes >= 2 inputs of one width, got widths {sizes}")
        return sizes[0]


@dataclass(frozen=True, eq=False)
class Activation(Op):
    """A float activation with no spiking compartment (e.g. GELU): y = f(x) elementwise."""

    kind: ClassVar[str] = "activation"
    function: str

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return sizes[0]

    def detail(self) -> str:
        return self.function


@dataclass(frozen=True, eq=False)
class Opaque(Op):
    """A module the IR keeps by name but cannot express (e.g. the GSU mixer)."""

    kind: ClassVar[str] = "opaque"
    module: str
    size: int = field(default=0)

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return self.size or sizes[0]

    def detail(self) -> str:
        return self.module


POOLS = ("mean", "last")


@dataclass(frozen=True, eq=False)
class Pool(Op):
    """Reduce over time at the end of the sequence: mean_t x_t, or x_{L-1} ("last")."""

    kind: ClassVar[str] = "pool"
    mode: str

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        if self.mode not in POOLS:
            raise InvalidGraphError(f"pool mode {self.mode!r} is unknown; known: {POOLS}")
        return sizes[0]


@dataclass(frozen=True, eq=False)
class Output(Op):
    """The network output: y = x (after pooling: one vector per sequence)."""

    kind: ClassVar[str] = "output"

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        return sizes[0]


OPS: dict[str, type[Op]] = {
    cls.kind: cls
    for cls in (
        Input,
        Linear,
        BatchNorm,
        ChannelAffine,
        Dropout,
        Identity,
        S4D,
        SSM,
        ResetRefractory,
        LIF,
        Heaviside,
        GLU,
        Add,
        Activation,
        Opaque,
        Pool,
        Output,
    )
}

# The NIR import's ops register themselves in OPS (imported last: the module needs this one).
from snncompile.ir import nir_ops as _nir_ops  # noqa: E402, F401
