"""The main job on the bundled models: evaluate, compile to the reference target, verify.

Run with `make demo`. For each bundled spiking checkpoint: its test accuracy and spike
rates in PyTorch; then `export --target reference` into a temporary directory and
`verify` (PyTorch float vs the quantized integer network on the full test split).
Later stages (Lava, Loihi 2) extend this script.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snncompile.api import evaluate_checkpoint, verify_model
from snncompile.artifact import read_artifact, write_artifact
from snncompile.compiler import compile_model
from snncompile.errors import SnnCompileError

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
MODELS = ("spike-ssm-sdigits.pt", "spiking-ssm-sdigits.pt")


def run(name: str, workdir: Path) -> None:
    path = CHECKPOINTS / name
    report = evaluate_checkpoint(path)
    rates = ", ".join(f"{k} {v:.3f}" for k, v in report.spike_rates.items())
    print(f"{name}: {report.family} on {report.task}, {report.n} test inputs")
    print(f"  PyTorch test accuracy {report.accuracy:.2%}   spike rates: {rates}")
    artifact = write_artifact(compile_model(path), workdir / f"{path.stem}.ref")
    net = read_artifact(artifact).netlist
    counts = net.counts()
    print(
        f"  export --target reference: {sum(p.size for p in net.populations)} compartments, "
        f"{counts['synapses']} weights, output latency {net.output_latency} steps"
    )
    check = verify_model(path)
    print(
        f"  verify: quantized accuracy {check.quantized_accuracy:.2%} "
        f"(float {check.float_accuracy:.2%}), argmax agreement {check.argmax_agreement:.2%}, "
        f"lowering error {check.lowering_relative_error:.1e}, "
        + ("PASSED" if check.passed else "FAILED: " + "; ".join(check.failures))
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            try:
                run(name, Path(tmp))
            except SnnCompileError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
