"""Stream whole sequences through the ONNX step graph with onnxruntime.

    from snncompile.targets.onnx import run_onnx
    result = run_onnx(net, x)              # x (B, L, d_in) floats; a reference SimResult
    result = run_onnx("model.onnx-art", x) # an artifact directory (uses its model.onnx)

One call of the graph is one model step of T = ticks_per_step ticks. The sequence takes
L + output_latency // T calls (the input window, then a tail with zero input and
in_window false): they cover the T (L - 1) + output_latency + 1 ticks that
snncompile.reference.simulate runs, and whatever a population does at a later tick of
the last call (traces, spikes, events) is left out, as the reference never runs it. The
result has the reference's structure: traces of every population aligned to model time,
readout, logits, saturation events, spike rates; `steps` counts ticks. No torch import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import CorruptInputError, MissingDependencyError, SnnCompileError, UsageError
from snncompile.ir.netlist import Netlist
from snncompile.reference.simulator import SimResult, check_run_input, recorded_names

from .graph import StepInterface, build_step_model, read_interface


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(f"the onnx backend needs onnxruntime ({exc})") from None
    return onnxruntime


def session_for(model_bytes: bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for a serialized model."""
    ort = _ort()
    options = ort.SessionOptions()
    # Fatal only: onnxruntime logs a failed kernel (e.g. its LayerNormalization over one
    # element) on stderr as well as raising it, and run_session makes the raise our
    # one-line error; at 3 (errors) the log line came first, a second line on stderr.
    options.log_severity_level = 4
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def run_session(session: Any, fetch: list[str], feeds: dict[str, Any]) -> list[Any]:
    """session.run, with onnxruntime's refusal (a tensor name, rank or type the graph does
    not have: a model whose interface does not describe it) as CorruptInputError."""
    try:
        return session.run(fetch, feeds)
    except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...: pybind classes
        if type(exc).__module__.startswith("onnxruntime"):
            detail = " ".join(str(exc).split())[:200]
            raise CorruptInputError(f"onnxruntime cannot run the model ({detail})") from None
        raise


