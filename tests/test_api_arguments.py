"""The public Python API refuses arguments of the wrong type with the project's error, a
UsageError (exit 2) that is also a TypeError (snncompile.arguments), before any work:
not with a raw TypeError, ValueError or RecursionError from deep inside pathlib, numpy or
torch. A bad value of the right type stays a plain UsageError."""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import snncompile
from snncompile import api
from snncompile.checkpoint import load_checkpoint
from snncompile.cli import main
from snncompile.errors import CorruptInputError, SnnCompileError, UsageError
from snncompile.simulate import simulate_artifact

CHECKPOINT = Path(__file__).parent.parent / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"
CONFIG = snncompile.ModelConfig(
    family="spike-ssm", d_input=1, d_output=10, d_model=4, n_layers=1, d_state=2
)
TRAIN = {"family": "s4d", "task_name": "sdigits", "width": 4, "depth": 1, "state_size": 2}


@functools.cache
def _model() -> Any:
    return snncompile.build_model(CONFIG)


def _meta_device_model() -> Any:
    with torch.device("meta"):
        return snncompile.build_model(CONFIG)


def _self_referencing() -> dict[str, Any]:
    found: dict[str, Any] = {}
    found["self"] = found
    return found


def _nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def _train(out: Path, **kw: Any) -> Any:
    return api.train_checkpoint(**{**TRAIN, "output": out / "t.pt", "progress": False, **kw})


def _finetune(out: Path, **kw: Any) -> Any:
    return api.finetune_checkpoint(CHECKPOINT, out / "f.pt", progress=False, **kw)


def _data(out: Path, **kw: Any) -> Any:
    return api.write_task_data(CHECKPOINT, out / "d.npz", **kw)


