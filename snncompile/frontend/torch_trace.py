"""Trace a PyTorch sequence model into the float IR (snncompile.ir.graph.Graph).

The model maps u (B, L, d_input) to logits (B, d_output). torch.fx records its forward
with our layers as leaves (S4D, the spiking neurons, the mixers, SequenceBatchNorm) and
the standard torch.nn leaves; each recorded call becomes zero, one or two IR nodes.

Every traced value carries a layout: channels-last (B, L, H), channels-first (B, H, L)
or pooled (B, H). Transposes and permutes only change the layout and emit no node; a
layer is accepted only on the layout whose channel axis it really acts on (a Linear on
a channels-first value would mix time steps, which no per-step op can express).

Everything the IR cannot express is collected over the whole forward, and one
UnsupportedError lists every offender by qualified name, with what is supported.
"""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from snncompile.errors import (
    USER_CODE_ERRORS,
    SignalExit,
    UnsupportedError,
    UsageError,
    user_code_failure,
)
from snncompile.ir import ops
from snncompile.ir.graph import Graph, Node
from snncompile.ir.ops import blame_model_values
from snncompile.models.mixing import GLUMixer, GSUMixer
from snncompile.models.neurons.base import SpikingNeuron
from snncompile.models.neurons.heaviside import HeavisideNeuron
from snncompile.models.neurons.lif import LIFNeuron
from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron
from snncompile.models.norm import SequenceBatchNorm
from snncompile.models.s4d import S4D

CHANNELS_LAST = "channels-last (B, L, H)"
CHANNELS_FIRST = "channels-first (B, H, L)"
POOLED = "pooled (B, H)"

SUPPORTED = (
    "modules: S4D (causal), ResetRefractoryNeuron, LIFNeuron, HeavisideNeuron, GLUMixer, "
    "GSUMixer (kept opaque), SequenceBatchNorm, nn.Linear, nn.Conv1d (kernel 1, stride 1, "
    "no padding, groups 1, on channels-first values), nn.BatchNorm1d (running stats, on "
    "channels-first values), nn.Dropout, nn.Identity, nn.GLU, nn.GELU; functions: + / "
    "torch.add / Tensor.add of traced tensors, transpose(1, 2), permute(0, 2, 1), "
    "contiguous(), mean over the time axis, x[:, -1] (last step)"
)

# Leaves: traced as one call. Spiking neurons of any class are leaves so an unknown
# neuron is reported as one module instead of as the many functions inside it.
_LEAF_TYPES: tuple[type[nn.Module], ...] = (
    S4D,
    SpikingNeuron,
    GLUMixer,
    GSUMixer,
    SequenceBatchNorm,
)


class _Refused(Exception):
    """Raised inside a handler: this call cannot be expressed; the reason is the message."""


