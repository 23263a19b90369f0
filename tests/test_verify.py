"""Rungs 2 and 3: the quantized reference against PyTorch on real data, a target against
the reference, and the verify command."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from snncompile.api import verify_model
from snncompile.cli import main
from snncompile.reference.simulator import simulate
from snncompile.verify.targets import check_backend
from snncompile.verify.traces import Divergence, earliest_divergence, first_divergence

CHECKPOINTS = Path(__file__).parents[1] / "examples" / "checkpoints"
SPIKE_SSM = str(CHECKPOINTS / "spike-ssm-sdigits.pt")


@pytest.mark.parametrize("family", ["spike-ssm", "spiking-ssm"])
def test_bundled_model_meets_the_quantization_targets(family: str) -> None:
    """8-bit weights on the full sdigits test split: within 1 point, >= 98% argmax."""
    report = verify_model(str(CHECKPOINTS / f"{family}-sdigits.pt"))
    assert report.n == 360
    assert report.lowering_relative_error < 1e-9
    assert report.argmax_agreement >= 0.98
    assert abs(report.accuracy_delta) <= 0.01
    assert set(report.spike_agreement) == {"blocks.0.act", "blocks.1.act"}
    assert all(v > 0.97 for v in report.spike_agreement.values())
    assert report.passed and not report.events


def test_verify_reports_its_steps_in_order() -> None:
    steps: list[str] = []
    report = verify_model(SPIKE_SSM, target="onnx", limit=4, on_step=steps.append)
    assert report.passed
    assert steps[0] == "load" and "quantize" in steps
    assert steps[-2:] == ["verify", "verify-target"]


def test_first_divergence_names_population_and_step() -> None:
    a = np.zeros((2, 5, 3))
    late, early = a.copy(), a.copy()
    late[1, 4, 0] = 1
    early[0, 2, 2] = 1
    expected = {"x": a, "y": a}
    assert first_divergence(expected, {"x": a, "y": a}, ["x", "y"]) is None
    got = first_divergence(expected, {"x": late, "y": early}, ["x", "y"])
    assert (got.population, got.step, got.sample, got.compartment) == ("y", 2, 0, 2)
    assert (got.expected, got.actual, got.differing) == (0.0, 1.0, {"x": 1, "y": 1})


def test_earliest_divergence_of_parts_uses_whole_batch_samples() -> None:
    def at(population: str, step: int, sample: int, count: int) -> Divergence:
        return Divergence(population, step, sample, 0, 1.0, 2.0, {population: count})

    order = ["a", "b"]
    assert earliest_divergence([], order) is None
    got = earliest_divergence([(at("b", 3, 1, 2), 0), (at("a", 3, 0, 5), 40)], order)
    assert (got.population, got.step, got.sample) == ("a", 3, 40)  # population order
    assert got.differing == {"b": 2, "a": 5}
    got = earliest_divergence([(at("b", 3, 1, 1), 0), (at("b.v", 2, 4, 1), 40)], order)
    assert (got.population, got.step, got.sample) == ("b.v", 2, 44)  # earlier step
    assert got.differing == {"b": 1, "b.v": 1}
    got = earliest_divergence([(at("a", 3, 7, 1), 0), (at("a", 3, 0, 1), 8)], order)
    assert got.sample == 7  # same step and trace: the lower sample of the whole batch


@pytest.fixture(scope="module")
def compiled_spike_ssm():
    from snncompile.compiler import compile_model

    return compile_model(SPIKE_SSM)


def _sdigits(n: int) -> np.ndarray:
    from snncompile.data import load_task

    return load_task("sdigits").test.inputs[:n].astype(np.float64)


def test_rungs_one_and_two_in_parts_report_what_the_whole_batch_reports(
    compiled_spike_ssm, monkeypatch
) -> None:
    """verify --data of a large file runs rungs 1 and 2 in parts; every statistic (maxima,
    agreements, rates, events, the first divergence with its whole-batch sample) is the
    whole batch's, exactly, except where float64 PyTorch itself rounds differently for
    another batch size (BLAS blocking): the logit errors, to within a few ulps."""
    import snncompile.reference.parts as reference_parts
    from snncompile.data import load_task
    from snncompile.verify import quantized
    from snncompile.verify.quantized import verify_quantized

    test = load_task("sdigits").test
    x, labels = test.inputs[:7].astype(np.float64), test.labels[:7]
    whole = verify_quantized(compiled_spike_ssm, x, labels).to_dict()
    one_input = reference_parts.part_size(compiled_spike_ssm.netlist, 1, x.shape[1])
    assert one_input == 1  # (sanity: one input fits the default budget)
    budget = 2 * quantized.bytes_per_input(compiled_spike_ssm.netlist, x.shape[1])
    monkeypatch.setattr(reference_parts, "RUN_BUDGET_BYTES", budget)
    parts = verify_quantized(compiled_spike_ssm, x, labels).to_dict()
    assert (whole.pop("parts"), parts.pop("parts")) == (1, 4)  # parts of 2, 2, 2, 1
    assert whole["first_divergence"] is not None  # so its merge is exercised
    # A checkpoint's divergence is a population's compartment (a NIR source's also names
    # the node and neuron: test_verify_nir_json_names_the_diverging_node_and_neuron).
    assert set(whole["first_divergence"]) == {
        "population", "step", "sample", "compartment", "expected", "actual", "differing"
    }  # fmt: skip
    for key in ("logit_max_abs_error", "logit_relative_error"):
        assert parts.pop(key) == pytest.approx(whole.pop(key), rel=1e-12)
    assert max(parts.pop("lowering_relative_error"), whole.pop("lowering_relative_error")) < 1e-14
    assert parts == whole


def test_check_backend_in_parts_compares_every_value(compiled_spike_ssm) -> None:
    net, x = compiled_spike_ssm.netlist, _sdigits(5)
    whole = check_backend(net, x, "onnx", record=True)
    one_input = 8 * whole.values_compared // 5  # bytes of one input's traces
    seen: list[float] = []
    parts = check_backend(
        net, x, "onnx", record=True, budget_bytes=2 * one_input, progress=seen.append
    )
    assert (whole.runs, parts.runs) == (1, 3)  # parts of 2, 2, 1 inputs
    assert seen == sorted(seen) and seen[-1] == 1.0  # the backend's runs, over all parts
    for boundary in (1 / 3, 2 / 3):
        assert min(abs(f - boundary) for f in seen) < 1e-12
    assert whole.exact and parts.exact
    assert parts.values_compared == whole.values_compared
    assert (parts.traces, parts.populations) == (whole.traces, whole.populations)


@pytest.mark.parametrize("record", [False, True])
def test_check_backend_of_no_inputs_is_refused_not_exact(compiled_spike_ssm, record) -> None:
    # record=True reported "exact" after comparing 0 values; streaming divided by zero.
    from snncompile.errors import UsageError

    with pytest.raises(UsageError, match="no samples"):
        check_backend(compiled_spike_ssm.netlist, np.zeros((0, 8, 1)), "onnx", record=record)


def test_check_backend_in_parts_finds_the_first_divergence(compiled_spike_ssm, monkeypatch):
    """A backend that differs in two samples of two parts: the earlier model step wins
    (from the later part), named with its sample index in the whole batch, and both
    differences are counted."""
    import snncompile.simulate as sim

    net, x = compiled_spike_ssm.netlist, _sdigits(6)
    wrong = {1: ("blocks.1.act.v", 9), 4: ("blocks.0.ssm.re", 7)}  # sample -> trace, step
    done = []  # inputs of the parts run so far

    def faulty(backend, net, xs, **kw):
        result = simulate(net, xs, record=True, record_internals=True)
        for sample, (trace, step) in wrong.items():
            if 0 <= sample - sum(done) < len(xs):
                result.traces[trace][sample - sum(done), step, 3] += 1
        done.append(len(xs))
        return result

    monkeypatch.setattr(sim, "run_backend", faulty)
    one_input = 8 * check_backend(net, x[:1], "reference", record=True).values_compared
    done.clear()
    check = check_backend(net, x, "reference", record=True, budget_bytes=2 * one_input)
    assert check.runs == 3 and done == [2, 2, 2] and check.values_differing == 2
    assert "'blocks.0.ssm.re' at model step 7 (sample 4, compartment 3)" in check.divergence


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_verify_cli_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "verify", SPIKE_SSM, "--limit", "40")
    assert code == 0
    assert "argmax agreement" in out and "spike agreement blocks.0.act" in out
    assert "PASSED" in out


def test_failed_tolerance_exits_3_and_names_the_criterion(capsys) -> None:
    code, out, err = _run(
        capsys, "verify", SPIKE_SSM, "--limit", "40", "--min-spike-agreement", "1.0"
    )
    assert code == 3
    assert err.startswith("error: spike agreement of blocks.")
    assert "< 1.0" in err and "FAILED" in out


def test_data_of_the_wrong_shape_or_dtype_is_a_usage_error(tmp_path: Path, capsys) -> None:
    wrong_width = tmp_path / "wide.npy"
    np.save(wrong_width, np.zeros((4, 64, 3)))
    code, _, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(wrong_width))
    assert code == 2 and "shape (batch, steps, 1)" in err and err.count("\n") == 1
    strings = tmp_path / "strings.npy"
    np.save(strings, np.array([["a"]]))
    code, _, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(strings))
    assert code == 2 and "real numeric array" in err
    not_numpy = tmp_path / "junk.npy"
    not_numpy.write_text("hello")
    code, _, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(not_numpy))
    assert code == 6 and "junk.npy" in err
    labels_out_of_range = tmp_path / "labels.npz"
    np.savez(labels_out_of_range, x=np.zeros((2, 64, 1)), y=np.array([1, 12]))
    code, _, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(labels_out_of_range))
    assert code == 2 and "--data label 12 is not a class of this model" in err


def test_data_file_with_labels(tmp_path: Path, capsys) -> None:
    from snncompile.data import load_task

    task = load_task("sdigits")
    data = tmp_path / "d.npz"
    np.savez(data, x=task.test.inputs[:30], y=task.test.labels[:30])
    code, out, _ = _run(capsys, "verify", SPIKE_SSM, "--data", str(data), "--json")
    assert code == 0
    import json

    report = json.loads(out)
    assert report["n"] == 30 and report["float_accuracy"] is not None


def test_data_file_of_one_sequence_as_simulate_takes_it(tmp_path: Path, capsys) -> None:
    from snncompile.data import load_task

    one = tmp_path / "one.npy"
    np.save(one, load_task("sdigits").test.inputs[0])  # (64, 1): steps, inputs
    code, out, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(one), "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 1


def test_verify_target_lava_runs_the_third_rung(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "verify", SPIKE_SSM, "--limit", "12", "--target", "lava", "--json")
    report = json.loads(out)
    check = report["target_check"]
    assert code == 0 and report["failures"] == []
    assert check["backend"] == "lava" and check["exact"] and check["values_differing"] == 0
    assert check["n"] == 12 and check["simulated_steps"] == 64 + check["output_latency"]
    # messages, states and inputs of every population over 12 x 64 model steps
    assert check["values_compared"] > 12 * 64 * 10000 and check["traces"] > 20


def test_a_target_that_differs_fails_verify_with_exit_3(monkeypatch, capsys) -> None:
    """Rung 3 is exact: one changed message fails it and names where."""
    import snncompile.simulate as simulate_module

    reference = simulate_module.BACKENDS["reference"]

    class OffByOne:  # a state, its messages unchanged
        def __init__(self, sink) -> None:
            self.sink = sink

        def declare(self, key: str, width: int) -> None:
            self.sink.declare(key, width)

        def put(self, key: str, first: int, values: np.ndarray) -> None:
            if key == "blocks.1.act.v" and first <= 17 < first + values.shape[1]:
                values = values.copy()
                values[3, 17 - first, 5] += 1
            self.sink.put(key, first, values)

    def off_by_one(net, x, record, internals, progress, sink=None):
        return reference(net, x, record, internals, progress, OffByOne(sink))

    monkeypatch.setitem(simulate_module.BACKENDS, "lava", off_by_one)
    code, out, err = _run(capsys, "verify", SPIKE_SSM, "--limit", "8", "--target", "lava")
    assert code == 3
    assert "1 differ: NOT exact" in out
    assert "population 'blocks.1.act.v' at model step 17 (sample 3, compartment 5)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ("--limit", "0"),
        ("--limit", "-1"),
        ("--min-argmax-agreement", "nan"),
        ("--max-accuracy-drop", "nan"),
        ("--min-spike-agreement", "2"),
        ("--max-accuracy-drop", "-5"),
        ("--max-logit-error", "nan"),
        ("--max-logit-error", "-1"),
    ],
)
def test_verify_refuses_meaningless_limits_and_tolerances(capsys, argv) -> None:
    """A NaN tolerance compares False both ways and passed every check."""
    code, out, err = _run(capsys, "verify", SPIKE_SSM, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    if argv[0] == "--max-accuracy-drop":  # named in the option's own units (points)
        assert f"--max-accuracy-drop must be in [0, 100] points, got {float(argv[1])}" in err


def test_a_checkpoint_whose_task_does_not_fit_its_model_is_corrupt(tmp_path: Path, capsys) -> None:
    """meta says sdigits (10 classes) but the model has 3 outputs: verify must not score
    it on labels the model cannot produce (it passed with exit 0; evaluate said exit 6)."""
    import torch

    from snncompile.checkpoint import save
    from snncompile.models.backbone import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(family="spike-ssm", d_input=1, d_output=3, d_model=8, d_state=4, n_layers=1)
    path = save(build_model(cfg), tmp_path / "m.pt", calibration=torch.rand(4, 16, 1))
    payload = torch.load(path, weights_only=True)  # save refuses to write such a file
    payload["meta"] = {"task": "sdigits"}
    torch.save(payload, path)
    code, _, err = _run(capsys, "verify", str(path))
    assert code == 6 and err.count("\n") == 1
    message = "model shape (d_input 1, d_output 3) does not match task 'sdigits' (d_input 1, 10"
    assert message in err


def test_one_input_beyond_the_run_budget_is_refused(monkeypatch, tmp_path: Path, capsys) -> None:
    """Parts split the batch, never a sequence: a single input too long for the budget
    is exit 2 before any run (a 100,000-step sequence took 7 GB)."""
    import snncompile.reference.parts as parts

    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", 1 << 10)
    data = tmp_path / "one.npy"
    np.save(data, np.zeros((1, 64, 1)))
    code, _, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(data))
    assert code == 2 and "one input of 64 steps needs" in err and err.count("\n") == 1


def test_verify_past_the_calibrated_length_warns_why_it_fails(tmp_path: Path, capsys) -> None:
    data = tmp_path / "long.npy"
    np.save(data, np.random.default_rng(0).random((1, 1000, 1)))
    code, out, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(data))
    assert code == 3 and "saturation events: 0" not in out
    assert "the network was calibrated on 64-step inputs and these have 1000" in err
    assert err.splitlines()[-1].startswith("error: argmax agreement")
    # ... and says how decided the changed predictions were in the float model
    assert "the float model's top-two logit margin on the 1 changed input(s): at most" in err


def test_a_saturated_readout_fails_on_its_logit_error_though_argmax_agrees(
    tmp_path: Path, capsys
) -> None:
    """Inputs of 3e38 saturate every population; the classes still agreed (argmax 100%)
    and verify passed with the quantized logits nothing like the float ones (relative
    error 1, helper-63). The declared logit criterion fails it."""
    data = tmp_path / "huge.npy"
    np.save(data, np.full((4, 64, 1), 3e38, dtype=np.float32))
    code, out, err = _run(capsys, "verify", SPIKE_SSM, "--data", str(data), "--json")
    report = json.loads(out)
    assert report["argmax_agreement"] == 1.0 and report["logit_relative_error"] == 1.0
    assert code == 3 and sum(report["events"].values()) > 0  # saturation, warned of
    assert err.splitlines()[-1] == "error: logit error 1 of the largest float logit > 0.5"
    code, _, _ = _run(capsys, "verify", SPIKE_SSM, "--data", str(data), "--max-logit-error", "1")
    assert code == 0


def test_verify_target_compares_while_running_whatever_the_trace_budget(
    compiled_spike_ssm, monkeypatch, tmp_path: Path, capsys
) -> None:
    """verify --target compares both runs as they go, so inputs whose traces pass the
    budget are no limit (they were refused, exit 2; before that they ran into many GB);
    the recorded comparison keeps the budget and names the way out."""
    import snncompile.verify.targets as targets
    from snncompile.errors import UsageError

    monkeypatch.setattr(targets, "TRACE_BUDGET_BYTES", 1 << 20)
    data = tmp_path / "one.npy"
    np.save(data, _sdigits(2))
    argv = ["verify", SPIKE_SSM, "--data", str(data), "--target", "onnx"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert "compared while running" in out
    assert re.search(r"[\d,]+ values compared .*, 0 differ: exact", out), out
    with pytest.raises(UsageError, match="compare it while running"):
        check_backend(compiled_spike_ssm.netlist, _sdigits(1), "onnx", record=True)


@pytest.mark.parametrize("backend", ["onnx", "lava"])
def test_streamed_rung_3_compares_what_the_whole_traces_compare(
    compiled_spike_ssm, backend, monkeypatch
) -> None:
    """Compared while running (reference tiles of 7 ticks against the target's single
    steps), every value is compared: the counts equal those of the recorded check."""
    import snncompile.reference.simulator as simulator

    net, x = compiled_spike_ssm.netlist, _sdigits(3)
    whole = check_backend(net, x, backend, record=True)
    per_tick = 8 * 3 * sum(p.size + p.input_width for p in net.populations)
    monkeypatch.setattr(simulator, "tile_budget_bytes", lambda: 7 * per_tick)
    seen: list[float] = []
    streamed = check_backend(net, x, backend, progress=seen.append)
    assert streamed.streamed and not whole.streamed
    assert streamed.exact and whole.exact
    for field in ("values_compared", "values_differing", "traces", "populations", "runs"):
        assert getattr(streamed, field) == getattr(whole, field), field
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_streamed_rung_3_finds_the_first_divergence(compiled_spike_ssm, monkeypatch):
    """A target whose traces differ in two places, handed over step by step, and whose
    final readout differs once: the earlier model step is named, as the recorded check
    names it, and all three values counted."""
    import snncompile.simulate as sim

    net, x = compiled_spike_ssm.netlist, _sdigits(3)
    wrong = {("blocks.1.act.v", 9): 1, ("blocks.0.ssm.re", 7): 2}  # (trace, step) -> sample
    real = sim.run_backend

    class Faulty:
        def __init__(self, sink) -> None:
            self.sink = sink

        def declare(self, key: str, width: int) -> None:
            self.sink.declare(key, width)

        def put(self, key: str, first: int, values: np.ndarray) -> None:
            for (trace, step), sample in wrong.items():
                if key == trace and first <= step < first + values.shape[1]:
                    values = values.copy()
                    values[sample, step - first, 3] += 1
            self.sink.put(key, first, values)

    def faulty(backend, net, xs, sink=None, **kw):
        if sink is not None:
            result = real("onnx", net, xs, sink=Faulty(sink), **kw)
        else:
            result = real("onnx", net, xs, **kw)
            for (trace, step), sample in wrong.items():
                result.traces[trace][sample, step, 3] += 1
        result.readout[0, 0] += 1  # the final readout state is compared too, and counted
        return result

    monkeypatch.setattr(sim, "run_backend", faulty)
    whole = check_backend(net, x, "onnx", record=True)
    streamed = check_backend(net, x, "onnx")
    assert streamed.streamed and whole.values_differing == streamed.values_differing == 3
    assert "'blocks.0.ssm.re' at model step 7 (sample 2, compartment 3)" in whole.divergence
    assert streamed.divergence == whole.divergence


def test_stream_comparison_holds_about_one_reference_tile(compiled_spike_ssm, monkeypatch):
    """What a streamed check holds: the reference runs a tile only when the target needs
    it, so at most about a tile of its traces waits (here tiles of 7 ticks)."""
    import snncompile.reference.simulator as simulator
    from snncompile.simulate import run_backend
    from snncompile.verify.stream import StreamComparison

    net, x = compiled_spike_ssm.netlist, _sdigits(2)
    per_tick = 8 * 2 * sum(p.size + p.input_width for p in net.populations)
    monkeypatch.setattr(simulator, "tile_budget_bytes", lambda: 7 * per_tick)
    tiles_run, held = [], []

    class Comparison(StreamComparison):
        def _match(self, key: str) -> None:
            super()._match(key)
            held.append(sum(c.shape[1] for q in self.pending[0].values() for c in q))

    def need() -> bool:
        tiles_run.append(1)
        return next(tiles, None) is not None

    comparison = Comparison(2, x.shape[1], [p.name for p in net.populations], need)
    tiles, _ = simulator.simulate_into(net, x, comparison.reference)
    run_backend("onnx", net, x, record=True, internals=True, sink=comparison.target)
    assert comparison.finish() is None and comparison.differing == 0
    assert len(tiles_run) > net.total_ticks(x.shape[1]) // 7  # tiles on demand
    traces = len(comparison.widths[0])
    assert max(held) <= 2 * 7 * traces  # model steps of all traces waiting: ~one tile


def test_calibration_in_parts_quantizes_exactly_as_in_one_run(compiled_spike_ssm, monkeypatch):
    """A checkpoint may embed a large calibration batch: it is run in parts, and the peaks
    (maxima) merge to the same quantized network bit for bit."""
    import snncompile.reference.parts as parts
    from snncompile.compiler import compile_model
    from snncompile.ir.netlist import first_difference

    float_net = compiled_spike_ssm.float_netlist
    one_input = parts.bytes_per_input(float_net, compiled_spike_ssm.calibration.shape[1])
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", 3 * one_input)  # 11 parts of the 32 inputs
    import snncompile.quantize.quantize as quantize

    runs = []
    real = quantize.simulate
    monkeypatch.setattr(quantize, "simulate", lambda *a, **k: runs.append(1) or real(*a, **k))
    parts = compile_model(SPIKE_SSM)
    assert len(runs) == 11  # the calibration peaks ran in parts
    assert first_difference(parts.netlist, compiled_spike_ssm.netlist) is None


def _synthetic_stream(tiles: list[dict[str, np.ndarray]], widths: dict[str, int]):
    """A StreamComparison whose reference hands over the given tiles on demand."""
    from snncompile.verify.stream import StreamComparison

    ran: list[int] = []
    length = sum(next(iter(t.values())).shape[1] for t in tiles)

    def need() -> bool:
        if len(ran) == len(tiles):
            return False
        start = sum(next(iter(t.values())).shape[1] for t in tiles[: len(ran)])
        for key, values in tiles[len(ran)].items():
            comparison.reference.put(key, start, values)
        ran.append(1)
        return True

    comparison = StreamComparison(2, length, ["a", "b"], need)
    for key, width in widths.items():
        comparison.reference.declare(key, width)
    return comparison, ran


def test_stream_comparison_of_a_target_wrong_at_every_step():
    """Every value differs from step 0 on: the first divergence is step 0 of the first
    trace in population order, every value is counted, in order of declaration."""
    rng = np.random.default_rng(0)
    ref = {"a": rng.integers(0, 9, (2, 12, 3)), "b": rng.integers(0, 9, (2, 12, 2))}
    tiles = [{k: v[:, i : i + 4] for k, v in ref.items()} for i in (0, 4, 8)]
    comparison, ran = _synthetic_stream(tiles, {"a": 3, "b": 2})
    for key in ("b", "a"):
        comparison.target.declare(key, ref[key].shape[2])
    for step in range(12):
        for key in ("b", "a"):
            comparison.target.put(key, step, ref[key][:, step : step + 1] + 1)
        assert len(ran) == step // 4 + 1  # the reference runs a tile only when needed
    assert comparison.finish() is None
    found = comparison.divergence()
    assert (found.population, found.step, found.sample, found.compartment) == ("a", 0, 0, 0)
    assert found.differing == {"a": 2 * 12 * 3, "b": 2 * 12 * 2}
    assert comparison.compared == comparison.differing == 2 * 12 * 5


def test_stream_comparison_reports_a_width_mismatch_without_running_ahead():
    ref = {"a": np.zeros((2, 12, 3), np.int64), "b": np.zeros((2, 12, 2), np.int64)}
    tiles = [{k: v[:, i : i + 4] for k, v in ref.items()} for i in (0, 4, 8)]
    comparison, ran = _synthetic_stream(tiles, {"a": 3, "b": 2})
    comparison.target.declare("a", 3)
    comparison.target.declare("b", 5)
    for step in range(3):
        comparison.target.put("b", step, np.zeros((2, 1, 5), np.int64))
    assert ran == []  # nothing comparable: the reference was not run for the target
    assert comparison.finish() == "trace widths differ: {'a': 3, 'b': 2} and {'a': 3, 'b': 5}"


def test_an_accuracy_drop_is_reported_in_points_as_the_option_takes_it() -> None:
    """--max-accuracy-drop is in points (1.0 by default); the failure said
    'accuracy drop 0.8600 > 0.01', a fraction against a fraction."""
    from types import SimpleNamespace

    from snncompile.verify.quantized import Tolerances, _failures

    report = SimpleNamespace(
        argmax_agreement=1.0, accuracy_delta=-0.86, float_accuracy=0.96,
        quantized_accuracy=0.10, spike_agreement={}, lowering_relative_error=0.0,
        logit_relative_error=0.0,
    )  # fmt: skip
    tolerances = Tolerances(min_argmax_agreement=None, max_accuracy_drop=0.01)
    assert _failures(report, tolerances) == [
        "accuracy drop 86.00 points > 1 (float 96.00%, quantized 10.00%)"
    ]


def test_each_criterion_passes_at_its_bound_and_fails_past_it() -> None:
    """The criteria are "at least" and "at most": a value exactly at the bound passes
    (--min-argmax-agreement 1.0 with full agreement, a drop of exactly the allowed
    points, a logit error exactly at its maximum, spike agreement exactly at its
    minimum); a NaN logit error fails."""
    from types import SimpleNamespace

    from snncompile.verify.quantized import Tolerances, _failures

    def report(argmax: float, delta: float, logit: float, spikes: float) -> SimpleNamespace:
        return SimpleNamespace(
            argmax_agreement=argmax, accuracy_delta=delta, float_accuracy=0.5,
            quantized_accuracy=0.5 + delta, spike_agreement={"s": spikes},
            lowering_relative_error=0.0, logit_relative_error=logit, argmax_margins={},
        )  # fmt: skip

    tolerances = Tolerances(
        min_argmax_agreement=1.0,
        max_accuracy_drop=0.25,
        max_logit_error=0.125,
        min_spike_agreement=0.75,
    )
    assert _failures(report(1.0, -0.25, 0.125, 0.75), tolerances) == []
    failed = _failures(report(0.96875, -0.375, 0.25, 0.5), tolerances)
    assert [f.split()[0] for f in failed] == ["argmax", "accuracy", "logit", "spike"], failed
    assert [f.split()[0] for f in _failures(report(1.0, 0.0, math.nan, 1.0), tolerances)] == [
        "logit"
    ]


def test_an_error_against_all_zero_float_logits_is_infinite_not_zero() -> None:
    """Where every float logit is 0 the relative errors read 0 whatever the quantized
    logits were, and a silent float model passed (helper-72); a NaN lowering error
    passed too."""
    from types import SimpleNamespace

    from snncompile.verify.quantized import Tolerances, _failures, _relative

    assert (_relative(0.5, 0.0), _relative(0.0, 0.0), _relative(1.0, 4.0)) == (math.inf, 0, 0.25)
    report = SimpleNamespace(
        argmax_agreement=1.0, accuracy_delta=0.0, spike_agreement={},
        lowering_relative_error=math.nan, logit_relative_error=math.inf,
    )  # fmt: skip
    failed = _failures(report, Tolerances())
    assert [f.split()[0] for f in failed] == ["logit", "lowering"], failed


def test_tolerances_taken_by_position_keep_their_meaning() -> None:
    """max_logit_error came after the fields callers passed by position (helper-72:
    inserted before min_spike_agreement, Tolerances(0.98, 0.01, 0.95) set it instead)."""
    from snncompile.verify.quantized import Tolerances

    tolerances = Tolerances(0.98, 0.01, 0.95, 1e-9)
    assert (tolerances.min_spike_agreement, tolerances.max_logit_error) == (0.95, 0.5)


@pytest.mark.parametrize("value", ["0.5", 0.5j, True, [0.5], np.array([0.5])])
def test_a_tolerance_that_is_not_a_real_number_is_an_argument_type_error(value: object) -> None:
    # A string or complex was a bare TypeError from the range comparison; True passed
    # as 1.0. The error is both the project's (exit 2) and Python's TypeError.
    from snncompile.errors import ArgumentTypeError
    from snncompile.verify.quantized import Tolerances

    with pytest.raises(ArgumentTypeError, match="tolerance max_logit_error must be a real"):
        Tolerances(max_logit_error=value)  # type: ignore[arg-type]


def test_a_tolerance_of_any_real_type_is_taken() -> None:
    from fractions import Fraction

    from snncompile.verify.quantized import Tolerances

    assert Tolerances(max_accuracy_drop=Fraction(1, 100)).max_accuracy_drop == 0.01


def test_numpy_tolerances_are_stored_as_floats_and_the_report_is_plain_json() -> None:
    """A numpy float32 tolerance made report.to_dict() unserializable by json.dumps."""
    from snncompile.verify.quantized import Tolerances

    tolerances = Tolerances(np.float32(0.5), np.float64(0.01), np.int64(1), 1e-9)
    assert all(type(v) is float for v in dataclasses.astuple(tolerances))
    report = verify_model(SPIKE_SSM, limit=8, tolerances=tolerances)
    assert json.loads(json.dumps(report.to_dict()))["tolerances"]["min_argmax_agreement"] == 0.5


def test_verify_model_refuses_tolerances_of_another_type() -> None:
    from snncompile.errors import UsageError

    with pytest.raises(UsageError, match="tolerances must be a Tolerances, got dict"):
        verify_model(SPIKE_SSM, tolerances={"max_logit_error": 0.5})  # type: ignore[arg-type]


def test_verify_model_takes_inputs_and_labels_in_memory(tmp_path: Path) -> None:
    # data= took only a file: an array was a bare TypeError.
    from snncompile.data import load_task
    from snncompile.errors import UsageError

    ckpt = Path(__file__).parents[1] / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"
    test = load_task("sdigits").test
    x, y = test.inputs[:16], test.labels[:16]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    from_file = verify_model(ckpt, data=tmp_path / "d.npz")
    in_memory = verify_model(ckpt, data=(x, y))
    assert in_memory.quantized_accuracy == from_file.quantized_accuracy is not None
    assert verify_model(ckpt, data=x).quantized_accuracy is None  # no labels
    # torch tensors and nested lists are arrays too, as calibration batches are
    import torch

    as_tensors = verify_model(ckpt, data=(torch.from_numpy(x), torch.from_numpy(y)))
    as_lists = verify_model(ckpt, data=(x.tolist(), y.tolist()))
    for report in (as_tensors, as_lists):
        assert report.quantized_accuracy == in_memory.quantized_accuracy
        assert report.float_accuracy == in_memory.float_accuracy
        assert report.data == in_memory.data == "the given inputs"
    with pytest.raises(UsageError, match="label 10 is not a class"):
        verify_model(ckpt, data=(x, np.full(16, 10)))


def test_rung_one_is_exact_where_the_output_decays_below_the_ffts_noise(tmp_path) -> None:
    """After an input ends in a run of zeros a causal S4D's output decays below the FFT's
    rounding noise (~1e-16 of the sequence's largest value), where the FFT's sign is
    noise: a binary-s4d spiked on it, and rung 1 (the float64 netlist against PyTorch)
    failed a correct lowering (helper-85: 0.02 after 1,500 zero steps). The reference
    runs the S4D layers by their recurrence, the deployed operations."""
    import torch

    from snncompile.checkpoint import save
    from snncompile.models.backbone import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(
        family="binary-s4d", d_input=1, d_output=3, d_model=8, n_layers=1, d_state=8
    )
    model = build_model(config).eval()
    with torch.no_grad():
        model.encoder.bias.zero_()
        model.blocks[0].ssm.log_A_real += 2.0  # fast-decaying modes: below noise sooner
    x = np.zeros((4, 400, 1))
    x[:, :30] = np.random.default_rng(1).random((4, 30, 1))
    fft = model.double()(torch.from_numpy(x)).detach()
    steps = model.forward_steps(torch.from_numpy(x)).detach()
    assert not torch.equal(fft, steps)  # the FFT's spikes differ from step mode's here
    path = save(model, tmp_path / "m.pt", calibration=torch.from_numpy(x))
    report = verify_model(str(path), data=x, calibration=x)
    assert report.lowering_relative_error < 1e-12, report.failures


def test_an_accuracy_drop_of_exactly_the_allowed_points_passes_from_counts() -> None:
    """verify of a ListOps model on 200 inputs (float 28.00%, quantized 27.00%) failed
    with 'accuracy drop 1.00 points > 1': the delta was 0.27 - 0.28, which is
    -0.010000000000000009 in floats, past the 1.0 / 100 the option gives. It is taken
    from the counts now, at every drop a whole number of inputs makes."""
    from snncompile.verify.quantized import Tolerances, _failures, _Tally

    # 0.7 and 2.1 points are no binary fractions: 0.7 / 100 < 7 / 1000 (helper-87).
    cases = ((200, 2, 1.0), (200, 1, 0.5), (400, 2, 0.5), (100, 3, 3.0), (1000, 7, 0.7),
             (3000, 21, 0.7), (1000, 21, 2.1))  # fmt: skip
    for n, drop, points in cases:
        for float_correct in range(drop + 1, n + 1, max(1, n // 200)):
            tally = _Tally([])
            tally.float_correct, tally.quant_correct = float_correct, float_correct - drop
            report = tally.report(n, 8, 1, labelled=True)
            tolerances = Tolerances(min_argmax_agreement=None, max_accuracy_drop=points / 100)
            assert _failures(report, tolerances) == [], (n, float_correct, report.accuracy_delta)
            tally.quant_correct -= 1  # one input more is past the bound
            report = tally.report(n, 8, 1, labelled=True)
            assert [f.split()[0] for f in _failures(report, tolerances)] == ["accuracy"]


def test_an_agreement_shows_100_percent_only_when_nothing_differs() -> None:
    """helper-85: 'spike agreement 100.00%' printed beside a listed first divergence (a
    few differing values in millions rounded up)."""
    from snncompile.cli_text import agreement

    assert agreement(1.0) == "100.00%"
    assert agreement(1 - 1e-7) == ">99.99%"
    assert agreement(0.99994) == "99.99%" and agreement(0.5) == "50.00%"


def test_a_failed_agreement_never_reads_as_its_bound() -> None:
    """'spike agreement of X 1.0000 < 1.0' of 0.99999 (helper-87)."""
    from snncompile.verify.quantized import below

    assert below(0.99999, 1.0) == "0.99999" and below(0.97996, 0.98) == "0.97996"
    assert below(0.5, 0.98) == "0.5000"
    assert below(0.97994, 0.98) == "0.9799"


def test_an_argmax_failure_gives_the_float_margins_of_the_changed_inputs() -> None:
    """A barely trained model failed rung 2 at 87.5% agreement with no hint that its
    changed predictions were float near-ties (top-two margins of 1e-4, helper-98)."""
    from snncompile.verify.quantized import Tolerances, _failures, _Tally, top_two_margin

    logits = np.array([[1.0, 0.9, -2.0], [4.0, -4.0, 0.0], [0.5, 0.5001, 0.0]])
    np.testing.assert_allclose(top_two_margin(logits), [0.1, 4.0, 0.0001], rtol=1e-9)
    assert top_two_margin(np.ones((2, 1))).tolist() == [0.0, 0.0]
    tally = _Tally([])
    tally.margins = [top_two_margin(logits)]
    tally.changed = [np.array([True, False, True])]
    tally.agree, tally.max_logit = 1, 4.0
    report = tally.report(3, 5, 0, False)
    assert report.argmax_margins == pytest.approx({"median": 0.025, "changed_max": 0.025})
    (failure,) = _failures(report, Tolerances(max_logit_error=None, min_spike_agreement=None))
    assert failure == (
        "argmax agreement 0.3333 < 0.98 (the float model's top-two logit margin on the 2 "
        "changed input(s): at most 0.025 of the largest logit; median over all inputs 0.025)"
    )
