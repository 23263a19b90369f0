"""The Lava target: a Netlist as Lava processes on Lava's bit-accurate CPU simulator.

    from snncompile.targets.lava import run_lava
    result = run_lava(net, x)     # a reference SimResult: traces, readout, logits, events

Importing this package does not import Lava; running raises MissingDependencyError
(exit 7) when lava-nc is missing. docs/targets.md records what was measured about Lava.
"""

from snncompile.targets.lava.builder import LavaNetwork, build_network
from snncompile.targets.lava.runner import run_lava

__all__ = ["LavaNetwork", "build_network", "run_lava"]
