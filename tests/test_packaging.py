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


def _unannotated(path: Path) -> list[str]:
    """Public functions and methods of one module (names without a leading underscore,
    in public classes, plus __init__) with an argument or return type left out."""
    import ast

    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("_") and node.name != "__init__":
                    continue
                a = node.args
                named = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                missing = [
                    arg.arg
                    for arg in named
                    if arg is not None and arg.arg not in ("self", "cls") and arg.annotation is None
                ]
                if node.returns is None and node.name != "__init__":
                    missing.append("return")
                if missing:
                    found.append(f"{path}:{node.lineno} {prefix}{node.name}: {missing}")

    visit(ast.parse(path.read_text()).body, "")
    return found


def test_public_functions_have_type_hints() -> None:
    """The house rule (type hints on public functions), which ruff's ANN rules cannot
    check without also flagging every private helper."""
    modules = [*(ROOT / "snncompile").rglob("*.py"), *(ROOT / "targets").rglob("*.py")]
    public = [
        m for m in modules if not any(p.startswith("_") and p != "__init__.py" for p in m.parts)
    ]
    assert len(public) > 50
    assert [line for m in public for line in _unannotated(m)] == []
