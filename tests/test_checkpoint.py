"""Checkpoints: round trip, and every kind of bad file refused with CorruptInputError."""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import snncompile
from snncompile.checkpoint import FORMAT_NAME, load_checkpoint, save
from snncompile.errors import CorruptInputError, UsageError
from snncompile.models.backbone import ModelConfig, build_model


def _model(family: str = "binary-s4d") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(family=family, d_input=2, d_output=3, d_model=8, d_state=8))


@pytest.mark.parametrize("family", ["spike-ssm", "binary-s4d", "binary-s4d-gsu", "s4d"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, family: str) -> None:
    model = _model(family).eval()
    calib = torch.randn(4, 10, 2)
    path = save(model, tmp_path / "m.pt", calibration=calib, meta={"task": "x", "acc": 0.5})
    ckpt = load_checkpoint(path)
    x = torch.randn(3, 10, 2)
    with torch.no_grad():
        assert torch.equal(model(x), ckpt.model(x))
    assert torch.equal(ckpt.calibration, calib)
    assert ckpt.meta == {"task": "x", "acc": 0.5}
    assert ckpt.config == model.config
    assert isinstance(snncompile.load(path), snncompile.SequenceModel)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    save(_model(), tmp_path / "m.pt")
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_save_replaces_a_checkpoint_but_no_other_file(tmp_path: Path) -> None:
    # It replaced a user's data and an artifact's manifest without a word (audit41).
    save(_model(), tmp_path / "m.pt")
    save(_model("s4d"), tmp_path / "m.pt")  # a checkpoint is re-made
    assert load_checkpoint(tmp_path / "m.pt").config.family == "s4d"
    data = tmp_path / "data.npz"
    np.savez(data, a=np.zeros(3))
    with pytest.raises(UsageError, match=f"save\\(\\) path {data} exists and is not an snncompile"):
        save(_model(), data)
    assert list(np.load(data).files) == ["a"]


def test_save_refuses_a_path_inside_an_artifact(tmp_path: Path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text('{"format": "snncompile-artifact"}')
    with pytest.raises(UsageError, match=f"is inside the artifact {art}; write it elsewhere"):
        save(_model(), art / "m.pt")
    assert sorted(os.listdir(art)) == ["manifest.json"]


def test_metadata_that_would_need_pickled_classes_is_refused(tmp_path: Path) -> None:
    class Version(str):
        pass

    with pytest.raises(UsageError, match=r"meta\.v"):
        save(_model(), tmp_path / "m.pt", meta={"v": Version("1.0")})
    assert not (tmp_path / "m.pt").exists()


class _RunsCode:
    """Unpickling this object calls os.system: the attack weights_only loading stops."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT_NAME, "version": 1, "config": {}, "state_dict": {}}
    payload["meta"] = _RunsCode()
    torch.save(payload, path)
    with pytest.raises(CorruptInputError, match=r"refused.*could run code"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_plain_pickle_file_is_refused_naming_the_global(
    tmp_path: Path, protocol: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch reports protocol >= 4 pickles only as "Unsupported operand"; the refusal must
    # still name the object (found by parsing opcodes, not by loading).
    monkeypatch.chdir(tmp_path)  # where the payload's `touch PWNED` would write
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsCode(), protocol=protocol))
    with pytest.raises(CorruptInputError, match=r"refused.*\((posix|nt)\.system\)"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(tmp_path: Path) -> None:
    path = save(_model(), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        load_checkpoint(path)


def _rewrite(path: Path, **changes: object) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())


def test_wrong_format_version(tmp_path: Path) -> None:
    path = save(_model(), tmp_path / "m.pt")
    _rewrite(path, version=99)
    with pytest.raises(CorruptInputError, match="version 99"):
        load_checkpoint(path)


def test_not_an_snncompile_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CorruptInputError, match="not an snncompile checkpoint"):
        load_checkpoint(path)


def test_non_finite_weights(tmp_path: Path) -> None:
    path = save(_model(), tmp_path / "m.pt")  # save refuses NaN weights: write them here
    state = torch.load(path, weights_only=True)["state_dict"]
    state["decoder.weight"][0, 0] = float("nan")
    _rewrite(path, state_dict=state)
    with pytest.raises(CorruptInputError, match=r"decoder\.weight.*non-finite"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    path = save(_model(), tmp_path / "m.pt")
    config = torch.load(path, weights_only=True)["config"]
    _rewrite(path, config={**config, "d_model": 16})
    with pytest.raises(CorruptInputError, match="do not fit"):
        load_checkpoint(path)


def test_unknown_config_key(tmp_path: Path) -> None:
    path = save(_model(), tmp_path / "m.pt")
    config = torch.load(path, weights_only=True)["config"]
    _rewrite(path, config={**config, "wings": 2})
    with pytest.raises(CorruptInputError, match="wings"):
        load_checkpoint(path)


@pytest.mark.parametrize("shape", [(4, 10, 5), (4, 0, 2), (0, 10, 2)])
def test_calibration_shape_checked_on_save(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(UsageError, match=r"calibration must be \(n, L, 2\) with n, L >= 1"):
        save(_model(), tmp_path / "m.pt", calibration=torch.randn(*shape))


def _first_weight(payload: dict) -> tuple[str, torch.Tensor]:
    return next(iter(payload["state_dict"].items()))


def _qint8(tensor: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # torch deprecates making them, not reading them
        warnings.simplefilter("ignore", UserWarning)
        return torch.quantize_per_tensor(tensor, 0.1, 0, torch.qint8)


# Each edit makes a file save() would never write; load must name the file and the fault
# (exit 6 on the command line) before building anything from it.
DAMAGED = {
    "config not a dict": (lambda p: p.update(config="spike-ssm"), "config .not a dict"),
    "d_model a float": (lambda p: p["config"].update(d_model=8.0), "d_model must be an integer"),
    "d_model a bool": (lambda p: p["config"].update(d_model=True), "d_model must be an integer"),
    "beta NaN": (lambda p: p["config"].update(beta=float("nan")), "beta must be finite"),
    "prenorm a string": (
        lambda p: p["config"].update(prenorm="yes"),
        "prenorm must be true or false",
    ),
    "d_model huge": (
        lambda p: p["config"].update(d_model=10**9),
        r"needs at least \d+ parameters, the file holds \d+",
    ),
    # Just past what the file holds: 64 x (2 + 3 + 2 x 8 / 2) = 832 > 803.
    "d_model 8x": (
        lambda p: p["config"].update(d_model=64),
        "needs at least 832 parameters, the file holds 803",
    ),
    "complex weight": (
        lambda p: p["state_dict"].update({_first_weight(p)[0]: _first_weight(p)[1] * 1j}),
        "is complex",
    ),
    "quantized weight": (
        lambda p: p["state_dict"].update({_first_weight(p)[0]: _qint8(_first_weight(p)[1])}),
        r"parameter '\S+' is a quantized torch.qint8 tensor; parameters are float",
    ),
    "integer weight": (
        lambda p: p["state_dict"].update({_first_weight(p)[0]: _first_weight(p)[1].long()}),
        r"\S+ holds torch.int64 values, the model float ones",
    ),
    # helper-63: torch's isfinite is not implemented for float8, an internal error (exit 1).
    "float8 weight": (
        lambda p: p["state_dict"].update(
            {_first_weight(p)[0]: _first_weight(p)[1].to(torch.float8_e4m3fn)}
        ),
        r"parameter '\S+' is float8_e4m3fn; checkpoints keep floats as float16, bfloat16, "
        "float32, float64",
    ),
    "calibration float8": (
        lambda p: p.update(calibration=torch.ones(2, 4, 2, dtype=torch.float8_e5m2)),
        "calibration batch is float8_e5m2; checkpoints keep floats as",
    ),
    "calibration bool": (lambda p: p.update(calibration=torch.ones(2, 4, 2) > 0), "torch.bool"),
    # helper-63: save refuses these in meta, load took them.
    "a tensor in meta": (
        lambda p: p["meta"].update(extra=torch.zeros(2)),
        "meta.extra holds a Tensor; only str/int/float/bool/None/list/dict",
    ),
    "a set in meta": (
        lambda p: p["meta"].update(tags={1, 2}),
        r"meta.tags holds a set; only",
    ),
    "a complex number in meta": (
        lambda p: p["meta"].update(train={"lr": 1j}),
        r"meta.train.lr holds a complex; only",
    ),
    "calibration complex": (
        lambda p: p.update(calibration=torch.ones(2, 4, 2, dtype=torch.complex64)),
        "complex64",
    ),
    "calibration 2-D": (lambda p: p.update(calibration=torch.ones(4, 2)), r"must be \(n, L, 2\)"),
    "calibration of 0 steps": (
        lambda p: p.update(calibration=torch.ones(2, 0, 2)),
        r"must be \(n, L, 2\), got \(2, 0, 2\)",
    ),
    "calibration NaN": (
        lambda p: p.update(calibration=torch.full((2, 4, 2), float("nan"))),
        "non-finite",
    ),
    # A 180 KB file: the first operation on either ran out of memory (exit 1, not 6).
    "weight expanded to 10^12 values": (
        lambda p: p["state_dict"].update({"extra": torch.zeros(1).expand(10**12)}),
        r"parameter 'extra' of shape \(1000000000000,\) stores 4 bytes for its "
        r"1,000,000,000,000 values \(an expanded view",
    ),
    "calibration expanded": (
        lambda p: p.update(calibration=torch.zeros(1, 1, 1).expand(10**6, 10**6, 2)),
        r"calibration batch of shape \(1000000, 1000000, 2\) stores 4 bytes",
    ),
    "int state_dict key": (lambda p: p["state_dict"].update({3: torch.zeros(1)}), "key 3 is not"),
    "sparse weight": (
        lambda p: p["state_dict"].update({_first_weight(p)[0]: _first_weight(p)[1].to_sparse()}),
        "sparse_coo/cpu tensor; parameters are dense CPU tensors",
    ),
    "meta-device weight": (
        lambda p: p["state_dict"].update(
            {_first_weight(p)[0]: torch.empty(_first_weight(p)[1].shape, device="meta")}
        ),
        "strided/meta tensor",
    ),
    "family disagrees": (lambda p: p.update(family="s4d"), "family 's4d' disagrees"),
    "beta of 2 in the buffer": (
        lambda p: p["state_dict"]["blocks.0.act.beta_fixed"].fill_(2.0),
        r"values the model refuses \(beta must lie in \[0, 1\)",
    ),
    "meta a list": (lambda p: p.update(meta=[1, 2]), "meta is a list"),
    "task args not a dict": (
        lambda p: p["meta"].update(task="listops", task_args=[128]),
        "task_args .* are not valid",
    ),
    "task length a string": (
        lambda p: p["meta"].update(task="listops", task_args={"length": "long"}),
        "length must be a non-negative integer",
    ),
    "task depth 30 (hours to generate)": (
        lambda p: p["meta"].update(task="listops", task_args={"depth": 30}),
        "depth must be at most 10",
    ),
    "task length huge": (
        lambda p: p["meta"].update(task="listops", task_args={"length": 10**9}),
        "length must be at most",
    ),
}


@pytest.mark.parametrize("case", DAMAGED, ids=list(DAMAGED))
def test_structurally_damaged_checkpoint_is_refused(tmp_path: Path, case: str) -> None:
    edit, message = DAMAGED[case]
    path = save(
        _model("spike-ssm"), tmp_path / "m.pt", calibration=torch.ones(2, 4, 2), meta={"task": "x"}
    )
    payload = torch.load(path, weights_only=True)
    payload["meta"] = {"task": "sdigits"}
    edit(payload)
    torch.save(payload, path)
    with pytest.raises(CorruptInputError, match=message) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_negative_batchnorm_variance_is_refused_on_load_and_on_save(tmp_path: Path) -> None:
    """running_var = -1 loaded, and evaluate gave its NaN logits an accuracy with exit 0,
    while export and finetune refused the same file (helper-76)."""
    torch.manual_seed(0)
    config = ModelConfig(family="spike-ssm", d_input=2, d_output=3, d_model=8, prenorm=True)
    path = save(build_model(config), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["blocks.0.norm.running_var"][3] = -1.0
    torch.save(payload, path)
    message = "parameter 'blocks.0.norm.running_var' holds a negative variance (-1.0)"
    with pytest.raises(CorruptInputError, match=re.escape(f"{path}: {message}")):
        load_checkpoint(path)
    model = build_model(config)
    with torch.no_grad():
        model.blocks[0].norm.running_var[0] = -0.5
    with pytest.raises(UsageError, match="holds a negative variance"):
        save(model, tmp_path / "n.pt")


def test_a_calibration_batch_that_views_a_larger_storage_loads(tmp_path: Path) -> None:
    """The check of expanded views counts from the view's offset: a slice is whole."""
    path = save(_model("spike-ssm"), tmp_path / "m.pt", calibration=torch.ones(2, 4, 2))
    payload = torch.load(path, weights_only=True)
    payload["calibration"] = torch.arange(48.0).reshape(6, 4, 2)[3:5]
    torch.save(payload, path)
    assert torch.equal(load_checkpoint(path).calibration, torch.arange(24.0, 40.0).view(2, 4, 2))


def test_a_task_that_is_not_a_name_is_refused(tmp_path: Path) -> None:
    # A NaN task went into the manifest: a non-JSON file and exit 1 after compiling.
    path = save(_model(), tmp_path / "m.pt")  # save refuses it: written here
    _rewrite(path, meta={"task": float("nan")})
    with pytest.raises(CorruptInputError, match="meta task nan is not a name"):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [10**400, float("nan"), True, 1.5, "96%"])
def test_a_recorded_accuracy_that_is_not_a_fraction_is_unknown(tmp_path: Path, value) -> None:
    # inspect printed 10**400 as a percentage: OverflowError, exit 1.
    from snncompile.api import inspect_checkpoint

    path = save(_model(), tmp_path / "m.pt", meta={"test_accuracy": value})
    assert inspect_checkpoint(path)["accuracy"] is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 10**400, True, "38 s", None])
