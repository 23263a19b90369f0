"""Netlist -> Lava processes and connections (docs/targets.md explains every choice).

    population kind      Lava process
    input, bias          one io.source.RingBuffer, the "source bank" (below)
    lif, cuba_lif        lava.proc.lif.process.LIF (bit-accurate model; bias 0), or
                         our StateLif (the same plus a states port and idle ticks)
                         for internals or a time-multiplexed netlist; our CubaLifSub
                         (zero reset, int64) where the netlist allows inputs Lava's
                         int32 LIF cannot take exactly
    cuba_lif_sub, ssm, reset_refractory, glu, accumulator, heaviside, readout
                         our Processes in processes/compartments.py
    synapse              lava Dense (dense weights) or Sparse (sparse or batched)

Batch: Lava processes have no batch dimension, so B samples run at once as B copies of
every population in one process (compartment b * size + i) joined by block-diagonal
weights; the samples never touch each other.

Time: one Lava step is one tick of numerics.md; a netlist with ticks_per_step T runs
net.total_ticks(L) = T (L - 1) + latency(readout) + 1 Lava steps. The source bank sends
the input and the bias at ticks T m (m < L) and zeros at every other tick; every
compartment process gets `ticks` = T and `phase` = latency mod T and idles at the
ticks that are not its own (processes/compartments.py). With T = 1 nothing idles and
Lava's plain LIF runs lif and cuba_lif (where it is exact for the netlist's inputs,
lava_lif_is_exact; our CubaLifSub with zero_reset otherwise).

Delays: the input and bias send known data, so a delayed copy of them is just more
columns of the source bank (the data shifted by d ticks). A computed population with
delayed synapses gets a DelayLine (our process) straight on its out-port, whose tap d
re-sends its messages d steps later; either way the synapse itself is an ordinary
Dense or Sparse with its latency of one step.

Cycles: a lagged synapse (Synapse.lag, a recurrent connection) is built like any other,
an ordinary Dense or Sparse (after a DelayLine when its delay is positive) whose source
may be its own destination; Lava runs cycles of processes, and since each Dense takes
its one step exactly as numerics.md says, the runner's alignment (model step = Lava
step - 1 - latency) holds for them unchanged.

Exponents: Lava's Dense wraps the weighted sum to int32 before the exponent shift, as
numerics.md says, but for weight_exp > 0 it also shifts in int32 (and for spikes it
sums in int64 and wraps after the shift). Where the worst case of a synapse can reach
that, the Dense gets weight_exp 0 and a Shift process applies the exponent in int64.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import MissingDependencyError, UnsupportedError
from snncompile.ir.netlist import Netlist, Population, Synapse, current_reach, input_bound

INT32_LIMIT = 1 << 31
SOURCE_KINDS = ("input", "bias")


def _processes():
    """Our Lava Processes (imported on use: the module needs Lava)."""
    from snncompile.targets.lava.processes import compartments

    return compartments


def require_lava() -> None:
    """Raise MissingDependencyError unless Lava (lava-nc 0.10.0) imports."""
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"the lava target needs lava-nc 0.10.0 on Python 3.10 ({exc}); "
            "install it with: pip install lava-nc==0.10.0"
        ) from None


@dataclass
class LavaNetwork:
    """The Lava processes of one netlist run (built for one batch of inputs).

    compartments: population name -> its process (no entry for input and bias);
    bank: the RingBuffer that sends the input and bias, with `bank_columns`
          (population name, delay) -> slice of its out-port;
    counters: population name -> process with an `events` Var;
    shifted: names of synapses whose exponent is applied by a Shift process.
    """

    net: Netlist
    batch: int
    length: int
    steps: int
    bank: Any
    bank_columns: dict[tuple[str, int], slice]
    compartments: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    shifted: list[str] = field(default_factory=list)

    @property
    def root(self) -> Any:
        """A process from which Lava reaches the whole (connected) network."""
        return self.bank

    def process_count(self) -> int:
        from lava.magma.compiler.compiler_graphs import find_processes

        return len(find_processes(self.bank))


def build_network(net: Netlist, data: np.ndarray, internals: Collection[str] = ()) -> LavaNetwork:
    """Lava processes computing `net` on encoded input data (B, L, d_in), unconnected to
    any reader: the runner adds Extractors for what it records. The populations named in
    `internals` also send their states and summed input on `states_out`."""
    require_lava()
    unsupported = sorted({p.kind for p in net.populations} - set(_BUILDERS) - set(SOURCE_KINDS))
    if unsupported:
        raise UnsupportedError(
            f"the lava target cannot map compartment kinds {unsupported}; it maps "
            f"{sorted(set(_BUILDERS) | set(SOURCE_KINDS))}"
        )
    batch, length, _ = data.shape
    steps = net.total_ticks(length)
    delays = _delays_by_source(net)
    bank, columns = _source_bank(net, data, steps, delays)
    lava = LavaNetwork(net, batch, length, steps, bank, columns)

    latency = net.latency()
    for pop in net.populations:
        if pop.kind not in SOURCE_KINDS:
            timing = Timing(states=pop.name in internals,
                            ticks=net.ticks_per_step,
                            phase=latency[pop.name] % net.ticks_per_step)  # fmt: skip
            proc = _BUILDERS[pop.kind](pop, net, batch, timing)
            lava.compartments[pop.name] = proc
            if hasattr(proc, "events"):
                lava.counters[pop.name] = proc
    taps = {
        name: _delay_line(lava.compartments[name], net.population(name), ds, batch)
        for name, ds in delays.items()
        if net.population(name).kind not in SOURCE_KINDS and any(ds)
    }
    for syn in net.synapses:
        port, offset = _tap(lava, taps, syn)
        _connect(lava, syn, port, offset)
    _reach_everything(lava)
    return lava


def _reach_everything(lava: LavaNetwork) -> None:
    """Lava runs the processes connected to the one it is started from: join a population
    that no synapse links to the sources through a zero-weight Dense, so it runs too."""
    from lava.magma.compiler.compiler_graphs import find_processes
    from lava.proc.dense.process import Dense

    reached = set(find_processes(lava.bank))
    for proc in lava.compartments.values():
        if proc not in reached:
            zero = Dense(weights=np.zeros((proc.a_in.shape[0], lava.bank.s_out.shape[0])))
            lava.bank.s_out.connect(zero.s_in)
            zero.a_out.connect(proc.a_in)
            reached |= set(find_processes(lava.bank))


# ---- sources and delays ------------------------------------------------------------


def _delays_by_source(net: Netlist) -> dict[str, list[int]]:
    """Sorted distinct delays of each population's outgoing synapses (0 always for sources)."""
    out: dict[str, set[int]] = {p.name: {0} for p in net.populations if p.kind in SOURCE_KINDS}
    for syn in net.synapses:
        out.setdefault(syn.src, set()).add(syn.delay)
    return {name: sorted(ds) for name, ds in out.items()}


