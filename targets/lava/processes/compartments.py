"""Lava Processes and ProcessModels for the compartment kinds Lava lacks.

Each kind has a `fixed_pt` model, an independent transcription of docs/numerics.md in
int64 numpy (tests compare it with snncompile.reference), and a `floating_pt` model
with the float64 semantics. Lava finds a ProcessModel by scanning the folder of its
Process's module, so every model sits beside its Process here; Lava also re-executes
this file for every Process it compiles, so it imports nothing but typing, numpy and
Lava.

Ports: in-ports are declared int64, because Lava sums the messages of several
connections into one in-port with numpy promotion starting from the in-port's dtype
(an int32 in-port wraps that sum, an int64 one keeps it exact as numerics.md says);
messages leave on int32 out-ports, the width of Lava's Dense. Every clip that changes
a value adds one to the process's `events` Var, which the runner reads at the end.

States: with `record_states=True` a process also sends, every step on `states_out`
(int64, or float), its states after the step, then the summed input it received:
[state_1; ...; state_k; a], each block in the process's compartment order, the names in
proc_params["states"] (the reference's state names). `StateLif` is Lava's LIF with
such a port (u, v, a) and idle ticks. Without the flag the port stays unconnected and
nothing is sent.

Idle ticks: a time-multiplexed netlist (ticks_per_step T > 1, docs/numerics.md) runs T
Lava steps per model step. Every compartment process takes `ticks` (T) and `phase`
(its latency mod T) and is active at Lava step s only when (s - 1 - phase) mod T == 0
(Lava step s is the reference's tick s - 1); at an idle step it still receives its
in-port (Lava's channels must be drained every step) but keeps its states, counts
nothing and sends zeros (and, if recording, its unchanged states and the input). With
T = 1 every step is active. DelayLine and Shift run every step, as synapses do.

Parameters are Vars named as in the netlist (without the `_q` suffix); in float mode a
Var holds the float parameter of the same role, as noted per Process (like Lava's LIF,
whose du and dv mean different things in its float and fixed-point models).
"""

from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF
from numpy.typing import ArrayLike

# ---- integer helpers (docs/numerics.md notation) ----------------------------------


def _tz(x: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """x / 2**n rounded toward zero; a left shift for n < 0 (an array n is >= 0)."""
    if np.ndim(n) == 0 and n < 0:
        return x << -n
    return np.sign(x) * (np.abs(x) >> n)


def _floor_shift(x: np.ndarray, e: int) -> np.ndarray:
    return x << e if e >= 0 else x >> -e


def _idle(model) -> bool:
    """Whether this Lava step is an idle tick of the process (never when ticks == 1)."""
    ticks = model.proc_params["ticks"]
    return ticks > 1 and (model.time_step - 1 - model.proc_params["phase"]) % ticks != 0


def _send_idle(model, a: np.ndarray) -> None:
    """An idle tick: zeros on s_out; if recording, the unchanged states and `a` (zero in
    a valid netlist) on states_out, which the runner skips at idle ticks."""
    if getattr(model, "s_out", None) is not None:
        model.s_out.send(np.zeros(model.s_out.shape))
    if model.proc_params["record_states"]:
        names = model.proc_params["states"]
        model.states_out.send(np.concatenate([*(getattr(model, n) for n in names), a]))


def _step_and_send(model, a: np.ndarray) -> None:
    """model.step(a), sent on s_out if the kind sends, then the states and `a` on
    states_out if the process records them.

    If step raises, zeros still go out before the error propagates: Lava's runtime
    service waits for every process to finish the step, and a process waiting for this
    one's message would never finish, so the error would hang the run instead of ending it.
    """
    recording = model.proc_params["record_states"]
    try:
        out = model.step(a)
    except Exception:
        if hasattr(model, "s_out") and model.s_out is not None:
            model.s_out.send(np.zeros(model.s_out.shape))
        if recording:
            model.states_out.send(np.zeros(model.states_out.shape))
        raise
    if out is not None:
        model.s_out.send(out)
    if recording:
        names = model.proc_params["states"]
        model.states_out.send(np.concatenate([*(getattr(model, n) for n in names), a]))


class _Counting:
    """Mixin: symmetric saturation that counts the values it changed in `events`."""

    events: np.ndarray

    def _sat(self, x: np.ndarray, bits: int) -> np.ndarray:
        limit = (1 << (bits - 1)) - 1
        clipped = np.clip(x, -limit, limit)
        self.events[0] += np.count_nonzero(clipped != x)
        return clipped


# ---- Processes ---------------------------------------------------------------------


class _Compartment(AbstractProcess):
    """`size` compartments; a_in has input_factor * size entries; s_out has size;
    states_out has (len(STATES) + input_factor) * size (sent if record_states);
    ticks, phase: the idle ticks of a time-multiplexed netlist (module docstring)."""

    STATES: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        size: int,
        input_factor: int = 1,
        sends: bool = True,
        state_bits: int = 24,
        message_bits: int = 24,
        record_states: bool = False,
        ticks: int = 1,
        phase: int = 0,
        name: str | None = None,
        **params,
    ) -> None:
        super().__init__(
            size=size,
            state_bits=state_bits,
            message_bits=message_bits,
            record_states=record_states,
            ticks=ticks,
            phase=phase,
            states=self.STATES,
            name=name,
            **params,
        )
        self.a_in = InPort(shape=(input_factor * size,))
        if sends:
            self.s_out = OutPort(shape=(size,))
        self.states_out = OutPort(shape=((len(self.STATES) + input_factor) * size,))
        self.events = Var(shape=(1,), init=0)