def test_recorded_train_seconds_that_are_not_a_duration_are_unknown(value: object) -> None:
    from snncompile.checkpoint import recorded_train_seconds

    assert recorded_train_seconds({"train_seconds": value}) is None
    assert recorded_train_seconds({"train_seconds": 37.8}) == 37.8
    assert recorded_train_seconds({}) is None


def test_the_users_meta_keys_stay_out_of_the_compilers_meta(tmp_path: Path) -> None:
    from snncompile.compiler import load_model

    meta = {"task": "my-task", "warnings": 5, "nir_file": "fake.nir", "note": "mine"}
    path = save(_model(), tmp_path / "m.pt", meta=meta)
    *_, compiled_meta = load_model(path)
    assert set(compiled_meta) == {"task", "family", "checkpoint"}


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 700 KiB tmpfs already holding 500 KB (needs root and mount, as in CI)."""
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(bytes(500_000))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_an_output_error_leaving_the_old_checkpoint(full_disk: Path) -> None:
    # torch's own writer made this RuntimeError "unexpected pos" (exit 1, "a bug").
    path = save(_model(), full_disk / "m.pt")
    before = path.read_bytes()
    big = build_model(ModelConfig(family="s4d", d_input=2, d_output=3, d_model=128, d_state=64))
    with pytest.raises(UsageError, match="No space left on device"):
        save(big, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "m.pt"]


@pytest.mark.parametrize(
    ("config", "stand_in"),
    [
        (dict(d_model=8192, n_layers=8, d_state=2), torch.zeros(8192 * 20)),
        # The S4Ds' own (H, N/2) tensors: their initial values computed on the CPU
        # (ccbfcb2) took 280 MB for this 17 MB file of one-byte values before it was
        # refused.
        (
            dict(d_model=4096, d_state=4096, bidirectional=True),
            torch.zeros(4096 * 4101, dtype=torch.bool),
        ),
    ],
    ids=["wide", "many modes"],
)
def test_a_small_file_asking_for_a_huge_model_is_refused_before_building_it(
    tmp_path: Path, config: dict, stand_in: torch.Tensor
) -> None:
    # 8 blocks of width 8192: the parameter-count bound passes with one stand-in tensor,
    # and building the model took 4.7 GB before its shapes were compared.
    path = save(_model(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"].update(config)
    payload["state_dict"]["stand_in"] = stand_in
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The skeleton's comparison names the keys (torch's load_state_dict says "Unexpected
    # key(s)"), which tells the two apart even when an earlier test set a higher peak.
    with pytest.raises(
        CorruptInputError, match=r"do not fit the model config .*unexpected stand_in"
    ):
        load_checkpoint(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200_000, f"peak memory grew by {grown_kib} KiB"


def test_the_skeleton_of_every_family_builds_without_importing_dynamo() -> None:
    """_check_shapes builds a skeleton on the meta device, where out-of-place arithmetic
    runs PyTorch's Python reference kernels; their first call imports torch._dynamo,
    which took 1.5 s of every command loading a checkpoint. The skeleton's S4D skips its
    initial values and the GSU divides in place. In a fresh interpreter: this one may
    have imported it already."""
    import subprocess
    import sys

    code = """
