"""Test this checkout's `snncompile.targets`.

pyproject maps the top-level targets/ folder to snncompile.targets (package-dir), and an
editable install resolves that name to the checkout it was installed from. A second
checkout (a git worktree run with PYTHONPATH=<checkout>) would then import its own
snncompile but the other checkout's targets; load this one's instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

import snncompile

# CI runs every property test on the same examples (derandomize: the seed comes from the
# test's name), so a commit's result does not depend on the draw; a developer's run keeps
# drawing new examples (and replays failures from .hypothesis/). A draw that fails locally
# is a bug to fix, not to skip: CI would only stop finding it. HYPOTHESIS_PROFILE picks one.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _use_this_checkouts_targets() -> None:
    root = Path(__file__).resolve().parents[1]
    init = root / "targets" / "__init__.py"
    if Path(snncompile.__file__).resolve().parents[1] != root or not init.is_file():
        return  # testing an installed snncompile, or a layout without targets/
    spec = importlib.util.spec_from_file_location(
        "snncompile.targets", init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["snncompile.targets"] = module
    spec.loader.exec_module(module)
    snncompile.targets = module


_use_this_checkouts_targets()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):  # type: ignore[no-untyped-def]
    """Run the CLI entry point in-process: (exit code, stdout, stderr)."""
    from snncompile.cli import main

    def run(*args: str) -> Run:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        return Run(int(info.value.code or 0), out, err)

    return run
