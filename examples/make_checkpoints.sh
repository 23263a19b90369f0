#!/usr/bin/env bash
# Re-make the bundled checkpoints in examples/checkpoints/ (about a minute each on 2 cores).
# These commands made the files in the repository (two of them were run with --quiet,
# which only hides the progress bar); README.md reports their results.
set -euo pipefail
cd "$(dirname "$0")/.."
SNN=${SNN:-.venv/bin/snncompile}
out=examples/checkpoints
mkdir -p "$out"
"$SNN" train --family spike-ssm   --task sdigits --epochs 40 --seed 0 -o "$out/spike-ssm-sdigits.pt"
"$SNN" train --family spiking-ssm --task sdigits --epochs 40 --seed 0 -o "$out/spiking-ssm-sdigits.pt"
"$SNN" train --family binary-s4d  --task sdigits --epochs 40 --seed 0 -o "$out/binary-s4d-sdigits.pt"
"$SNN" train --family s4d         --task sdigits --epochs 40 --seed 0 -o "$out/s4d-sdigits.pt"
