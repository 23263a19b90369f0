"""The ONNX target against the reference simulator: every trace, every step, bit for bit.

onnxruntime runs the one-step graph over whole sequences (run_onnx streams the state);
the reference runs the same netlist; assert_traces_equal names the first population and
model step where they part. The float export (--target onnx --float) is in
test_onnx_float.py.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from netlists import (
    loop_netlist,
    loop_pops,
    narrowed_messages_netlist,
    pop,
    side_by_side,
    split_synapse_netlist,
)
from onnx import numpy_helper
from random_netlists import random_lagged_netlists, random_netlists
from trace_compare import assert_traces_equal, first_divergence

from snncompile.errors import CorruptInputError, UnsupportedError, UsageError
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.reference.simulator import simulate
from snncompile.targets.onnx import (
    StepInterface,
    StepSession,
    build_step_model,
    read_interface,
    run_onnx,
)

ROOT = Path(__file__).resolve().parents[1]
MAX24 = 2**23 - 1


def check(net: Netlist, x: np.ndarray, source=None) -> tuple:
    """Reference vs onnxruntime on x (B, L, d_in): every message, state and input sum,
    the readout, logits, saturation events and spike rates must be equal."""
    x = np.asarray(x, dtype=np.float64)
    expected = simulate(net, x, record=True, record_internals=True)
    actual = run_onnx(net if source is None else source, x, record_internals=True)
    assert_traces_equal(expected, actual, order=[p.name for p in net.populations])
    assert actual.events == expected.events
    assert actual.spike_rates == expected.spike_rates
    assert actual.steps == expected.steps
    np.testing.assert_array_equal(actual.logits, expected.logits)
    return expected, actual


# ---- the arithmetic, kind by kind, at its edges ---------------------------------------


def test_roundings_at_int32_and_beyond():
    """tz on sums of 2^31 and more (onnxruntime's int64 Sign is wrong there), floor shifts
    of negative odd sums, the int32 wrap of a synapse and the input's half-even rounding."""
    ssm = pop(
        "ssm", "ssm", 3, a_re_q=[0, 2**16, -(2**16)], a_im_q=[0, -(2**16), 7],
        b_re_q=[2**31 - 1, -(2**31) + 1, 3], b_im_q=[-(2**31) + 1, 12345, -1], out_shift=3,
        frac_cut=[0, 4, 16],
    )  # fmt: skip
    acc = pop("acc", "accumulator", 2)
    net = side_by_side([ssm, acc])
    x = np.array([[[MAX24, -MAX24, 1, 3, -3], [-1, 1, MAX24, -5, 5], [0, 0, 0, 0, 0]]])
    check(net, x)
    # An exponent of -2 on negative sums that are not multiples of 4 (a floor, not a
    # truncation), and a sum past int32.
    pops = (
        pop("in", "input", 2),
        pop("a", "accumulator", 2),
        pop("o", "readout", 2, {"mode": "mean"}),
    )
    syns = (
        Synapse("in->a", "in", "a", np.array([[254.0, 254.0], [-2.0, 2.0]]), weight_exp=-2),
        Synapse("a->o", "a", "o", np.eye(2)),
    )
    net = Netlist(pops, syns, "int", formats=Formats(message_bits=32))
    x = np.array([[[2.0**31 - 1, 2.0**31 - 1], [-3.0, 1.0], [5.0, 0.0]]])
    expected, _ = check(net, x)
    assert expected.events["in->a"] > 0  # the int32 wrap really happened
    # Half-even rounding of the input with a non-unit scale.
    net = Netlist(pops, syns, "int", formats=Formats(message_bits=32), input_scale=0.5)
    check(net, np.array([[[0.25, -0.25], [0.75, -0.75], [1.25, 2.5]]]))


def test_each_kind_at_thresholds_and_saturation():
    rr = pop(
        "rr", "reset_refractory", 3, decay=[0, 4096, 1000], theta=[5, 1, MAX24], rho=[0, MAX24, 3]
    )
    lif = pop("lif", "lif", 2, du=4095, dv=0, vth=1)
    lif2 = pop("lif2", "lif", 2, du=0, dv=4095, vth=2**17 - 1)
    sub = pop("sub", "cuba_lif_sub", 2, du=4095, dv=0, vth=1, vsub=1)
    sub2 = pop("sub2", "cuba_lif_sub", 2, du=0, dv=4095, vth=2**17 - 1, vsub=2**17 - 1)
    sub3 = pop("sub3", "cuba_lif_sub", 1, du=2000, dv=300, vth=0, vsub=0)
    sub4 = pop("sub4", "cuba_lif_sub", 2, du=4095, dv=0, vth=1, vsub=2**17 - 1)
    sub5 = pop("sub5", "cuba_lif_sub", 2, du=2000, dv=614, vth=128, vsub=151)
    hv = pop("hv", "heaviside", 2)
    glu = pop(
        "glu", "glu", 2, {"gate": "sigmoid"}, pwl_x0=-5, pwl_shift=2,
        pwl_table_q12=[0, 100, 2048, 4000, 4096], out_shift=-3,
    )  # fmt: skip
    net = side_by_side([rr, lif, lif2, sub, sub2, sub3, sub4, sub5, hv, glu], mode="mean")
    rng = np.random.default_rng(0)
    # +-2^17 puts u at exactly +-2^23 where du = 4095: the two sides of Lava's wrap.
    edges = np.array([0, 1, -1, 5, 6, 64, 65, MAX24, -MAX24, 2**16, -(2**16), 3, -3])
    edges = np.concatenate([edges, [2**17, -(2**17)]])
    x = rng.choice(edges, size=(3, 7, net.input.size)).astype(float)
    check(net, x)


def test_cuba_lif_sub_threshold_remainder_wrap_and_saturation():
    exact = pop("exact", "cuba_lif_sub", 2, du=4095, dv=4095, vth=10, vsub=10)
    keep = pop("keep", "cuba_lif_sub", 2, du=4095, dv=0, vth=4, vsub=4)
    mid = pop("mid", "cuba_lif_sub", 2, du=2000, dv=300, vth=1000, vsub=1000)
    x = np.array(
        [
            [10, 11, 10, 2**17 + 1, 1000, 1001],
            [10, 0, 0, -(2**17) - 1, 0, 2000],
            [11, 10, 2**17, 0, -1000, 5],
            [0, 0, -5, 0, 1000, 1000],
        ],
        dtype=float,
    )[None]
    expected, _ = check(side_by_side([exact, keep, mid]), x)
    assert expected.traces["exact"][0, :, 0].tolist() == [0, 0, 1, 0]
    assert expected.traces["exact.v"][0, :, 0].tolist() == [640, 640, 64, 0]
    assert expected.traces["keep.v"][0, :, 0].tolist() == [384, 128, MAX24 - 256, 8387775]
    assert expected.events["keep"] > 0  # the wraps of u and the saturation of v


def test_delays_bias_window_and_unconnected_population():
    """Delays on the input, the bias and computed populations (the delay line is state),
    the bias switched off in the latency tail, a population with no input synapse."""
    pops = (
        Population("in", "input", 1),
        Population("bias", "bias", 1, {"value": np.asarray(7.0)}),
        Population("relay", "accumulator", 1),
        Population("sum", "accumulator", 1),
        Population("late", "accumulator", 2),
        Population("idle", "reset_refractory", 1, {k: np.asarray([v]) for k, v in
                   {"decay": 10.0, "theta": 1.0, "rho": 0.0}.items()}),
        Population("out", "readout", 2, attrs={"mode": "mean"}),
    )  # fmt: skip
    syns = (
        Synapse("in->relay", "in", "relay", np.array([[1.0]])),
        Synapse("relay->sum", "relay", "sum", np.array([[3.0]]), weight_exp=-1),
        Synapse("in->sum", "in", "sum", np.array([[1.0]]), delay=1),
        Synapse("bias->sum", "bias", "sum", np.array([[2.0]]), delay=1),
        Synapse("relay->late", "relay", "late", np.array([[1.0], [0.0]]), delay=3),
        Synapse("sum->late", "sum", "late", np.array([[0.0], [1.0]]), delay=2),
        Synapse("relay->late.1", "relay", "late", np.array([[0.0], [5.0]]), delay=1),
        Synapse("late->out", "late", "out", np.eye(2)),
        Synapse("idle->out", "idle", "out", np.array([[2.0], [0.0]])),
    )
    net = Netlist(pops, syns, numeric="int")
    x = np.array([[[-3.0], [5.0], [0.0], [9.0]], [[1.0], [2.0], [3.0], [4.0]]])
    expected, _ = check(net, x)
    assert expected.steps == 4 + net.output_latency


# ---- a second ONNX runtime: the onnx package's reference evaluator --------------------


def evaluator_outputs(net: Netlist, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Every step's outputs of the step graph in onnx.reference.ReferenceEvaluator (numpy,
    independent of onnxruntime), streamed like run_onnx."""
    from onnx.reference import ReferenceEvaluator

    x = np.asarray(x, dtype=np.float64)  # the graph's x is float64
    model = build_step_model(net)
    evaluator = ReferenceEvaluator(model)
    names = [o.name for o in model.graph.output]
    step = StepSession(model.SerializeToString())
    feeds = step.zero_state(x.shape[0])
    length, steps = x.shape[1], []
    for t in range(step.interface.calls(length)):  # one call per model step
        feeds["x"] = x[:, t] if t < length else np.zeros_like(x[:, 0])
        feeds["in_window"] = np.full((x.shape[0], 1), t < length)
        values = dict(zip(names, evaluator.run(None, feeds), strict=True))
        feeds.update({n: values[f"next:{n}"] for n in step.state_names})
        steps.append(values)
    return steps


def test_the_graph_means_the_same_in_onnx_reference_evaluator():
    """The graph's semantics do not hang on onnxruntime: the onnx package's own evaluator
    gives the same readout on the rounding edge cases and a bundled model."""
    ssm = pop(
        "ssm", "ssm", 2, a_re_q=[2**16, -(2**16)], a_im_q=[-(2**16), 7],
        b_re_q=[2**31 - 1, -(2**31) + 1], b_im_q=[12345, -1], out_shift=3, frac_cut=[2, 0],
    )  # fmt: skip
    rr = pop("rr", "reset_refractory", 2, decay=[0, 1000], theta=[5, 64], rho=[0, 3])
    glu = pop(
        "glu", "glu", 1, {"gate": "sigmoid"}, pwl_x0=-5, pwl_shift=2,
        pwl_table_q12=[0, 100, 2048, 4000, 4096], out_shift=-3,
    )  # fmt: skip
    net = side_by_side([ssm, rr, glu, pop("lif", "lif", 1, du=4095, dv=100, vth=1)], mode="mean")
    rng = np.random.default_rng(1)
    x = rng.choice(
        [0, 1, -1, 63, 64, -65, 2**23 - 1, -(2**23) + 1, 3, -3], size=(2, 6, net.input.size)
    ).astype(float)
    want = simulate(net, x).readout
    np.testing.assert_array_equal(evaluator_outputs(net, x)[-1]["readout"], want)
    bundled = compiled("spike-ssm-sdigits").netlist
    x = sdigits(2)
    last = evaluator_outputs(bundled, x)[-1]
    np.testing.assert_array_equal(last["readout"], simulate(bundled, x).readout)


# ---- time-multiplexed netlists (ticks_per_step > 1) ----------------------------------


@pytest.mark.parametrize(
    ("kinds", "ticks"),
    [("ls", None), ("rac", None), ("ghl", None), ("lra", 5), ("sc", 5), ("hgra", None)],
)
def test_time_multiplexed_loop_matches_reference(kinds, ticks):
    """A loop through 2-4 populations (T = 2, 3, 4, and T = 5 with idle ticks to spare),
    with a lagged self-loop, a residual and a bias: every message, state and summed
    input, the readout, events and spike rates equal the reference's."""
    net = loop_netlist(loop_pops(kinds), seed=len(kinds), ticks=ticks)
    assert net.ticks_per_step == (ticks or len(kinds))
    x = np.random.default_rng(3).integers(-30, 31, (2, 9, 3)).astype(float)
    expected, _ = check(net, x)
    assert expected.steps == net.total_ticks(9)
    for p in net.populations[2:-1]:  # the loop is alive: no vacuous equality
        assert np.any(expected.traces[p.name]), p.name


def _with_late_branch(net: Netlist) -> Netlist:
    """`net` plus a population one tick after the readout, fed by the last loop
    population and feeding nothing, so its last model step falls after the run's last
    tick; its synapse's large exponent makes it saturate."""
    last = net.populations[-2]
    late = Population("late", "accumulator", last.size)
    syn = Synapse("last->late", last.name, "late", 2.0 * np.eye(last.size), weight_exp=20,
                  delay=1)  # fmt: skip
    return Netlist((*net.populations, late), (*net.synapses, syn), "int",
                   ticks_per_step=net.ticks_per_step)  # fmt: skip


def test_ticks_after_the_run_in_the_last_call_are_left_out():
    """The last call runs ticks past the reference's last one (a population at a later
    offset than the readout): its traces, spikes and events there are not counted."""
    net = _with_late_branch(loop_netlist(loop_pops("lca"), seed=4))
    latency = net.latency()
    assert latency["late"] % 3 > latency["out"] % 3  # the case under test
    x = np.random.default_rng(5).integers(-30, 31, (2, 6, 3)).astype(float)
    expected, _ = check(net, x)
    assert expected.events["late"] > 0 and not np.any(expected.traces["late"][:, -1])


def test_one_call_per_model_step_with_ticks_per_step_in_the_interface():
    net = loop_netlist(loop_pops("lra"), seed=2)
    model = build_step_model(net)
    iface = read_interface(model)
    assert iface.ticks_per_step == 3 and iface.output_latency == 4
    (events,) = [o for o in model.graph.output if o.name == "events"]
    dims = [d.dim_value for d in events.type.tensor_type.shape.dim]
    assert dims == [3, len(iface.event_sites)]  # one row per tick of the call
    step = StepSession(model.SerializeToString())
    runs = []
    session = step.session

    class Counting:
        def run(self, *args, **kwargs):
            runs.append(1)
            return session.run(*args, **kwargs)

    step.session = Counting()
    x = np.random.default_rng(0).integers(-30, 31, (1, 7, 3)).astype(float)
    result = run_onnx(step, x)
    assert len(runs) == iface.calls(7) == 7 + 4 // 3  # not total_ticks(7) = 23
    assert result.steps == net.total_ticks(7) == 23
    np.testing.assert_array_equal(result.readout, simulate(net, x).readout)
    # An interface stored before ticks_per_step existed reads as one tick per step.
    stored = json.loads(iface.to_json())
    del stored["ticks_per_step"]
    assert StepInterface.from_json(json.dumps(stored)).ticks_per_step == 1


def test_time_multiplexed_graph_means_the_same_in_onnx_reference_evaluator():
    net = loop_netlist(loop_pops("sgc"), seed=6)
    x = np.random.default_rng(2).integers(-30, 31, (2, 5, 3)).astype(float)
    last = evaluator_outputs(net, x)[-1]
    np.testing.assert_array_equal(last["readout"], simulate(net, x).readout)


# ---- hypothesis: random netlists ------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_netlists())
def test_random_netlists_match_reference(case):
    net, x = case
    check(net, x)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_lagged_netlists())
