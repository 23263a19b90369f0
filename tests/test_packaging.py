"""Packaging: the explicit package list, lazy torch import, and the CLI entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M)
    assert block, "pyproject.toml has no explicit packages list"
    return set(re.findall(r'"([\w.]+)"', block.group(1)))


def _packages_on_disk() -> set[str]:
    found = set()
    for init in (ROOT / "snncompile").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        found.add(".".join(rel.parts))
    for init in (ROOT / "targets").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "targets")
        found.add(".".join(("snncompile", "targets", *rel.parts)))
    return found


def test_every_package_on_disk_is_declared() -> None:
    assert _packages_on_disk() == _declared_packages()


def test_import_does_not_load_torch() -> None:
    code = "import sys, snncompile, snncompile.targets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_version_and_help() -> None:
    exe = [sys.executable, "-m", "snncompile"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert version.returncode == 0
    assert "0.1.0" in version.stdout
    helptext = subprocess.run([*exe, "--help"], capture_output=True, text=True)
    assert helptext.returncode == 0
    assert "Usage" in helptext.stdout


def test_the_readmes_python_api_example_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    after = readme.split("Every command has a Python form", 1)[1]
    block = re.search(r"```python\n(.*?)```", after, re.S)
    assert block is not None
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # "from the repository root"
    done = subprocess.run(
        [sys.executable, "-c", block.group(1)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    accuracy, failures = done.stdout.split(" ", 1)
    assert 0.9 <= float(accuracy) <= 1.0 and failures.strip() == "[]"
    assert (tmp_path / "model.ref" / "manifest.json").is_file()
