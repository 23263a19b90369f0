"""How a conv network on a wider input maps onto Loihi 2 cores (docs/targets.md, "Mapping").

    .venv/bin/python examples/conv_loihi2.py [--size 64] [--net nmnist|gesture]

Writes a NIR graph the way Sinabs exports one (Conv2d, IF, SumPool2d, Flatten, Affine;
random weights of magnitude 0.3 to 1, seed 0: the mapping depends on the sizes and on
which weights are zero, not on training) for a 2 x size x size event-camera input, exports
it with `snncompile export --target loihi2 --dt 1e-4` (the default target description)
into a temporary directory, and prints the exit code, cores and what the most used core
holds (10 to 40 s for sizes 38 to 64, 160 s for `gesture` at 128, on two busy cores,
2026-12-07). `nmnist` has the layers of tests/data/nir-examples/cnn_sinabs.nir (size 34 is
that file's shape); `gesture` is a DVS128-Gesture-sized net (size 128): Conv2d(2->8, 3x3,
stride 2) -> IF -> Conv2d(8->16, 3x3, stride 2) -> IF -> SumPool 2 -> Conv2d(16->16, 3x3)
-> IF -> SumPool 2 -> Affine(->128) -> IF -> Affine(->10) -> IF.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np
from loihi2_peaks import print_peaks

NETS = {  # ("conv", out channels, kernel, stride, padding) or ("pool", kernel); hidden
    "nmnist": ([("conv", 16, 5, 2, 1), ("conv", 16, 3, 1, 1), ("pool", 2), ("conv", 8, 3, 1, 1),
                ("pool", 2)], [256]),
    "gesture": ([("conv", 8, 3, 2, 1), ("conv", 16, 3, 2, 1), ("pool", 2), ("conv", 16, 3, 1, 1),
                 ("pool", 2)], [128]),
}  # fmt: skip


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.uniform(0.3, 1.0, shape) * rng.choice([-1, 1], shape)).astype(np.float32)


def _if(shape: tuple[int, ...]) -> nir.IF:
    ones = np.ones(shape, np.float32)
    return nir.IF(r=ones, v_threshold=ones, v_reset=np.zeros(shape, np.float32))


def build(size: int, net: str) -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    layers, hidden = NETS[net]
    shape = (2, size, size)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    chain = ["input"]

    def add(node: nir.NIRNode) -> None:
        chain.append(str(len(chain) - 1))
        nodes[chain[-1]] = node

    for layer in layers:
        if layer[0] == "conv":
            _, c_out, k, s, p = layer
            weight = _weights(rng, (c_out, shape[0], k, k))
            add(nir.Conv2d(input_shape=shape[1:], weight=weight, stride=s, padding=p,
                           dilation=1, groups=1, bias=np.zeros(c_out, np.float32)))  # fmt: skip
            shape = (c_out, *((n + 2 * p - k) // s + 1 for n in shape[1:]))
            add(_if(shape))
        else:
            k = layer[1]
            add(nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]),
                              padding=np.array([0, 0])))  # fmt: skip
            shape = (shape[0], shape[1] // k, shape[2] // k)
    add(nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
    width = int(np.prod(shape))
    for n in [*hidden, 10]:
        add(nir.Affine(weight=_weights(rng, (n, width)), bias=np.zeros(n, np.float32)))
        add(_if((n,)))
        width = n
    nodes["output"] = nir.Output(output_type={"output": np.array([10])})
    chain.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(chain)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--net", choices=sorted(NETS), default="nmnist")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{args.net}{args.size}.nir"
        nir.write(source, build(args.size, args.net))
        out = Path(tmp) / "conv.loihi2"
        command = [sys.executable, "-m", "snncompile", "export", str(source), "--dt", "1e-4",
                   "--target", "loihi2", "-o", str(out)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        print(f"{args.net}, input 2 x {args.size} x {args.size}: exit {done.returncode}")
        if done.returncode != 0:
            print(f"  {done.stderr.strip()}")
            return
        resources = json.loads((out / "resources.json").read_text())
    print(f"  {resources['compartments']:,} compartments on {resources['cores']} cores, "
          f"{resources['chips']} chip(s)")  # fmt: skip
    print_peaks(resources)


if __name__ == "__main__":
    main()
