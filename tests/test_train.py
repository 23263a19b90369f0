"""Training lowers the loss; the CLI trains, saves a loadable checkpoint, and evaluates it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snncompile.checkpoint import load_checkpoint
from snncompile.data import Task, load_task
from snncompile.data.sdigits import Split
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.train import TrainSettings, evaluate, parameter_groups, train


def _small_task() -> Task:
    full = load_task("sdigits")
    train_split = Split(full.train.inputs[:256], full.train.labels[:256])
    return Task("sdigits", 1, 10, train_split, full.test, full.featurize)


def test_a_few_steps_lower_the_loss() -> None:
    task = _small_task()
    torch.manual_seed(0)
    model = build_model(ModelConfig(family="spike-ssm", d_input=1, d_output=10, d_model=16))
    before = evaluate(model, task.train, task.featurize).loss
    train(model, task, TrainSettings(epochs=3, batch_size=32, lr=1e-2))
    after = evaluate(model, task.train, task.featurize).loss
    assert after < before - 0.1


def test_ssm_dynamics_get_their_own_learning_rate() -> None:
    model = build_model(ModelConfig(family="s4d", d_input=1, d_output=10, d_model=8))
    rest, ssm = parameter_groups(model, lr=0.01, weight_decay=0.1)
    ssm_ids = {id(p) for p in ssm["params"]}
    for name, param in model.named_parameters():
        expected = name.rsplit(".", 1)[-1] in {"log_dt", "log_A_real", "A_imag", "B"}
        assert (id(param) in ssm_ids) == expected, name
    assert ssm["lr"] == 1e-3 and ssm["weight_decay"] == 0.0 and rest["lr"] == 0.01


def test_training_progress_is_drawn_on_a_terminal_stderr_only(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The bar went to stdout, and when that was a pipe or file its last frame was
    printed there ahead of `train`'s "saved ..." line; now it is on stderr, as export's
    spinner, and only on a terminal (helper-84)."""
    import rich.console

    import snncompile.train as train_module
    from snncompile import api_train

    def fake_train(model, task, settings, on_epoch=None, on_batch=None):  # type: ignore[no-untyped-def]
        if on_batch is not None:
            on_batch()
            on_epoch(0, 1.0, 0.5)
        return "history"

    monkeypatch.setattr(train_module, "train", fake_train)
    settings = TrainSettings(epochs=1, batch_size=32, lr=1e-2)
    assert api_train._train_with_progress(None, _small_task(), settings, True) == "history"
    assert capsys.readouterr() == ("", "")  # piped: nothing
    monkeypatch.setattr(rich.console.Console, "is_terminal", property(lambda self: True))
    assert api_train._train_with_progress(None, _small_task(), settings, True) == "history"
    out, err = capsys.readouterr()
    assert out == "" and "epoch 1: loss 1.000" in err


