"""`snncompile targets`: the support matrix is read off the registries and tells the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import snncompile
from snncompile.cli import main
from snncompile.errors import UnsupportedError
from snncompile.frontend.torch_trace import trace
from snncompile.lower.lower import lower
from snncompile.models.backbone import FAMILIES, ModelConfig, build_model
from snncompile.passes import run_passes
from snncompile.support import columns, support_matrix
from snncompile.targets import TARGETS

LABELS = [label for label, _, _ in columns()]


@pytest.fixture(scope="module")
def matrix() -> dict:
    return support_matrix()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _tiny(family: str):
    config = ModelConfig(family=family, d_input=1, d_output=3, d_model=6, d_state=4, n_layers=2)
    return build_model(config).eval()


def test_every_family_and_target_is_in_the_matrix(matrix: dict) -> None:
    assert set(matrix["families"]) == set(FAMILIES)
    assert set(TARGETS) <= set(matrix["targets"]) == set(LABELS)
    assert "onnx --float" in LABELS  # a target with the float option gets its own column
    for row in [*matrix["ops"].values(), *matrix["families"].values()]:
        assert set(row) == set(LABELS)
    assert matrix["families"]["spike-ssm"]["loihi2"]["ok"]
    assert matrix["families"]["binary-s4d-gsu"]["loihi2"] == {
        "ok": False,
        "missing": ["opaque (GSUMixer)"],
    }
    assert matrix["ops"]["activation (gelu)"]["reference"] is False
    assert matrix["families"]["binary-s4d-gsu"]["onnx --float"]["ok"]
    assert matrix["families"]["spike-ssm"]["nir"]["ok"]  # nir takes the traced graph


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_matrix_says_what_the_lowering_does(matrix: dict, family: str) -> None:
    """A netlist target marked yes for a family compiles it; marked no, lowering refuses
    it naming exactly the ops the matrix lists."""
    graph = run_passes(trace(_tiny(family), 1))
    netlist_targets = [n for n, t in TARGETS.items() if t.takes == "netlist"]
    verdicts = {matrix["families"][family][n]["ok"] for n in netlist_targets}
    assert len(verdicts) == 1  # every netlist target takes what the lowering takes
    if verdicts == {True}:
        assert lower(graph).populations
        return
    with pytest.raises(UnsupportedError) as exc:
        lower(graph)
    missing = matrix["families"][family]["reference"]["missing"]
    assert missing and all(label.split(" ")[0] in str(exc.value).lower() for label in missing)


def test_targets_command_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "targets", "--json")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(support_matrix()))
    code, out, _ = _run(capsys, "targets")
    assert code == 0
    assert "| model family | " + " | ".join(LABELS) + " |" in out
    cells = ["yes" if label == "onnx --float" else "no" for label in LABELS]
    assert "| binary-s4d-gsu | " + " | ".join(cells) + " |" in out


def test_a_target_asked_for_what_it_cannot_take_exits_4(tmp_path: Path, capsys) -> None:
    path = tmp_path / "gsu.pt"
    snncompile.save(_tiny("binary-s4d-gsu"), path)
    out_dir = tmp_path / "gsu.loihi2"
    code, _, err = _run(capsys, "export", str(path), "--target", "loihi2", "-o", str(out_dir))
    assert code == 4
    assert err.count("\n") == 1
    assert "blocks.0.act (Opaque GSUMixer)" in err and "blocks.1.act (Opaque GSUMixer)" in err
    assert "the reference, lava, loihi2, onnx targets take" in err and "onnx --float" in err
    assert not out_dir.exists()
    # nir encodes the traced graph: it refuses the ops itself, before the netlist steps.
    out_dir = tmp_path / "gsu.nir-artifact"
    code, _, err = _run(capsys, "export", str(path), "--target", "nir", "-o", str(out_dir))
    assert code == 4 and err.count("\n") == 1
    assert "no NIR encoding for blocks.0.act (opaque GSUMixer)" in err and "reference" not in err
    assert not out_dir.exists()