# (call with the test's empty directory, a TypeError too?, what the message says)
WRONG = {
    # paths
    "save path=None": (lambda d: snncompile.save(_model(), None), True, "path must be a path"),
    "save path=123": (lambda d: snncompile.save(_model(), 123), True, "got 123"),
    "save path=bytes": (lambda d: snncompile.save(_model(), b"m.pt"), True, "(bytes)"),
    "load(None)": (
        lambda d: snncompile.load(None),
        True,
        "path must be a path (a str or os.PathLike), got None",
    ),
    "load(123)": (lambda d: snncompile.load(123), True, "got 123"),
    "load(bytes)": (lambda d: snncompile.load(os.fsencode(CHECKPOINT)), True, "(bytes)"),
    "load(model)": (lambda d: snncompile.load(_model()), True, "got a SequenceModel"),
    "load(file object)": (
        lambda d: snncompile.load(io.BytesIO(CHECKPOINT.read_bytes())),
        True,
        "got a BytesIO",
    ),
    "load('')": (lambda d: snncompile.load(""), False, "path is empty"),
    "load_checkpoint(5)": (lambda d: load_checkpoint(5), True, "path must be a path"),
    "train output=None": (lambda d: _train(d, output=None), True, "output must be a path"),
    "train output=123": (lambda d: _train(d, output=123), True, "output must be a path"),
    "finetune model=None": (
        lambda d: api.finetune_checkpoint(None, d / "f.pt"),
        True,
        "model must be a path",
    ),
    "finetune model=object": (
        lambda d: api.finetune_checkpoint(_model(), d / "f.pt"),
        True,
        "model must be a path",
    ),
    "finetune output=None": (
        lambda d: api.finetune_checkpoint(CHECKPOINT, None),
        True,
        "output must be a path",
    ),
    "evaluate(None)": (lambda d: api.evaluate_checkpoint(None), True, "path must be a path"),
    "evaluate(model)": (lambda d: api.evaluate_checkpoint(_model()), True, "a SequenceModel"),
    "data model=None": (
        lambda d: api.write_task_data(None, d / "d.npz"),
        True,
        "model must be a path",
    ),
    "data output=None": (
        lambda d: api.write_task_data(CHECKPOINT, None),
        True,
        "output must be a path",
    ),
    "export out_dir=123": (
        lambda d: api.export_model(CHECKPOINT, 123),
        True,
        "out_dir must be a path",
    ),
    "inspect_path(None)": (lambda d: api.inspect_path(None), True, "path must be a path"),
    "simulate(None, None)": (
        lambda d: simulate_artifact(None, None),
        True,
        "artifact must be a path",
    ),
    # counts: a float, a str, None or a bool
    "train epochs=1.5": (lambda d: _train(d, epochs=1.5), True, "epochs must be an integer"),
    "train epochs='1'": (lambda d: _train(d, epochs="1"), True, "got '1'"),
    "train epochs=None": (lambda d: _train(d, epochs=None), True, "got None"),
    "train epochs=True": (lambda d: _train(d, epochs=True), True, "got True"),
    "train width='4'": (lambda d: _train(d, width="4"), True, "width must be an integer"),
    "train width=4.0": (lambda d: _train(d, width=4.0), True, "width must be an integer"),
    "train batch_size=2.5": (lambda d: _train(d, batch_size=2.5), True, "batch_size must be"),
    "train seed=1.5": (lambda d: _train(d, seed=1.5), True, "seed must be an integer"),
    "train calib_size=2.5": (lambda d: _train(d, calib_size=2.5), True, "calib_size must be"),
    "finetune epochs=0.5": (lambda d: _finetune(d, epochs=0.5), True, "epochs must be"),
    "finetune weight_bits=True": (
        lambda d: _finetune(d, weight_bits=True),
        True,
        "weight_bits must be an integer",
    ),
    "data limit=2.5": (lambda d: _data(d, limit=2.5), True, "limit must be an integer"),
    "data limit='3'": (lambda d: _data(d, limit="3"), True, "limit must be an integer"),
    "data limit=nan": (lambda d: _data(d, limit=math.nan), True, "limit must be an integer"),
    "data limit=True": (lambda d: _data(d, limit=True), True, "limit must be an integer"),
    "verify limit=2.5": (
        lambda d: api.verify_model(CHECKPOINT, limit=2.5),
        True,
        "limit must be an integer",
    ),
    # real numbers
    "train lr='0.01'": (lambda d: _train(d, lr="0.01"), True, "lr must be a real number"),
    "train lr=None": (lambda d: _train(d, lr=None), True, "lr must be a real number"),
    "train lr=1j": (lambda d: _train(d, lr=1j), True, "got 1j (complex)"),
    "train dropout='0'": (lambda d: _train(d, dropout="0"), True, "dropout must be a real"),
    "train dropout=None": (lambda d: _train(d, dropout=None), True, "dropout must be a real"),
    # flags
    "train prenorm='no'": (lambda d: _train(d, prenorm="no"), True, "prenorm must be True or"),
    "data overwrite='no'": (lambda d: _data(d, overwrite="no"), True, "overwrite must be True"),
    "export overwrite='no'": (
        lambda d: api.export_model(CHECKPOINT, d / "art", overwrite="no"),
        True,
        "overwrite must be True or False, got 'no'",
    ),
    # containers
    "export target_options=list": (
        lambda d: api.export_model(CHECKPOINT, d / "art", target_options=[1]),
        True,
        "target_options must be a dict, got a list",
    ),
    "verify data=int": (
        lambda d: api.verify_model(CHECKPOINT, data=3),
        True,
        "data must be a .npy/.npz path, an array of inputs (numpy, torch, nested lists)",
    ),
    "verify data=ragged list": (
        lambda d: api.verify_model(CHECKPOINT, data=[[[0.0]], [[0.0], [1.0]]]),
        False,
        "data cannot be made an array of numbers",
    ),
    "verify data=(tensor, ragged labels)": (
        lambda d: api.verify_model(CHECKPOINT, data=(torch.zeros(2, 8, 1), [[1], [1, 2]])),
        False,
        "data's labels cannot be made an array of numbers",
    ),
    "verify data=3-tuple": (
        lambda d: api.verify_model(CHECKPOINT, data=(np.zeros((2, 8, 1)), None, None)),
        True,
        "data as a tuple must be (inputs, labels), got 3 items",
    ),
    "save meta=list": (
        lambda d: snncompile.save(_model(), d / "m.pt", meta=[1, 2]),
        True,
        "meta must be a dict, got a list",
    ),
    "save meta=str": (
        lambda d: snncompile.save(_model(), d / "m.pt", meta="task"),
        True,
        "meta must be a dict",
    ),
    "save meta self-referencing": (
        lambda d: snncompile.save(_model(), d / "m.pt", meta=_self_referencing()),
        False,
        "refers back to a container it is in",
    ),
    "save meta 10**5 deep": (
        lambda d: snncompile.save(_model(), d / "m.pt", meta={"d": _nested(10**5)}),
        False,
        "meta is nested more than 100 levels deep",
    ),
    # calibration batches that are no real float tensor
    "save calibration object array": (
        lambda d: snncompile.save(
            _model(), d / "m.pt", calibration=np.array([[[None]]], dtype=object)
        ),
        False,
        "calibration must be a real numeric array, got object",
    ),
    "save calibration=str": (
        lambda d: snncompile.save(_model(), d / "m.pt", calibration="abc"),
        False,
        "calibration must be a real numeric array",
    ),
    "save calibration=dict": (
        lambda d: snncompile.save(_model(), d / "m.pt", calibration={"x": 1}),
        False,
        "calibration must be a real numeric array",
    ),
    "save calibration ragged": (
        lambda d: snncompile.save(_model(), d / "m.pt", calibration=[[[0.0]], [[0.0], [1.0]]]),
        False,
        "calibration cannot be made an array of numbers",
    ),
    "save calibration on meta": (
        lambda d: snncompile.save(
            _model(), d / "m.pt", calibration=torch.zeros(2, 8, 1, device="meta")
        ),
        False,
        "calibration is a meta-device tensor",
    ),
    "compile calibration ragged": (
        lambda d: snncompile.compile(_model(), calibration=[[[0.0]], [[0.0], [1.0]]]),
        False,
        "calibration data (--calib) cannot be made an array of numbers",
    ),
    "save model on meta": (
        lambda d: snncompile.save(_meta_device_model(), d / "m.pt"),
        False,
        "save() model has tensors on the meta device",
    ),
    # names given other types: "unhashable type" or an AttributeError (helper-79)
    "export target=list": (
        lambda d: api.export_model(CHECKPOINT, d / "art", target=[]),
        True,
        "target must be a str, got a list",
    ),
    "verify target=dict": (
        lambda d: api.verify_model(CHECKPOINT, target={}),
        True,
        "target must be a str, got a dict",
    ),
    "export target_options key 5": (
        lambda d: api.export_model(CHECKPOINT, d / "art", target_options={5: 1}),
        True,
        "a key of target_options must be a str, got 5",
    ),
    "simulate backend=list": (
        lambda d: simulate_artifact(d, np.zeros((1, 2, 1)), backend=[]),
        True,
        "backend must be a str, got a list",
    ),
    "inspect_artifact(None)": (lambda d: api.inspect_artifact(None), True, "directory must be"),
    "inspect_nir(None)": (lambda d: api.inspect_nir(None), True, "path must be a path"),
    "train command=5": (lambda d: _train(d, command=5), True, "command must be a str, got 5"),
    # choices given another type: a UsageError "unknown ...", not a TypeError
    "train task_name=5": (lambda d: _train(d, task_name=5), True, "task_name must be a str"),
    "data split=5": (lambda d: _data(d, split=5), True, "split must be a str, got 5"),
    "verify reset=None": (
        lambda d: api.verify_model(CHECKPOINT, reset=None),
        True,
        "reset must be a str, got None",
    ),
    "export stop_after=5": (
        lambda d: api.export_model(CHECKPOINT, None, stop_after=5),
        True,
        "stop_after must be a str, got 5",
    ),
    "export entry=5": (
        lambda d: api.export_model(CHECKPOINT, d / "art", entry=5),
        True,
        "entry must be a str, got 5",
    ),
    # the model classes' own checks, which were UsageErrors only
    "ModelConfig d_model='4'": (
        lambda d: snncompile.ModelConfig(family="s4d", d_input=1, d_output=2, d_model="4"),
        True,
        "d_model must be an integer, got '4'",
    ),
    "S4D('3')": (lambda d: snncompile.S4D("3"), True, "S4D d_model must be a positive int"),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_a_wrong_argument_is_the_projects_error_before_any_work(  # type: ignore[no-untyped-def]
    name: str, tmp_path: Path, monkeypatch
) -> None:
    import snncompile.api_train as api_train

    monkeypatch.setattr(api_train, "_train_with_progress", lambda *a, **k: pytest.fail("trained"))
    call, type_error, message = WRONG[name]
    with pytest.raises(SnnCompileError) as info:
        call(tmp_path)
    error = info.value
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert isinstance(error, TypeError) == type_error
    assert message in str(error) and "\n" not in str(error)
    assert os.listdir(tmp_path) == []  # nothing written


def test_a_bad_value_of_the_right_type_is_a_usage_error_not_a_type_error(tmp_path: Path) -> None:
    for call in (
        lambda: _train(tmp_path, epochs=0),
        lambda: _data(tmp_path, limit=0),
        lambda: _train(tmp_path, lr=math.nan),
    ):
        with pytest.raises(UsageError) as info:
            call()
        assert not isinstance(info.value, TypeError)


def test_an_input_name_the_system_refuses_is_corrupt_input(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError, match="File name too long"):
        snncompile.load(tmp_path / ("a" * 300))


@pytest.mark.parametrize("kind", ["npz", "artifact"])
def test_a_non_bool_overwrite_replaces_nothing(tmp_path: Path, kind: str) -> None:
    """overwrite="no" is truthy: it replaced an existing .npz or artifact."""
    if kind == "npz":
        out = tmp_path / "d.npz"
        api.write_task_data(CHECKPOINT, out, limit=2)
        again: Callable[[], Any] = lambda: api.write_task_data(  # noqa: E731
            CHECKPOINT, out, limit=3, overwrite="no"
        )
        held = out
    else:
        out = tmp_path / "art"
        api.export_model(CHECKPOINT, out)
        again = lambda: api.export_model(CHECKPOINT, out, overwrite="no")  # noqa: E731
        held = out / "manifest.json"
    before = (held.read_bytes(), held.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    with pytest.raises(UsageError) as info:
        again()
    assert isinstance(info.value, TypeError)
    assert (held.read_bytes(), held.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def _run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    return int(done.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["evaluate", ""], "'MODEL'"),
        (["finetune", "", "-o", "{tmp}/f.pt"], "'MODEL'"),
        (["data", "", "-o", "{tmp}/d.npz"], "'MODEL'"),
        (["export", "", "-o", "{tmp}/art"], "'MODEL'"),
        (["export", CHECKPOINT, "-o", "{tmp}/art", "--calib", ""], "'--calib'"),
        (
            ["export", CHECKPOINT, "-o", "{tmp}/art", "--target", "loihi2", "--target-config", ""],
            "'--target-config'",
        ),
        (["verify", "", "--limit", "1"], "'MODEL'"),
        (["verify", CHECKPOINT, "--data", "", "--limit", "1"], "'--data'"),
        (["inspect", ""], "'PATH'"),
        (["simulate", "", "--input", "x.npy"], "'ARTIFACT'"),
        (["simulate", "{tmp}", "--input", ""], "'--input'"),
    ],
)
def test_an_empty_input_path_is_named_as_empty(  # type: ignore[no-untyped-def]
    argv, named, tmp_path: Path, capsys
) -> None:
    """`evaluate ''` said "error: .: not a file" (exit 6): Path("") is "."; an empty
    --target-config was ignored. An empty -o is named so already (test_outputs)."""
    code, err = _run([str(a).format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2, err
    assert f"Invalid value for {named}: the path is empty" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--family", "spike-ssm", "--epochs", "99999999999999999999"],
        ["train", "--family", "spike-ssm", "--epochs", "10001"],
        ["finetune", CHECKPOINT, "--epochs", "10001"],
    ],
)
def test_epochs_have_a_cap(argv, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--epochs 99999999999999999999 was taken, and trained until killed."""
    import snncompile.api_train as api_train

    monkeypatch.setattr(api_train, "_train_with_progress", lambda *a, **k: pytest.fail("trained"))
    code, err = _run([*argv, "-o", tmp_path / "m.pt"], capsys)
    assert code == 2 and "--epochs must be at most 10000, got " in err, err
    assert os.listdir(tmp_path) == []
    with pytest.raises(UsageError, match="--epochs must be at most 10000"):
        _train(tmp_path, epochs=10**20)