def test_random_lagged_netlists_match_reference(case):
    """Lagged synapses (self-loops, cycles, lag 2), 1-4 ticks per model step, cuba_lif,
    every format and exponent range: every value of every population at every step."""
    net, x = case
    check(net, x)


# ---- the tests can fail ---------------------------------------------------------------


def _perturbed(net: Netlist, synapse: str, delta: int) -> StepSession:
    """The step model of `net` with one weight of `synapse` changed by `delta`."""
    model = build_step_model(net)
    for init in model.graph.initializer:
        if init.name.startswith(f"W:{synapse}#"):
            w = numpy_helper.to_array(init).copy()
            w.flat[int(np.flatnonzero(w)[0])] += delta
            init.CopyFrom(numpy_helper.from_array(w, init.name))
            return StepSession(model.SerializeToString())
    raise AssertionError(f"no weight initializer for {synapse}")


def test_a_perturbed_weight_is_detected_and_located():
    net = compiled("spike-ssm-sdigits").netlist
    x = sdigits(2)
    expected = simulate(net, x, record=True)
    actual = run_onnx(_perturbed(net, "blocks.1.act->blocks.1.mix", 2), x)
    message = first_divergence(expected, actual, order=[p.name for p in net.populations])
    assert message is not None and "population 'blocks.1.mix'" in message
    with pytest.raises(pytest.fail.Exception, match=r"blocks\.1\.mix"):
        assert_traces_equal(expected, actual, order=[p.name for p in net.populations])


