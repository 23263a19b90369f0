"""A NIR LIF network through snncompile into lava-dl's netx (README, "Loihi 2").

    .venv/bin/python examples/netx_mlp.py [--steps 100] [--seed 0]

Writes a NIR LIF MLP without biases (8 -> 16 -> 10, dt 1e-3, random weights, seed 0),
exports it with `snncompile export --target loihi2 --netx-weights --message-bits 8
--act-bits 8` into a temporary directory, loads the network.net with lava-dl's own
loader (`lava.lib.dl.netx.hdf5.Network`, as many layers as the file's netx_layers),
runs it in Lava's fixed-point simulation on Bernoulli spikes, and compares every
layer's spikes with the reference simulator's, every value at every step. Needs lava-dl,
which `make setup` installs. Takes about 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import nir
import numpy as np

from snncompile.artifact import read_artifact
from snncompile.reference.simulator import encode_input, simulate
from snncompile.targets.loihi2.netx import netx_network


def write_mlp(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ones = np.ones(16)

    def lif(n: int) -> nir.LIF:
        return nir.LIF(tau=0.02 * ones[:n], r=ones[:n], v_leak=0 * ones[:n], v_threshold=ones[:n])

    nodes = {
        "input": nir.Input(input_type=np.array([8])),
        "fc1": nir.Linear(weight=rng.normal(0, 12, (16, 8))),
        "lif1": lif(16),
        "fc2": nir.Linear(weight=rng.normal(0, 8, (10, 16))),
        "lif2": lif(10),
        "output": nir.Output(output_type=np.array([10])),
    }
    chain = ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(chain))))


@contextlib.contextmanager
def _quiet_lava_compiler() -> Iterator[None]:
    """Lava's compiler imports every module beside netx's to find ProcessModels: it
    cannot import netx's hdf5 module by file path and warns (it finds netx's models all
    the same), and importing lava-dl's slayer makes torch log "No CUDA runtime is
    found" on a host without CUDA (nothing here builds a CUDA extension)."""
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Cannot import module", UserWarning)
            yield
    finally:
        torch_log.setLevel(level)


def run_in_netx(path: Path, messages: np.ndarray) -> list[np.ndarray]:
    """Every chain layer's spikes (Lava steps, size): netx's Network has one out-port,
    the last layer's, so a sink goes on each layer block's own out-port."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    network = netx_network(path)  # lava-dl's netx loader, on the file's netx_layers
    source = Source(data=messages.T.astype(np.int32))
    source.s_out.connect(network.inp)
    sinks = [Sink(shape=layer.out.shape, buffer=messages.shape[0]) for layer in network.layers]
    for layer, sink in zip(network.layers, sinks, strict=True):
        layer.out.connect(sink.a_in)
    try:
        with _quiet_lava_compiler():
            network.run(RunSteps(num_steps=messages.shape[0]), Loihi2SimCfg(select_tag="fixed_pt"))
        return [np.asarray(sink.data.get()).T for sink in sinks]
    finally:
        network.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "mlp.nir", Path(tmp) / "mlp.loihi2"
        write_mlp(source, args.seed)
        options = ["--netx-weights", "--message-bits", "8", "--act-bits", "8"]
        cmd = [sys.executable, "-m", "snncompile", "export", str(source), "--dt", "1e-3"]
        cmd += ["--target", "loihi2"]
        subprocess.run([*cmd, *options, "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
        net = read_artifact(out).netlist
        with h5py.File(out / "network.net", "r") as f:
            layers = int(f.attrs["netx_layers"])
            names = [str(f[f"layer/{i}"].attrs["name"]) for i in range(1, layers)]
        print(f"network.net: netx loads layers 0-{layers - 1} (the input, then up to {names[-1]})")
        rng = np.random.default_rng(args.seed + 1)
        x = (rng.random((1, args.steps, 8)) < 0.3).astype(np.float64)
        latency = net.latency()
        padded = np.concatenate([x, np.zeros((1, latency[names[-1]], 8))], axis=1)
        spikes = run_in_netx(out / "network.net", encode_input(net, padded)[0])
        ours = simulate(net, x, record=names).traces
        differ = 0
        for name, trace in zip(names, spikes, strict=True):
            # Lava step s (row s - 1) carries tick s - 1; model step m is tick m + latency.
            theirs = trace[latency[name] : latency[name] + args.steps]
            count = int(np.count_nonzero(theirs != ours[name][0]))
            differ += count
            print(
                f"{name}: {theirs.size} values over {args.steps} steps, "
                f"{int(ours[name].sum())} spikes in the reference, {int(theirs.sum())} in "
                f"netx; {count} differ"
            )
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