class _Tracer(fx.Tracer):
    """fx tracer with our leaves; a module whose forward cannot be traced becomes a leaf
    (so it is reported by name instead of aborting the whole trace)."""

    def __init__(self) -> None:
        super().__init__()
        self.untraceable: dict[str, str] = {}
        self._forced_leaves: set[int] = set()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self._forced_leaves or isinstance(m, _LEAF_TYPES):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(
        self,
        m: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        name = self.path_of_module(m)
        if self.is_leaf_module(m, name):
            return super().call_module(m, forward, args, kwargs)
        depth = len(self.module_stack)
        try:
            return super().call_module(m, forward, args, kwargs)
        except SignalExit:
            raise
        except USER_CODE_ERRORS as exc:  # user code may fail in any way under a Proxy
            # fx pushes onto module_stack without try/finally: undo what the failure left.
            while len(self.module_stack) > depth:
                self.module_stack.popitem(last=True)
            self.untraceable.setdefault(name, user_code_failure(exc))
            self._forced_leaves.add(id(m))
            return super().call_module(m, forward, args, kwargs)


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of `model`, to compile without touching it. A model holding what
    cannot be copied (a lock, an open file, a generator) is an unsupported model (exit
    4): its TypeError was an internal error (exit 1)."""
    try:
        return copy.deepcopy(model)
    except SignalExit:
        raise
    except USER_CODE_ERRORS as exc:
        raise UnsupportedError(
            f"cannot copy {type(model).__name__} to compile it ({user_code_failure(exc)}); a model "
            "to compile may not hold locks, open files or other objects deepcopy refuses"
        ) from None


@dataclass(frozen=True)
class _Value:
    """A traced tensor: the IR node that produces it (a layout change emits no node, so
    several values can share one) and its layout."""

    node: str
    layout: str


_ADD_FUNCTIONS = (operator.add, torch.add)
_TRANSPOSE_FUNCTIONS = (torch.transpose,)
_PERMUTE_FUNCTIONS = (torch.permute,)
_MEAN_FUNCTIONS = (torch.mean,)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def _np_complex(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.complex128).numpy().copy()


def _time_axis(layout: str | None) -> int | None:
    return {CHANNELS_LAST: 1, CHANNELS_FIRST: 2}.get(layout or "")


def _swap(layout: str) -> str:
    return CHANNELS_FIRST if layout == CHANNELS_LAST else CHANNELS_LAST


def _target_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        fn = node.target
        name = getattr(fn, "__name__", "")
        # The names a user writes, not where torch happens to define the function.
        for public, namespace in (("torch", torch), ("torch.nn.functional", nn.functional)):
            if name and getattr(namespace, name, None) is fn:
                return f"{public}.{name}"
        module = getattr(fn, "__module__", None) or ""
        qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
        if module in ("_operator", "operator"):
            module = "operator"
        return f"{module}.{qual}" if module else qual
    return str(node.target)


def _scope(node: fx.Node) -> str:
    """Qualified name of the innermost module whose forward made this call ('' = root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    qualname, _ = list(stack.values())[-1]
    return str(qualname)


class _Translator:
    """Walks the live fx nodes in order and builds IR nodes; collects every offender."""

    def __init__(self, root: nn.Module, gm: fx.Graph, tracer: _Tracer, input_size: int) -> None:
        self.root = root
        self.fx_graph = gm
        self.tracer = tracer
        self.input_size = input_size
        self.nodes: dict[str, Node] = {}
        # None: the value of a refused call (already reported; its consumers are skipped)
        self.values: dict[fx.Node, _Value | None] = {}
        self.offenders: list[str] = []
        # Whether an offender is a module or function with no handler at all: only then
        # does the list of what is supported help (not for a causal-only setting).
        self.unknown_parts = False
        self.output_name: str | None = None
        # IR name -> fx node, for Add nodes that a later add may absorb (chain flattening)
        self._adds: dict[str, fx.Node] = {}
        self._used: set[str] = {"input", "output"}
        self._reserved = {name for name, _ in root.named_modules() if name}
        self._placeholders = 0

    # ---- names

    def claim(self, base: str, *, module: bool = False) -> str:
        """A unique node name: a module keeps its qualified name on its first call."""
        if base not in self._used and (module or base not in self._reserved):
            self._used.add(base)
            return base
        k = 1
        while f"{base}_{k}" in self._used or f"{base}_{k}" in self._reserved:
            k += 1
        name = f"{base}_{k}"
        self._used.add(name)
        return name

    def derived(self, node: fx.Node, base: str) -> str:
        scope = _scope(node)
        return self.claim(f"{scope}.{base}" if scope else base)

    def emit(self, name: str, op: ops.Op, inputs: tuple[str, ...]) -> str:
        self.nodes[name] = Node(name, op, inputs)
        return name

    # ---- walk

    def run(self) -> None:
        for node in self._live_nodes():
            self._visit(node)

    def _live_nodes(self) -> list[fx.Node]:
        # Only what the output depends on: dead code, and calls left behind by a module
        # whose tracing failed half-way, compute nothing the model returns.
        live: set[fx.Node] = set()
        pending = [n for n in self.fx_graph.nodes if n.op == "output"]
        # The first argument is the graph's input even if nothing reads it.
        pending += [n for n in self.fx_graph.nodes if n.op == "placeholder"][:1]
        while pending:
            node = pending.pop()
            if node not in live:
                live.add(node)
                pending.extend(node.all_input_nodes)
        return [n for n in self.fx_graph.nodes if n in live]

    def _visit(self, node: fx.Node) -> None:
        if node.op == "get_attr":
            return  # a parameter read directly; the call that uses it decides
        if node.op == "placeholder":
            self._placeholder(node)
            return
        if node.op == "output":
            self._output(node)
            return
        if node.op == "call_module":
            module = self.root.get_submodule(str(node.target))
            handler = _MODULE_HANDLERS.get(type(module))
            label = f"{node.target} ({type(module).__name__})"
            if handler is None:
                reason = self.tracer.untraceable.get(str(node.target))
                reason = f"cannot trace its forward ({reason})" if reason else "not supported"
                self.unknown_parts = True
                self._refuse(node, label, reason)
                return
            check = _INTRINSIC_CHECKS.get(type(module))
            self._call(
                node,
                label,
                lambda: handler(self, node, module),
                (lambda: check(module)) if check else None,
            )
            return
        handler_fn = _function_handler(node)
        where = _scope(node) or "the model's forward"
        label = f"{_target_name(node)} in {where}"
        if handler_fn is None:
            self.unknown_parts = True
            self._refuse(node, label, "not supported")
            return
        check_fn = _FUNCTION_CHECKS.get(handler_fn)
        self._call(
            node,
            label,
            lambda: handler_fn(self, node),
            (lambda: check_fn(node)) if check_fn else None,
        )

    def _call(
        self,
        node: fx.Node,
        label: str,
        handler: Callable[[], _Value],
        check: Callable[[], object] | None = None,
    ) -> None:
        if any(n in self.values and self.values[n] is None for n in node.all_input_nodes):
            # Downstream of a refused call (reported): the input's layout is unknown, but
            # what is wrong with the module itself can still be reported.
            self.values[node] = None
            try:
                if check is not None:
                    check()
            except _Refused as exc:
                self.offenders.append(f"{label}: {exc}")
            return
        try:
            self.values[node] = handler()
        except _Refused as exc:
            self._refuse(node, label, str(exc))

    def _refuse(self, node: fx.Node, label: str, reason: str) -> None:
        self.offenders.append(f"{label}: {reason}")
        self.values[node] = None

    # ---- operand helpers

    def tensor(self, arg: Any, what: str = "operand") -> _Value:
        """The traced value of an fx argument; refuses constants and parameters."""
        value = self.values.get(arg) if isinstance(arg, fx.Node) else None
        if value is not None:
            return value
        raise _Refused(f"its {what} is not a traced tensor (constants and parameters are not ops)")

    def _placeholder(self, node: fx.Node) -> None:
        self._placeholders += 1
        if self._placeholders > 1:
            self._refuse(node, f"forward argument {node.target!r}", "only one input is supported")
            return
        self.emit("input", ops.Input(self.input_size), ())
        self.values[node] = _Value("input", CHANNELS_LAST)

    def _output(self, node: fx.Node) -> None:
        (result,) = node.args
        if not isinstance(result, fx.Node):
            self.offenders.append(
                "the model's output: must be one tensor, got "
                f"{type(result).__name__} (tuples and dicts are not supported)"
            )
            return
        if result not in self.values:
            self.offenders.append(
                f"the model's output: {result.target} is not computed from the input"
            )
            return
        value = self.values[result]
        if value is None:
            return  # its producer is already reported
        if value.layout == CHANNELS_FIRST:
            self.offenders.append(
                "the model's output: it is channels-first (B, H, L); return (B, L, H) or (B, H)"
            )
            return
        self.output_name = self.emit("output", ops.Output(), (value.node,))


# ---- module handlers: (translator, fx node, module) -> value


def _single_input(tr: _Translator, node: fx.Node) -> _Value:
    if len(node.args) != 1 or node.kwargs:
        raise _Refused("called with more than one argument")
    return tr.tensor(node.args[0], "input")


def _need(value: _Value, *layouts: str) -> None:
    if value.layout not in layouts:
        raise _Refused(f"input is {value.layout}; it needs {' or '.join(layouts)}")


def _linear(tr: _Translator, node: fx.Node, m: nn.Linear) -> _Value:
    x = _single_input(tr, node)
    if x.layout == CHANNELS_FIRST:
        raise _Refused("nn.Linear on a channels-first (B, H, L) value would mix time steps")
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_features)
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, ops.Linear(_np(m.weight), bias), (x.node,))
    return _Value(name, x.layout)