# ---- the bundled models ---------------------------------------------------------------


@functools.cache
def compiled(name: str):
    from snncompile.compiler import compile_model

    return compile_model(ROOT / "examples/checkpoints" / f"{name}.pt")


@functools.cache
def sdigits(n: int) -> np.ndarray:
    from snncompile.data import load_task

    return load_task("sdigits").test.inputs[:n]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spike-ssm-sdigits", "spiking-ssm-sdigits", "binary-s4d-sdigits"])
def test_bundled_model_matches_reference(name):
    pytest.importorskip("torch")
    net = compiled(name).netlist
    x = sdigits(6)
    expected, _ = check(net, x)
    assert any(rate > 0 for rate in expected.spike_rates.values())


# ---- the artifact, simulate --backend onnx, errors ------------------------------------


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory):
    pytest.importorskip("torch")
    from snncompile.api import export_model

    out = tmp_path_factory.mktemp("onnx") / "model.onnx-art"
    export_model(ROOT / "examples/checkpoints/spike-ssm-sdigits.pt", out, target="onnx")
    return out


def test_export_writes_a_checked_model_that_runs_from_the_artifact(onnx_artifact):
    from snncompile.artifact import read_artifact

    art = read_artifact(onnx_artifact)
    assert art.manifest["target"] == "onnx" and "model.onnx" in art.manifest["files"]
    assert art.manifest["onnx"]["export_check"]["sequences"] > 0
    model = onnx.load(str(onnx_artifact / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    iface = read_interface(model)
    assert [i.name for i in model.graph.input][:2] == ["x", "in_window"]
    assert iface.output_latency == art.netlist.output_latency
    x = sdigits(3)
    check(art.netlist, x, source=onnx_artifact)  # the file in the artifact, not a rebuild


def test_simulate_backend_onnx_equals_reference(onnx_artifact, tmp_path):
    from snncompile.cli import main
    from snncompile.simulate import simulate_artifact

    x = sdigits(4)
    ref = simulate_artifact(onnx_artifact, x, backend="reference")
    ort = simulate_artifact(onnx_artifact, x, backend="onnx")
    assert ort.predictions == ref.predictions and ort.backend == "onnx"
    assert ort.spike_rates == ref.spike_rates and ort.saturation_events == ref.saturation_events
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", str(onnx_artifact), "--input", str(tmp_path / "x.npy"), "--backend",
              "onnx", "-o", str(tmp_path / "out.npz")])  # fmt: skip
    assert exit_info.value.code == 0
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["readout"], simulate(_net(onnx_artifact), x).readout)


