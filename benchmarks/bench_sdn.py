"""SDN-mode LIF training versus step-by-step BPTT through the exact LIF: forward + backward.

    python benchmarks/bench_sdn.py [--lengths 1024 4096 16384]

Both modes of LIFNeuron run on the same float32 input (B=16, H=128 by default) in one
process with 2 torch threads, alternating, after a warm-up; the table reports medians.
"agreement" is the fraction of spikes where the SDN forward equals the exact LIF.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snncompile.models.neurons.lif import LIFNeuron


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _train_step(neuron: LIFNeuron, x: torch.Tensor, weight: torch.Tensor):
    x.grad = None
    neuron.zero_grad(set_to_none=True)
    start = time.perf_counter()
    spikes = neuron(x)
    spikes.backward(weight)
    return time.perf_counter() - start, spikes.detach()


def _measure(args: argparse.Namespace, length: int) -> dict:
    gen = torch.Generator().manual_seed(args.seed + length)
    shape = (args.batch, length, args.channels)
    x = torch.randn(shape, generator=gen).requires_grad_()
    weight = torch.randn(shape, generator=gen)
    neurons = {mode: LIFNeuron(args.channels, mode=mode).train() for mode in ("exact", "sdn")}
    times: dict[str, list[float]] = {mode: [] for mode in neurons}
    spikes: dict[str, torch.Tensor] = {}
    for repeat in range(args.repeats + 1):  # repeat 0 is the warm-up
        for mode, neuron in neurons.items():
            seconds, spikes[mode] = _train_step(neuron, x, weight)
            if repeat:
                times[mode].append(seconds)
    seq = statistics.median(times["exact"])
    par = statistics.median(times["sdn"])
    agreement = float((spikes["sdn"] == spikes["exact"]).float().mean())
    return {"length": length, "exact": seq, "sdn": par, "speedup": seq / par, "agree": agreement}


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"B={args.batch} H={args.channels} float32, torch {torch.__version__}, "
        f"{args.threads} threads, median of {args.repeats} after 1 warm-up; forward + backward\n"
    )
    print("| L | sequential (exact BPTT) s | SDN s | speedup | spike agreement |")
    print("|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        r = _measure(args, length)
        print(
            f"| {r['length']} | {r['exact']:.3f} | {r['sdn']:.4f} | {r['speedup']:.1f}x "
            f"| {r['agree']:.4%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