import sys, torch
from snncompile.models.backbone import FAMILIES, ModelConfig, build_model
with torch.device("meta"):
    for family in FAMILIES:
        build_model(ModelConfig(family=family, d_input=2, d_output=3))
        build_model(ModelConfig(family=family, d_input=2, d_output=3, ssm_init="inv",
                                bidirectional=True, trainable_B=False, prenorm=True))
print("torch._dynamo" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"


def test_the_skeleton_draws_no_random_numbers() -> None:
    """Shapes only: the global generator is where it was (a library user's draws after
    load_checkpoint do not depend on how the shapes were checked)."""
    torch.manual_seed(0)
    with torch.device("meta"):
        for family in ("spike-ssm", "binary-s4d-gsu"):
            build_model(ModelConfig(family=family, d_input=2, d_output=3, bidirectional=True))
    after = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(4))


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("x.npz", None, r"a zip archive without torch's data\.pkl \(an \.npz\?\)"),
        ("x.npy", np.zeros(3), r"a NumPy \.npy array"),
        (
            "graph.h5",
            b"\x89HDF\r\n\x1a\n" + bytes(8),
            r"an HDF5 file \(a NIR graph is read as one when its name ends in \.nir\)",
        ),
        ("notes.txt", b"hello", r"a file starting with b'hello'"),
        # evaluate, data, finetune of a .nir: it said "read as one when its name ends in
        # .nir" of a name that does (helper-84)
        (
            "graph.nir",
            b"\x89HDF\r\n\x1a\n" + bytes(8),
            r"a NIR graph \(export, verify and inspect read those, not checkpoints\)",
        ),
        (  # as export reads it: the suffix in any case (helper-87)
            "GRAPH.NIR",
            b"\x89HDF\r\n\x1a\n" + bytes(8),
            r"a NIR graph \(export, verify and inspect read those, not checkpoints\)",
        ),
    ],
)
def test_a_file_of_another_kind_is_named_as_such(
    tmp_path: Path, name: str, content: object, kind: str
) -> None:
    # It said "not a readable checkpoint (truncated or corrupt: UnpicklingError)" of
    # an .npz, a .npy, a text file: as if a checkpoint had been damaged.
    path = tmp_path / name
    if content is None:
        np.savez(path, x=np.zeros(3))
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_bytes(content)
    with pytest.raises(
        CorruptInputError, match=rf"^{re.escape(str(path))}: not a checkpoint: .*this is {kind}$"
    ):
        load_checkpoint(path)