def _check_pointwise(m: nn.Conv1d) -> None:
    problems = []
    if m.kernel_size != (1,):
        problems.append(f"kernel_size {m.kernel_size[0]}")
    if m.stride != (1,):
        problems.append(f"stride {m.stride[0]}")
    if m.padding not in ((0,), "valid", "same"):  # all the same map for kernel 1
        problems.append(f"padding {m.padding}")
    if m.groups != 1:
        problems.append(f"groups {m.groups}")
    if problems:
        raise _Refused(
            "only a pointwise Conv1d (kernel 1, stride 1, no padding, groups 1) is a per-step "
            f"Linear; this one has {', '.join(problems)}"
        )


def _conv1d(tr: _Translator, node: fx.Node, m: nn.Conv1d) -> _Value:
    x = _single_input(tr, node)
    _check_pointwise(m)
    _need(x, CHANNELS_FIRST)
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels)
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, ops.Linear(_np(m.weight)[:, :, 0], bias), (x.node,))
    return _Value(name, x.layout)


def _batchnorm_op(m: nn.BatchNorm1d) -> ops.BatchNorm:
    if m.running_mean is None or m.running_var is None:
        raise _Refused("it has no running statistics (track_running_stats=False)")
    n = m.num_features
    weight = _np(m.weight) if m.weight is not None else np.ones(n)
    bias = _np(m.bias) if m.bias is not None else np.zeros(n)
    return ops.BatchNorm(_np(m.running_mean), _np(m.running_var), weight, bias, float(m.eps))


