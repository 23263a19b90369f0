"""A float64 simulator of a NIR graph itself, at a chosen dt: the oracle of the NIR import.

    out = simulate_nir("net.nir", x, dt=1e-4, reset="zero")   # node name -> (B, L, size)

It runs the NIR nodes one by one, from their own equations under forward Euler (the
formulas of snncompile.frontend.nir_import's docstring), and shares nothing with the
import but the file reading and subgraph flattening: convolutions and pooling are
torch.nn.functional calls on (B, C, H, W) tensors, neurons integrate their ODEs as
written (v += dt / tau (v_leak - v + R I)), and no gain is folded or threshold divided.

Time: at every step the nodes run in the order of the graph without its back edges; an
edge that closes a cycle (found by the same depth-first search from the Input) delivers
its source's output of the previous step. Before step 0 every node holds its value at
rest (zero input, neurons at zero): a recurrent Affine's bias, or what a Delay's input
holds at rest, is there from step 0.

Ties: `simulate_nir_ties` also says, per spiking node and step, whether the value a
neuron compared with its threshold (v before the reset, a Threshold's input) lay within
a relative tolerance of that threshold. There the spike decision rests on float64
rounding: a computation equal in exact arithmetic but rounded in another order (the
compiled network folds 1 / threshold into the weights) may decide the other way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from snncompile.errors import UsageError
from snncompile.frontend.nir_graph import FlatNir, forward_order, load_flat
from snncompile.frontend.nir_import import NEURONS, RESET_MODES, resolve_dt
from snncompile.reference.simulator import check_run_input


def _a(node: Any, name: str, default: float | None = None) -> np.ndarray:
    value = getattr(node, name, None)
    return np.asarray(default if value is None else value, dtype=np.float64)


def _param(node: Any, name: str, shape: tuple[int, ...], default: float | None = None):
    """An elementwise parameter on an input of `shape`: its values in row-major order
    when it has one per element (parameters declared flat, (n,), take a (C, H, W) input
    as the import does), else broadcast (one value for all)."""
    value = _a(node, name, default)
    if value.size == int(np.prod(shape)):
        return value.reshape(shape)
    if value.size == 1:  # one value in any layout, (1, 1) too, as the import takes it
        return np.broadcast_to(value.reshape(()), shape)
    return np.broadcast_to(value, shape)


class _Node:
    """One NIR node's state and step; inputs and outputs are (B, *shape) float64."""

    def __init__(self, name: str, node: Any, flat: FlatNir, dt: float, reset: str) -> None:
        self.name, self.node, self.dt, self.reset = name, node, dt, reset
        self.kind = "Relay" if name in flat.relays else type(node).__name__
        self.state: dict[str, np.ndarray] = {}
        self.buffer: list[np.ndarray] = []
        # Relative distance to the threshold under which a spike decision is a tie
        # (simulate_nir_ties); None: not recorded.
        self.tie_tolerance: float | None = None
        self.tie: np.ndarray | None = None  # the last step's ties, as its output

    def step(self, x: np.ndarray) -> np.ndarray:
        n, k = self.node, self.kind
        if k in ("Relay", "Output"):
            return x
        if k == "Affine":
            return x.reshape(x.shape[0], -1) @ _a(n, "weight").T + _a(n, "bias")
        if k == "Linear":
            return x.reshape(x.shape[0], -1) @ _a(n, "weight").T
        if k == "Scale":
            return x * _param(n, "scale", x.shape[1:])
        if k == "Flatten":
            return x.reshape(x.shape[0], *_flattened(x.shape[1:], n.start_dim, n.end_dim))
        if k in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
            return self._torch(x)
        if k == "Delay":
            return self._delay(x)
        if k == "Threshold":
            threshold = _param(n, "threshold", x.shape[1:])
            self._record_tie(x, threshold)
            return (x > threshold).astype(np.float64)
        return self._neuron(x)

    def _torch(self, x: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        n, k = self.node, self.kind
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        if k in ("SumPool2d", "AvgPool2d"):
            kernel = tuple(int(v) for v in np.atleast_1d(n.kernel_size))
            kernel = kernel * 2 if len(kernel) == 1 else kernel
            stride = tuple(int(v) for v in np.broadcast_to(np.atleast_1d(n.stride), (2,)))
            pad = tuple(int(v) for v in np.broadcast_to(np.atleast_1d(n.padding), (2,)))
            # Padded zeros count (torch's count_include_pad); padded here, as avg_pool2d's
            # own padding takes at most half the kernel.
            t = F.pad(t, (pad[1], pad[1], pad[0], pad[0]))
            out = F.avg_pool2d(t, kernel, stride)
            if k == "SumPool2d":
                out = out * (kernel[0] * kernel[1])
            return out.numpy()
        weight = torch.from_numpy(_a(n, "weight"))
        bias = torch.from_numpy(np.broadcast_to(_a(n, "bias"), (weight.shape[0],)).copy())
        conv = F.conv1d if k == "Conv1d" else F.conv2d

        def arg(v: Any) -> Any:
            if isinstance(v, str):
                return v
            v = [int(i) for i in np.atleast_1d(v)]
            return v[0] if k == "Conv1d" else tuple(v * 2 if len(v) == 1 else v)

        return conv(
            t, weight, bias, arg(n.stride), arg(n.padding), arg(n.dilation), int(n.groups)
        ).numpy()

    def _delay(self, x: np.ndarray) -> np.ndarray:
        steps = np.rint(_a(self.node, "delay") / self.dt).astype(int)
        steps = np.broadcast_to(steps.reshape(-1), (x[0].size,))
        if not self.buffer:  # at rest before step 0: the buffer holds the rest value
            self.buffer = [self.rest.copy() for _ in range(int(steps.max(initial=0)) + 1)]
        self.buffer = [x.reshape(x.shape[0], -1), *self.buffer[:-1]]
        flat = np.stack(self.buffer)  # (depth, B, n): index d = d steps ago
        out = flat[steps, :, np.arange(steps.size)].T
        return out.reshape(x.shape)

    def _neuron(self, x: np.ndarray) -> np.ndarray:
        n, dt, k = self.node, self.dt, self.kind
        v = self.state.setdefault("v", np.zeros_like(x))
        r = _param(n, "r", x.shape[1:], 1.0)
        if k in ("I", "IF"):
            v = v + dt * r * x
        elif k in ("LI", "LIF"):
            tau = _param(n, "tau", x.shape[1:])
            v_leak = _param(n, "v_leak", x.shape[1:], 0.0)
            v = v + dt / tau * (v_leak - v + r * x)
        else:  # CubaLI, CubaLIF: the current first, then v from the new current
            current = self.state.setdefault("i", np.zeros_like(x))
            tau_syn = _param(n, "tau_syn", x.shape[1:])
            tau_mem = _param(n, "tau_mem", x.shape[1:])
            w_in = _param(n, "w_in", x.shape[1:], 1.0)
            v_leak = _param(n, "v_leak", x.shape[1:], 0.0)
            current = current + dt / tau_syn * (-current + w_in * x)
            self.state["i"] = current
            v = v + dt / tau_mem * (v_leak - v + r * current)
        if k in ("I", "LI", "CubaLI"):
            self.state["v"] = v
            return v
        theta = _param(n, "v_threshold", x.shape[1:])
        if self.reset == "subtract-delayed":  # snnTorch: the last step's spike, undecayed
            v = v - theta * self.state.get("s", 0.0)
        self._record_tie(v, theta)
        spikes = v > theta
        if self.reset == "zero":
            v = np.where(spikes, _param(n, "v_reset", x.shape[1:], 0.0), v)
        elif self.reset == "subtract":
            v = np.where(spikes, v - theta, v)
        self.state["v"] = v
        self.state["s"] = spikes.astype(np.float64)
        return self.state["s"]

    def _record_tie(self, value: np.ndarray, threshold: np.ndarray) -> None:
        if self.tie_tolerance is not None:
            self.tie = np.abs(value - threshold) <= self.tie_tolerance * np.abs(threshold)


def _flattened(shape: tuple[int, ...], start: Any, end: Any) -> tuple[int, ...]:
    """NIR's Flatten of `shape` (dims counted without the batch, negatives from the end):
    dims start..end become one; out-of-range dims are clipped to the tensor's. (Written
    apart from nir_import's on purpose: this oracle follows NIR's definitions on its
    own, so that a mistake in the import shows as a difference.)"""
    nd = len(shape)
    first, last = (min(max(int(d) + nd if int(d) < 0 else int(d), 0), nd - 1) for d in (start, end))
    return (*shape[:first], int(np.prod(shape[first : last + 1])), *shape[last + 1 :])


def _shape_of(node: Any) -> tuple[int, ...]:
    field = {"I": "r", "IF": "v_threshold", "Threshold": "threshold"}.get(type(node).__name__, "r")
    return tuple(np.shape(getattr(node, field))) or (1,)


def simulate_nir(
    source: str | os.PathLike[str] | Any,
    x: np.ndarray,
    *,
    dt: float | None = None,
    reset: str = "zero",
    record: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Run the NIR graph on x (B, L, n_in) (flattened row-major input); every node's
    output per step, flattened: name -> (B, L, size); only the nodes named in `record`
    (those of the graph) when it is given."""
    return _simulate(source, x, dt, reset, record, None)[0]


def simulate_nir_ties(
    source: str | os.PathLike[str] | Any,
    x: np.ndarray,
    *,
    tolerance: float,
    dt: float | None = None,
    reset: str = "zero",
    record: Iterable[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """simulate_nir's traces, and for each recorded spiking node (IF, LIF, CubaLIF,
    Threshold) a bool (B, L, size): the value compared with the threshold at that step
    was within `tolerance` * |threshold| of it (a tie, see the module docstring)."""
    return _simulate(source, x, dt, reset, record, tolerance)


def _simulate(
    source: str | os.PathLike[str] | Any,
    x: np.ndarray,
    dt: float | None,
    reset: str,
    record: Iterable[str] | None,
    tolerance: float | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    if reset not in RESET_MODES:
        raise UsageError(f"reset must be one of {RESET_MODES}, got {reset!r}")
    flat = load_flat(source)
    dt = resolve_dt(dt, flat.metadata, "the NIR graph")
    in_shape = tuple(int(n) for n in np.atleast_1d(flat.nodes[flat.input].input_type["input"]))
    x = check_run_input(x, int(np.prod(in_shape)))
    batch, length = x.shape[:2]
    order, back = forward_order(flat)
    nodes = {name: _Node(name, flat.nodes[name], flat, dt, reset) for name in order}
    for node in nodes.values():
        node.tie_tolerance = tolerance
    preds = {name: flat.preds(name) for name in order}

    def run_step(frame: np.ndarray, previous: dict[str, np.ndarray], rest: bool) -> dict:
        out: dict[str, np.ndarray] = {}
        for name in order:
            node = nodes[name]
            if name == flat.input:
                out[name] = frame.reshape(batch, *in_shape)
                continue
            if rest and node.kind in (*NEURONS, "Threshold"):
                out[name] = np.zeros((batch, *_shape_of(node.node)))
                continue
            total = None
            for p in preds[name]:
                if (p, name) in back and p not in previous:
                    continue  # rest pass: a back edge whose source has no rest value yet
                value = previous[p] if (p, name) in back else out[p]
                total = value if total is None else total + value.reshape(total.shape)
            if total is None:
                raise UsageError(f"node {name!r} is fed only by a cycle with no rest value")
            if rest:
                node.rest = total.reshape(batch, -1)  # what a Delay holds before step 0
                out[name] = total if node.kind == "Delay" else node.step(total)
            else:
                out[name] = node.step(total)
        return out

    # The rest pass: zero input, neurons silent, back edges zero; it gives each node's
    # value at rest, which back edges deliver at step 0.
    previous = run_step(np.zeros((batch, x.shape[2])), {}, rest=True)
    wanted = set(order if record is None else record)
    kept = [name for name in order if name in wanted]
    traces: dict[str, np.ndarray] = {}
    ties: dict[str, np.ndarray] = {}
    for t in range(length):
        previous = run_step(x[:, t], previous, rest=False)
        for name in kept:
            value = previous[name].reshape(batch, -1)
            tie = nodes[name].tie
            if t == 0:  # sizes are known once a step ran: one array per node, written into
                traces[name] = np.empty((batch, length, value.shape[1]))
                if tie is not None:
                    ties[name] = np.empty((batch, length, value.shape[1]), dtype=bool)
            traces[name][:, t] = value
            if tie is not None:
                ties[name][:, t] = tie.reshape(batch, -1)
    kept_traces = {name: traces.get(name, np.zeros((batch, 0, 0))) for name in kept}
    return kept_traces, ties