class Accumulator(_Compartment):
    """Graded relay: out = sat_G(a)."""


class Heaviside(_Compartment):
    """Stateless spike: out = [a > 0]."""


class Ssm(_Compartment):
    """Complex resonator z' = a z + b x, out = Re z' (fixed_pt: shifted right by
    out_shift). a_*, b_*: Q(frac_bits - frac_cut) ints (frac_cut per mode), or floats."""

    STATES = ("re", "im")

    def __init__(
        self,
        *,
        size: int,
        a_re: ArrayLike,
        a_im: ArrayLike,
        b_re: ArrayLike,
        b_im: ArrayLike,
        frac_bits: int = 16,
        frac_cut: ArrayLike = 0,
        out_shift: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(size=size, frac_bits=frac_bits, **kw)
        self.frac_cut = Var(shape=(size,), init=frac_cut)
        self.a_re = Var(shape=(size,), init=a_re)
        self.a_im = Var(shape=(size,), init=a_im)
        self.b_re = Var(shape=(size,), init=b_re)
        self.b_im = Var(shape=(size,), init=b_im)
        self.out_shift = Var(shape=(1,), init=out_shift)
        self.re = Var(shape=(size,), init=0)
        self.im = Var(shape=(size,), init=0)


class ResetRefractory(_Compartment):
    """SPikE-SSM neuron. `decay`: what v loses per step in 1/4096 units (fixed_pt);
    `beta`: what it keeps, the float factor itself (floating_pt: 1 - (1 - beta) is not
    always beta in float64, and flipped a spike)."""

    STATES = ("v",)

    def __init__(
        self,
        *,
        size: int,
        theta: ArrayLike,
        rho: ArrayLike,
        decay: ArrayLike = 0,
        beta: ArrayLike = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(size=size, **kw)
        self.decay = Var(shape=(size,), init=decay)
        self.beta = Var(shape=(size,), init=beta)
        self.theta = Var(shape=(size,), init=theta)
        self.rho = Var(shape=(size,), init=rho)
        self.v = Var(shape=(size,), init=0)


class Glu(_Compartment):
    """a0 * gate(a1) on the two-part input [a0; a1]: a PWL table in Q12 (fixed_pt) or
    the exact gate named by `gate` ("sigmoid" or "hard-sigmoid", floating_pt)."""

    def __init__(
        self,
        *,
        size: int,
        pwl_x0: int = 0,
        pwl_shift: int = 0,
        table: ArrayLike = (0, 0),
        out_shift: int = 0,
        gate: str = "sigmoid",
        **kw: Any,
    ) -> None:
        super().__init__(size=size, input_factor=2, gate=gate, **kw)
        self.pwl_x0 = Var(shape=(1,), init=pwl_x0)
        self.pwl_shift = Var(shape=(1,), init=pwl_shift)
        self.table = Var(shape=(len(table),), init=np.asarray(table))
        self.out_shift = Var(shape=(1,), init=out_shift)


class Readout(_Compartment):
    """acc' = sat_S(acc + a) (mode "mean") or sat_S(a) (mode "last"); sends nothing."""

    STATES = ("acc",)

    def __init__(self, *, size: int, mode: str, **kw: Any) -> None:
        super().__init__(size=size, sends=False, mode=mode, **kw)
        self.acc = Var(shape=(size,), init=0)


class FloatLif(_Compartment):
    """The float64 lif of numerics.md: v' = tau v + a, spike where v' >= vth, reset to 0.

    Lava's own LIF float model tests `v > vth`; the integer netlist uses Lava's LIF.
    The float lif has no current: `u` stays 0, as in the reference.
    """

    STATES = ("u", "v")

    def __init__(self, *, size: int, tau: float, vth: float, **kw: Any) -> None:
        super().__init__(size=size, **kw)
        self.tau = Var(shape=(1,), init=tau)
        self.vth = Var(shape=(1,), init=vth)
        self.u = Var(shape=(size,), init=0)
        self.v = Var(shape=(size,), init=0)


class CubaLifSub(_Compartment):
    """cuba_lif with a subtractive reset (v -= vsub << 6 where it spikes). fixed_pt: du,
    dv (1/4096) and vth (threshold vth << 6) as in Lava's bit-accurate LIF, vsub in vth's
    format, 24-bit u and v; floating_pt: du = alpha_u, dv = alpha_v, vth and vsub floats.
    With `zero_reset` it resets v to 0 instead: Lava's LIF update, computed in int64,
    for a lif whose inputs Lava's int32 model cannot take exactly (builder._lava_lif)."""

    STATES = ("u", "v")

    def __init__(
        self,
        *,
        size: int,
        du: ArrayLike,
        dv: ArrayLike,
        vth: ArrayLike,
        vsub: ArrayLike = 0,
        zero_reset: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(size=size, **kw)
        self.du = Var(shape=(1,), init=du)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=(1,), init=vth)
        self.vsub = Var(shape=(1,), init=vsub)
        self.zero_reset = Var(shape=(1,), init=int(zero_reset))
        self.u = Var(shape=(size,), init=0)
        self.v = Var(shape=(size,), init=0)


class StateLif(LIF):
    """Lava's LIF, run by its bit-accurate model, plus what the netlist may need: idle
    ticks (`ticks`, `phase`, see the module docstring) and, with record_states, [u; v; a]
    on states_out after every step. Used for a lif or cuba_lif population whose states
    are recorded or whose netlist is time-multiplexed; Lava's plain LIF otherwise."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        record_states: bool = True,
        ticks: int = 1,
        phase: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(
            shape=shape,
            record_states=record_states,
            ticks=ticks,
            phase=phase,
            states=("u", "v"),
            **kw,
        )
        self.states_out = OutPort(shape=(3 * shape[0],))


class DelayLine(AbstractProcess):
    """Sends [m(t - d) for d in delays] (concatenated) for the messages m it receives.

    Connected straight to a population's out-port (no latency) and followed by a Dense,
    a tap with delay d gives a synapse the latency 1 + d that numerics.md specifies,
    with Dense's arithmetic unchanged.
    """

    def __init__(self, *, size: int, delays: tuple[int, ...], name: str | None = None) -> None:
        super().__init__(size=size, delays=tuple(delays), name=name)
        self.a_in = InPort(shape=(size,))
        self.s_out = OutPort(shape=(size * len(delays),))
        self.history = Var(shape=(max(delays), size), init=0)


class Shift(AbstractProcess):
    """out = a << exp on an int64 out-port: the exponent of a synapse whose shifted sum
    may leave int32, where Lava's Dense would wrap it (see docs/targets.md)."""

    def __init__(self, *, size: int, exp: int, name: str | None = None) -> None:
        super().__init__(size=size, exp=exp, name=name)
        self.a_in = InPort(shape=(size,))
        self.s_out = OutPort(shape=(size,))


# ---- fixed_pt models ---------------------------------------------------------------


class _FixedModel(PyLoihiProcessModel, _Counting):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)
    states_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        a = self.a_in.recv().astype(np.int64)
        if _idle(self):
            _send_idle(self, a)
        else:
            _step_and_send(self, a)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


@implements(proc=Accumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAccumulatorFixed(_FixedModel):
    def step(self, a: np.ndarray) -> np.ndarray | None:
        return self._sat(a, self.proc_params["message_bits"])


@implements(proc=Heaviside, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHeavisideFixed(_FixedModel):
    def step(self, a: np.ndarray) -> np.ndarray | None:
        return (a > 0).astype(np.int32)


@implements(proc=Ssm, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySsmFixed(_FixedModel):
    a_re: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_im: np.ndarray = LavaPyType(np.ndarray, np.int64)
    b_re: np.ndarray = LavaPyType(np.ndarray, np.int64)
    b_im: np.ndarray = LavaPyType(np.ndarray, np.int64)
    frac_cut: np.ndarray = LavaPyType(np.ndarray, np.int64)
    out_shift: np.ndarray = LavaPyType(np.ndarray, np.int64)
    re: np.ndarray = LavaPyType(np.ndarray, np.int64)
    im: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        frac = self.proc_params["frac_bits"] - self.frac_cut  # per mode, >= 0
        bits = self.proc_params["state_bits"]
        # Both parts from the old state, each sum rounded once.
        re = _tz(self.a_re * self.re - self.a_im * self.im + self.b_re * a, frac)
        im = _tz(self.a_im * self.re + self.a_re * self.im + self.b_im * a, frac)
        self.re[:] = self._sat(re, bits)
        self.im[:] = self._sat(im, bits)
        sent = _tz(self.re, int(self.out_shift[0]))
        return self._sat(sent, self.proc_params["message_bits"])


@implements(proc=ResetRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyResetRefractoryFixed(_FixedModel):
    decay: np.ndarray = LavaPyType(np.ndarray, np.int64)
    beta: np.ndarray = LavaPyType(np.ndarray, float)  # floating_pt's
    theta: np.ndarray = LavaPyType(np.ndarray, np.int64)
    rho: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        bits = self.proc_params["state_bits"]
        m = self._sat(_tz(self.v * (4096 - self.decay), 12) + a, bits)
        spikes = m > self.theta
        self.v[:] = self._sat(m - (self.theta + self.rho) * spikes, bits)
        return spikes.astype(np.int32)


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGluFixed(_FixedModel):
    pwl_x0: np.ndarray = LavaPyType(np.ndarray, np.int64)
    pwl_shift: np.ndarray = LavaPyType(np.ndarray, np.int64)
    table: np.ndarray = LavaPyType(np.ndarray, np.int64)
    out_shift: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        size, k = self.proc_params["size"], int(self.pwl_shift[0])
        x = a[size:] - self.pwl_x0[0]
        i = np.clip(x >> k, 0, self.table.size - 2)
        f = np.clip(x - (i << k), 0, 1 << k)
        gate_q12 = self.table[i] + _tz((self.table[i + 1] - self.table[i]) * f, k)
        out = _tz(a[:size] * gate_q12, int(self.out_shift[0]))
        return self._sat(out, self.proc_params["message_bits"])


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_FixedModel):
    s_out = None
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        total = self.acc + a if self.proc_params["mode"] == "mean" else a
        self.acc[:] = self._sat(total, self.proc_params["state_bits"])
        return None


@implements(proc=CubaLifSub, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCubaLifSubFixed(_FixedModel):
    du: np.ndarray = LavaPyType(np.ndarray, np.int64)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int64)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int64)
    vsub: np.ndarray = LavaPyType(np.ndarray, np.int64)
    zero_reset: np.ndarray = LavaPyType(np.ndarray, np.int64)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        # 24-bit states whatever state_bits is (as Lava's LIF); the current wraps once.
        half = 1 << 23
        u1 = _tz(self.u * (4096 - (self.du[0] + 1)), 12) + a * 64
        u = np.where(u1 > half, u1 - 2 * half, u1)
        u = np.where(u <= -half, u1 + 2 * half, u)
        self.events[0] += np.count_nonzero(u != u1)
        v1 = self._sat(_tz(self.v * (4096 - self.dv[0]), 12) + u, 24)
        spikes = v1 > self.vth[0] * 64
        self.u[:] = u
        self.v[:] = (
            np.where(spikes, 0, v1) if self.zero_reset[0] else v1 - self.vsub[0] * 64 * spikes
        )
        return spikes.astype(np.int32)


@implements(proc=StateLif, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStateLifFixed(PyLifModelBitAcc):
    """PyLifModelBitAcc's step at active ticks; at idle ticks the input is received and
    dropped, u and v are kept and zeros are sent. Then, if recording, [u; v; a] on
    states_out (a: what Lava's LIF received)."""

    # Lava's @implements refuses a subclass of a model of another Process; this model
    # implements StateLif only, so the inherited LIF is cleared before decorating.
    implements_process = None
    states_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=64)

    def subthr_dynamics(self, activation_in: np.ndarray) -> None:
        self.received = activation_in
        super().subthr_dynamics(activation_in)

    def run_spk(self) -> None:
        if _idle(self):
            self.received = self.a_in.recv()
            self.s_out.send(np.zeros(self.s_out.shape))
        else:
            super().run_spk()
        if self.proc_params["record_states"]:
            states = np.concatenate([self.u, self.v, self.received])
            self.states_out.send(states.astype(np.int64))


class _DelayLineModel(PyLoihiProcessModel):
    """Undecorated: Lava's tags add up over inheritance, so each mode subclasses this."""

    def run_spk(self) -> None:
        # history[k] holds the message received k + 1 steps ago.
        message = self.a_in.recv()
        self.s_out.send(np.concatenate([self.history[d - 1] for d in self.proc_params["delays"]]))
        self.history[1:] = self.history[:-1]
        self.history[0] = message


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineFixed(_DelayLineModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)
    history: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Shift, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyShiftFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=64)

    def run_spk(self) -> None:
        self.s_out.send(_floor_shift(self.a_in.recv().astype(np.int64), self.proc_params["exp"]))


# ---- floating_pt models ------------------------------------------------------------


class _FloatModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    states_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        a = self.a_in.recv().astype(np.float64)
        if _idle(self):
            _send_idle(self, a)
        else:
            _step_and_send(self, a)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


@implements(proc=Accumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAccumulatorFloat(_FloatModel):
    def step(self, a: np.ndarray) -> np.ndarray | None:
        return a


@implements(proc=Heaviside, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyHeavisideFloat(_FloatModel):
    def step(self, a: np.ndarray) -> np.ndarray | None:
        return (a > 0).astype(np.float64)


@implements(proc=Ssm, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySsmFloat(_FloatModel):
    a_re: np.ndarray = LavaPyType(np.ndarray, float)
    a_im: np.ndarray = LavaPyType(np.ndarray, float)
    b_re: np.ndarray = LavaPyType(np.ndarray, float)
    b_im: np.ndarray = LavaPyType(np.ndarray, float)
    frac_cut: np.ndarray = LavaPyType(np.ndarray, float)  # fixed_pt's
    out_shift: np.ndarray = LavaPyType(np.ndarray, float)  # fixed_pt's
    re: np.ndarray = LavaPyType(np.ndarray, float)
    im: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        re = self.a_re * self.re - self.a_im * self.im + self.b_re * a
        self.im[:] = self.a_im * self.re + self.a_re * self.im + self.b_im * a
        self.re[:] = re
        return self.re.copy()


@implements(proc=ResetRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResetRefractoryFloat(_FloatModel):
    decay: np.ndarray = LavaPyType(np.ndarray, np.int64)  # fixed_pt's
    beta: np.ndarray = LavaPyType(np.ndarray, float)
    theta: np.ndarray = LavaPyType(np.ndarray, float)
    rho: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        m = self.beta * self.v + a
        spikes = m > self.theta
        self.v[:] = m - (self.theta + self.rho) * spikes
        return spikes.astype(np.float64)


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGluFloat(_FloatModel):
    pwl_x0: np.ndarray = LavaPyType(np.ndarray, float)
    pwl_shift: np.ndarray = LavaPyType(np.ndarray, float)
    table: np.ndarray = LavaPyType(np.ndarray, float)
    out_shift: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        size = self.proc_params["size"]
        b = a[size:]
        if self.proc_params["gate"] == "sigmoid":
            gate = 0.5 * (1.0 + np.tanh(0.5 * b))  # 1 / (1 + exp(-b)) without overflow
        else:
            gate = np.clip(b / 6.0 + 0.5, 0.0, 1.0)
        return a[:size] * gate


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_FloatModel):
    s_out = None
    acc: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        self.acc[:] = self.acc + a if self.proc_params["mode"] == "mean" else a
        return None


@implements(proc=FloatLif, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFloatLif(_FloatModel):
    tau: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        v = self.tau[0] * self.v + a
        spikes = v >= self.vth[0]
        self.v[:] = np.where(spikes, 0.0, v)
        return spikes.astype(np.float64)


@implements(proc=CubaLifSub, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCubaLifSubFloat(_FloatModel):
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    vsub: np.ndarray = LavaPyType(np.ndarray, float)
    zero_reset: np.ndarray = LavaPyType(np.ndarray, np.int64)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)

    def step(self, a: np.ndarray) -> np.ndarray | None:
        self.u[:] = self.du[0] * self.u + a
        v = self.dv[0] * self.v + self.u
        spikes = v > self.vth[0]
        self.v[:] = np.where(spikes, 0.0 if self.zero_reset[0] else v - self.vsub[0], v)
        return spikes.astype(np.float64)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayLineFloat(_DelayLineModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    history: np.ndarray = LavaPyType(np.ndarray, float)