def test_a_file_inside_an_artifact_names_the_commands_that_take_its_directory(
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "art"
    artifact.mkdir()
    (artifact / "manifest.json").write_text("{}")
    path = artifact / "report.json"
    path.write_text('{"populations": {}}')
    # "pass the directory" was wrong for export, verify, evaluate, data and finetune,
    # which load checkpoints this way and refuse a directory (helper-84)
    where = (
        f"a JSON file; it is part of the artifact {artifact} (inspect and simulate take it whole)"
    )
    with pytest.raises(CorruptInputError, match=rf"{re.escape(where)}$"):
        load_checkpoint(path)


def test_a_flipped_byte_inside_a_tensor_is_refused(tmp_path: Path) -> None:
    # torch.load does not check the zip's CRC-32s: the damaged weight loaded silently.
    path = save(_model(), tmp_path / "m.pt")
    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if "/data/" in i.filename)
    data = bytearray(path.read_bytes())
    # the local header's extra field (its length at byte 28) may differ from the central one
    local_extra = int.from_bytes(
        data[member.header_offset + 28 : member.header_offset + 30], "little"
    )
    offset = member.header_offset + 30 + len(member.filename.encode()) + local_extra
    data[offset + member.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match=r"corrupt: .*/data/\d+ is damaged"):
        load_checkpoint(path)


