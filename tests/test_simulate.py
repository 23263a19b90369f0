"""`snncompile simulate`: runs an artifact without torch, validates inputs, writes outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from snncompile.artifact import write_artifact
from snncompile.cli import main
from snncompile.compiler import compile_model
from snncompile.data import load_task
from snncompile.reference.simulator import simulate

CHECKPOINT = Path(__file__).parents[1] / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"


@pytest.fixture(scope="module")
def compiled():  # type: ignore[no-untyped-def]
    """The bundled checkpoint compiled once for the module (no test changes it)."""
    return compile_model(CHECKPOINT)


@pytest.fixture(scope="module")
def artifact(compiled, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    return write_artifact(compiled, tmp_path_factory.mktemp("a") / "m.ref")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = load_task("sdigits")
    path = tmp_path_factory.mktemp("x") / "x.npz"
    np.savez(path, x=task.test.inputs[:12], y=task.test.labels[:12])
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_simulate_writes_what_the_reference_computes(artifact, compiled, inputs, tmp_path, capsys):
    out = tmp_path / "out.npz"
    code, text, _ = _run(capsys, "simulate", str(artifact), "--input", str(inputs), "-o", str(out))
    assert code == 0 and "predictions" in text and "accuracy" in text
    got = np.load(out)
    x = np.load(inputs)["x"].astype(np.float64)
    want = simulate(compiled.netlist, x)
    assert np.array_equal(got["readout"], want.readout)
    assert np.array_equal(got["predictions"], want.logits.argmax(1))


def test_data_writes_the_models_task_split_for_simulate(artifact, tmp_path, capsys):
    out = tmp_path / "test.npz"
    code, text, _ = _run(capsys, "data", str(CHECKPOINT), "-o", str(out), "--limit", "12")
    assert code == 0 and text == f"wrote {out}: the sdigits test split, x (12, 64, 1), labels y\n"
    task = load_task("sdigits")
    with np.load(out) as got:
        assert sorted(got.files) == ["x", "y"]
        assert np.array_equal(got["x"], task.featurize(task.test.inputs[:12]).astype(np.float32))
        assert np.array_equal(got["y"], task.test.labels[:12])
    code, text, _ = _run(capsys, "simulate", str(artifact), "--input", str(out))
    assert code == 0 and "accuracy" in text
    # an existing file is replaced only with --overwrite, and only an .npz of x and y
    code, _, err = _run(capsys, "data", str(CHECKPOINT), "-o", str(out), "--split", "train")
    assert (code, err) == (2, f"error: -o {out} exists; pass --overwrite to replace it\n")
    argv = ["data", str(CHECKPOINT), "--split", "train", "--overwrite", "-o"]
    assert _run(capsys, *argv, str(out))[0] == 0
    with np.load(out) as got:
        assert len(got["y"]) == len(task.train.labels)
    other = tmp_path / "mine.npz"
    np.savez(other, x=np.zeros((1, 2, 1)), z=np.zeros(3))
    code, _, err = _run(capsys, *argv, str(other))
    assert code == 2 and "is not an .npz of x and y, or x, alone (as data writes)" in err
    assert sorted(np.load(other).files) == ["x", "z"]
    # a zip whose one member is named x.npy but is not an array (helper-74: replaced)
    notes = tmp_path / "notes.npz"
    with zipfile.ZipFile(notes, "w") as archive:
        archive.writestr("x.npy", "my notes, not an array")
    code, _, err = _run(capsys, *argv, str(notes))
    assert code == 2 and "is not an .npz of x and y, or x, alone (as data writes)" in err
    with zipfile.ZipFile(notes) as archive:
        assert archive.read("x.npy") == b"my notes, not an array"
    code, _, err = _run(capsys, *argv, str(tmp_path / "x.npy"))
    assert code == 2 and "name an .npz file" in err


def test_data_of_a_checkpoint_without_a_bundled_task_is_exit_2(tmp_path, capsys):
    import snncompile

    model = snncompile.load(CHECKPOINT)
    snncompile.save(model, tmp_path / "m.pt", meta={})
    code, _, err = _run(capsys, "data", str(tmp_path / "m.pt"), "-o", str(tmp_path / "x.npz"))
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'm.pt'}: its metadata names no bundled task to take data from\n",
    )
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_data_writes_the_calibration_batch_a_checkpoint_holds(tmp_path, capsys):
    """--split calibration: the embedded batch, x alone (float64, as export reads it),
    which --overwrite may replace with a split's x and y and back; a checkpoint without
    one is exit 2."""
    import snncompile
    from snncompile.checkpoint import load_checkpoint

    out = tmp_path / "calib.npz"
    argv = ["data", str(CHECKPOINT), "--split", "calibration", "-o", str(out)]
    assert _run(capsys, *argv, "--limit", "5")[0] == 0
    assert _run(capsys, "data", str(CHECKPOINT), "-o", str(out), "--overwrite")[0] == 0
    assert _run(capsys, *argv, "--overwrite")[0] == 0
    with np.load(out) as got:
        assert got.files == ["x"] and got["x"].dtype == np.float64
        assert np.array_equal(got["x"], load_checkpoint(CHECKPOINT).calibration.numpy())
    snncompile.save(snncompile.load(CHECKPOINT), tmp_path / "m.pt", meta={})
    code, _, err = _run(capsys, "data", str(tmp_path / "m.pt"), *argv[2:], "--overwrite")
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'm.pt'} holds no calibration batch (snncompile.save writes one "
        "when given calibration=)\n",
    )


def test_data_and_evaluate_of_a_checkpoint_with_its_own_task_are_exit_2(tmp_path, capsys):
    # A task name of the user's own is a valid file (docs/formats.md): it was exit 6.
    import snncompile

    model = snncompile.load(CHECKPOINT)
    snncompile.save(model, tmp_path / "m.pt", meta={"task": "mytask"})
    expected = (
        f"error: {tmp_path / 'm.pt'}: its task 'mytask' is not a bundled one (sdigits, "
        "listops); there is no data to take from it\n"
    )
    code, _, err = _run(capsys, "data", str(tmp_path / "m.pt"), "-o", str(tmp_path / "x.npz"))
    assert (code, err) == (2, expected)
    code, _, err = _run(capsys, "evaluate", str(tmp_path / "m.pt"))
    assert (code, err) == (2, expected)
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_simulate_json_one_sequence_and_steps(artifact, tmp_path, capsys):
    one = tmp_path / "one.npy"
    np.save(one, load_task("sdigits").test.inputs[0])  # (steps, inputs): one sequence
    code, text, _ = _run(
        capsys, "simulate", str(artifact), "--input", str(one), "--steps", "32", "--json"
    )
    summary = json.loads(text)
    assert code == 0 and summary["n"] == 1 and summary["steps"] == 32
    assert set(summary["spike_rates"]) == {"blocks.0.act", "blocks.1.act"}
    code, text, _ = _run(capsys, "simulate", str(artifact), "--input", str(one), "--steps", "32")
    assert code == 0 and f"{artifact}: 1 input x 32 steps on reference" in text  # "1 input(s)"


def test_simulate_does_not_import_torch(artifact, inputs, tmp_path):
    script = (
        "import sys\n"
        "from snncompile.cli import main\n"
        "try:\n"
        f"    main(['simulate', {str(artifact)!r}, '--input', {str(inputs)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_tampered_artifact_is_refused(artifact, inputs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy.ref"
    shutil.copytree(artifact, copy)
    with (copy / "netlist.npz").open("r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    code, _, err = _run(capsys, "simulate", str(copy), "--input", str(inputs))
    assert code == 6 and "netlist.npz" in err


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (np.zeros((2, 8, 3)), 2, "shape (batch, steps, 1) or (steps, 1), got (2, 8, 3)"),
        # one sequence of the wrong width: named as given, not as a batch of one
        (np.zeros((8, 64)), 2, "(steps, 1), got (8, 64)"),
        (np.array([["a", "b"]]), 2, "real numeric"),
        (np.full((1, 8, 1), np.nan), 2, "--input holds NaN or inf"),
        # finite, but inf as float64: numpy's overflow warning went to stderr too (audit46)
        (np.full((1, 8, 1), np.longdouble("1e4000")), 2, "--input holds values beyond the"),
        (
            {"x": np.zeros((2, 8, 1)), "y": np.array([3, 10])},
            2,
            "label 10 is not a class of this model (classes 0 to 9)",
        ),
        ({"x": np.zeros((2, 8, 1)), "y": np.array([-1, 0])}, 2, "label -1 is not a class"),
    ],
)
def test_bad_inputs_are_refused(artifact, tmp_path, capsys, content, code, message):
    path = _save(tmp_path / ("bad.npz" if isinstance(content, dict) else "bad.npy"), content)
    out = tmp_path / "out.npz"
    got, _, err = _run(capsys, "simulate", str(artifact), "--input", str(path), "-o", str(out))
    assert got == code and message in err and err.count("\n") == 1
    assert not out.exists()


def _save(path: Path, content: np.ndarray | dict) -> Path:
    if isinstance(content, dict):
        np.savez(path, **content)
    else:
        np.save(path, content)
    return path


SEQUENCES = np.random.default_rng(0).random((3, 8, 1))
LAYOUTS = {
    "batch.npy": (SEQUENCES, SEQUENCES),
    "one sequence.npy": (SEQUENCES[0], SEQUENCES[:1]),
    "x and labels.npz": ({"x": SEQUENCES, "y": np.arange(3)}, SEQUENCES),
    "one array.npz": ({"inputs": SEQUENCES}, SEQUENCES),
    "one array and labels.npz": ({"inputs": SEQUENCES, "y": np.arange(3)}, SEQUENCES),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_inputs_and_calibration_files_take_the_same_layouts(tmp_path, name):
    """--input (simulate), --data (verify) and --calib (export, verify) read one format:
    --calib took a one-array .npz of any name but no single sequence, --input the
    reverse."""
    from snncompile.cli import _calibration
    from snncompile.compiler import calibration_inputs
    from snncompile.simulate import load_inputs

    content, want = LAYOUTS[name]
    path = _save(tmp_path / name.replace(" ", "_"), content)
    np.testing.assert_array_equal(load_inputs(path, 1, 10)[0], want)
    calib = calibration_inputs(None, _calibration(str(path)), 1, purpose="test")
    np.testing.assert_array_equal(calib, want)


def test_an_npz_of_several_arrays_none_named_x_is_refused_alike(tmp_path):
    from snncompile.cli import _calibration
    from snncompile.errors import UsageError
    from snncompile.simulate import load_inputs

    path = _save(tmp_path / "two.npz", {"a": SEQUENCES, "b": SEQUENCES})
    for read in (lambda: load_inputs(path, 1, 10), lambda: _calibration(str(path))):
        with pytest.raises(UsageError, match="needs an array named x, or a single array"):
            read()


def test_bad_steps_and_output_name(artifact, inputs, capsys):
    code, _, err = _run(capsys, "simulate", str(artifact), "--input", str(inputs), "--steps", "0")
    assert code == 2 and "--steps" in err
    code, _, err = _run(capsys, "simulate", str(artifact), "--input", str(inputs), "-o", "x.txt")
    assert code == 2 and ".npz" in err


def test_output_may_not_replace_the_input_or_a_file_of_the_artifact(artifact, inputs, capsys):
    before = inputs.read_bytes(), (artifact / "netlist.npz").read_bytes()
    argv = ["simulate", str(artifact), "--input", str(inputs), "-o"]
    code, _, err = _run(capsys, *argv, str(inputs))
    assert code == 2 and "is the --input file" in err
    code, _, err = _run(capsys, *argv, str(artifact / "netlist.npz"))
    assert code == 2 and "is inside the artifact" in err
    assert (inputs.read_bytes(), (artifact / "netlist.npz").read_bytes()) == before


def test_simulate_on_lava_equals_the_reference(compiled, tmp_path, capsys):
    """A loihi2 artifact read back from disk, run in Lava: the same outputs, exactly."""
    art = tmp_path / "m.loihi2"
    code, _, err = _run(capsys, "export", str(CHECKPOINT), "--target", "loihi2", "-o", str(art))
    assert code == 0, err
    x = load_task("sdigits").test.inputs[:6]
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for backend in ("reference", "lava"):
        outs[backend] = tmp_path / f"{backend}.npz"
        argv = ["simulate", str(art), "--input", str(tmp_path / "x.npy"), "--backend", backend]
        code, text, err = _run(capsys, *argv, "-o", str(outs[backend]))
        assert code == 0 and f"on {backend}" in text, err
        # Lava's own processes count no events (docs/targets.md): the summary says so.
        uncounted = "(Lava's own Dense, Sparse and LIF count none)"
        assert (uncounted in text) == (backend == "lava")
    lava, ref = np.load(outs["lava"]), np.load(outs["reference"])
    assert np.array_equal(lava["readout"], ref["readout"])
    assert np.array_equal(lava["predictions"], ref["predictions"])
    want = simulate(compiled.netlist, x.astype(np.float64))
    assert np.array_equal(ref["readout"], want.readout)
    assert "spike rates      blocks.0.act" in text  # Lava reports them like the reference


def test_simulate_reports_its_steps(artifact, inputs):
    from snncompile.simulate import simulate_artifact

    steps: list[str] = []
    simulate_artifact(artifact, inputs, on_step=steps.append)
    assert steps == ["read", "simulate"]


def test_simulate_shows_progress_on_a_terminal_only(artifact, inputs, capsys, monkeypatch):
    argv = ("simulate", str(artifact), "--input", str(inputs))
    code, _, err = _run(capsys, *argv)
    assert code == 0 and err == ""  # piped: nothing but errors on stderr
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, text, err = _run(capsys, *argv)
    assert code == 0 and "predictions" in text
    assert "simulating on reference" in err


def test_huge_inputs_saturate_with_their_sign(artifact) -> None:
    """Beyond 2**63 the int64 cast used to wrap: 1e300 was sent as the negative limit."""
    from snncompile.artifact import read_artifact
    from snncompile.reference.kinds import Events
    from snncompile.reference.simulator import encode_input

    net = read_artifact(artifact).netlist
    limit = (1 << (net.formats.message_bits - 1)) - 1
    x = np.array([1e300, -1e300, 1e18, 0.0]).reshape(1, 4, 1)
    events = Events()
    sent = encode_input(net, x, events)
    assert sent.ravel().tolist() == [limit, -limit, limit, 0]
    assert events.counts[net.input.name] == 3


@pytest.mark.parametrize("kind", ["empty.npy", "empty.npz", "truncated.npz"])
def test_empty_or_truncated_input_file_is_exit_6(artifact, inputs, tmp_path, capsys, kind):
    path = tmp_path / kind
    if kind == "truncated.npz":
        path.write_bytes(inputs.read_bytes()[:200])
    else:
        path.write_bytes(b"")
    code, _, err = _run(capsys, "simulate", str(artifact), "--input", str(path))
    assert code == 6 and len(err.strip().splitlines()) == 1 and kind in err


def test_a_large_batch_runs_in_parts_with_the_same_results(artifact, inputs, monkeypatch):
    """Parts bound the memory of a run; predictions, readout, events and spike rates are
    those of one whole-batch run."""
    import snncompile.reference.parts as parts
    import snncompile.simulate as sim

    x = np.load(inputs)["x"][:7]
    whole = sim.simulate_artifact(artifact, x)
    calls = []
    real = sim.run_backend
    from snncompile.artifact import read_artifact

    net = read_artifact(artifact).netlist
    one_input = parts.bytes_per_input(net, x.shape[1])  # the reference records no trace
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", one_input)  # one input per part
    monkeypatch.setattr(sim, "run_backend", lambda *a, **k: calls.append(1) or real(*a, **k))
    parts = sim.simulate_artifact(artifact, x)
    assert len(calls) == 7
    assert parts.predictions == whole.predictions
    assert parts.saturation_events == whole.saturation_events
    for name, rate in whole.spike_rates.items():
        assert parts.spike_rates[name] == pytest.approx(rate, rel=1e-12)


@pytest.mark.parametrize("backend", ["reference", "onnx", "lava"])
def test_progress_rises_to_the_whole_run_over_parts(artifact, inputs, backend, monkeypatch):
    """on_progress sees fractions of the whole batch's run that only grow and end at 1,
    also when the batch runs in parts (one input each here; onnx streams in one part)."""
    import snncompile.reference.parts as parts
    import snncompile.simulate as sim
    from snncompile.artifact import read_artifact

    net = read_artifact(artifact).netlist
    x = np.load(inputs)["x"][:3, :20]
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    recorded = spiking if backend == "lava" else []  # what each backend's part holds
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", parts.bytes_per_input(net, 20, recorded))
    seen: list[float] = []
    summary = sim.simulate_artifact(artifact, x, backend=backend, on_progress=seen.append)
    assert summary.n == 3
    assert seen == sorted(seen) and 0 < seen[0] < 1 and seen[-1] == 1.0
    if backend != "onnx":  # each part ends at its share of the batch
        for boundary in (1 / 3, 2 / 3):
            assert min(abs(f - boundary) for f in seen) < 1e-12
    # The reference reports each tile (one per input here), the others each step.
    assert len(seen) >= (3 if backend == "reference" else net.total_ticks(20))


def test_the_spinner_shows_a_percentage_only_when_it_changes():
    from snncompile.cli import _percent

    shown: list[str] = []
    progress = _percent(shown.append, "simulating on lava")
    for fraction in (0.001, 0.004, 0.5, 0.503, 1.0):
        progress(fraction)
    assert shown == [
        "simulating on lava: 0%",
        "simulating on lava: 50%",
        "simulating on lava: 100%",
    ]
    assert _percent(None, "simulating") is None  # no terminal, no spinner


@pytest.mark.parametrize("backend", ["reference", "onnx"])
def test_saturation_past_the_calibrated_length_is_a_warning_naming_the_cure(
    artifact, inputs, tmp_path, capsys, backend
):
    """A mean readout sums every step: calibrated on 64-step inputs, it clips on 1,000
    steps. The run completes (exit 0) and says why its outputs are unreliable."""
    long_input = tmp_path / "long.npy"
    np.save(long_input, np.random.default_rng(0).random((1, 1000, 1)))
    args = ("simulate", str(artifact), "--backend", backend, "--input", str(long_input))
    code, out, err = _run(capsys, *args)
    assert code == 0 and "event(s) in output" in out
    assert re.fullmatch(
        r"warning: \d+ saturation event\(s\) in output: the network was calibrated on "
        r"64-step inputs and these have 1000; clipped values make the outputs unreliable: "
        r"calibrate on inputs this long \(--calib\)\n",
        err,
    ), err
    code, _, err = _run(capsys, *args[:-1], str(inputs))
    assert code == 0 and err == ""  # no saturation, no warning


def test_a_long_sequence_runs_in_the_memory_of_a_tile(artifact):
    """Messages live only for a tile of ticks: 20,000 steps of the bundled model (1.4 GiB
    if every message were kept, which the part budget once counted and refused past
    14,000 steps) run at batch 1 within a few tens of MiB."""
    import tracemalloc

    from snncompile.artifact import read_artifact
    from snncompile.reference import parts, simulator

    net = read_artifact(artifact).netlist
    steps = 20_000
    all_messages = 8 * net.total_ticks(steps) * sum(p.size + p.input_width for p in net.populations)
    assert all_messages > parts.RUN_BUDGET_BYTES
    x = np.random.default_rng(0).random((1, steps, 1))
    assert parts.part_size(net, 1, steps) == 1
    fractions: list[float] = []  # one call per tile
    tracemalloc.start()
    try:
        result = simulate(net, x, progress=fractions.append)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.steps == net.total_ticks(steps)
    assert peak_bytes < 3 * simulator.tile_budget_bytes() + parts.bytes_per_input(net, steps)
    # tracemalloc does not see the numba kernels' arrays: the tiles show they stay small
    assert len(fractions) >= all_messages / simulator.tile_budget_bytes()
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_large_batch_runs_in_the_memory_of_a_tile(artifact, monkeypatch):
    """A batch one model step of which exceeds the tile budget runs in groups of samples
    within it, one group after another: a part of 6,000 sdigits inputs ran one-tick
    tiles of 456 MB, each array past glibc's largest mmap threshold and faulted in again
    every tile (2026-12-07: simulate of 12,000 inputs, 429,000 page faults). Here a 1 MiB
    budget against 64 samples of 76 KB a tick: the one-tick tiles peaked at 12.6 MB
    (tracemalloc), groups of 13 samples at 2.9 MB; the same readout."""
    import tracemalloc

    from snncompile.artifact import read_artifact
    from snncompile.reference import simulator

    net = read_artifact(artifact).netlist
    budget = 1 << 20
    x = np.random.default_rng(0).random((64, 3, 1))
    one_step = 8 * net.ticks_per_step * sum(p.size + p.input_width for p in net.populations)
    assert len(x) * one_step > 4 * budget
    whole = simulate(net, x)
    monkeypatch.setattr(simulator, "tile_budget_bytes", lambda: budget)
    tracemalloc.start()
    try:
        grouped = simulate(net, x)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(grouped.readout, whole.readout)
    assert peak_bytes < 4 * budget  # a tile and its temporaries


def test_simulate_charges_the_reference_no_traces(artifact, monkeypatch):
    """simulate's reference run records no trace, so its budget counts none: a sequence
    whose spiking traces alone would pass the budget runs; Lava, which records the
    spiking populations for the spike rates, is refused."""
    from snncompile.artifact import read_artifact
    from snncompile.errors import UsageError
    from snncompile.reference import parts
    from snncompile.simulate import run_in_parts

    net = read_artifact(artifact).netlist
    steps = 2_000
    spiking = [p.name for p in net.populations if p.compartment.spiking]
    untraced = parts.bytes_per_input(net, steps)
    assert parts.bytes_per_input(net, steps, spiking) > 2 * untraced
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", 2 * untraced)
    x = np.random.default_rng(1).random((2, steps, 1))
    result = run_in_parts("reference", net, x)
    assert result.logits.shape[0] == 2 and set(result.spike_rates) == set(spiking)
    with pytest.raises(UsageError, match="one input of 2000 steps needs"):
        run_in_parts("lava", net, x)


def test_an_input_file_that_unpacks_past_the_limit_is_refused_unread(tmp_path, monkeypatch):
    import snncompile.compiler as compiler
    from snncompile.errors import UsageError

    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((4096, 64, 1)))  # 2 MiB unpacked, a few KB packed
    monkeypatch.setattr(compiler, "MAX_ARRAY_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("read before the size check"))
    with pytest.raises(
        UsageError, match=r"holds [\d,]+ bytes of arrays, more than the limit of 1,048,576"
    ):
        compiler.read_array_file(bomb, what="--input")


def test_runs_of_parts_merge_to_the_whole_runs_statistics(artifact, inputs):
    """merge_runs: peaks are the whole run's maxima, activity and spike rates its means."""
    from snncompile.artifact import read_artifact
    from snncompile.reference.parts import merge_runs

    net = read_artifact(artifact).netlist
    x = np.load(inputs)["x"][:5]
    whole = simulate(net, x, peaks=True, activity=True)
    runs = [simulate(net, x[i : i + 2], peaks=True, activity=True) for i in range(0, 5, 2)]
    assert any(run.peaks != runs[0].peaks for run in runs[1:])  # so the merge matters
    merged = merge_runs(runs)
    assert merged.peaks == whole.peaks and merged.events == whole.events
    for stat in ("activity", "spike_rates"):
        expected = getattr(whole, stat)
        assert expected and set(getattr(merged, stat)) == set(expected)
        for key, value in expected.items():
            assert getattr(merged, stat)[key] == pytest.approx(value, rel=1e-12), (stat, key)
    assert np.array_equal(merged.readout, whole.readout)


