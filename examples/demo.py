"""The main job on a bundled model: load the checkpoint, evaluate it, print accuracy and rates.

Run with `make demo`. Later stages (export, simulate, verify) extend this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

from snncompile.api import evaluate_checkpoint
from snncompile.errors import SnnCompileError

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
MODELS = ("spike-ssm-sdigits.pt", "spiking-ssm-sdigits.pt")


def main() -> int:
    for name in MODELS:
        path = CHECKPOINTS / name
        try:
            report = evaluate_checkpoint(path)
        except SnnCompileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        rates = ", ".join(f"{k} {v:.3f}" for k, v in report.spike_rates.items())
        print(f"{name}: {report.family} on {report.task}, {report.n} test inputs")
        print(f"  test accuracy {report.accuracy:.2%}   spike rates: {rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
