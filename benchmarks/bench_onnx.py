"""Reference simulator vs the ONNX step graph in onnxruntime, side by side.

    python benchmarks/bench_onnx.py [--model examples/checkpoints/spike-ssm-sdigits.pt]
                                    [--batches 1 64] [--repeats 3]

Both run the compiled (int) netlist of the model on sdigits test inputs in this one
process, alternating, after a warm-up; the table reports medians. Steps are network
steps (L + output latency per run); a batched step advances B samples. "onnx" is
run_onnx (onnxruntime session.run once per step, state fed back as numpy arrays, no
traces recorded) with onnxruntime's default thread pool, "onnx, 1 thread" the same with
intra_op_num_threads=1 (on a loaded machine a spinning pool loses). The reference and
onnxruntime readouts are checked equal before timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from snncompile.reference.malloc import tune_malloc_for_tiles
from snncompile.reference.simulator import simulate
from snncompile.targets.onnx import StepSession, run_onnx

ROOT = Path(__file__).resolve().parents[1]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples/checkpoints/spike-ssm-sdigits.pt"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    args = _parse_args()
    tune_malloc_for_tiles()  # as the CLI's process is (snncompile.reference.malloc)
    from snncompile.compiler import compile_model
    from snncompile.data import load_task

    net = compile_model(args.model).netlist
    test = load_task("sdigits").test.inputs
    sessions = {
        "onnx": StepSession.from_netlist(net),
        "onnx, 1 thread": StepSession.from_netlist(net, threads=1),
    }
    rows = []
    for batch in args.batches:
        x = np.asarray(test[:batch], dtype=np.float64)
        if x.shape[0] < batch:
            x = np.concatenate([x] * (batch // x.shape[0] + 1))[:batch]
        steps = x.shape[1] + net.output_latency
        ref = simulate(net, x)  # warm-up and check
        for step in sessions.values():
            if not np.array_equal(ref.readout, run_onnx(step, x, record=False).readout):
                sys.exit("onnxruntime and the reference disagree; not timing")
        timings = dict.fromkeys(["reference", *sessions], 0.0)
        for _ in range(args.repeats):  # alternate so that machine load hits all alike
            timings["reference"] += _seconds(lambda x=x: simulate(net, x))
            for name, step in sessions.items():
                timings[name] += _seconds(lambda x=x, s=step: run_onnx(s, x, record=False))
        for name, total in timings.items():
            seconds = total / args.repeats
            rows.append((name, batch, steps, seconds, steps / seconds, batch * steps / seconds))
    import onnxruntime

    print(f"$ python benchmarks/bench_onnx.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"model {Path(args.model).name}: {sum(p.size for p in net.populations)} compartments, "
        f"output latency {net.output_latency}; onnxruntime {onnxruntime.__version__}, "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}, "
        f"python {platform.python_version()}; mean of {args.repeats} alternating runs"
    )
    header = ("backend", "batch", "steps", "seconds", "steps/s", "sample-steps/s")
    print(
        f"{header[0]:<16} "
        + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (5, 5, 8, 9, 15), strict=True))
    )
    for name, batch, steps, seconds, rate, sample_rate in rows:
        print(f"{name:<16} {batch:>5} {steps:>5} {seconds:>8.3f} {rate:>9.1f} {sample_rate:>15.0f}")


if __name__ == "__main__":
    main()