def _source_bank(
    net: Netlist, data: np.ndarray, steps: int, delays: dict[str, list[int]]
) -> tuple[Any, dict[tuple[str, int], slice]]:
    """One RingBuffer whose column s - 1 is sent at Lava step s, i.e. tick s - 1.

    Block (pop, d) holds what `pop` sent d ticks earlier, batch-major: the input sends
    x[m] and the bias `value` at tick T m for m < L (T = ticks_per_step), else 0.
    """
    from lava.proc.io.source import RingBuffer

    batch, length, _ = data.shape
    ticks = net.ticks_per_step
    blocks, columns, offset = [], {}, 0
    for pop in net.populations:
        if pop.kind not in SOURCE_KINDS:
            continue
        if pop.kind == "input":
            signal = data.transpose(0, 2, 1).reshape(batch * pop.size, length)
        else:
            signal = np.full((batch * pop.size, length), pop.params["value"], dtype=data.dtype)
        for d in delays[pop.name]:
            block = np.zeros((signal.shape[0], steps), dtype=data.dtype)
            sent = block[:, d : d + ticks * length : ticks]  # ticks T m + d, within the run
            sent[:] = signal[:, : sent.shape[1]]
            blocks.append(block)
            columns[(pop.name, d)] = slice(offset, offset + signal.shape[0])
            offset += signal.shape[0]
    bank = RingBuffer(data=np.concatenate(blocks))
    return bank, columns


def _delay_line(proc: Any, pop: Population, ds: list[int], batch: int) -> tuple[Any, list[int]]:
    positive = [d for d in ds if d > 0]
    line = _processes().DelayLine(
        size=batch * pop.size, delays=tuple(positive), name=f"{pop.name}.delay"
    )
    proc.s_out.connect(line.a_in)
    return line, positive


def _tap(lava: LavaNetwork, taps: dict, syn: Synapse) -> tuple[Any, int]:
    """(out-port, column offset) that sends syn.src's messages syn.delay steps late."""
    src = lava.net.population(syn.src)
    if src.kind in SOURCE_KINDS:
        return lava.bank.s_out, lava.bank_columns[(syn.src, syn.delay)].start
    if syn.delay == 0:
        return lava.compartments[syn.src].s_out, 0
    line, positive = taps[syn.src]
    return line.s_out, positive.index(syn.delay) * lava.batch * src.size


# ---- synapses ----------------------------------------------------------------------


