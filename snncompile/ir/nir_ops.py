"""Graph ops for networks imported from NIR (snncompile.frontend.nir_import).

The importer discretizes every NIR node at the chosen dt and composes the NIR linear
nodes (Affine, Linear, Scale, Conv, pooling, Flatten, Delay) into one sparse affine map
per (neuron, source) pair, so an imported Graph is Input, SparseLinear and EulerNeuron
nodes (plus Heaviside for NIR Threshold, Add, Pool and Output), and a Feedback node for
each edge that closes a loop through several neurons. The ops are registered
in snncompile.ir.ops.OPS, so graphs holding them save and load like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import sparse

from snncompile.ir.ops import OPS, InvalidGraphError, Op, _arity, _finite, _vector

RESETS = ("zero", "subtract", "subtract-delayed", "none")


@dataclass(frozen=True, eq=False)
class SparseLinear(Op):
    """y_t = W x_t + b;  W (H, n_in) scipy CSR, b (H,).

    What an imported chain of NIR linear nodes (convolutions, pooling, Affine, ...) computes
    between a source and a neuron, composed into one matrix.
    """

    kind: ClassVar[str] = "sparse_linear"
    weight: sparse.csr_matrix
    bias: np.ndarray

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 1)
        if not sparse.issparse(self.weight) or self.weight.ndim != 2:
            raise InvalidGraphError("sparse_linear weight must be a 2-d scipy sparse matrix")
        if self.weight.shape[1] != sizes[0]:
            raise InvalidGraphError(
                f"sparse_linear weight has shape {self.weight.shape}, input width is {sizes[0]}"
            )
        _vector("sparse_linear bias", self.bias, self.weight.shape[0])
        _finite("sparse_linear weight", self.weight.data)
        _finite("sparse_linear bias", self.bias)
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class EulerNeuron(Op):
    """A NIR neuron (I, LI, CubaLI, IF, LIF, CubaLIF) after forward-Euler discretization.

    Per element, with inputs x_1..x_n (each H wide; input i read `lags[i]` steps late),
    own output y of the previous step, u_{-1} = v_{-1} = y_{-1} = 0:

        u_t = alpha_u u_{t-1} + sum_i x_i(t - lags_i) + R y(t - rec_lag)
        v_t = alpha_v v_{t-1} + u_t + v_bias
        reset "zero":      s_t = [v_t > theta];  v_t <- 0 where s_t;          y = s
        reset "subtract":  s_t = [v_t > theta];  v_t <- v_t - theta where s_t; y = s
        reset "subtract-delayed" (snnTorch's): v_t gets - theta s_{t-1} added, after
                           the decay; s_t = [v_t > theta]; y = s
        reset "none":      y = v_t (a graded, non-spiking neuron: I, LI, CubaLI)

    The current u is updated first and the voltage uses the new current (the order of
    snnTorch and of Lava's LIF). alpha_u, alpha_v, theta, v_bias: (H,); R = rec_weight
    (H, H) CSR, all zero when the neuron has no recurrent loop. The importer folds every
    input gain (R dt / tau, w_in dt / tau_syn) into the SparseLinear feeding x_i and R.
    """

    kind: ClassVar[str] = "euler_neuron"
    alpha_u: np.ndarray
    alpha_v: np.ndarray
    theta: np.ndarray
    v_bias: np.ndarray
    lags: np.ndarray
    rec_weight: sparse.csr_matrix
    rec_lag: int = 1
    reset: str = "zero"

    def validate(self, sizes: tuple[int, ...]) -> int:
        if not sizes or len(set(sizes)) != 1:
            raise InvalidGraphError(f"euler_neuron takes >= 1 inputs of one width, got {sizes}")
        h = sizes[0]
        for name in ("alpha_u", "alpha_v", "theta", "v_bias"):
            _vector(f"euler_neuron {name}", getattr(self, name), h)
            _finite(f"euler_neuron {name}", getattr(self, name))
        if self.lags.shape != (len(sizes),) or np.any(self.lags < 0):
            raise InvalidGraphError("euler_neuron lags must hold one lag >= 0 per input")
        if not sparse.issparse(self.rec_weight) or self.rec_weight.shape != (h, h):
            raise InvalidGraphError(f"euler_neuron rec_weight must be a ({h}, {h}) sparse matrix")
        if self.rec_lag < 1:
            raise InvalidGraphError(f"euler_neuron rec_lag must be >= 1, got {self.rec_lag}")
        if self.reset not in RESETS:
            raise InvalidGraphError(f"euler_neuron reset {self.reset!r} is unknown; {RESETS}")
        if self.reset != "none" and np.any(self.theta <= 0):
            raise InvalidGraphError("euler_neuron theta must be positive")
        return h


@dataclass(frozen=True, eq=False)
class Feedback(Op):
    """y_t = y_source(t - lag): the output of a later node `source` (width `size`), `lag`
    >= 1 steps late; y_t = 0 for t < lag.

    The edge that closes a recurrent loop through several neurons (A -> B -> A): the
    Graph stays a topologically ordered DAG because this node has no inputs and names
    its source instead (checked by the Graph through `references`).
    """

    kind: ClassVar[str] = "feedback"
    source: str
    size: int
    lag: int = 1

    def validate(self, sizes: tuple[int, ...]) -> int:
        _arity(self, sizes, 0)
        if self.size <= 0:
            raise InvalidGraphError(f"feedback size must be positive, got {self.size}")
        if self.lag < 1:
            raise InvalidGraphError(f"feedback lag must be >= 1, got {self.lag}")
        return self.size

    def references(self) -> dict[str, int]:
        return {self.source: self.size}


OPS.update({cls.kind: cls for cls in (SparseLinear, EulerNeuron, Feedback)})
