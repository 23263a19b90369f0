"""Export time of a large model and the reference simulator's throughput.

    python benchmarks/bench_compile.py [--layers 6] [--width 256] [--state 64] [--batch 64]

Builds an untrained spike-ssm model (6 blocks, H=256, N=64 by default), saves it with a
calibration batch of 32 random sequences, then times, in one run:
  * export end to end: load checkpoint, trace, passes, lower, calibrate, quantize,
    write the artifact (the goal is under 10 s on this 2-core CPU);
  * the integer reference simulator at batch 64 (and batch 1), reported as
    compartment-steps and spiking-neuron-steps per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from snncompile.reference.malloc import tune_malloc_for_tiles


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--state", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--family", default="spike-ssm")
    return parser.parse_args()


def _export(path: Path, out: Path) -> tuple[float, object]:
    from snncompile.artifact import write_artifact
    from snncompile.compiler import compile_model

    start = time.perf_counter()
    compiled = compile_model(path)
    write_artifact(compiled, out)
    return time.perf_counter() - start, compiled


def _throughput(net, x: np.ndarray) -> float:
    from snncompile.reference.simulator import simulate

    start = time.perf_counter()
    result = simulate(net, x)
    return result.steps / (time.perf_counter() - start)


def main() -> None:
    args = _parse_args()
    tune_malloc_for_tiles()  # as the CLI's process is (snncompile.reference.malloc)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    import snncompile
    from snncompile.models.backbone import ModelConfig, build_model

    cfg = ModelConfig(
        family=args.family,
        d_input=1,
        d_output=10,
        d_model=args.width,
        n_layers=args.layers,
        d_state=args.state,
    )
    model = build_model(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "big.pt"
        snncompile.save(model, ckpt, calibration=torch.rand(32, args.steps, 1))
        seconds, compiled = _export(ckpt, Path(tmp) / "big.artifact")
    net = compiled.netlist
    counts = net.counts()
    compartments = sum(p.size for p in net.populations)
    neurons = sum(p.size for p in net.populations if p.compartment.spiking)
    print(
        f"{args.family}: {args.layers} blocks, H={args.width}, N={args.state}; "
        f"{compartments} compartments ({neurons} spiking neurons), "
        f"{counts['synapses']} stored weights, output latency {net.output_latency} steps\n"
    )
    print(f"export end to end: {seconds:.2f} s (goal < 10 s)")
    rng = np.random.default_rng(0)
    print("\n| batch | steps/s | compartment-steps/s | neuron-steps/s |")
    print("|---:|---:|---:|---:|")
    for batch in (1, args.batch):
        x = rng.random((batch, args.steps, 1))
        rate = _throughput(net, x)
        print(
            f"| {batch} | {rate:.1f} | {rate * batch * compartments:.3g} "
            f"| {rate * batch * neurons:.3g} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
