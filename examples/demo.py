"""The main job on the bundled models, as a user types it: `make demo`.

For each bundled spiking checkpoint:

    snncompile data MODEL.pt -o test.npz --overwrite                    # test split (once)
    snncompile evaluate MODEL.pt                                        # PyTorch accuracy
    snncompile export MODEL.pt --target loihi2 -o OUT.loihi2 --overwrite  # map, DRC
    snncompile simulate OUT.loihi2 --input test.npz --backend lava      # Lava, fixed_pt
    snncompile verify MODEL.pt --target lava                            # the three rungs

Each command runs as its own process and its real output is printed under it. The
artifacts stay in build/demo/ for `snncompile inspect`. Exits with the first failing
command's exit code.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path("examples") / "checkpoints"
OUT = Path("build") / "demo"
MODELS = ("spike-ssm-sdigits", "spiking-ssm-sdigits")


def sh(*argv: str) -> None:
    """Run `snncompile argv...` in the repository root, echoing the command line first."""
    print(f"\n$ snncompile {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snncompile", *argv], cwd=ROOT, check=False)
    print(f"[{time.perf_counter() - start:.1f} s]", flush=True)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def main() -> int:
    (ROOT / OUT).mkdir(parents=True, exist_ok=True)
    inputs = str(OUT / "sdigits-test.npz")  # both models were trained on sdigits
    sh("data", str(CHECKPOINTS / f"{MODELS[0]}.pt"), "-o", inputs, "--overwrite")
    for name in MODELS:
        model = str(CHECKPOINTS / f"{name}.pt")
        artifact = str(OUT / f"{name}.loihi2")
        sh("evaluate", model)
        sh("export", model, "--target", "loihi2", "-o", artifact, "--overwrite")
        sh("simulate", artifact, "--input", str(inputs), "--backend", "lava")
        sh("verify", model, "--target", "lava")
    return 0


if __name__ == "__main__":
    sys.exit(main())
