"""PMBC versus the step-by-step reset-refractory neuron: forward + backward time.

    python benchmarks/bench_pmbc.py [--lengths 1024 4096 16384] [--beta 0.125 0.5]

Both methods of ResetRefractoryNeuron run on the same float32 input (B=16, H=128 by
default) in one process with 2 torch threads, alternating, after a warm-up; the table
reports the median of the repeats. "exact" compares the two spike trains bit for bit.

A third run, "no finish", is PMBC with its exact sequential finish (and the bounds it
keeps for it) replaced by declaring every open step silent: its spikes are wrong, but
its time is what the passes, the surrogate bookkeeping and the closed-form backward
cost by themselves, so sequential / no-finish bounds the speedup any finish could give.

A fourth, "compiled", is method="compiled": the same step loop as the sequential
neuron compiled with numba, with PMBC's closed-form backward (also compiled); its spikes
are checked bit for bit against the sequential ones too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snncompile.models.neurons import pmbc
from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.125, 0.5])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-passes", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _train_step(neuron: ResetRefractoryNeuron, x: torch.Tensor, weight: torch.Tensor):
    """One forward + backward; returns (seconds, spikes)."""
    x.grad = None
    neuron.zero_grad(set_to_none=True)
    start = time.perf_counter()
    spikes = neuron(x)
    spikes.backward(weight)  # upstream gradient of a loss sum(weight * spikes)
    return time.perf_counter() - start, spikes.detach()


def _open_steps_silent(run) -> None:
    """Stand-in for `_PmbcRun._finish` (diagnostic only): open steps are emitted as
    silent (their code stays 0, and only code > 0 spikes), at no cost."""
    for part in run.open_slices:
        part.open_steps = 0


def _without_finish(neuron: ResetRefractoryNeuron, x: torch.Tensor, weight: torch.Tensor):
    """_train_step with the finish and what it keeps from the passes (block enclosures)
    skipped."""
    run = pmbc._PmbcRun
    finish, keep = run._finish, run._keep_block_enclosures
    run._finish, run._keep_block_enclosures = _open_steps_silent, lambda *_: None
    try:
        return _train_step(neuron, x, weight)
    finally:
        run._finish, run._keep_block_enclosures = finish, keep


def _measure(args, length: int, beta: float) -> dict:
    gen = torch.Generator().manual_seed(args.seed + length)
    shape = (args.batch, length, args.channels)
    x = torch.randn(shape, generator=gen).requires_grad_()
    weight = torch.randn(shape, generator=gen)
    extra = {} if args.max_passes is None else {"max_passes": args.max_passes}
    neurons = {
        method: ResetRefractoryNeuron(args.channels, beta=beta, method=method, **extra)
        for method in ("sequential", "pmbc", "compiled")
    }
    times: dict[str, list[float]] = {method: [] for method in (*neurons, "no finish")}
    spikes: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}
    for repeat in range(args.repeats + 1):  # repeat 0 is the warm-up
        for method, neuron in neurons.items():
            seconds, spikes[method] = _train_step(neuron, x, weight)
            grads[method] = x.grad.clone()
            if repeat:
                times[method].append(seconds)
        stats = neurons["pmbc"].last_pmbc_stats
        seconds, _ = _without_finish(neurons["pmbc"], x, weight)
        if repeat:
            times["no finish"].append(seconds)
    grad_gap = (grads["pmbc"] - grads["sequential"]).abs().max().item()
    compiled_gap = (grads["compiled"] - grads["sequential"]).abs().max().item()
    grad_scale = grads["sequential"].abs().max().item()
    seq = statistics.median(times["sequential"])
    par = statistics.median(times["pmbc"])
    bound = statistics.median(times["no finish"])
    comp = statistics.median(times["compiled"])
    return {
        "length": length,
        "beta": beta,
        "sequential": seq,
        "pmbc": par,
        "speedup": seq / par,
        "no_finish": bound,
        "bound_speedup": seq / bound,
        "passes": stats.passes,
        "finish": stats.finish_steps / stats.steps,
        "exact": bool(torch.equal(spikes["pmbc"], spikes["sequential"])),
        "grad_rel_gap": grad_gap / grad_scale if grad_scale else 0.0,
        "compiled": comp,
        "compiled_speedup": seq / comp,
        "compiled_exact": bool(torch.equal(spikes["compiled"], spikes["sequential"])),
        "compiled_grad_rel_gap": compiled_gap / grad_scale if grad_scale else 0.0,
    }


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"B={args.batch} H={args.channels} float32, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} after 1 warm-up; "
        "forward + backward per call"
    )
    print()
    print(
        "| L | beta | sequential s | PMBC s | speedup | passes | finish % | exact spikes "
        "| max grad gap (rel) | PMBC, no finish s | speedup without finish "
        "| compiled s | compiled speedup | compiled exact | compiled grad gap (rel) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|:---:|---:|")
    for length in args.lengths:
        for beta in args.beta:
            row = _measure(args, length, beta)
            print(
                f"| {row['length']} | {row['beta']} | {row['sequential']:.3f} "
                f"| {row['pmbc']:.4f} | {row['speedup']:.1f}x | {row['passes']} "
                f"| {100 * row['finish']:.2f} | {'yes' if row['exact'] else 'NO'} "
                f"| {row['grad_rel_gap']:.1e} | {row['no_finish']:.4f} "
                f"| {row['bound_speedup']:.1f}x | {row['compiled']:.4f} "
                f"| {row['compiled_speedup']:.1f}x | {'yes' if row['compiled_exact'] else 'NO'} "
                f"| {row['compiled_grad_rel_gap']:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
