"""Reference simulator throughput on a compiled model, alone (no Lava in the process).

    python benchmarks/bench_reference.py [--model examples/checkpoints/spike-ssm-sdigits.pt]
                                         [--batches 1 8 32] [--runs 60]

Prints the median steps/s (network steps, net.total_ticks(L) per run) of the integer
netlist on sdigits test inputs, after one warm-up run per batch (which also loads or
compiles the numba loops), with glibc's malloc set as the CLI sets it
(snncompile.reference.malloc; a version older than that module cannot be compared with
this script). To compare two versions of the simulator side by side, run
this script alternately against each, e.g. with a git worktree of the other on
PYTHONPATH:

    git worktree add /tmp/before <rev>
    for i in 1 2 3; do PYTHONPATH=/tmp/before python benchmarks/bench_reference.py
                       python benchmarks/bench_reference.py; done
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import snncompile
from snncompile.compiler import compile_model
from snncompile.data import load_task
from snncompile.reference.malloc import tune_malloc_for_tiles
from snncompile.reference.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples/checkpoints/spike-ssm-sdigits.pt"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runs", type=int, default=60, help="runs at batch 1 (fewer when batched)")
    args = parser.parse_args()
    tune_malloc_for_tiles()  # as the CLI's process is (snncompile.reference.malloc)

    net = compile_model(args.model).netlist
    inputs = load_task("sdigits").test.inputs
    steps = net.total_ticks(inputs.shape[1])
    cells = []
    for batch in args.batches:
        x = inputs[:batch]
        simulate(net, x)
        times = []
        for _ in range(max(5, args.runs // batch)):
            start = time.perf_counter()
            simulate(net, x)
            times.append(time.perf_counter() - start)
        cells.append(f"batch {batch}: {steps / statistics.median(times):,.0f} steps/s")
    print(f"{Path(snncompile.__file__).parent}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
