"""How a model larger than the bundled ones maps onto Loihi 2 cores (README, "Loihi 2").

    .venv/bin/python examples/large_loihi2.py [--blocks 6] [--width 256] [--state 64]

Builds an untrained spike-ssm of that size (seed 0; the mapping depends on the sizes
and on which weights are zero, not on training), saves it with 32 calibration inputs of
N(0, 1) noise, exports it with `snncompile export --target loihi2` (the default target
description) into a temporary directory, and prints the cores, chips and what the most
used core holds. Takes about 10 s on two cores (9.4 s on 2026-12-07).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from loihi2_peaks import print_peaks

from snncompile import ModelConfig, build_model, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--state", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = ModelConfig(
        family="spike-ssm",
        d_input=1,
        d_output=10,
        d_model=args.width,
        n_layers=args.blocks,
        d_state=args.state,
    )
    model = build_model(config).eval()
    calibration = torch.randn(32, 64, 1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save(model, Path(tmp) / "large.pt", calibration=calibration)
        out = Path(tmp) / "large.loihi2"
        command = [sys.executable, "-m", "snncompile", "export", str(ckpt), "--target",
                   "loihi2", "-o", str(out)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"export failed (exit {done.returncode}): {done.stderr.strip()}")
        resources = json.loads((out / "resources.json").read_text())
    print(
        f"spike-ssm, {args.blocks} blocks, H={args.width}, N={args.state}: "
        f"{resources['compartments']:,} compartments on {resources['cores']} cores, "
        f"{resources['chips']} chip(s)"
    )
    print_peaks(resources)


if __name__ == "__main__":
    main()
