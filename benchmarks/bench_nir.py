"""NIR import, rungs 1-3 on the peer frameworks' graphs in tests/data/nir-examples/.

    python benchmarks/bench_nir.py [--examples DIR] [--lava]

For every example graph nir 1.0.8 reads: compile it (export's defaults: calibration on
Bernoulli spikes p=0.2, 8 x 32 steps, seed 0), then on other Bernoulli inputs (p=0.3 for
the Braille/LIF graphs, 0.2 for the CNN; seed 1) print per spiking population the spike
agreement of the float NIR simulation with the float64 netlist (rung 1, must be 1) and
with the quantized reference (rung 2, measured), and the spike rates. With --lava, also
the number of values where Lava differs from the quantized reference (rung 3, every
population and step; short runs: 2 x 10 steps, the CNN 1 x 2 steps).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from snncompile.compiler import compile_model
from snncompile.frontend.nir_compile import spike_agreement
from snncompile.reference.simulator import simulate

# (file, dt seconds, input spike probability, reset): dt as the exporting framework ran it
# (snnTorch Braille 1e-4; Norse and Rockpool 1e-3; Sinabs is discrete time: dt 1 with
# R = 1 is its v += input).
CASES = [
    ("braille_noDelay_bias_zero.nir", 1e-4, 0.3, "zero"),
    ("braille_noDelay_noBias_subtract.nir", 1e-4, 0.3, "zero"),
    ("braille_noDelay_noBias_subtract.nir", 1e-4, 0.3, "subtract"),
    ("braille_noDelay_noBias_subtract.nir", 1e-4, 0.3, "subtract-delayed"),  # as trained
    ("lif_norse.nir", 1e-3, 0.3, "zero"),
    ("two_lif_neurons.nir", 1e-3, 0.3, "zero"),
    ("lif_rockpool.nir", 1e-3, 0.3, "zero"),
    ("cnn_sinabs.nir", 1.0, 0.2, "zero"),
    ("cnn_sinabs.nir", 1.0, 0.2, "subtract"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "tests" / "data" / "nir-examples",
    )
    parser.add_argument("--lava", action="store_true")
    args = parser.parse_args()
    for name, dt, rate, reset in CASES:
        path = args.examples / name
        start = time.perf_counter()
        compiled = compile_model(path, dt=dt, reset=reset)
        n = compiled.graph.input.op.size
        shape = (8, 50, n) if n > 100 else (16, 100, n)
        x = (np.random.default_rng(1).random(shape) < rate).astype(np.float64)
        exact = spike_agreement(path, compiled.float_netlist, x, dt=dt, reset=reset)
        measured = spike_agreement(path, compiled.netlist, x, dt=dt, reset=reset)
        line = f"{name} dt={dt:g} reset={reset} input {shape[0]}x{shape[1]} p={rate}"
        if args.lava:
            from snncompile.targets.lava import run_lava

            short = x[:1, :2] if n > 100 else x[:2, :10]
            ref = simulate(compiled.netlist, short, record=True)
            got = run_lava(compiled.netlist, short)
            bad = sum(int(np.count_nonzero(ref.traces[k] != got.traces[k])) for k in ref.traces)
            line += f"; lava mismatches {bad} on {short.shape[0]}x{short.shape[1]}"
        print(f"{line} ({time.perf_counter() - start:.1f} s)")
        for pop, value in measured.items():
            print(
                f"  {pop:18s} float64 {exact[pop]['agreement']:.4f}  quantized "
                f"{value['agreement']:.4f}  rate float {value['rate_float']:.4f} "
                f"quantized {value['rate_compiled']:.4f}"
            )


if __name__ == "__main__":
    main()
