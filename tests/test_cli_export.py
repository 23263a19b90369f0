"""`snncompile export` and `inspect`: artifacts written, read back bit for bit, and every
bad input refused with one line, its exit code, and no output directory left behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from snncompile.artifact import read_artifact
from snncompile.checkpoint import save
from snncompile.cli import main
from snncompile.compiler import CALIBRATION_GIVEN, compile_model
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.reference.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "examples" / "checkpoints" / "spiking-ssm-sdigits.pt"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def small_checkpoint(path: Path, family: str = "spike-ssm", **config: object) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(
        family=family, d_input=1, d_output=3, d_model=8, d_state=4, n_layers=1, **config
    )
    return save(build_model(cfg), path, calibration=torch.rand(8, 16, 1), meta={"task": "toy"})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled spiking-ssm checkpoint exported once through the CLI (subprocess)."""
    out = tmp_path_factory.mktemp("export") / "model.ref"
    cmd = [sys.executable, "-m", "snncompile", "export", BUNDLED, "-o", out]
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "latency" in done.stdout
    return out


def test_export_writes_an_artifact_matching_its_manifest(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["source"] == {
        "checkpoint": str(BUNDLED),
        "family": "spiking-ssm",
        "task": "sdigits",
    }
    assert set(manifest["files"]) | {"manifest.json"} == set(os.listdir(exported))
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == digest


def test_small_export_reloads_bit_exact(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    code, out, err = run(["export", ckpt, "-o", tmp_path / "a", "--json"], capsys)
    assert (code, err) == (0, "")
    report = json.loads(out)  # --json prints the report
    assert report == json.loads((tmp_path / "a" / "report.json").read_text())
    in_memory = compile_model(ckpt)
    x = np.concatenate([in_memory.calibration, np.random.default_rng(1).normal(size=(3, 16, 1))])
    mine, theirs = (
        simulate(in_memory.netlist, x, record=True),
        simulate(read_artifact(tmp_path / "a").netlist, x, record=True),
    )
    assert np.array_equal(mine.readout, theirs.readout) and mine.readout.dtype == np.int64
    assert np.array_equal(mine.logits, theirs.logits)
    for name, trace in mine.traces.items():
        assert np.array_equal(trace, theirs.traces[name]), name


def test_overwrite_replaces_an_artifact(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    assert run(["export", ckpt, "-o", tmp_path / "a"], capsys)[0] == 0
    code, _, err = run(["export", ckpt, "-o", tmp_path / "a", "--overwrite"], capsys)
    assert (code, err) == (0, "")
    assert sorted(os.listdir(tmp_path)) == ["a", "m.pt"]


def test_tampered_artifact_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    run(["export", ckpt, "-o", tmp_path / "a"], capsys)
    npz = tmp_path / "a" / "netlist.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 1
    npz.write_bytes(bytes(data))
    code, out, err = run(["inspect", tmp_path / "a"], capsys)
    assert code == 6 and out == ""
    assert err.startswith("error: ") and "netlist.npz: sha256 does not match" in err


def test_inspect_artifact_table_and_json(exported: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(["inspect", exported], capsys)
    assert code == 0
    assert "target reference" in out and "spiking-ssm" in out
    assert "populations:" in out and "synapses:" in out
    assert any(line.split()[:2] == ["blocks.0.act", "lif"] for line in out.splitlines())
    code, out, _ = run(["inspect", exported, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "artifact"
    assert info["output_latency"] == info["manifest"]["output_latency"]
    act = next(p for p in info["populations"] if p["name"] == "blocks.0.act")
    assert act["kind"] == "lif" and 0 < act["spike_rate"] < 1 and "vth" in act
    assert {"src", "dst", "shape", "weight_exp", "delay"} <= set(info["synapses"][0])


def test_inspect_checkpoint_table_and_json(capsys) -> None:  # type: ignore[no-untyped-def]
    path = ROOT / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"
    code, out, _ = run(["inspect", path], capsys)
    assert code == 0
    assert "spike-ssm" in out and "sdigits" in out and "32 x 64 x 1" in out
    assert "blocks.0.ssm" in out and "reference     yes" in out
    info = json.loads(run(["inspect", path, "--json"], capsys)[1])
    assert info["kind"] == "checkpoint" and info["family"] == "spike-ssm"
    assert info["accuracy"] == pytest.approx(0.9667, abs=1e-4)
    assert info["calibration_shape"] == [32, 64, 1]
    assert {"name": "blocks.0.ssm", "op": "s4d", "width": 64}.items() <= next(
        r for r in info["layers"] if r["name"] == "blocks.0.ssm"
    ).items()
    assert info["targets"]["reference"]["ok"] is True


def test_inspect_says_why_a_float_model_cannot_go_to_reference(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "gsu.pt", family="binary-s4d-gsu")
    info = json.loads(run(["inspect", ckpt, "--json"], capsys)[1])
    verdict = info["targets"]["reference"]
    assert verdict["ok"] is False and "blocks.0.act" in verdict["why"]
    assert "it goes to onnx --float" in verdict["why"]
    assert info["targets"]["onnx --float"]["ok"] and not info["targets"]["loihi2"]["ok"]


def test_inspect_says_a_reason_every_target_shares_once(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A bidirectional S4D is refused by every target for one reason: the table said it
    six times (about 600 characters each); --json still gives it per target."""
    ckpt = small_checkpoint(tmp_path / "bi.pt", bidirectional=True)
    code, out, _ = run(["inspect", ckpt], capsys)
    assert code == 0 and out.count("bidirectional S4D is non-causal") == 1
    assert "  none (reference, lava, loihi2, nir, onnx, onnx --float): the model has 1" in out
    # S4D is supported, causal: the list of supported modules (700 characters) does not
    # say what to change, so it is given only where a part has no handler at all.
    assert "Supported: modules" not in out
    code, _, err = run(["export", ckpt, "--target", "reference", "-o", tmp_path / "bi"], capsys)
    assert code == 4 and err.rstrip().endswith("it reads future inputs and cannot stream"), err
    info = json.loads(run(["inspect", ckpt, "--json"], capsys)[1])
    assert all("non-causal" in v["why"] and not v["ok"] for v in info["targets"].values())
    code, out, _ = run(
        ["inspect", small_checkpoint(tmp_path / "g.pt", family="binary-s4d-gsu")], capsys
    )
    assert code == 0 and "  reference     no: " in out and "  onnx --float  yes: " in out


def test_stop_after_prints_the_stage_and_writes_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    code, out, _ = run(["export", ckpt, "--stop-after", "trace", "-o", tmp_path / "a"], capsys)
    assert code == 0 and "stopped after trace" in out and "blocks.0.ssm" in out
    code, out, _ = run(["export", ckpt, "--stop-after", "lower", "--json"], capsys)
    summary = json.loads(out)
    assert summary["stopped_after"] == "lower" and summary["netlist"]["numeric"] == "float64"
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
    code, _, err = run(["export", ckpt, "--stop-after", "bake"], capsys)
    assert code == 2 and "unknown step 'bake'" in err


# -- bad inputs: one line, the exit code, nothing written -------------------------------


def _truncated(tmp: Path) -> Path:
    path = small_checkpoint(tmp / "m.pt")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _edited(tmp: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    path = small_checkpoint(tmp / "m.pt")
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


def _nan_weight(payload: dict) -> None:
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name].view(-1)[0] = float("inf")


def _npz_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x)
    return buffer.getvalue()


def _npy_bytes(x: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, x, version=version)
    return buffer.getvalue()


def _npz_member_bytes(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def _npz_with_a_deflate64_member(x: np.ndarray) -> bytes:
    """x.npy, and a member whose headers name deflate64 (method 9), which zipfile cannot
    read (NotImplementedError; an encrypted member gives RuntimeError alike)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", _npy_bytes(x))
        archive.writestr("junk.npy", b"junk")
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.rfind(signature)  # the last member's local and central headers
        data[at + offset : at + offset + 2] = (9).to_bytes(2, "little")
    return bytes(data)


def _calib(tmp: Path, value: object, name: str = "calib.npy") -> list[object]:
    path = tmp / name
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        np.save(path, value, allow_pickle=True)
    return [small_checkpoint(tmp / "m.pt"), "--calib", path]


BAD_INPUTS = {
    "missing model": (lambda t: [t / "nope.pt"], 6, "no such file"),
    "truncated checkpoint": (lambda t: [_truncated(t)], 6, "truncated or corrupt"),
    "wrong format version": (
        lambda t: [_edited(t, lambda p: p.update(version=2))],
        6,
        "version 2 is not supported",
    ),
    "inf weight": (lambda t: [_edited(t, _nan_weight)], 6, "non-finite value"),
    "gsu (float-only)": (
        lambda t: [small_checkpoint(t / "m.pt", family="binary-s4d-gsu")],
        4,
        r"blocks\.0\.act \(Opaque GSUMixer\).*onnx --float",
    ),
    "gelu (float-only)": (
        lambda t: [small_checkpoint(t / "m.pt", family="s4d")],
        4,
        r"blocks\.0\.act \(Activation gelu\).*onnx --float",
    ),
    "non-causal ssm": (
        lambda t: [small_checkpoint(t / "m.pt", bidirectional=True)],
        4,
        r"blocks\.0\.ssm \(S4D\): bidirectional S4D is non-causal",
    ),
    "decay overflows 12 bits": (
        lambda t: [small_checkpoint(t / "m.pt", family="spiking-ssm", tau=0.0)],
        5,
        r"'blocks\.0\.act': tau = 0 gives dv = 4096, outside \[0, 4095\]",
    ),
    "dt so small the pole rounds to 1": (
        lambda t: [_edited(t, lambda p: p["state_dict"]["blocks.0.ssm.log_dt"].fill_(-100.0))],
        6,
        r"m\.pt: holds a model the compiler cannot take: node 'blocks\.0\.ssm': ssm \|a_bar\|",
    ),
    "calib wrong shape": (
        lambda t: _calib(t, np.zeros((4, 16, 2))),
        2,
        r"calibration data \(--calib\) must have shape \(batch, steps, 1\)",
    ),
    "calib wrong dtype": (
        lambda t: _calib(t, np.zeros((4, 16, 1), complex)),
        2,
        "real numeric array",
    ),
    "calib not an array": (
        lambda t: _calib(t, b"hello"),
        6,
        r"--calib file .* is neither \.npy nor \.npz \(it starts with b'hello'\)",
    ),
    "calib a cut-off npz": (
        lambda t: _calib(t, _npz_bytes(np.zeros((4, 16, 1)))[:200], "calib.npz"),
        6,
        r"--calib file .*calib\.npz is a truncated or damaged \.npz",
    ),
    # numpy read these without complaint: a header declaring a negative size gave another
    # shape (refused as the user's shape, exit 2); an .npz member holding a whole .npz
    # came back as bytes ("real numeric array, got |S...", exit 2) (audit41)
    "calib npy header with a negative size": (
        lambda t: _calib(
            t, _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(4, -16, 1),")
        ),
        6,
        r"--calib file .*calib\.npy: its header declares shape \(4, -16, 1\)",
    ),
    # Format 3.0 (a UTF-8 header) went unchecked: the shape below came back as (4, 8, 1).
    "calib npy 3.0 header with a negative size": (
        lambda t: _calib(
            t, _npy_bytes(np.zeros((4, 16, 1)), (3, 0)).replace(b"(4, 16, 1), ", b"(4, -16, 1),")
        ),
        6,
        r"--calib file .*calib\.npy: its header declares shape \(4, -16, 1\)",
    ),
    "calib npy 3.0 header declaring more than it holds": (
        lambda t: _calib(
            t, _npy_bytes(np.zeros((4, 16, 1)), (3, 0)).replace(b"(4, 16, 1), ", b"(99999999,),")
        ),
        6,
        r"--calib file .*calib\.npy holds 640 bytes; its header declares 800,000,120",
    ),
    "calib npy longer than its header says": (
        lambda t: _calib(t, _npy_bytes(np.zeros((4, 16, 1))) + b"\0" * 8),
        6,
        r"--calib file .*calib\.npy holds 648 bytes; its header declares 640",
    ),
    # numpy's header parser let tokenize's TokenError through: exit 1 (helper-104)
    "calib npy header with an unclosed bracket": (
        lambda t: _calib(
            t, _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(4, 16, 1,  ")
        ),
        6,
        r"--calib file .*calib\.npy is not a plain numpy array \(Cannot parse header: EOF in multi",
    ),
    "calib npz member header with an unclosed bracket": (
        lambda t: _calib(
            t,
            _npz_member_bytes(
                "x.npy",
                _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(4, 16, 1,  "),
            ),
            "c.npz",
        ),
        6,
        r"--calib file .*c\.npz is not a plain numpy array \(Cannot parse header: EOF in multi",
    ),
    "calib npz member that is no npy": (
        lambda t: _calib(t, _npz_member_bytes("x.npy", _npz_bytes(np.zeros((4, 16, 1)))), "c.npz"),
        6,
        r"--calib file .*c\.npz: member 'x' is not a \.npy array",
    ),
    # .npz members are checked as well: numpy allocated what the header declared.
    "calib npz member declaring more than it holds": (
        lambda t: _calib(
            t,
            _npz_member_bytes(
                "x.npy",
                _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(99999999,),"),
            ),
            "c.npz",
        ),
        6,
        r"--calib file .*c\.npz: member 'x' holds 640 bytes; its header declares 800,000,120",
    ),
    # np.load reads a member named "x" as well as "x.npy": it was not checked (audit47)
    "calib npz member without .npy in its name declaring more than it holds": (
        lambda t: _calib(
            t,
            _npz_member_bytes(
                "x",
                _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(99999999,),"),
            ),
            "c.npz",
        ),
        6,
        r"--calib file .*c\.npz: member 'x' holds 640 bytes; its header declares 800,000,120",
    ),
    # zipfile's NotImplementedError was exit 1, "a bug in snncompile" (audit48)
    "calib npz member stored with an unsupported compression": (
        lambda t: _calib(t, _npz_with_a_deflate64_member(np.zeros((4, 16, 1))), "c.npz"),
        6,
        r"--calib file .*c\.npz is unreadable \(That compression method is not supported\)",
    ),
    "calib npz member with a negative size": (
        lambda t: _calib(
            t,
            _npz_member_bytes(
                "x.npy",
                _npy_bytes(np.zeros((4, 16, 1))).replace(b"(4, 16, 1), ", b"(4, -16, 1),"),
            ),
            "c.npz",
        ),
        6,
        r"--calib file .*c\.npz: member 'x': its header declares shape \(4, -16, 1\)",
    ),
    "calib pickled objects": (
        lambda t: _calib(t, np.array([{"a": 1}], dtype=object)),
        6,
        "not a plain numpy array",
    ),
    "calib missing": (
        lambda t: [small_checkpoint(t / "m.pt"), "--calib", t / "none.npy"],
        6,
        "does not exist",
    ),
    "state bits so wide a coefficient leaves int32": (  # --state-bits 32 alone fits now
        lambda t: [small_checkpoint(t / "m.pt"), "--state-bits", "32", "--act-bits", "8"],
        5,
        r"does not fit: population '.*ssm': mode \d+'s b_q .* is outside int32 by 11 bit\(s\), "
        r"7 more than its fractional bits can give \(12 at least\); each bit fewer of "
        r"--state-bits or more of --act-bits halves it",
    ),
    "messages so wide their sums wrap int32": (
        lambda t: [small_checkpoint(t / "m.pt"), "--message-bits", "32", "--act-bits", "28"],
        5,
        r"synaptic sums wrap Lava's 32-bit accumulator on the calibration data at .*"
        r"source kind (input|accumulator|glu|bias)\).*narrow --act-bits 28$",
    ),
    # --weight-bits cannot help here; the calibration rounds narrow the messages by 3 bits,
    # and 28-bit states (refused here until 2026-12-07) need one.
    "state messages so wide their sums wrap int32": (
        lambda t: [
            small_checkpoint(t / "m.pt", "binary-s4d"),
            "--state-bits",
            "31",
            "--message-bits",
            "31",
        ],
        5,
        r"synaptic sums wrap .* source kind ssm\).*narrow --message-bits 31 below "
        r"--state-bits 31 \(the SSMs then send their states shifted\) \(each bit narrower "
        r"adds to the 3 bits the calibration rounds took off those messages\)$",
    ),
    "shifted state messages so wide their sums wrap int32": (  # its messages are narrower
        lambda t: [
            small_checkpoint(t / "m.pt", "binary-s4d"),
            "--state-bits",
            "32",
            "--message-bits",
            "31",
        ],
        5,
        r"synaptic sums wrap .* source kind ssm\).*narrow --message-bits 31 \(each bit "
        r"narrower adds to the 3 bits the calibration rounds took off those messages\)$",
    ),
    "message bits 1": (
        lambda t: [small_checkpoint(t / "m.pt"), "--message-bits", "1"],
        2,
        r"--message-bits must be an integer in \[2, 32\], got 1",
    ),
    # It read "--act-bits must be in [2, --message-bits = 12], got 16": a value never typed.
    "message bits below the act bits' default": (
        lambda t: [small_checkpoint(t / "m.pt"), "--state-bits", "12", "--message-bits", "12"],
        2,
        r"--message-bits 12 is below --act-bits' default 16: give --act-bits 12 or less too$",
    ),
    "act bits given above the message bits": (
        lambda t: [small_checkpoint(t / "m.pt"), "--message-bits", "8", "--act-bits", "10"],
        2,
        r"--act-bits must be in \[2, --message-bits = 8\], got 10$",
    ),
    "bad bit width": (
        lambda t: [small_checkpoint(t / "m.pt"), "--weight-bits", "9"],
        2,
        r"--weight-bits must be an integer in \[2, 8\]",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_one_line_exit_code_nothing_written(tmp_path: Path, capsys, case: str) -> None:  # type: ignore[no-untyped-def]
    make_args, code, message = BAD_INPUTS[case]
    args = make_args(tmp_path)
    before = set(os.listdir(tmp_path))
    got, out, err = run(["export", *args, "-o", tmp_path / "out"], capsys)
    assert got == code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert out == ""
    assert set(os.listdir(tmp_path)) == before  # no output, no temporary directory


def test_narrower_ssm_messages_as_the_wrap_refusal_advises_export(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The refusal above for --state-bits 31 --message-bits 31: messages 4 bits below the
    states (sent shifted) no longer wrap, and the states keep their 31 bits."""
    ckpt = small_checkpoint(tmp_path / "m.pt", "binary-s4d")
    args = ["--state-bits", "31", "--message-bits", "27", "-o", tmp_path / "out"]
    code, out, err = run(["export", ckpt, *args], capsys)
    assert code == 0, err
    assert "saturation events none" in out and "narrowed" not in out


def test_ssm_messages_whose_sums_wrap_are_narrowed_by_the_calibration_rounds(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """--state-bits 28 --message-bits 28: the SSM's sums into its activation wrap int32
    unless its messages are a bit narrower; a calibration round sends them shifted one bit
    more, where until 2026-12-07 the rounds gave the activation headroom, which left the
    sums as they were, and export refused ("narrow --message-bits 28 below ...")."""
    ckpt = small_checkpoint(tmp_path / "m.pt", "binary-s4d")
    args = ["--state-bits", "28", "--message-bits", "28", "-o", tmp_path / "out"]
    code, out, err = run(["export", ckpt, *args], capsys)
    assert code == 0, err
    assert "saturation events none" in out
    assert "messages      narrowed where their sums wrapped int32: blocks.0.ssm (1 bit)" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    ssm = report["populations"]["blocks.0.ssm"]
    assert ssm["message_headroom_bits"] == ssm["out_shift"] == 1
    assert ssm["state_scale_log2"] == ssm["out_scale_log2"] - 1
    assert report["calibration"]["rounds"] == 2
    # verify says so too, among its warnings (it said nothing of it)
    code, out, err = run(["verify", ckpt, *args[:4], "--limit", "8"], capsys)
    assert "messages narrowed where their sums wrapped int32: blocks.0.ssm (1 bit)" in out + err


def test_ssm_modes_with_fewer_fractional_bits_are_named(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--state-bits 32 puts some modes' b_q 3 bits past int32 (refused until 2026-12-06):
    they keep 13 fractional bits, the export says where, and the report how many."""
    ckpt = small_checkpoint(tmp_path / "m.pt")
    code, out, err = run(["export", ckpt, "--state-bits", "32", "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    match = re.search(r"ssm modes .*: blocks\.0\.ssm \((\d+), down to 13\)$", out, re.M)
    assert match, out
    ssm = json.loads((tmp_path / "out" / "report.json").read_text())["populations"]["blocks.0.ssm"]
    assert ssm["modes_with_fewer_frac_bits"] == int(match[1]) > 0
    assert ssm["fewest_frac_bits"] == 13
    code, out, _ = run(["export", ckpt, "-o", tmp_path / "default"], capsys)
    assert code == 0 and "ssm modes" not in out


def test_existing_output_without_overwrite_is_usage(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    # A directory --overwrite would not replace either is refused without the hint.
    for overwrite in ([], ["--overwrite"]):
        code, _, err = run(["export", ckpt, "-o", tmp_path / "out", *overwrite], capsys)
        assert code == 2 and err.startswith("error: ") and "not an snncompile artifact" in err
    assert os.listdir(tmp_path / "out") == ["mine.txt"]
    (tmp_path / "mine.npz").write_text("data")
    code, _, err = run(["export", ckpt, "-o", tmp_path / "mine.npz"], capsys)
    assert code == 2 and "it is not a directory" in err and "--overwrite" not in err
    # An earlier export is replaced only when asked to.
    assert run(["export", ckpt, "-o", tmp_path / "art"], capsys)[0] == 0
    code, _, err = run(["export", ckpt, "-o", tmp_path / "art"], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err
    assert run(["export", ckpt, "-o", tmp_path / "art", "--overwrite"], capsys)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["art", "m.pt", "mine.npz", "out"]


def test_unknown_target_and_missing_output_are_usage(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = small_checkpoint(tmp_path / "m.pt")
    code, _, err = run(["export", ckpt, "--target", "loihi3", "-o", tmp_path / "a"], capsys)
    assert code == 2 and "Invalid value for '--target'" in err
    # Errors click finds are one line like every other (it printed its usage text too).
    assert err.count("\n") == 1 and err.endswith("(see snncompile export --help)\n")
    for argv in (["export", tmp_path], ["export", ckpt, "--bogus"], ["bogus"], ["simulate"]):
        code, _, err = run(argv, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    code, _, err = run(["export", ckpt], capsys)
    assert code == 2 and err == "error: export needs an output directory (-o OUT)\n"
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


@pytest.mark.parametrize(
    "argv, command",
    [
        (["export", "m.pt", "-o"], "snncompile export"),  # an option without its value
        (["export", "m.pt", "--target"], "snncompile export"),
        (["export", "m.pt", "--overwrite=yes"], "snncompile export"),  # a flag given one
        (["simulate", "a", "--input"], "snncompile simulate"),
        (["--debug=1", "targets"], "snncompile"),
    ],
)
def test_option_parser_errors_say_where_to_look(argv, command, capsys) -> None:  # type: ignore[no-untyped-def]
    """click's parser raised these without the command's context: they were one line
    but lacked the "(see ... --help)" every other click error ends in (helper-84)."""
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "" and err.startswith("error: Option ")
    assert err.count("\n") == 1 and err.endswith(f"(see {command} --help)\n"), err


def test_inspect_missing_path_is_corrupt_input(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(["inspect", tmp_path / "nothing"], capsys)
    assert (code, out) == (6, "") and err.startswith("error: ") and "no such file" in err


def test_the_report_says_where_the_calibration_inputs_came_from(
    exported: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    report = json.loads((exported / "report.json").read_text())
    assert report["calibration"]["origin"] == "embedded"
    nir_file = Path(__file__).parent / "data" / "nir-examples" / "braille_noDelay_bias_zero.nir"
    argv = ["export", nir_file, "--dt", "1e-4", "--stop-after", "quantize", "--json"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and json.loads(out)["calibration_origin"].startswith("default: Bernoulli")
    np.save(tmp_path / "c.npy", np.ones((2, 5, 12)))
    code, out, _ = run([*argv, "--calib", tmp_path / "c.npy"], capsys)
    assert code == 0 and json.loads(out)["calibration_origin"] == CALIBRATION_GIVEN


def test_export_into_an_existing_artifact_is_refused(exported: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # The artifact would hold a directory its manifest does not list, and a later
    # --overwrite of it would be refused.
    code, _, err = run(["export", BUNDLED, "-o", exported / "sub" / "x"], capsys)
    assert code == 2 and f"is inside the artifact {exported}" in err
    assert not (exported / "sub").exists()


def test_overwrite_through_a_symbolic_link_names_the_link(
    exported: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    # It said "not a directory" of a link to an artifact directory.
    link = tmp_path / "link"
    link.symlink_to(exported)
    code, _, err = run(["export", BUNDLED, "-o", link, "--overwrite"], capsys)
    assert code == 2 and "it is a symbolic link; name its target" in err
    assert link.is_symlink() and (exported / "manifest.json").is_file()


def test_calibration_inputs_out_of_scale_are_named_with_their_size(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # The refusal blamed only the model's weights, gains or dt, for a --calib of 1e300.
    np.save(tmp_path / "big.npy", np.full((2, 64, 1), 1e300))
    argv = ["export", BUNDLED, "--calib", tmp_path / "big.npy", "-o", tmp_path / "a"]
    code, _, err = run(argv, capsys)
    assert code == 5 and err.count("\n") == 1
    assert "or the calibration inputs (largest magnitude 1e+300), are out of scale" in err
    assert not (tmp_path / "a").exists()
    # the spike-ssm family fails in another check, which names them too
    spike_ssm = BUNDLED.with_name("spike-ssm-sdigits.pt")
    code, _, err = run(["export", spike_ssm, *argv[2:]], capsys)
    assert code == 5 and "the calibration inputs reach 1e+300)" in err


def test_an_in_memory_models_artifact_names_its_family(tmp_path: Path) -> None:
    # Its manifest's source was {}.
    import snncompile
    from snncompile.api import export_model

    model = snncompile.load(BUNDLED)
    x = np.random.default_rng(0).random((4, 64, 1))
    export_model(model, tmp_path / "a", calibration=x)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["source"] == {"family": "spiking-ssm"}


def test_an_input_channel_whose_weights_round_to_zero_is_warned_of(tmp_path, capsys) -> None:
    """An input channel on a scale 1e6 below the others' (its weights 1e-6 of theirs)
    lost every weight at 8 bits: export said nothing, only verify's rung 2 showed it
    (helper-83). Export and report.json name the channel; a model without such a
    channel gets no warning."""
    torch.manual_seed(0)
    config = ModelConfig(family="spike-ssm", d_input=3, d_output=4, d_model=8, n_layers=1,
                         d_state=4)  # fmt: skip
    model = build_model(config).eval()
    calibration = torch.randn(8, 32, 3)
    save(model, tmp_path / "even.pt", calibration=calibration)
    with torch.no_grad():
        model.encoder.weight[:, 1] *= 1e-6
    calibration[..., 1] *= 1e6
    save(model, tmp_path / "lost.pt", calibration=calibration)
    code, _, err = run(["export", tmp_path / "even.pt", "-o", tmp_path / "even"], capsys)
    assert code == 0 and "reach" not in err
    code, _, err = run(["export", tmp_path / "lost.pt", "-o", tmp_path / "lost"], capsys)
    assert code == 0
    assert "warning: input channel 1 (of 3) reaches nothing through synapse" in err
    assert "rounds to 0 on the grid the synapse's largest weights set at --weight-bits 8" in err
    report = json.loads((tmp_path / "lost" / "report.json").read_text())
    lost = {k: v["inputs_rounded_to_zero"] for k, v in report["synapses"].items()
            if "inputs_rounded_to_zero" in v}  # fmt: skip
    assert list(lost.values()) == [[1]]
