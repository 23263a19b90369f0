"""Reference simulator vs Lava, and our Lava network vs a hand-built one of the same size.

    python benchmarks/bench_lava.py [--model examples/checkpoints/spike-ssm-sdigits.pt]
                                    [--batches 1 8 32] [--repeats 5]

All runs use the compiled (int) netlist of the model on sdigits test inputs, in this one
process, alternating, after a warm-up; tables report medians (the reference's of at
least 20 runs, timed after the previous Lava run's worker processes have exited).
Steps are network steps (ticks: net.total_ticks(L) per run, L + latency for a model
with ticks_per_step 1); a batched step advances B samples. For Lava, "stepping" is the
time of RunSteps alone and "end to end" adds building, compiling, starting and stopping
the processes (what run_lava costs). Lava runs a batch as copies of the network in
the same processes (snncompile.targets.lava); the last column compares the reference
with Lava taking the batch one sample at a time instead (B times the batch-1 stepping
time: the other reading of "faster batched"). The hand-built network is what a Lava user would
write for the same sizes: the same RingBuffer and Dense/Sparse matrices, a Lava LIF for
each population (as wide as its input) and DelayDense for delayed synapses; a second
variant drops the delays (plain Dense everywhere) as a lower bound for these sizes.
The hand-built network assumes ticks_per_step 1 (no idle ticks), as the bundled models have.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

from snncompile.ir.netlist import Netlist
from snncompile.reference.malloc import tune_malloc_for_tiles
from snncompile.reference.simulator import encode_input, simulate

ROOT = Path(__file__).resolve().parents[1]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples/checkpoints/spike-ssm-sdigits.pt"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _settle(timeout_s: float = 10.0) -> None:
    """Wait until the Lava runs' worker processes have exited, so that their shutdown
    does not share the cores with the reference's (10 ms) runs."""
    import multiprocessing

    deadline = time.monotonic() + timeout_s
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)


def _timed_lava(build: Callable[[], object], steps: int, tag: str) -> tuple[float, float, int]:
    """(stepping seconds, end-to-end seconds, process count) of one blocking Lava run."""
    from lava.magma.compiler.compiler_graphs import find_processes
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    start = time.perf_counter()
    root = build()
    count = len(find_processes(root))
    try:
        root.create_runtime(run_cfg=Loihi2SimCfg(select_tag=tag))
        begin = time.perf_counter()
        root.run(RunSteps(num_steps=steps))
        stepping = time.perf_counter() - begin
    finally:
        root.stop()
    return stepping, time.perf_counter() - start, count


def _ours(net: Netlist, x: np.ndarray) -> Callable[[], object]:
    from snncompile.targets.lava import build_network

    return lambda: build_network(net, encode_input(net, x)).root


def _hand_built(net: Netlist, x: np.ndarray, delays: bool = True) -> Callable[[], object]:
    """The same sizes with Lava's own processes only (see the module docstring); with
    delays=False every synapse is a plain Dense/Sparse (fewer, cheaper processes, wrong
    timing: a lower bound on what Lava needs for these sizes)."""

    def build() -> object:
        from lava.proc.dense.process import DelayDense, Dense
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF
        from lava.proc.sparse.process import Sparse

        data = encode_input(net, x)
        batch, length, _ = data.shape
        steps = length + net.output_latency
        # The same signals as ours: the input, then the bias, each batch-major.
        blocks = []
        for pop in net.populations:
            block = np.zeros((batch * pop.size, steps), dtype=np.int64)
            if pop.kind == "input":
                block[:, :length] = data.transpose(0, 2, 1).reshape(batch * pop.size, length)
            elif pop.kind == "bias":
                block[:, :length] = pop.params["value"]
            else:
                continue
            blocks.append((pop.name, block))
        offsets = np.cumsum([0] + [b.shape[0] for _, b in blocks])
        column = {name: int(offsets[i]) for i, (name, _) in enumerate(blocks)}
        bank = RingBuffer(data=np.concatenate([b for _, b in blocks]))
        neurons = {
            p.name: LIF(shape=(batch * p.input_width,), du=4095, dv=0, vth=1000)
            for p in net.populations
            if p.kind not in ("input", "bias")
        }
        eye = sparse.identity(batch, format="csr")
        for syn in net.synapses:
            src = net.population(syn.src)
            weight = sparse.kron(eye, sparse.csr_matrix(syn.weight), format="csr")
            out = bank.s_out if src.kind in ("input", "bias") else neurons[syn.src].s_out
            # Place the columns in the sender's width (the bank, or a LIF as wide as its input).
            left = column.get(syn.src, 0)
            right = out.shape[0] - left - weight.shape[1]
            weight = sparse.hstack(
                [
                    sparse.csr_matrix((weight.shape[0], left)),
                    weight,
                    sparse.csr_matrix((weight.shape[0], right)),
                ],
                format="csr",
            )
            options = dict(weight_exp=syn.weight_exp, num_message_bits=24)
            if syn.delay and delays:
                conn = DelayDense(weights=weight.toarray(), delays=syn.delay, **options)
            elif batch == 1 and not sparse.issparse(syn.weight):
                conn = Dense(weights=weight.toarray(), **options)
            else:
                conn = Sparse(weights=weight, **options)
            out.connect(conn.s_in)
            conn.a_out.connect(neurons[syn.dst].a_in)
        return bank

    return build