def _batchnorm1d(tr: _Translator, node: fx.Node, m: nn.BatchNorm1d) -> _Value:
    x = _single_input(tr, node)
    if x.layout == CHANNELS_LAST:
        raise _Refused(
            "nn.BatchNorm1d on a channels-last (B, L, H) value normalizes over time steps; "
            "transpose to (B, H, L) or use snncompile.models.norm.SequenceBatchNorm"
        )
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, _batchnorm_op(m), (x.node,))
    return _Value(name, x.layout)


def _sequence_batchnorm(tr: _Translator, node: fx.Node, m: SequenceBatchNorm) -> _Value:
    x = _single_input(tr, node)
    _need(x, CHANNELS_LAST, POOLED)
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, _batchnorm_op(m), (x.node,))
    return _Value(name, x.layout)


def _elementwise(make: Callable[[nn.Module], ops.Op]) -> Callable[..., _Value]:
    def handler(tr: _Translator, node: fx.Node, m: nn.Module) -> _Value:
        x = _single_input(tr, node)
        name = tr.claim(str(node.target), module=True)
        tr.emit(name, make(m), (x.node,))
        return _Value(name, x.layout)

    return handler


def _gelu_op(m: nn.GELU) -> ops.Op:
    return ops.Activation("gelu" if m.approximate == "none" else "gelu-tanh")


def _glu(tr: _Translator, node: fx.Node, m: nn.GLU) -> _Value:
    x = _single_input(tr, node)
    axis = {CHANNELS_LAST: 2, CHANNELS_FIRST: 1, POOLED: 1}[x.layout]
    ndim = 2 if x.layout == POOLED else 3
    if m.dim % ndim != axis:
        raise _Refused(f"nn.GLU(dim={m.dim}) on a {x.layout} value does not split channels")
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, ops.GLU("sigmoid"), (x.node,))
    return _Value(name, x.layout)


def _stateful(make: Callable[[Any], ops.Op]) -> Callable[..., _Value]:
    """Layers with state over time read (B, L, H): the layout their forward assumes."""

    def handler(tr: _Translator, node: fx.Node, m: nn.Module) -> _Value:
        x = _single_input(tr, node)
        _need(x, CHANNELS_LAST)
        op = make(m)
        name = tr.claim(str(node.target), module=True)
        tr.emit(name, op, (x.node,))
        return _Value(name, x.layout)

    return handler


