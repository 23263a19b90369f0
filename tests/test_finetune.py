"""Quantization-aware fine-tuning (snncompile/finetune.py, `snncompile finetune`)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from snncompile.checkpoint import load_checkpoint, save
from snncompile.cli import main
from snncompile.errors import UnsupportedError, UsageError
from snncompile.finetune import grid_layers, on_grid, snap_to_grid, weights_on_grid
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.quantize.quantize import quantize_weights

DEPLOYABLE = ("spike-ssm", "spiking-ssm", "binary-s4d")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI's exit code and its stdout and stderr together."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out + err


def _model(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = ModelConfig(
        family=family, d_input=1, d_output=10, d_model=8, n_layers=1, d_state=4, **overrides
    )
    return build_model(config).eval()


def _checkpoint(path, family: str, **overrides):
    """A small untrained model saved as trained on sdigits, with a calibration batch."""
    model = _model(family, **overrides)
    calibration = torch.rand(4, 64, 1)
    save(model, path, calibration=calibration, meta={"task": "sdigits", "task_args": {}})
    return path


@pytest.mark.parametrize("bits", [2, 5, 8])
@pytest.mark.parametrize("sign", ["mixed", "positive", "negative"])
def test_on_grid_is_exports_rounding_and_rounds_nothing_twice(bits, sign):
    rng = np.random.default_rng(bits)
    values = rng.normal(size=(16, 9)) * 0.3
    values = {"mixed": values, "positive": np.abs(values), "negative": -np.abs(values)}[sign]
    tensor = torch.from_numpy(values).float()
    gridded = on_grid(tensor, bits)
    mant, exp = quantize_weights(tensor.double().numpy().ravel(), bits)
    assert gridded.dtype == torch.float32 and gridded.shape == tensor.shape
    assert np.array_equal(gridded.double().numpy().ravel(), mant * 2.0**exp)
    # What export would do to the snapped tensor: nothing.
    again_mant, again_exp = quantize_weights(gridded.double().numpy().ravel(), bits)
    assert np.array_equal(again_mant * 2.0**again_exp, gridded.double().numpy().ravel())
    assert not torch.equal(gridded, tensor)  # the values did move onto the grid


@pytest.mark.parametrize("bits", [3, 8])
def test_weights_on_grid_computes_the_snapped_model_with_straight_through_gradients(bits):
    model = _model("spike-ssm").double()
    snapped = _model("spike-ssm").double()
    snap_to_grid(snapped, bits)
    x = torch.rand(3, 12, 1, dtype=torch.float64)
    originals = {name: p.detach().clone() for name, p in model.named_parameters()}
    with weights_on_grid(model, bits) as covered:
        out = model(x)
        assert torch.equal(out, snapped(x))
        out.sum().backward()
        grads = {
            layer: (module.parametrizations.weight.original.grad.clone())
            for layer, module in grid_layers(model).items()
        }
    assert covered == [
        f"{layer}.{name}" for layer in grid_layers(model) for name in ("weight", "bias")
    ]
    snapped_out = snapped(x)
    snapped_out.sum().backward()
    for layer, module in grid_layers(snapped).items():
        # d out / d W taken at grid(W), handed to W unchanged.
        assert torch.equal(grads[layer], module.weight.grad), layer
    # Outside, the layers are plain again and hold the (unrounded) trained values.
    for name, param in model.named_parameters():
        assert "parametrizations" not in name
        assert torch.equal(param.detach(), originals[name]), name


def test_weights_on_grid_leaves_the_layers_plain_when_training_fails():
    model = _model("binary-s4d")
    originals = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="diverged"):
        with weights_on_grid(model, 8):
            raise RuntimeError("diverged")
    assert {name: p.detach() for name, p in model.named_parameters()}.keys() == originals.keys()
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), originals[name]), name


def test_what_export_still_rounds_is_measured_and_named(tmp_path):
    """A bias far below one unit of its destination's input is rounded to whole units by
    export, whatever its own grid (helper-64): finetune reports it, not "exact"."""
    from snncompile.api_train import _export_weight_rounding

    exact = load_checkpoint(_checkpoint(tmp_path / "a.pt", "binary-s4d"))
    snap_to_grid(exact.model, 8)
    assert _export_weight_rounding(exact, 8) == {
        "largest_relative_rms_error": 0.0,
        "synapse": "input->encoder",  # the first of equals
    }
    tiny = load_checkpoint(_checkpoint(tmp_path / "b.pt", "binary-s4d"))
    with torch.no_grad():
        tiny.model.blocks[0].mix.proj.bias.mul_(1e-4)
    snap_to_grid(tiny.model, 8)
    rounding = _export_weight_rounding(tiny, 8)
    assert rounding["synapse"] == "bias->blocks.0.mix"
    assert rounding["largest_relative_rms_error"] > 0.5
    bare = load_checkpoint(_checkpoint(tmp_path / "c.pt", "binary-s4d"))
    bare = bare.__class__(**{**vars(bare), "calibration": None})
    assert _export_weight_rounding(bare, 8) == {
        "not_measured": "the checkpoint embeds no calibration batch"
    }


@pytest.mark.parametrize("family", DEPLOYABLE)
def test_finetuned_weights_are_exactly_what_export_stores(tmp_path, family):
    from snncompile.api import finetune_checkpoint
    from snncompile.compiler import compile_model

    source = _checkpoint(tmp_path / "m.pt", family)
    before = compile_model(source).report.synapses
    assert any(s["relative_rms_error"] > 0 for s in before.values())  # the test can fail
    out = tmp_path / "ft.pt"
    report = finetune_checkpoint(source, out, epochs=1, batch_size=256, progress=False)
    assert report.parameters == [
        f"{layer}.{name}" for layer in ("encoder", "blocks.0.mix.proj", "decoder")
        for name in ("weight", "bias")
    ]  # fmt: skip
    after = compile_model(out).report.synapses
    assert {name: s["relative_rms_error"] for name, s in after.items()} == dict.fromkeys(after, 0.0)
    ckpt = load_checkpoint(out)
    assert ckpt.meta["finetune"]["weight_bits"] == 8
    assert ckpt.meta["finetune"]["parameters"] == report.parameters
    assert ckpt.meta["test_accuracy"] == report.accuracy
    assert torch.equal(ckpt.calibration, load_checkpoint(source).calibration)


def test_finetune_at_fewer_weight_bits_fits_that_grid(tmp_path):
    from snncompile.api import finetune_checkpoint
    from snncompile.compiler import compile_model
    from snncompile.quantize.quantize import QuantConfig

    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    out = tmp_path / "ft.pt"
    finetune_checkpoint(source, out, epochs=1, batch_size=512, weight_bits=4, progress=False)
    at_4 = compile_model(out, config=QuantConfig(weight_bits=4)).report.synapses
    assert all(s["relative_rms_error"] == 0.0 for s in at_4.values())
    assert "warnings" not in compile_model(out, config=QuantConfig(weight_bits=4)).meta
    at_8 = compile_model(out)  # a finer grid than it was fitted to: exact too
    assert all(s["relative_rms_error"] == 0.0 for s in at_8.report.synapses.values())
    # Compiled at other widths than fitted, export and verify say so (helper-84: the
    # 8-bit default deployed a 4-bit fine-tune without a word).
    (finer,) = at_8.meta["warnings"]
    assert "fine-tuned for --weight-bits 4 and is compiled at 8" in finer
    (coarser,) = compile_model(out, config=QuantConfig(weight_bits=3)).meta["warnings"]
    assert "compiled at 3: its weights are rounded again" in coarser
    # Stopped before quantization nothing is rounded: no warning (helper-87).
    lowered = compile_model(out, config=QuantConfig(weight_bits=3), stop_after="lower")
    assert "warnings" not in lowered.meta


def test_export_and_verify_print_a_weight_bits_mismatch(tmp_path, capsys):
    from snncompile.api import finetune_checkpoint

    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    out = tmp_path / "ft.pt"
    finetune_checkpoint(source, out, epochs=1, batch_size=512, weight_bits=4, progress=False)
    for name, argv in (
        ("export", ["export", out, "--target", "reference", "--overwrite", "-o", tmp_path / "a"]),
        ("verify", ["verify", out, "--limit", "4", "--min-argmax-agreement", "0"]),
    ):
        code, text = _run(argv, capsys)
        assert code == 0 and "warning: the model was fine-tuned for --weight-bits 4" in text, name
        code, text = _run([*argv, "--weight-bits", "4"], capsys)
        assert code == 0 and "fine-tuned" not in text, name


def test_finetune_refuses_a_model_no_integer_target_takes(tmp_path):
    from snncompile.api import finetune_checkpoint

    source = _checkpoint(tmp_path / "m.pt", "s4d")
    out = tmp_path / "ft.pt"
    message = r"no integer target takes blocks\.0\.act .*; it goes to onnx --float$"
    with pytest.raises(UnsupportedError, match=message):
        finetune_checkpoint(source, out, epochs=1, progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--epochs", "0", "--epochs must be at least 1, got 0"),
        ("--lr", "nan", "--lr must be positive and finite, got nan"),
        ("--weight-decay", "-1", "--weight-decay must be non-negative, got -1.0"),
        ("--weight-bits", "9", r"--weight-bits must be an integer in \[2, 8\], got 9"),
        ("--seed", "-1", r"--seed must be in \[0, 4294967295\], got -1"),
    ],
)
def test_finetune_cli_refuses_bad_options_before_writing(tmp_path, capsys, option, value, message):
    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    out = tmp_path / "ft.pt"
    code, output = _run(["finetune", source, "-o", out, option, value], capsys)
    assert code == UsageError.exit_code
    lines = output.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), output
    assert not out.exists()


def test_finetune_refuses_to_write_over_its_input(tmp_path, capsys):
    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    before = source.read_bytes()
    link = tmp_path / "link.pt"
    link.symlink_to(source)
    for out in (source, link):
        code, output = _run(["finetune", source, "-o", out, "--epochs", "1"], capsys)
        assert code == UsageError.exit_code
        assert (
            output == f"error: -o {out} is MODEL itself; write the fine-tuned model to a new file\n"
        )
    assert source.read_bytes() == before


def test_finetune_cli_reports_accuracy_before_and_after(tmp_path, capsys, monkeypatch):
    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    out = tmp_path / "ft.pt"
    args = ["finetune", source, "-o", out, "--epochs", "1", "--quiet", "--batch-size", "512"]
    monkeypatch.setattr("sys.argv", ["snncompile", *map(str, args)])  # what meta records
    code, output = _run(args, capsys)
    assert code == 0, output
    assert re.fullmatch(
        rf"saved {re.escape(str(out))}: test accuracy \d+\.\d\d% -> \d+\.\d\d% with 6 "
        r"weight and bias tensors on the 8-bit grid, \d+ s\n"
        r"  export's weight rounding: exact in every synapse",
        output.strip(),
    ), output
    record = load_checkpoint(out).meta["finetune"]
    assert record["command"] == " ".join(sys.argv)
    assert record["export_weight_rounding"]["largest_relative_rms_error"] == 0.0
    # Fine-tuned again: the first run's record is kept under the new one.
    again = tmp_path / "ft2.pt"
    monkeypatch.setattr("sys.argv", ["snncompile", "finetune", str(out), "-o", str(again)])
    code, output = _run(["finetune", out, "-o", again, "--epochs", "1", "--quiet"], capsys)
    assert code == 0, output
    assert load_checkpoint(again).meta["finetune"]["earlier"] == record


def test_inspect_names_a_finetuned_checkpoint_and_its_grid(tmp_path, capsys):
    from snncompile.api import finetune_checkpoint
    from snncompile.inspection import inspect_checkpoint

    source = _checkpoint(tmp_path / "m.pt", "binary-s4d")
    assert inspect_checkpoint(source)["finetune"] is None
    out = tmp_path / "ft.pt"
    report = finetune_checkpoint(source, out, epochs=1, batch_size=512, progress=False)
    assert inspect_checkpoint(out)["finetune"] == {
        "weight_bits": 8,
        "accuracy_before": report.accuracy_before,
    }
    code, output = _run(["inspect", out], capsys)
    assert code == 0
    before = f"{report.accuracy_before:.2%}"
    assert f"  fine-tuned   weights on export's 8-bit grid (test accuracy before: {before})\n" in (
        output
    )


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"weight_bits": 6}, {"weight_bits": 6, "accuracy_before": None}),
        (
            {"weight_bits": 6, "test_accuracy_before": 7.0},
            {"weight_bits": 6, "accuracy_before": None},
        ),
        ({"weight_bits": True}, None),
        ({"weight_bits": "8"}, None),
        ("yes", None),
    ],
)
def test_a_finetune_record_someone_else_wrote_is_reported_only_when_it_is_one(record, expected):
    from snncompile.checkpoint import recorded_finetune

    assert recorded_finetune({"finetune": record}) == expected