def main() -> None:
    args = _parse_args()
    tune_malloc_for_tiles()  # as the CLI's process is (snncompile.reference.malloc)
    from snncompile.compiler import compile_model
    from snncompile.data import load_task
    from snncompile.targets.lava import run_lava

    net = compile_model(args.model).netlist
    inputs = load_task("sdigits").test.inputs
    steps = net.total_ticks(inputs.shape[1])
    print(
        f"model {Path(args.model).name}: {len(net.populations)} populations, "
        f"{len(net.synapses)} synapses, {steps} steps per run\n"
    )

    run_lava(net, inputs[:1, :4], record=False)  # warm-up: imports, first compile
    rows = []
    for batch in args.batches:
        x = inputs[:batch]
        _settle()
        reference = _median_time(lambda x=x: simulate(net, x), max(args.repeats, 20))
        runs = [_timed_lava(_ours(net, x), steps, "fixed_pt") for _ in range(args.repeats)]
        stepping = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        wall = _median_time(lambda x=x: run_lava(net, x, record=False), args.repeats)
        traced = _median_time(lambda x=x: run_lava(net, x), args.repeats)
        internals = _median_time(lambda x=x: run_lava(net, x, record_internals=True), args.repeats)
        rows.append(
            (
                batch,
                steps / reference,
                steps / stepping,
                steps / total,
                wall,
                traced,
                internals,
                runs[0][2],
            )
        )
    # Lava taking the batch one sample at a time, as a Lava user without our copies
    # would: B batch-1 runs, of the batch-1 row's stepping rate (not run here).
    single = next((lava for batch, _, lava, *_ in rows if batch == 1), None)
    print(
        "| batch | reference steps/s | Lava steps/s (stepping) | Lava steps/s (end to end) "
        "| run_lava s | run_lava s, all traces | run_lava s, all traces and internals "
        "| Lava processes | reference / Lava | reference / Lava one sample at a time |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, ref, lava, e2e, wall, traced, internals, count in rows:
        one_at_a_time = f"{ref * batch / single:,.0f}x stepping" if single else "-"
        print(
            f"| {batch} | {ref:,.0f} | {lava:,.1f} | {e2e:,.1f} | {wall:.2f} | {traced:.2f} "
            f"| {internals:.2f} | {count} "
            f"| {ref / lava:,.0f}x stepping, {ref / e2e:,.0f}x end to end | {one_at_a_time} |"
        )

    batch = min(max(args.batches), 8)
    x = inputs[:batch]
    together = _median_time(lambda: run_lava(net, x, record=False), 1)
    apart = _median_time(lambda: run_lava(net, x, record=False, batch_size=1), 1)
    print(
        f"\n{batch} samples: one run of {batch} copies {together:.2f} s, "
        f"{batch} runs of one {apart:.2f} s ({apart / together:.1f}x)"
    )

    print("\n| batch | network | processes | stepping steps/s | end to end s |")
    print("|---:|---|---:|---:|---:|")
    for batch in args.batches[:2]:
        x = inputs[:batch]
        networks = {
            "ours (snncompile.targets.lava)": _ours(net, x),
            "hand-built (LIF, Dense/Sparse, DelayDense)": _hand_built(net, x),
            "hand-built, delays dropped (LIF, Dense/Sparse)": _hand_built(net, x, delays=False),
        }
        runs: dict[str, list] = {label: [] for label in networks}
        for _ in range(args.repeats):  # alternate, so load changes hit both alike
            for label, build in networks.items():
                runs[label].append(_timed_lava(build, steps, "fixed_pt"))
        for label, results in runs.items():
            stepping = statistics.median(r[0] for r in results)
            total = statistics.median(r[1] for r in results)
            print(
                f"| {batch} | {label} | {results[0][2]} | {steps / stepping:,.1f} | {total:.2f} |"
            )


if __name__ == "__main__":
    main()