def _s4d_op(m: S4D) -> ops.S4D:
    if m.bidirectional:
        raise _Refused("bidirectional S4D is non-causal: it reads future inputs and cannot stream")
    a = torch.complex(-torch.exp(m.log_A_real), m.A_imag)
    return ops.S4D(
        log_dt=_np(m.log_dt),
        a=_np_complex(a),
        b=_np_complex(torch.view_as_complex(m.B.contiguous())),
        c=_np_complex(torch.view_as_complex(m.C.contiguous())[0]),
        d=_np(m.D),
        discretization=m.discretization,
    )


def _reset_refractory_op(m: ResetRefractoryNeuron) -> ops.ResetRefractory:
    # The module's own properties: same float operations as its forward and step.
    n = m.channels
    beta, theta, rho = (np.broadcast_to(_np(t), (n,)).copy() for t in (m.beta, m.theta, m.rho))
    return ops.ResetRefractory(beta=beta, theta=theta, rho=rho)


def _lif_op(m: LIFNeuron) -> ops.LIF:
    threshold = np.broadcast_to(_np(m.threshold), (m.channels,)).copy()
    return ops.LIF(tau=float(m.tau), threshold=threshold)


def _glu_mixer(tr: _Translator, node: fx.Node, m: GLUMixer) -> _Value:
    x = _single_input(tr, node)
    _need(x, CHANNELS_LAST, POOLED)
    proj = m.proj
    weight = _np(proj.weight)
    if weight.ndim == 3:  # Conv1d(H, 2H, kernel_size=1): the same map as a Linear
        weight = weight[:, :, 0]
    bias = _np(proj.bias) if proj.bias is not None else np.zeros(weight.shape[0])
    base = str(node.target)
    name = tr.claim(base, module=True)
    proj_name = tr.claim(f"{base}.proj", module=True)
    tr.emit(proj_name, ops.Linear(weight, bias), (x.node,))
    tr.emit(name, ops.GLU(m.gate), (proj_name,))
    return _Value(name, x.layout)


def _gsu_mixer(tr: _Translator, node: fx.Node, m: GSUMixer) -> _Value:
    x = _single_input(tr, node)
    _need(x, CHANNELS_LAST, POOLED)
    name = tr.claim(str(node.target), module=True)
    tr.emit(name, ops.Opaque(module="GSUMixer", size=m.weight.shape[1]), (x.node,))
    return _Value(name, x.layout)


_MODULE_HANDLERS: dict[type[nn.Module], Callable[..., _Value]] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv1d,
    nn.BatchNorm1d: _batchnorm1d,
    SequenceBatchNorm: _sequence_batchnorm,
    nn.Dropout: _elementwise(lambda m: ops.Dropout(float(m.p))),
    nn.Identity: _elementwise(lambda m: ops.Identity()),
    nn.GELU: _elementwise(_gelu_op),
    nn.GLU: _glu,
    HeavisideNeuron: _elementwise(lambda m: ops.Heaviside()),
    S4D: _stateful(_s4d_op),
    ResetRefractoryNeuron: _stateful(_reset_refractory_op),
    LIFNeuron: _stateful(_lif_op),
    GLUMixer: _glu_mixer,
    GSUMixer: _gsu_mixer,
}


# What is wrong with a module whatever its input: checked even downstream of a refusal.
_INTRINSIC_CHECKS: dict[type[nn.Module], Callable[[Any], object]] = {
    nn.Conv1d: _check_pointwise,
    nn.BatchNorm1d: _batchnorm_op,
    SequenceBatchNorm: _batchnorm_op,
    S4D: _s4d_op,
}


# ---- function and method handlers: (translator, fx node) -> value