def load_session(kind: Any, path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """kind(model bytes, threads) for the ONNX file at `path`; a file onnx or onnxruntime
    cannot take (truncated, not ONNX, without our interface) is CorruptInputError."""
    try:
        return kind(Path(path).read_bytes(), threads)
    except CorruptInputError as exc:
        raise CorruptInputError(f"{path}: {exc}") from None
    except SnnCompileError:
        raise
    except Exception as exc:  # DecodeError, onnxruntime's Fail/InvalidGraph, KeyError, ...
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CorruptInputError(f"{path}: not a usable ONNX step model ({detail})") from None


class StepSession:
    """A loaded step model: its interface and an onnxruntime session."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        import onnx

        model = onnx.load_from_string(model_bytes)
        self.interface: StepInterface = read_interface(model)
        self.session = session_for(model_bytes, threads)
        self.state_names = list(self.interface.states)
        self.msg_names = [f"msg:{name}" for name in self.interface.sending]
        self.in_names = [f"in:{name}" for name in self.interface.receiving]
        self.outputs = [
            *(f"next:{n}" for n in self.state_names),
            "readout",
            "events",
            *self.msg_names,
            *self.in_names,
        ]

    @classmethod
    def from_netlist(cls, net: Netlist, threads: int | None = None) -> StepSession:
        return cls(build_step_model(net).SerializeToString(), threads)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], threads: int | None = None) -> StepSession:
        return load_session(cls, path, threads)

    def zero_state(self, batch: int) -> dict[str, np.ndarray]:
        return {n: np.zeros((batch, *s), np.int64) for n, s in self.interface.states.items()}


def _resolve(source: Netlist | str | os.PathLike[str] | StepSession) -> StepSession:
    if isinstance(source, StepSession):
        return source
    if isinstance(source, Netlist):
        return StepSession.from_netlist(source)
    from snncompile.artifact import read_artifact

    return artifact_session(read_artifact(source))  # hash-checked, model.onnx included


def artifact_session(art: Any) -> StepSession:
    """The integer step graph of a read artifact (snncompile.artifact.Artifact): its
    model.onnx when the manifest lists one, else a graph built from its netlist."""
    onnx_file = Path(art.path) / "model.onnx"
    if onnx_file.is_file() and "model.onnx" in art.manifest.get("files", {}):
        return StepSession.from_file(onnx_file)
    return StepSession.from_netlist(art.netlist)


def run_onnx(
    source: Netlist | str | os.PathLike[str] | StepSession,
    x: np.ndarray,
    *,
    record: bool | Iterable[str] = True,
    record_internals: bool = False,
    progress: Callable[[float], None] | None = None,
    sink: Any = None,
) -> SimResult:
    """Run x (B, L, d_in) floats model step by model step (one call each) through
    onnxruntime; see SimResult. progress: called with the fraction done after each call.
    sink: a verify.stream.TraceSink that gets the recorded traces step by step instead
    of the result (whose traces are then empty).

    source: an int Netlist (its step graph is built in memory), an artifact directory
    (its model.onnx if it has one, else a graph built from its netlist), or a StepSession.
    record: traces of every sending population (True), of the named ones, or none;
    record_internals: also the recorded populations' states ("<name>.<state>") and
    summed synaptic inputs ("<name>.in"), as the reference records them.
    """
    from .float_model import FloatSession, run_float

    if isinstance(source, FloatSession):  # a --float export: logits only
        return run_float(source, x, progress)
    step = _resolve(source)
    iface = step.interface
    x = check_run_input(x, iface.input_size)
    batch, length, _ = x.shape
    ticks = iface.ticks_per_step
    total = iface.total_ticks(length)
    latency = iface.latency

    stateful = {
        n[len("state:") :].rsplit(".", 1)[0] for n in iface.states if n.startswith("state:")
    }
    pops = set(iface.sending) | set(iface.receiving) | stateful
    recorded = set(iface.sending) | pops if record is True else recorded_names(record)
    unknown = recorded - pops
    if unknown:
        raise UsageError(f"cannot record unknown populations: {', '.join(sorted(unknown))}")
    shapes: dict[str, tuple[int, ...]] = {}  # trace name -> shape of one step's values
    for name in recorded & set(iface.sending):
        shapes[name] = (iface.sending[name],)
    state_traces: dict[str, str] = {}  # trace name -> graph output
    if record_internals:
        for state, shape in iface.states.items():
            if state.startswith("state:"):
                pop_state = state[len("state:") :]
                if pop_state.rsplit(".", 1)[0] in recorded:
                    shapes[pop_state] = tuple(shape)
                    state_traces[pop_state] = f"next:{state}"
        for name, width in iface.receiving.items():
            if name in recorded:
                shapes[f"{name}.in"] = (width,)
                state_traces[f"{name}.in"] = f"in:{name}"
    traces: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if sink is not None:
            sink.declare(name, *shape)
        else:
            traces[name] = np.zeros((batch, length, *shape), np.int64)

    # Fetch only what this run uses: onnxruntime then skips the nodes nothing fetched needs.
    wanted = {f"next:{n}" for n in step.state_names} | {"readout", "events"}
    wanted |= {f"msg:{name}" for name in iface.spiking}
    wanted |= {state_traces.get(name, f"msg:{name}") for name in shapes}
    fetch = [name for name in step.outputs if name in wanted]
    feeds: dict[str, np.ndarray] = step.zero_state(batch)
    zeros = np.zeros((batch, iface.input_size), np.float64)
    inside = np.ones((batch, 1), bool)
    outside = np.zeros((batch, 1), bool)
    events = np.zeros(len(iface.event_sites), np.int64)
    spike_sums = dict.fromkeys(iface.spiking, 0)
    index = {name: i for i, name in enumerate(fetch)}
    readout = np.zeros((batch, iface.output_size), np.int64)

    def model_step(call: int, pop: str) -> int | None:
        """The model step `pop` works on in this call, if the run has it (its active tick
        T call + latency mod T is within the run, the step within the window)."""
        model_t = call - latency[pop] // ticks
        inside_run = ticks * call + latency[pop] % ticks < total
        return model_t if inside_run and 0 <= model_t < length else None

    calls = iface.calls(length)
    for c in range(calls):
        feeds["x"] = x[:, c] if c < length else zeros
        feeds["in_window"] = inside if c < length else outside
        values = run_session(step.session, fetch, feeds)
        for name in step.state_names:
            feeds[name] = values[index[f"next:{name}"]]
        readout = values[index["readout"]]
        if ticks == 1:
            events += values[index["events"]]
        else:  # (T, n_sites): only the ticks of the run
            events += values[index["events"]][: total - ticks * c].sum(axis=0)
        for name in spike_sums:
            if model_step(c, name) is not None:
                spike_sums[name] += int(values[index[f"msg:{name}"]].sum())
        for name in shapes:
            pop = name.rsplit(".", 1)[0] if name in state_traces else name
            model_t = model_step(c, pop)
            if model_t is not None:
                out = values[index[state_traces.get(name, f"msg:{name}")]]
                if sink is not None:
                    sink.put(name, model_t, out.astype(np.int64)[:, None])
                else:
                    traces[name][:, model_t] = out
        if progress is not None:
            progress((c + 1) / calls)

    logits = readout.astype(np.float64) * iface.output_scale
    if iface.readout_mode == "mean":
        logits = logits / length
    sizes = iface.sending
    return SimResult(
        logits=logits,
        readout=readout.copy(),
        traces=traces,
        events={site: int(n) for site, n in zip(iface.event_sites, events, strict=True) if n},
        latency=dict(latency),
        steps=total,
        spike_rates={
            name: total_spikes / (batch * length * sizes[name])
            for name, total_spikes in spike_sums.items()
        },
    )