def _net(path: Path) -> Netlist:
    from snncompile.artifact import read_artifact

    return read_artifact(path).netlist


def test_inspect_and_other_targets_artifacts(onnx_artifact, tmp_path):
    from snncompile.api import inspect_artifact
    from snncompile.artifact import write_artifact

    info = inspect_artifact(onnx_artifact)
    assert info["onnx"]["file"] == "model.onnx" and info["onnx"]["states"] > 0
    # A reference artifact has no model.onnx: the onnx backend builds the graph.
    ref = write_artifact(compiled("spike-ssm-sdigits"), tmp_path / "ref")
    x = sdigits(2)
    check(compiled("spike-ssm-sdigits").netlist, x, source=ref)


INTERFACE_EDITS = {
    "not JSON": (lambda d: "{oops", "is not valid JSON"),
    "a list": (lambda d: "[1, 2]", "is not a JSON object"),
    "a field missing": (lambda d: {k: v for k, v in d.items() if k != "output_size"}, "lacks"),
    "an unknown field": (lambda d: {**d, "bogus": 1}, r"unknown fields \['bogus'\]"),
    "a count a string": (lambda d: {**d, "output_size": "ten"}, 'output_size "ten" is not a pos'),
    "a count a bool": (lambda d: {**d, "input_size": True}, "input_size true is not a positive"),
    "ticks negative": (lambda d: {**d, "ticks_per_step": -1}, "ticks_per_step -1 is not a pos"),
    "names a number": (lambda d: {**d, "event_sites": 5}, "event_sites 5 is not a list of str"),
    "a scale zero": (lambda d: {**d, "input_scale": 0}, "input_scale 0 is not a positive finite"),
    "a shape negative": (lambda d: {**d, "states": {"s": [-1]}}, "states .* is not an object of"),
    # Well-typed edits only the comparison with the netlist catches (they changed logits).
    "readout mode": (lambda d: {**d, "readout_mode": "median"}, None),
    "ticks per step": (lambda d: {**d, "ticks_per_step": 10**9}, None),
}