def test_simulate_replaces_its_own_output_but_no_other_file(artifact, inputs, tmp_path, capsys):
    out = tmp_path / "out.npz"
    argv = ("simulate", str(artifact), "--input", str(inputs), "-o")
    assert _run(capsys, *argv, str(out))[0] == 0
    assert _run(capsys, *argv, str(out))[0] == 0  # a rerun replaces its own output
    data = tmp_path / "data.npz"
    np.savez(data, x=np.ones(3))
    code, _, err = _run(capsys, *argv, str(data))
    assert code == 2 and err == f"error: -o {data} exists and is not a simulate output; " \
        "not replacing it (remove it or name another file)\n"  # fmt: skip
    with np.load(data) as kept:
        assert kept.files == ["x"]


def test_a_file_output_ending_in_a_separator_is_refused(artifact, inputs, tmp_path, capsys):
    """-o out.npz/ (or train's -o model/) means a directory: writing a file named so
    instead surprised the user."""
    slashed = f"{tmp_path / 'out.npz'}{os.sep}"
    code, _, err = _run(capsys, "simulate", str(artifact), "--input", str(inputs), "-o", slashed)
    assert code == 2 and "names a directory" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "train", "--family", "spike-ssm", "-o", f"{tmp_path / 'm'}{os.sep}")
    assert code == 2 and "names a directory" in err
    assert os.listdir(tmp_path) == []


