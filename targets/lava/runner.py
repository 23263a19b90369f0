"""Run a Netlist on Lava's CPU simulator and return what the reference would.

    result = run_lava(net, x)            # SimResult, comparable with reference.simulate

Time: Lava's steps start at 1 and the source bank sends column s - 1 at step s, so Lava
step s is the reference's tick t = s - 1; Lava's Dense takes one step like a synapse of
numerics.md. With T = ticks_per_step, a population at latency k works on model step m at
tick T m + k (Lava step T m + k + 1) and idles at the other ticks; a run of L model steps
takes net.total_ticks(L) Lava steps. With T = 1, Lava step s is model step s - 1 - k.
Each recorded population's out-port feeds an Extractor that is read once per step while
Lava runs (non-blocking), so traces cost milliseconds, not Var.get's 22 us per value;
the readout state and the event counters are read once with Var.get at the end.

record_internals: each recorded population with states or an input also sends, on its
`states_out` port, its states after the step and the summed input it received (Lava's
LIF through StateLif, our processes behind a flag); one more Extractor per population
reads them each step; like the messages, only the rows of the population's active ticks
become the reference's "<pop>.<state>" and "<pop>.in" traces.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from snncompile.arguments import is_integral
from snncompile.errors import SnnCompileError, UnsupportedError, UsageError
from snncompile.ir.netlist import Netlist
from snncompile.reference.kinds import Events
from snncompile.reference.parts import equal_parts, merge_runs, part_progress
from snncompile.reference.simulator import (
    SimResult,
    check_run_input,
    encode_input,
    recorded_names,
)
from snncompile.targets.lava.builder import SOURCE_KINDS, LavaNetwork, build_network, require_lava

# Seconds without any message from Lava after which a run counts as hung. A step of the
# bundled models takes milliseconds; Lava deadlocks when one of its own processes fails.
STALL_SECONDS = 120.0


class LavaStalledError(SnnCompileError):
    """Lava stopped sending without reporting an error; its processes were terminated."""


def run_lava(
    net: Netlist,
    x: np.ndarray,
    *,
    record: bool | Iterable[str] = True,
    record_internals: bool = False,
    batch_size: int | None = None,
    progress: Callable[[float], None] | None = None,
    sink: Any = None,
) -> SimResult:
    """Run `net` on float inputs x (B, L, d_in) in Lava; see SimResult.

    record: True for traces of every population that sends, or an iterable of names;
    record_internals: also trace the recorded populations' states ("<pop>.<state>") and
    summed inputs ("<pop>.in"), named and aligned as reference.simulate's;
    batch_size: samples per Lava run, as copies of the network side by side (by default
    as many as fit COPIES_BUDGET_BYTES, in equal runs; fewer bound memory at the cost of
    more runs);
    progress: called with the fraction done as each step's messages arrive (runs that
    record nothing report only their end);
    sink: a verify.stream.TraceSink that gets the traces step by step instead of the
    result (whose traces are then empty); the whole batch then runs as one run (the
    caller sizes it, e.g. by copies_per_run).
    """
    require_lava()
    find_models_once()
    x = check_run_input(x, net.input.size)
    recorded = _recorded(net, record)
    internals = _internals(net, record) if record_internals else []
    if batch_size is not None and (not is_integral(batch_size) or batch_size < 1):
        raise UsageError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = None if batch_size is None else int(batch_size)
    chunk = batch_size or copies_per_run(net, x.shape[0])
    if sink is not None:  # sample numbers are the run's: the caller sizes the batch
        chunk = x.shape[0]
    starts = range(0, x.shape[0], chunk)
    parts = [
        _run_once(
            net, x[i : i + chunk], recorded, internals,
            part_progress(progress, k, len(starts)), sink,
        )
        for k, i in enumerate(starts)
    ]  # fmt: skip
    return _concatenate(parts) if len(parts) > 1 else parts[0]


# Memory of the copies one Lava run holds (its processes' variables, the block-diagonal
# weights, the channels between the processes), beyond the traces it records.
COPIES_BUDGET_BYTES = 1 << 30


def bytes_per_copy(net: Netlist) -> int:
    """What one more copy of the network adds to a Lava run, counted as 64 ticks of every
    population's messages and inputs in int64. Measured for the bundled spike-ssm (9,494
    such values, so 4.9 MB counted): 2.8 MB per copy from 90 to 360 copies, 4.3 MB from
    360 to 1,440 (6 GB in all, where one run had no part limit)."""
    return 64 * 8 * sum(p.size + p.input_width for p in net.populations)


def copies_per_run(net: Netlist, n: int) -> int:
    """Copies of the network per Lava run for n inputs: equal runs within the budget."""
    return equal_parts(n, bytes_per_copy(net), COPIES_BUDGET_BYTES)


def find_models_once() -> None:
    """Let Lava's compiler look for the models of each Process class once per Python
    process. Lava looks anew for every Process of every run, executing every module in
    the folders of the Process's package (Dense's, LIF's, the io Processes', ours): 0.44
    s of a 1.4 s run of a small random netlist (cProfile over 6 runs of test_lava.py's
    random_netlists). The models it finds are classes of modules already imported, which
    do not change while Python runs; the choice among them (the run config's tag) is
    still Lava's, each run. Two threads may both look once: they find the same."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs

    find = getattr(ProcGroupDiGraphs, "_find_proc_models", None)
    if find is None or getattr(find, "_once", False):
        return  # another Lava than 0.10 (no such method: it looks each time) or done
    found: dict[type, list] = {}

    def find_once(proc: Any) -> list:
        if type(proc) not in found:
            found[type(proc)] = find(proc)
        return list(found[type(proc)])  # Lava's own list to change, as before

    find_once._once = True  # type: ignore[attr-defined]
    ProcGroupDiGraphs._find_proc_models = staticmethod(find_once)


def _recorded(net: Netlist, record: bool | Iterable[str]) -> list[str]:
    senders = [p.name for p in net.populations if p.compartment.sends]
    if record is True:
        return senders
    names = list(recorded_names(record))
    unknown = sorted(set(names) - {p.name for p in net.populations})
    if unknown:
        raise UsageError(f"cannot record unknown populations: {', '.join(unknown)}")
    return [name for name in senders if name in names]


def _internals(net: Netlist, record: bool | Iterable[str]) -> list[str]:
    """Recorded populations that have states or an input (the readout included)."""
    names = None if record is True else set(record or ())
    return [
        p.name
        for p in net.populations
        if (names is None or p.name in names)
        and (p.compartment.states or p.compartment.input_factor)
    ]


def _run_once(
    net: Netlist,
    x: np.ndarray,
    recorded: list[str],
    internals: list[str],
    progress: Callable[[float], None] | None,
    sink: Any = None,
) -> SimResult:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    events = Events()
    data = encode_input(net, x, events)
    lava = build_network(net, data, internals)
    readers = _attach_extractors(lava, recorded, Extractor)
    state_readers = {
        name: _attach(lava.compartments[name].states_out, f"{name}.states", Extractor)
        for name in internals
    }
    ports = [port for port, _ in readers.values()] + [p for p, _ in state_readers.values()]
    tag = "fixed_pt" if net.numeric == "int" else "floating_pt"
    config = Loihi2SimCfg(
        select_tag=tag, exception_proc_model_map={Extractor: PyLoihiExtractorModel}
    )
    dtype = np.int64 if net.numeric == "int" else np.float64
    # Each step's records go to a sink in model time: the caller's, or one keeping them.
    recorder = _Recorder(lava.batch, lava.length, dtype) if sink is None else None
    streams = _Streams(lava, readers, state_readers, sink or recorder, dtype)
    received = {id(port): np.zeros((1, port.shape[0])) for port in ports}  # one step's
    root, failed = lava.root, False
    try:
        with _workers_ignore_interrupts():
            try:
                root.run(RunSteps(num_steps=lava.steps, blocking=False), run_cfg=config)
            except RecursionError:
                # Lava's compiler flattens a group of connected processes recursively,
                # a level per process: a NIR node split into some 30 populations with a
                # recurrent matrix (a process per block, docs/nir.md) is past the limit.
                raise UnsupportedError(
                    f"Lava's compiler recursed past Python's limit on this network "
                    f"({len(net.populations)} populations, {len(net.synapses)} synapses, "
                    "each one or more Lava processes); the reference and onnx backends "
                    "run it"
                ) from None
        runtime = root.runtime
        # Sources share one extractor: read each extractor once per step.
        extractors = {
            id(port): (ex, received[id(port)])
            for port, ex in [*readers.values(), *state_readers.values()]
        }
        for step in range(lava.steps):
            for extractor, store in extractors.values():
                store[0] = _receive(extractor, runtime)
            streams.put(step, received)
            if progress is not None and extractors:
                progress((step + 1) / lava.steps)
        root.wait()
        if progress is not None:
            progress(1.0)
        readout = lava.compartments[net.readout.name].acc.get()
        for name, proc in lava.counters.items():
            events.add(name, int(proc.events.get()[0]))
    except BaseException:
        # Lava's error or stall, or ours while it runs (a sink, an interrupt): Lava may
        # have run ahead and filled its channels while we computed, and stop() would
        # then wait for an answer forever (seen with a sink that raised after a pause).
        failed = True
        raise
    finally:
        _stop(root, failed)

    traces = {} if recorder is None else recorder.traces
    spiking = {p.name for p in net.populations if p.compartment.spiking}
    readout = np.asarray(readout, dtype=dtype).reshape(lava.batch, net.readout.size)
    logits = readout.astype(np.float64) * net.output_scale
    if net.readout.attrs["mode"] == "mean":
        logits = logits / lava.length
    return SimResult(
        logits=logits,
        readout=readout,
        traces=traces,
        events=dict(events.counts),
        latency=net.latency(),
        steps=lava.steps,
        # As the reference defines them, from whichever spiking populations were recorded.
        spike_rates={
            name: float(trace.mean()) for name, trace in traces.items() if name in spiking
        },
    )


@contextlib.contextmanager
def _workers_ignore_interrupts() -> Iterator[None]:
    """Hold SIGINT while Lava forks its processes, then deliver it.

    The forked workers keep the holding handler, so a Ctrl-C sent to the terminal's
    process group interrupts only this process, which then stops them (_stop). With
    Python's default they each died with a traceback mid-step and stop() waited for them
    forever; and an interrupt landing inside fork's own callbacks was dropped.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)  # as the restored handler takes it


def _attach_extractors(lava: LavaNetwork, recorded: list[str], extractor_cls: Any) -> dict:
    """Population name -> (out-port it is read from, Extractor); sources share the bank's."""
    readers: dict[str, tuple[Any, Any]] = {}
    by_port: dict[int, Any] = {}
    for name in recorded:
        pop = lava.net.population(name)
        port = lava.bank.s_out if pop.kind in SOURCE_KINDS else lava.compartments[name].s_out
        if id(port) not in by_port:
            by_port[id(port)] = extractor_cls(shape=port.shape, name=f"{name}.extractor")
            port.connect(by_port[id(port)].in_port)
        readers[name] = (port, by_port[id(port)])
    return readers


def _attach(port: Any, name: str, extractor_cls: Any) -> tuple[Any, Any]:
    extractor = extractor_cls(shape=port.shape, name=f"{name}.extractor")
    port.connect(extractor.in_port)
    return port, extractor


def _receive(extractor: Any, runtime: Any) -> np.ndarray:
    """extractor.receive() (its next message, FIFO), once that cannot block forever:
    raises when Lava reported an error (RuntimeError) or stalled (LavaStalledError)."""
    port = extractor.out_port.external_pipe_csp_recv_port
    if not port.probe():
        _wait_for_any([port, *runtime.service_to_runtime], STALL_SECONDS)
        if not port.probe():
            # The runtime answered first: an error (wait() raises it), or the run's end,
            # which can overtake the last messages still being queued for this port.
            runtime.wait()
            _wait_for_any([port], STALL_SECONDS)
    return extractor.receive()


def _wait_for_any(ports: list[Any], timeout: float) -> None:
    """Block until one of Lava's receive ports holds a message (CspSelector with a timeout).

    The ports' `observer` hook is what Lava's own CspSelector uses to be woken up.
    """
    ready = threading.Condition()

    def wake() -> None:
        with ready:
            ready.notify_all()

    for port in ports:
        port.observer = wake
    try:
        with ready:
            deadline = time.monotonic() + timeout
            while not any(port.probe() for port in ports):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LavaStalledError(
                        f"Lava sent nothing for {timeout:.0f} s (a process may have failed "
                        "without reporting it); the run was aborted"
                    )
                ready.wait(timeout=min(left, 1.0))
    finally:
        for port in ports:
            port.observer = None


def _stop(root: Any, failed: bool) -> None:
    """Stop Lava's runtime on success and on error.

    After an error Lava's runtime service has already exited (or hangs), and
    Runtime.stop() would wait forever for its answer: end the OS processes this run
    started that are still alive, then let stop() release the shared memory (its
    manager process is not among them, so the segments go whatever ended the workers).
    SIGKILL, not SIGTERM: a worker blocked in a lock never ran its SIGTERM handler, and
    stop() then waited for it forever (seen after Ctrl-C in mid-run).
    """
    runtime = root.runtime
    if runtime is None:
        return
    if failed:
        for actor in runtime._messaging_infrastructure.actors:
            if not actor._is_done and actor.is_alive():
                actor.kill()
        runtime._is_started = False
    root.stop()


def _split_states(lava: LavaNetwork, name: str, rows: np.ndarray) -> dict:
    """Split states_out records [state_1; ...; state_k; a] of n model steps, rows (n,
    record width), into "<name>.<state>" (B, n, size) and "<name>.in" (B, n, input
    width). Every block is batch-major (compartment b * size + i); the input of a
    multi-part kind (glu) is [part 0 of every sample; part 1 of every sample], as the
    builder wires it, so it is regrouped per sample."""
    pop = lava.net.population(name)
    proc = lava.compartments[name]
    batch, size, length = lava.batch, pop.size, rows.shape[0]
    traces = {}
    names = tuple(proc.proc_params["states"])
    for k, state in enumerate(names):
        block = rows[:, k * batch * size : (k + 1) * batch * size]
        traces[f"{name}.{state}"] = block.reshape(length, batch, size).transpose(1, 0, 2)
    factor = pop.compartment.input_factor
    if factor:
        block = rows[:, len(names) * batch * size :]
        block = block.reshape(length, factor, batch, size).transpose(2, 0, 1, 3)
        traces[f"{name}.in"] = block.reshape(batch, length, factor * size)
    return traces


class _Recorder:
    """A sink that keeps the traces, (B, L, width) arrays of zeros written step by step:
    a population later than the readout, cut off at the run's last tick as in the
    reference, keeps zeros for the model steps it never reached."""

    def __init__(self, batch: int, length: int, dtype: type) -> None:
        self.batch, self.length, self.dtype = batch, length, dtype
        self.traces: dict[str, np.ndarray] = {}

    def declare(self, key: str, width: int) -> None:
        self.traces[key] = np.zeros((self.batch, self.length, width), self.dtype)

    def put(self, key: str, first_step: int, values: np.ndarray) -> None:
        self.traces[key][:, first_step : first_step + values.shape[1]] = values


class _Streams:
    """Hands each Lava step's records to a sink in model time: Lava step s is tick
    s - 1, and tick t is model step m of a population at latency k when t = T m + k
    (T = ticks_per_step); the idle ticks between are dropped. Lava's records are
    integers in float64 (its Extractor's ports), so the cast to int64 is exact: the
    netlist validator keeps every summed input, and so every state and message, below
    2**53 (docs/numerics.md, "Input bounds")."""

    def __init__(self, lava: LavaNetwork, readers: dict, state_readers: dict, sink, dtype):
        self.lava, self.readers, self.state_readers = lava, readers, state_readers
        self.sink, self.dtype = sink, dtype
        net = lava.net
        self.latency, self.ticks = net.latency(), net.ticks_per_step
        for name in readers:
            sink.declare(name, net.population(name).size)
        for name in state_readers:
            pop, proc = net.population(name), lava.compartments[name]
            for state in proc.proc_params["states"]:
                sink.declare(f"{name}.{state}", pop.size)
            if pop.compartment.input_factor:
                sink.declare(f"{name}.in", pop.compartment.input_factor * pop.size)

    def _model_step(self, name: str, tick: int) -> int | None:
        offset = tick - self.latency[name]
        if offset < 0 or offset % self.ticks:
            return None
        step = offset // self.ticks
        return step if step < self.lava.length else None

    def put(self, tick: int, received: dict) -> None:
        lava = self.lava
        for name, (port, _) in self.readers.items():
            step = self._model_step(name, tick)
            if step is None:
                continue
            pop = lava.net.population(name)
            columns = lava.bank_columns[(name, 0)] if pop.kind in SOURCE_KINDS else slice(None)
            row = received[id(port)][0, columns].astype(self.dtype)
            self.sink.put(name, step, row.reshape(lava.batch, 1, pop.size))
        for name, (port, _) in self.state_readers.items():
            step = self._model_step(name, tick)
            if step is not None:
                rows = received[id(port)].astype(self.dtype)
                for key, values in _split_states(lava, name, rows).items():
                    self.sink.put(key, step, values)


def _concatenate(parts: list[SimResult]) -> SimResult:
    """One result from runs of consecutive parts of a batch, as the reference's parts
    merge (spike rates over all inputs, steps summed), with the traces concatenated."""
    traces = {k: np.concatenate([p.traces[k] for p in parts]) for k in parts[0].traces}
    merged = merge_runs(parts)
    merged.traces = traces
    return merged