@pytest.mark.parametrize("case", INTERFACE_EDITS, ids=list(INTERFACE_EDITS))
def test_an_edited_interface_is_refused_by_inspect_and_simulate(onnx_artifact, tmp_path, case):
    """model.onnx's interface metadata edited and the file rehashed into the manifest:
    the interface reader names the field, and inspect and simulate refuse the artifact
    because model.onnx is no longer the step graph of its netlist."""
    import hashlib
    import shutil

    from snncompile.api import inspect_artifact
    from snncompile.simulate import simulate_artifact
    from snncompile.targets.onnx.graph import INTERFACE_KEY

    edit, message = INTERFACE_EDITS[case]
    art = tmp_path / "a"
    shutil.copytree(onnx_artifact, art)
    model = onnx.load(str(art / "model.onnx"))
    prop = next(p for p in model.metadata_props if p.key == INTERFACE_KEY)
    edited = edit(json.loads(prop.value))
    prop.value = edited if isinstance(edited, str) else json.dumps(edited)
    onnx.save(model, str(art / "model.onnx"))
    manifest = json.loads((art / "manifest.json").read_text())
    digest = hashlib.sha256((art / "model.onnx").read_bytes()).hexdigest()
    manifest["files"]["model.onnx"] = digest
    (art / "manifest.json").write_text(json.dumps(manifest))
    if message is not None:
        with pytest.raises(CorruptInputError, match=f"StepInterface .*{message}"):
            read_interface(onnx.load(str(art / "model.onnx")))
    for read in (inspect_artifact, lambda a: simulate_artifact(a, sdigits(1), backend="onnx")):
        with pytest.raises(CorruptInputError, match=r"model\.onnx: is not the step graph of netl"):
            read(art)