def _replicate(syn: Synapse, dst: Population, batch: int) -> sparse.csr_matrix:
    """Block-diagonal copy of the weights for `batch` samples, keeping a multi-part input
    ([a0; a1] of a glu) as [a0 of every sample; a1 of every sample]."""
    weight = sparse.csr_matrix(syn.weight)
    eye = sparse.identity(batch, format="csr")
    parts = dst.compartment.input_factor
    rows = [
        sparse.kron(eye, weight[k * dst.size : (k + 1) * dst.size], format="csr")
        for k in range(parts)
    ]
    return sparse.vstack(rows, format="csr")


def _message_bound(net: Netlist, src: Population) -> int:
    if src.compartment.spiking:
        return 1
    if src.kind == "bias":
        return int(abs(src.params["value"]))
    return (1 << (net.formats.message_bits - 1)) - 1


def needs_shift_stage(net: Netlist, syn: Synapse) -> bool:
    """True where Lava's Dense might compute this synapse differently from numerics.md."""
    src = net.population(syn.src)
    if not src.compartment.spiking and syn.weight_exp <= 0:
        return False  # int32 sum, then an int32 right shift: exactly floor_shift(wrap32(.), e)
    row_sums = np.asarray(abs(sparse.csr_matrix(syn.weight)).sum(axis=1))
    worst = int(row_sums.max(initial=0)) * _message_bound(net, src) << max(syn.weight_exp, 0)
    return worst >= INT32_LIMIT


def _connect(lava: LavaNetwork, syn: Synapse, port: Any, offset: int) -> None:
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    net, batch = lava.net, lava.batch
    src, dst = net.population(syn.src), net.population(syn.dst)
    weight = _replicate(syn, dst, batch)
    # The tap may be wider than this source (bank, multi-delay line): zero columns elsewhere.
    weight = sparse.hstack(
        [
            sparse.csr_matrix((weight.shape[0], offset)),
            weight,
            sparse.csr_matrix((weight.shape[0], port.shape[0] - offset - weight.shape[1])),
        ],
        format="csr",
    )
    bits = 0 if src.compartment.spiking else net.formats.message_bits
    exp, shift = syn.weight_exp, None
    if net.numeric == "float64":
        weight, exp = weight * 2.0**exp, 0  # Lava's float Dense has no exponent
    elif needs_shift_stage(net, syn):
        exp, shift = 0, syn.weight_exp
        lava.shifted.append(syn.name)
    options = dict(num_message_bits=bits, weight_exp=exp, name=syn.name)
    if net.numeric == "int":
        options["num_weight_bits"] = net.formats.weight_bits
    if batch == 1 and not sparse.issparse(syn.weight):
        conn = Dense(weights=weight.toarray(), **options)
    else:
        conn = Sparse(weights=weight, **options)
    port.connect(conn.s_in)
    out = conn.a_out
    if shift is not None:
        stage = _processes().Shift(size=weight.shape[0], exp=shift, name=f"{syn.name}.shift")
        out.connect(stage.a_in)
        out = stage.s_out
    out.connect(lava.compartments[syn.dst].a_in)


# ---- compartments ------------------------------------------------------------------


def _tile(pop: Population, name: str, batch: int) -> np.ndarray:
    return np.tile(np.asarray(pop.params[name]), batch)


@dataclass(frozen=True)
class Timing:
    """What a compartment process needs besides its parameters: states (send states_out),
    ticks (ticks_per_step) and phase (latency mod ticks), for its idle ticks."""

    states: bool = False
    ticks: int = 1
    phase: int = 0

    def options(self) -> dict[str, Any]:
        return {"record_states": self.states, "ticks": self.ticks, "phase": self.phase}


def _common(pop: Population, net: Netlist, timing: Timing) -> dict[str, Any]:
    """Keyword arguments of every one of our compartment Processes."""
    widths = {"state_bits": net.formats.state_bits, "message_bits": net.formats.message_bits}
    return {"name": pop.name, **widths, **timing.options()}


# Each builder: (population, netlist, batch, timing) -> the process.