def test_cli_train_then_evaluate(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    cmd = [sys.executable, "-m", "snncompile", "train", "--family", "binary-s4d"]
    cmd += ["--epochs", "1", "--width", "8", "--state-size", "8", "--quiet", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout
    ckpt = load_checkpoint(out)
    assert ckpt.meta["task"] == "sdigits"
    assert ckpt.meta["command"].startswith("snncompile train --family binary-s4d")
    # What reproducing the weights needs besides the command (README, "Bundled checkpoints").
    assert ckpt.meta["torch_threads"] == torch.get_num_threads() >= 1
    assert ckpt.meta["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert ckpt.calibration.shape == (32, 64, 1)
    assert ckpt.meta["neuron_method"] is None  # binary-s4d has no reset-refractory neuron
    ev = subprocess.run(
        [sys.executable, "-m", "snncompile", "evaluate", str(out), "--json"],
        capture_output=True,
        text=True,
    )
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert report["accuracy"] == ckpt.meta["test_accuracy"]
    assert set(report["spike_rates"]) == {"blocks.0.act", "blocks.1.act"}
    # what the training recorded, as for the accuracy (it was always null)
    assert report["train_seconds"] == ckpt.meta["train_seconds"] > 0


def test_cli_reports_bad_checkpoint_in_one_line_with_exit_6(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(np.arange(10).tobytes())
    done = subprocess.run(
        [sys.executable, "-m", "snncompile", "evaluate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 6
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")


def test_train_does_not_replace_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    from snncompile.api import train_checkpoint
    from snncompile.errors import UsageError

    notes = tmp_path / "notes.pt"
    notes.write_text("not a model")
    with pytest.raises(UsageError, match="exists and is not an snncompile checkpoint"):
        train_checkpoint(family="s4d", task_name="sdigits", output=notes, epochs=1)
    assert notes.read_text() == "not a model"


def test_train_with_the_compiled_neuron_method_uses_it_and_records_it(tmp_path, monkeypatch):
    from snncompile.api import train_checkpoint
    from snncompile.models.neurons import compiled

    calls = []
    real_forward = compiled.forward
    monkeypatch.setattr(
        compiled, "forward", lambda *a, **k: calls.append(1) or real_forward(*a, **k)
    )
    out = tmp_path / "m.pt"
    train_checkpoint(
        family="spike-ssm", task_name="sdigits", output=out, epochs=1, width=8,
        state_size=8, neuron_method="compiled", progress=False,
    )  # fmt: skip
    assert len(calls) > 20  # every training batch and the evaluation ran it
    ckpt = load_checkpoint(out)
    assert ckpt.meta["neuron_method"] == "compiled"
    assert ckpt.model.blocks[0].act.method == "pmbc"  # a property of training, not the model


@pytest.mark.parametrize(
    "family, method, message",
    [
        ("binary-s4d", "compiled", "--neuron-method applies to --family spike-ssm, not binary-s4d"),
        # The default named explicitly changes nothing either (it was accepted).
        ("s4d", "pmbc", "--neuron-method applies to --family spike-ssm, not s4d"),
        (
            "spike-ssm",
            "fast",
            "--neuron-method must be one of pmbc, sequential, compiled, got 'fast'",
        ),
        # The family is named first (it was "--neuron-method applies to ..., not lstm").
        ("lstm", "compiled", "unknown model family 'lstm'"),
    ],
)
def test_train_refuses_a_neuron_method_that_does_not_apply(tmp_path, family, method, message):
    from snncompile.api import train_checkpoint
    from snncompile.errors import UsageError

    with pytest.raises(UsageError, match=message):
        train_checkpoint(
            family=family, task_name="sdigits", output=tmp_path / "m.pt", epochs=1,
            neuron_method=method, progress=False,
        )  # fmt: skip
    assert not (tmp_path / "m.pt").exists()


def test_the_neuron_method_defaults_to_pmbc_for_spike_ssm_only() -> None:
    from snncompile.api_train import _check_neuron_method

    assert _check_neuron_method(None, "spike-ssm") == "pmbc"  # recorded in the metadata
    assert _check_neuron_method("sequential", "spike-ssm") == "sequential"
    assert _check_neuron_method(None, "spiking-ssm") is None  # no such neuron to set


@pytest.mark.parametrize(
    "family, cause",
    [
        ("binary-s4d", "loss inf"),  # the loss overflows first
        # theta = exp(log_theta) overflows while log_theta is finite: the neuron refused it
        # mid-run with "theta must be positive and finite", a value no user set (audit41)
        ("spike-ssm", "theta must be positive and finite for every channel"),
        # AdamW's first step scales by lr / 0.1: past float32, torch's RuntimeError was
        # exit 1, "internal error" (helper-76)
        ("s4d", "an update too large for float32"),
    ],
)
def test_a_diverging_run_is_named_as_such(tmp_path, family, cause) -> None:
    from snncompile.api import train_checkpoint
    from snncompile.errors import UsageError

    out = tmp_path / "m.pt"
    lr = 1e39 if family == "s4d" else 1000.0
    expected = f"training diverged in epoch 1 ({cause}); try a lower --lr (it was {lr:g})"
    with pytest.raises(UsageError, match=re.escape(expected)):
        train_checkpoint(
            family=family, task_name="sdigits", output=out, epochs=2, width=8, depth=1,
            state_size=4, lr=lr, progress=False,
        )  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "finetune"])
def test_a_stored_model_that_fails_on_its_own_task_names_the_file(tmp_path, command) -> None:
    """Weights of 3e38 are finite, so save and load take them, but the neuron's input is
    inf on the task's own data: exit 2 with a message naming neither the file nor an
    option (helper-76); it is the file's fault, exit 6."""
    from snncompile.checkpoint import save

    torch.manual_seed(0)
    model = build_model(ModelConfig(family="spike-ssm", d_input=1, d_output=10, d_model=4,
                                    n_layers=1, d_state=4))  # fmt: skip
    with torch.no_grad():
        model.encoder.weight.fill_(3e38)
    path = save(model, tmp_path / "m.pt", meta={"task": "sdigits"})
    extra = ["-o", str(tmp_path / "f.pt"), "--epochs", "1"] if command == "finetune" else []
    done = subprocess.run(
        [sys.executable, "-m", "snncompile", command, str(path), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert done.stderr == (
        f"error: {path}: its model fails on its task's test split (a reset-refractory "
        "neuron's input holds inf or NaN (PMBC))\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_a_run_diverging_under_a_huge_weight_decay_names_it(tmp_path) -> None:
    """--weight-decay 1e39 diverged with advice about --lr alone (helper-76)."""
    from snncompile.api import train_checkpoint
    from snncompile.errors import UsageError

    expected = "try a lower --lr (it was 0.01) or --weight-decay (it was 1e+39)"
    with pytest.raises(UsageError, match=re.escape(expected)):
        train_checkpoint(
            family="s4d", task_name="sdigits", output=tmp_path / "m.pt", epochs=1, width=4,
            depth=1, state_size=2, weight_decay=1e39, progress=False,
        )  # fmt: skip
    assert not (tmp_path / "m.pt").exists()


def test_reported_losses_are_means_over_the_samples() -> None:
    """History.train_loss is the epoch's mean cross-entropy per sample (batch means
    weighted by batch size), and evaluate's loss the split's mean: at lr 1e-9 the one
    epoch leaves the weights as they were, so the two agree, and both equal the
    cross-entropy computed here directly."""
    task = load_task("sdigits")
    cfg = ModelConfig(family="binary-s4d", d_input=1, d_output=10, d_model=4, n_layers=1, d_state=4)
    torch.manual_seed(0)
    model = build_model(cfg)
    history = train(model, task, TrainSettings(epochs=1, batch_size=500, lr=1e-9, weight_decay=0))
    on_train = evaluate(model, task.train, task.featurize)
    assert history.train_loss[0] == pytest.approx(on_train.loss, rel=1e-4)
    on_test = evaluate(model, task.test, task.featurize)
    model.eval()
    with torch.no_grad():
        x = torch.as_tensor(task.featurize(task.test.inputs), dtype=torch.float32)
        logits = model(x)
    direct = torch.nn.functional.cross_entropy(logits, torch.as_tensor(task.test.labels))
    assert on_test.loss == pytest.approx(float(direct), rel=1e-5)
    assert on_test.n == len(task.test.labels)


def test_a_weight_that_is_not_finite_stops_training() -> None:
    from snncompile.errors import UsageError

    task = load_task("sdigits")
    cfg = ModelConfig(family="binary-s4d", d_input=1, d_output=10, d_model=4, n_layers=1, d_state=4)
    model = build_model(cfg)
    model.unused = torch.nn.Parameter(torch.tensor([np.inf]))  # the loss stays finite
    with pytest.raises(UsageError, match=r"diverged in epoch 1 \(unused is not finite\)"):
        train(model, task, TrainSettings(epochs=1, batch_size=500))