def test_recording_a_subset():
    net = side_by_side([pop("a", "accumulator", 2), pop("h", "heaviside", 1)], mode="mean")
    x = np.array([[[1.0, -2.0, 3.0], [4.0, 0.0, -1.0]]])
    for record in (["h"], ["out"], []):
        want = simulate(net, x, record=record, record_internals=True)
        got = run_onnx(net, x, record=record, record_internals=True)
        assert sorted(got.traces) == sorted(want.traces)
        assert_traces_equal(want, got)
    model = build_step_model(net)
    model.metadata_props.pop()
    with pytest.raises(CorruptInputError, match="interface"):
        StepSession(model.SerializeToString())


def test_changed_model_file_is_refused(onnx_artifact, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_artifact, copy)
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(CorruptInputError, match=r"model\.onnx"):
        run_onnx(copy, sdigits(1))


def test_errors():
    net = side_by_side([pop("a", "accumulator", 1)])
    with pytest.raises(UsageError, match="shape"):
        run_onnx(net, np.zeros((1, 3, 5)))
    with pytest.raises(UsageError, match="no time steps"):
        run_onnx(net, np.zeros((1, 0, 1)))
    with pytest.raises(UsageError, match="unknown populations"):
        run_onnx(net, np.zeros((1, 2, 1)), record=["nope"])
    floats = Netlist(
        (Population("in", "input", 1), Population("out", "readout", 1, attrs={"mode": "last"})),
        (Synapse("s", "in", "out", np.array([[0.5]])),),
        "float64",
    )
    with pytest.raises(UnsupportedError, match="int netlist"):
        build_step_model(floats)