def _session_processes(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes of session `sid` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["sigint-group", "sigterm-group", "sigterm-cli-only"],
)
def test_a_signal_mid_lava_run_stops_every_process(
    artifact: Path, inputs: Path, tmp_path: Path, signum: int, to_group: bool
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group), a group SIGTERM, or a SIGTERM to
    the CLI's process alone while Lava steps: exit 130 / 143 with the one-line message,
    no output, no process left. Lava's workers each died with a traceback on Ctrl-C and
    the CLI then waited for them forever; a worker blocked in a lock ignored the SIGTERM
    meant to end it; a group SIGTERM ended Lava's shared-memory manager, and Python's
    resource tracker then warned of its segments on stderr (two more lines)."""
    with np.load(inputs) as data:
        np.save(tmp_path / "long.npy", np.tile(data["x"], (1, 40, 1)))  # ~15 s of Lava
    out = tmp_path / "out.npz"
    argv = ["simulate", str(artifact), "--input", str(tmp_path / "long.npy")]
    run = subprocess.Popen(
        [sys.executable, "-m", "snncompile", *argv, "--backend", "lava", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_session_processes(run.pid)) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)  # until Lava's workers run (about 30 processes)
        time.sleep(1.0)
        if to_group:
            os.killpg(run.pid, signum)
        else:
            os.kill(run.pid, signum)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    expected = {signal.SIGINT: "error: interrupted", signal.SIGTERM: "error: terminated"}
    assert run.returncode == 128 + signum, err
    assert err.startswith(expected[signum]), err
    assert err.count("\n") == 1, err
    assert not out.exists()
    deadline = time.monotonic() + 10
    while _session_processes(run.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_processes(run.pid) == []


def test_a_closed_stdout_ends_the_cli_silently_with_sigpipes_status() -> None:
    """`snncompile inspect ... | head -1`: click exited 1 (our code for a bug) when the
    reader had gone; now 141 and nothing on stderr, as a process ended by SIGPIPE."""
    run = subprocess.Popen(
        [sys.executable, "-m", "snncompile", "inspect", str(CHECKPOINT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run.stdout.close()  # before it writes anything (it imports for a second first)
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 141, err
    assert err == ""


def test_a_reader_leaving_mid_report_ends_the_cli_with_sigpipes_status_unbuffered(
    artifact, tmp_path
) -> None:
    """Under PYTHONUNBUFFERED a report larger than the pipe, its reader gone after the
    first bytes, lost its rest silently and exited 0 (helper-71); now 141 as buffered."""
    many = tmp_path / "many.npy"
    np.save(many, np.zeros((12000, 1, 1)))  # a JSON report of about 84 KB
    run = subprocess.Popen(
        [sys.executable, "-m", "snncompile", "simulate", str(artifact), "--input", str(many),
         "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert os.read(run.stdout.fileno(), 10)  # the report has started: the pipe is full
    time.sleep(0.5)  # the writer waits in its one write of the rest
    run.stdout.close()
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 141, err
    assert err == ""


@pytest.mark.parametrize("report", ["small", "larger than the buffer"])
def test_a_full_stdout_is_one_line_and_exit_2(artifact, inputs, tmp_path, report) -> None:
    """`> /dev/full`: the small report failed at the interpreter's final flush (exit 120,
    Python's "Exception ignored" lines), the large one mid-write (exit 6, as a corrupt
    input; helper-74). Both are an output that cannot be written: one line, exit 2."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    if report == "small":
        argv = ["inspect", str(artifact)]
    else:
        many = tmp_path / "many.npy"
        np.save(many, np.zeros((12000, 1, 1)))  # a JSON report of about 84 KB
        argv = ["simulate", str(artifact), "--input", str(many), "--json"]
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "snncompile", *argv], stdout=full, stderr=subprocess.PIPE
        )
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert err == "error: standard output: cannot write: No space left on device\n"