def _accumulator(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    return _processes().Accumulator(size=batch * pop.size, **_common(pop, net, timing))


def _heaviside(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    return _processes().Heaviside(size=batch * pop.size, **_common(pop, net, timing))


def _ssm(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    suffix = "_q" if net.numeric == "int" else ""
    coeffs = {k: _tile(pop, k + suffix, batch) for k in ("a_re", "a_im", "b_re", "b_im")}
    return _processes().Ssm(
        size=batch * pop.size,
        frac_bits=net.formats.ssm_frac_bits,
        out_shift=int(pop.params.get("out_shift", 0)),  # a float ssm sends Re z itself
        frac_cut=_tile(pop, "frac_cut", batch) if "frac_cut" in pop.params else 0,
        **coeffs,
        **_common(pop, net, timing),
    )


def _reset_refractory(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    factor = "decay" if net.numeric == "int" else "beta"  # each mode's own parameter
    return _processes().ResetRefractory(
        size=batch * pop.size,
        **{factor: _tile(pop, factor, batch)},
        theta=_tile(pop, "theta", batch),
        rho=_tile(pop, "rho", batch),
        **_common(pop, net, timing),
    )


def _glu(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    gate = pop.attrs.get("gate", "sigmoid")
    common = _common(pop, net, timing)
    if net.numeric != "int":
        return _processes().Glu(size=batch * pop.size, gate=gate, **common)
    p = pop.params
    return _processes().Glu(
        size=batch * pop.size,
        pwl_x0=int(p["pwl_x0"]),
        pwl_shift=int(p["pwl_shift"]),
        table=np.asarray(p["pwl_table_q12"]),
        out_shift=int(p["out_shift"]),
        gate=gate,
        **common,
    )


def _lif(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    if net.numeric != "int":
        p = pop.params
        return _processes().FloatLif(
            size=batch * pop.size,
            tau=float(p["tau"]),
            vth=float(p["vth"]),
            name=pop.name,
            **timing.options(),
        )
    return _lava_lif(pop, net, batch, timing)


def _cuba_lif(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    if net.numeric != "int":
        raise UnsupportedError(
            f"population {pop.name}: the lava target runs cuba_lif in int netlists only "
            "(float64 cuba_lif runs on the reference simulator)"
        )
    # The integer model is lif's (states u, v): the same Lava process, du < 4095 allowed.
    return _lava_lif(pop, net, batch, timing)


# Lava's bit-accurate LIF computes a << 6, u and v in int32 (docs/targets.md). From
# u = 0 it equals numerics.md while: du = 4095 and |a| < 2^25 (u = a << 6 each step); or
# |a| <= 2^18 (64 |a| <= 2^24, so the one wrap keeps |u| <= 2^23 whatever du is); or
# u never leaves 2^30 without the wrap (netlist.current_reach; v stays below 2^31 too).
LAVA_LIF_INPUT_NO_CURRENT = 1 << 25
LAVA_LIF_INPUT_WRAPPED = 1 << 18
LAVA_LIF_CURRENT = 1 << 30


def lava_lif_is_exact(net: Netlist, pop: Population) -> bool:
    """Whether every input pop's synapses can deliver (netlist.input_bound) keeps Lava's
    own LIF model on numerics.md's update."""
    bound = input_bound(net, pop.name)
    if int(pop.params["du"]) == 4095:
        return bound < LAVA_LIF_INPUT_NO_CURRENT
    return bound <= LAVA_LIF_INPUT_WRAPPED or current_reach(pop, bound) <= LAVA_LIF_CURRENT


def _lava_lif(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    """Lava's LIF with its bit-accurate model; StateLif (the same model plus a port that
    sends u, v and the input, and idle ticks) where states are recorded or T > 1; our
    CubaLifSub resetting to zero (the same update in int64) where the inputs the netlist
    allows could leave what Lava's int32 model computes exactly."""
    du, dv, vth = (int(pop.params[k]) for k in ("du", "dv", "vth"))
    if not lava_lif_is_exact(net, pop):
        return _processes().CubaLifSub(
            size=batch * pop.size, du=du, dv=dv, vth=vth, zero_reset=True,
            **_common(pop, net, timing),
        )  # fmt: skip
    params = dict(shape=(batch * pop.size,), du=du, dv=dv, vth=vth, bias_mant=0, name=pop.name)
    if timing.states or timing.ticks > 1:
        return _processes().StateLif(**params, **timing.options())
    from lava.proc.lif.process import LIF

    return LIF(**params)


def _cuba_lif_sub(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    # Our process (Lava's LIF only hard-resets); its floating_pt model takes the float
    # alpha_u, alpha_v, vth and vsub in the du, dv, vth and vsub Vars.
    names = ("du", "dv") if net.numeric == "int" else ("alpha_u", "alpha_v")
    du, dv, vth, vsub = (float(pop.params[k]) for k in (*names, "vth", "vsub"))
    if net.numeric == "int":
        du, dv, vth, vsub = int(du), int(dv), int(vth), int(vsub)
    return _processes().CubaLifSub(
        size=batch * pop.size,
        du=du,
        dv=dv,
        vth=vth,
        vsub=vsub,
        **_common(pop, net, timing),
    )


def _readout(pop: Population, net: Netlist, batch: int, timing: Timing) -> Any:
    return _processes().Readout(
        size=batch * pop.size, mode=pop.attrs["mode"], **_common(pop, net, timing)
    )


_BUILDERS = {
    "accumulator": _accumulator,
    "heaviside": _heaviside,
    "ssm": _ssm,
    "reset_refractory": _reset_refractory,
    "glu": _glu,
    "lif": _lif,
    "cuba_lif": _cuba_lif,
    "cuba_lif_sub": _cuba_lif_sub,
    "readout": _readout,
}