def _central_entries(data: bytearray) -> list[int]:
    """Offsets of the zip's central directory entries (signature PK\\1\\2)."""
    found, at = [], data.find(b"PK\x01\x02")
    while at != -1:
        found.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    return found


def test_a_tensor_member_marked_as_a_directory_is_refused(tmp_path: Path) -> None:
    """One flipped bit (0x10, MS-DOS's directory attribute, in the central directory's
    external attributes): the CRCs still check, and torch's reader skipped the member's
    bytes, so the weight held uninitialised memory and loaded with exit 0 (helper-76)."""
    path = save(_model(), tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    for at in _central_entries(data):
        name_length = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_length].endswith(b"/data/0"):
            data[at + 38] ^= 0x10  # low byte of the external attributes
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match=r"corrupt: .*/data/0 is damaged"):
        load_checkpoint(path)


def test_a_member_name_that_is_not_utf8_is_a_corrupt_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The UTF-8 flag set on a name that is not UTF-8: zipfile raises UnicodeDecodeError,
    which was exit 1, "internal error", from evaluate and from train's -o check."""
    import struct

    from snncompile.cli import main

    path = save(_model(), tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    at = _central_entries(data)[0]
    flags = struct.unpack("<H", data[at + 8 : at + 10])[0]
    data[at + 8 : at + 10] = struct.pack("<H", flags | 0x800)
    data[at + 46] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(SystemExit) as done:
        main(["evaluate", str(path)])
    assert done.value.code == 6
    assert capsys.readouterr().err.startswith(f"error: {path}: not a readable checkpoint")


def test_a_zip_the_crc_check_cannot_read_is_still_a_corrupt_file(tmp_path: Path) -> None:
    # testzip raised RuntimeError on an encrypted member: exit 1, "this is a bug".
    import struct

    path = save(_model(), tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")  # every central directory entry: set "encrypted"
    while at != -1:
        flags = struct.unpack("<H", data[at + 8 : at + 10])[0]
        data[at + 8 : at + 10] = struct.pack("<H", flags | 1)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_the_longest_integers_weights_only_loading_takes_are_saved(tmp_path: Path) -> None:
    longest = [2**2039 - 1, -(2**2039)]  # 255 bytes pickled (LONG1); one bit more is LONG4
    path = save(_model(), tmp_path / "m.pt", meta={"task": "my-task", "n": longest})
    assert load_checkpoint(path).meta["n"] == longest
    with pytest.raises(UsageError, match="integer of 2040 bits"):
        save(_model(), tmp_path / "m.pt", meta={"n": 2**2039})
    # Written by torch.save past save(): named, not "truncated or corrupt" (helper-63).
    payload = torch.load(path, weights_only=True)
    payload["meta"]["n"] = 2**2039
    torch.save(payload, tmp_path / "long.pt")
    message = r"long\.pt: not a readable checkpoint \(it holds an integer of more than 255 bytes"
    with pytest.raises(CorruptInputError, match=message):
        load_checkpoint(tmp_path / "long.pt")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"calibration": torch.full((2, 4, 2), float("nan"))}, "calibration batch holds non"),
        ({"calibration": torch.ones(2, 4, 2) * 1j}, "calibration must be real"),
        ({"meta": {"task": 3}}, "meta task 3 is not a name"),
        ({"meta": {"task": "sdigits", "task_args": {"depth": -1}}}, "task depth must be"),
        ({"nan_weight": True}, "holds a non-finite value"),
        # 10**600 loads; this was written, then refused by load as corrupt (audit46)
        ({"meta": {"note": [10**700]}}, "meta.note[0] is an integer of 2326 bits"),
        # written, then evaluate and data called it corrupt (helper-76)
        (
            {"meta": {"task": "listops"}},
            "not saved, evaluate, verify and data would refuse it: model shape (d_input 2, "
            "d_output 3) does not match task 'listops' (d_input 16, 10 classes)",
        ),
    ],
    ids=[
        "NaN calibration",
        "complex calibration",
        "task not a name",
        "bad task_args",
        "NaN",
        "int too long to unpickle",
        "model does not fit its task",
    ],
)
def test_save_refuses_what_load_would_refuse(tmp_path: Path, edit: dict, message: str) -> None:
    # Such files were written, then refused as corrupt by load (exit 6).
    model = _model()
    if edit.pop("nan_weight", False):
        with torch.no_grad():
            next(model.parameters()).flatten()[0] = float("nan")
    with pytest.raises(UsageError, match=re.escape(message)):
        save(model, tmp_path / "m.pt", **edit)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: setattr(m, "decoder", torch.nn.Linear(8, 5)), "decoder.weight is (5, 8)"),
        (lambda m: m.register_buffer("running_max", torch.zeros(1)), "unexpected running_max"),
        (lambda m: setattr(m.decoder, "bias", None), "missing decoder.bias"),
    ],
    ids=["new head", "extra buffer", "head without bias"],
)
def test_save_refuses_a_model_whose_weights_left_its_config(
    tmp_path: Path, edit: Any, message: str
) -> None:
    """A module replaced or added after the model was built: save wrote the file, load
    refused it as corrupt (exit 6; helper-76)."""
    model = _model()
    edit(model)
    with pytest.raises(UsageError, match=re.escape(message)):
        save(model, tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_verify_model_survives_the_import_of_the_verify_subpackage() -> None:
    import importlib

    importlib.import_module("snncompile.verify.quantized")  # sets snncompile.verify
    assert callable(snncompile.verify_model)