def _arg(node: fx.Node, index: int, keyword: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(keyword, default)


def _add(tr: _Translator, node: fx.Node) -> _Value:
    extra = set(node.kwargs) - {"alpha", "other"}
    if extra or _arg(node, 2, "alpha", 1) != 1:
        raise _Refused("only a plain sum (alpha=1, no out=) is supported")
    operands = [tr.tensor(node.args[0]), tr.tensor(_arg(node, 1, "other"))]
    layouts = {v.layout for v in operands}
    if len(layouts) != 1:
        raise _Refused(f"adds values of different layouts ({', '.join(sorted(layouts))})")
    inputs: list[str] = []
    absorbed: list[str] = []
    for value in operands:
        inner = tr._adds.get(value.node)
        # Flatten a chain: an add whose only use is this add becomes part of it.
        if inner is not None and len(inner.users) == 1 and value.node in tr.nodes:
            inputs.extend(tr.nodes.pop(value.node).inputs)
            del tr._adds[value.node]
            absorbed.append(value.node)
        else:
            inputs.append(value.node)
    # The flattened add keeps the name of the first add it absorbed: names stay compact.
    name = absorbed[0] if absorbed else tr.derived(node, "add")
    tr.emit(name, ops.Add(), tuple(inputs))
    tr._adds[name] = node
    return _Value(name, operands[0].layout)


def _dims(node: fx.Node, start: int, keyword: str) -> tuple[Any, ...]:
    if len(node.args) > start:
        rest = node.args[start:]
        if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
            return tuple(rest[0])
        return tuple(rest)
    value = node.kwargs.get(keyword, ())
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _transpose(tr: _Translator, node: fx.Node) -> _Value:
    x = tr.tensor(node.args[0])
    dims = (_arg(node, 1, "dim0"), _arg(node, 2, "dim1"))
    if x.layout == POOLED or not all(isinstance(d, int) for d in dims):
        raise _Refused(f"transpose{dims} of a {x.layout} value does not swap time and channels")
    swap = {d % 3 for d in dims}
    if swap == {1, 2}:
        return _Value(x.node, _swap(x.layout))
    if len(swap) == 1:
        return x
    raise _Refused(f"transpose{dims} moves the batch axis")


def _permute(tr: _Translator, node: fx.Node) -> _Value:
    x = tr.tensor(node.args[0])
    dims = _dims(node, 1, "dims")
    if x.layout == POOLED or not all(isinstance(d, int) for d in dims) or len(dims) != 3:
        raise _Refused(f"permute{dims} of a {x.layout} value is not a time/channel swap")
    order = tuple(d % 3 for d in dims)
    if order == (0, 1, 2):
        return x
    if order == (0, 2, 1):
        return _Value(x.node, _swap(x.layout))
    raise _Refused(f"permute{dims} moves the batch axis")


def _contiguous(tr: _Translator, node: fx.Node) -> _Value:
    if len(node.args) != 1 or node.kwargs:
        raise _Refused("contiguous(memory_format=...) is not supported")
    return tr.tensor(node.args[0])


def _pool(tr: _Translator, node: fx.Node, x: _Value, mode: str) -> _Value:
    name = tr.derived(node, "pool")
    tr.emit(name, ops.Pool(mode), (x.node,))
    return _Value(name, POOLED)


def _mean(tr: _Translator, node: fx.Node) -> _Value:
    x = tr.tensor(node.args[0])
    dims = _dims(node, 1, "dim")
    keepdim = _arg(node, 2, "keepdim", False)
    axis = _time_axis(x.layout)
    if (
        axis is None
        or len(dims) != 1
        or not isinstance(dims[0], int)
        or dims[0] % 3 != axis
        or keepdim
        or node.kwargs.get("dtype") is not None
    ):
        raise _Refused(
            f"only a mean over the time axis (dim={axis}, keepdim=False) is supported; "
            f"got dim={dims if len(dims) != 1 else dims[0]} on a {x.layout} value"
        )
    return _pool(tr, node, x, "mean")


_ALL = slice(None, None, None)


_LAST_STEP = {
    CHANNELS_LAST: [(_ALL, -1), (_ALL, -1, _ALL), (_ALL, -1, ...)],
    CHANNELS_FIRST: [(_ALL, _ALL, -1), (..., -1)],
}


def _index(node: fx.Node) -> tuple[Any, ...]:
    index = node.args[1]
    return index if isinstance(index, tuple) else (index,)


def _show_index(index: tuple[Any, ...]) -> str:
    def one(item: Any) -> str:
        if isinstance(item, slice):
            text = "" if item.start is None else str(item.start)
            text += ":" + ("" if item.stop is None else str(item.stop))
            return text + ("" if item.step is None else f":{item.step}")
        return "..." if item is ... else str(item)

    return f"x[{', '.join(one(item) for item in index)}]"


def _getitem(tr: _Translator, node: fx.Node) -> _Value:
    x = tr.tensor(node.args[0])
    index = _index(node)
    if any(_same_index(index, form) for form in _LAST_STEP.get(x.layout, [])):
        return _pool(tr, node, x, "last")
    raise _Refused(
        f"{_show_index(index)} on a {x.layout} value; only the last time step is supported"
    )


def _check_getitem(node: fx.Node) -> None:
    index = _index(node)
    if not any(_same_index(index, form) for forms in _LAST_STEP.values() for form in forms):
        raise _Refused(f"{_show_index(index)}; only the last time step is supported")


def _same_index(index: tuple[Any, ...], form: tuple[Any, ...]) -> bool:
    if len(index) != len(form):
        return False
    for got, want in zip(index, form, strict=True):
        if isinstance(want, slice):
            if not (isinstance(got, slice) and got == want):
                return False
        elif want is ...:
            if got is not ...:
                return False
        elif isinstance(got, bool) or not isinstance(got, int) or got != want:
            return False
    return True


_METHOD_HANDLERS: dict[str, Callable[[_Translator, fx.Node], _Value]] = {
    "add": _add,
    "transpose": _transpose,
    "permute": _permute,
    "contiguous": _contiguous,
    "mean": _mean,
}


_FUNCTION_CHECKS: dict[Callable[..., _Value], Callable[[fx.Node], None]] = {
    _getitem: _check_getitem,
}


def _function_handler(node: fx.Node) -> Callable[[_Translator, fx.Node], _Value] | None:
    if node.op == "call_method":
        return _METHOD_HANDLERS.get(str(node.target))
    fn = node.target
    if fn in _ADD_FUNCTIONS:
        return _add
    if fn in _TRANSPOSE_FUNCTIONS:
        return _transpose
    if fn in _PERMUTE_FUNCTIONS:
        return _permute
    if fn in _MEAN_FUNCTIONS:
        return _mean
    if fn is operator.getitem:
        return _getitem
    return None


# ---- public API


def trace(model: nn.Module, input_size: int, *, source: str | None = None) -> Graph:
    """Trace `model`, (B, L, input_size) -> (B, d_output), into a float IR Graph.

    The model itself is not touched: a deep copy is put in eval mode and float64, so every
    parameter reaches the IR as the float64 value a `model.double()` forward uses.
    Raises UnsupportedError listing every module or function the IR cannot express; a
    model whose values make an invalid graph is ops.blame_model_values's error, naming `source`
    (the file the model came from) when given.
    """
    return _trace(model, input_size, {}, source)


def _trace(
    model: nn.Module, input_size: int, meta: dict[str, Any], source: str | None = None
) -> Graph:
    if not isinstance(model, nn.Module):
        raise UsageError(f"trace() takes a torch.nn.Module, got {type(model).__name__}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise UsageError(f"input_size must be a positive int, got {input_size!r}")
    copy_ = copy_model(model).eval().double()
    tracer = _Tracer()
    try:
        fx_graph = tracer.trace(copy_)
    except SignalExit:
        raise
    except USER_CODE_ERRORS as exc:  # the root forward itself, which cannot fall back to a leaf
        raise UnsupportedError(
            f"cannot trace {type(model).__name__}.forward with torch.fx "
            f"({user_code_failure(exc)}); supported: {SUPPORTED}"
        ) from None
    translator = _Translator(copy_, fx_graph, tracer, input_size)
    translator.run()
    if translator.offenders:
        count = len(translator.offenders)
        exc = UnsupportedError(
            f"the model has {count} unsupported part{'s' if count > 1 else ''}: "
            f"{'; '.join(translator.offenders)}"
            + (f". Supported: {SUPPORTED}" if translator.unknown_parts else "")
        )
        exc.offenders = list(translator.offenders)  # type: ignore[attr-defined]
        raise exc
    graph_meta = {"source": "torch", "model": type(model).__name__, **meta}
    with blame_model_values(source):
        return Graph(tuple(translator.nodes.values()), meta=graph_meta)


def trace_checkpoint(path: str | os.PathLike[str]) -> Graph:
    """Load an snncompile checkpoint (safely) and trace its model."""
    from snncompile.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    meta = {"family": checkpoint.config.family, "checkpoint": str(path)}
    return _trace(checkpoint.model, checkpoint.config.d_input, meta, str(path))