def test_a_checkpoint_given_as_the_artifact_is_named_a_file(inputs, capsys) -> None:
    code, _, err = _run(capsys, "simulate", str(CHECKPOINT), "--input", str(inputs))
    assert code == 6
    assert err == f"error: {CHECKPOINT}: is a file, not an artifact directory " \
        "(snncompile export writes one)\n"  # fmt: skip


def test_debug_is_taken_after_the_subcommand_too(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.pt"
    for argv in (["--debug", "inspect", str(missing)], ["inspect", str(missing), "--debug"]):
        code, _, err = _run(capsys, *argv)
        assert code == 6 and "Traceback" in err, err
        assert err.endswith(f"error: {missing}: no such file\n")


def test_bool_spikes_are_inputs_of_zeros_and_ones(artifact, tmp_path, capsys) -> None:
    """Spike trains saved as bool (as a spiking framework keeps them) simulate as 0/1."""
    spikes = np.random.default_rng(0).random((3, 16, 1)) < 0.3
    outs = []
    for name, data in (("bool", spikes), ("float", spikes.astype(np.float64))):
        np.save(tmp_path / f"{name}.npy", data)
        out = tmp_path / f"{name}-out.npz"
        argv = ("simulate", str(artifact), "--input", str(tmp_path / f"{name}.npy"))
        code, _, err = _run(capsys, *argv, "-o", str(out))
        assert code == 0, err
        with np.load(out) as result:
            outs.append(result["readout"])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_steps_are_cut_before_the_inputs_become_float64(monkeypatch):
    """helper-63: a 925 MB bool file with --steps 2 peaked at 9.2 GB, converted whole to
    float64 before the cut. Only the kept steps are converted (and checked)."""
    import snncompile.reference.simulator as simulator
    from snncompile.compiler import check_inputs

    converted = []
    real = simulator.finite_float64
    monkeypatch.setattr(
        simulator, "finite_float64", lambda x, what: converted.append(x.shape) or real(x, what)
    )
    x = np.zeros((3, 50, 2), dtype=bool)
    assert check_inputs(x, 2, what="inputs", steps=4).shape == (3, 4, 2)
    assert converted == [(3, 4, 2)]
    later_nan = np.zeros((1, 10, 2))
    later_nan[0, 7, 0] = np.nan  # in a step the run never reaches
    assert check_inputs(later_nan, 2, what="inputs", steps=7).shape == (1, 7, 2)


def test_steps_and_calibration_length_at_their_edges(artifact, inputs):
    """--steps may be the input's whole length (0 and L + 1 are refused); the warning
    blames the input length only when the inputs are longer than the calibration's."""
    from snncompile.errors import UsageError
    from snncompile.simulate import saturation_warning, simulate_artifact

    x = np.load(inputs)["x"][:2]
    length = x.shape[1]
    whole = simulate_artifact(artifact, x)
    assert simulate_artifact(artifact, x, steps=length).predictions == whole.predictions
    for steps in (0, length + 1):
        with pytest.raises(UsageError, match="--steps"):
            simulate_artifact(artifact, x, steps=steps)
    same = saturation_warning({"out": 3}, 64, 64)
    longer = saturation_warning({"out": 3}, 65, 64)
    assert same is not None and "calibrated on" not in same and "values left the range" in same
    assert longer is not None and "calibrated on 64-step inputs and these have 65" in longer
    assert saturation_warning({"out": 0}, 65, 64) is None