def test_verify_target_onnx_runs_the_third_rung(capsys):
    """verify --target onnx: every message, state and summed input of every population of
    onnxruntime's run equals the reference's (rung 3)."""
    from snncompile.cli import main

    checkpoint = str(ROOT / "examples/checkpoints/spike-ssm-sdigits.pt")
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", checkpoint, "--limit", "6", "--target", "onnx", "--json"])
    report = json.loads(capsys.readouterr().out)
    check = report["target_check"]
    assert exit_info.value.code == 0 and report["failures"] == []
    assert check["backend"] == "onnx" and check["exact"] and check["values_differing"] == 0
    assert check["n"] == 6 and check["traces"] > 20


def test_onnxruntime_refusing_a_model_is_corrupt_input(onnx_artifact):
    """Through the API a StepSession can be built on any file: an interface that does not
    describe its graph is onnxruntime's InvalidArgument, reported as CorruptInputError."""
    from snncompile.targets.onnx.graph import INTERFACE_KEY

    model = onnx.load(str(onnx_artifact / "model.onnx"))
    prop = next(p for p in model.metadata_props if p.key == INTERFACE_KEY)
    interface = json.loads(prop.value)
    name = next(iter(interface["states"]))
    interface["states"][name] = [*interface["states"][name], 2]  # one rank too many
    prop.value = json.dumps(interface)
    session = StepSession(model.SerializeToString())
    with pytest.raises(CorruptInputError, match=r"onnxruntime cannot run the model .*rank"):
        run_onnx(session, sdigits(1))


def test_synapses_split_by_the_quantizer_run_exactly() -> None:
    """A cancelling constant's remainder synapse and a weight matrix's far-apart rows,
    each on its own exponent, are summed like any other synapses."""
    check(*split_synapse_netlist())


def test_messages_narrowed_where_their_sums_wrapped_run_exactly() -> None:
    """The calibration rounds' narrower messages (an input on a coarser input_scale, an
    accumulator's and a GLU's scales) are encoded and sent as the reference sends them."""
    check(*narrowed_messages_netlist())


@pytest.mark.filterwarnings("ignore")
def test_a_kernel_failing_at_run_time_is_one_line_on_stderr(capfd):
    # onnxruntime logged the failure on stderr before raising it (helper-83: a float
    # export's LayerNormalization over one element), so the CLI printed two lines.
    import io

    torch = pytest.importorskip("torch")
    from snncompile.targets.onnx.runner import run_session, session_for

    buffer = io.BytesIO()
    torch.onnx.export(
        torch.nn.LayerNorm(1), (torch.zeros(2, 1),), buffer, opset_version=17, dynamo=False
    )
    session = session_for(buffer.getvalue())
    name = session.get_inputs()[0].name
    capfd.readouterr()
    with pytest.raises(CorruptInputError, match="onnxruntime cannot run the model"):
        run_session(session, None, {name: np.zeros((2, 1), np.float32)})
    assert capfd.readouterr().err == ""
