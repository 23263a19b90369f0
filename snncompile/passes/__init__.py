"""Graph -> graph rewrites, each computing the same function as its input graph.

Default order (run_passes):

    drop_identity     Dropout / Identity removed
    discretize_ssm    S4D -> SSM (before fold_batchnorm: a BN shift needs SSM.u_shift)
    fold_batchnorm    BatchNorm folded into a neighbouring Linear or SSM, else ChannelAffine
    fold_thresholds   neuron thresholds folded into their SSM/Linear producer (threshold 1)
"""

from __future__ import annotations

from snncompile.errors import UsageError
from snncompile.ir.graph import Graph
from snncompile.passes import discretize, drop_identity, fold_batchnorm, fold_thresholds
from snncompile.passes.base import PASSES, GraphPass, register

del discretize, drop_identity, fold_batchnorm, fold_thresholds  # imported to register

DEFAULT_ORDER: tuple[str, ...] = (
    "drop_identity",
    "discretize_ssm",
    "fold_batchnorm",
    "fold_thresholds",
)


def run_passes(graph: Graph, stop_after: str | None = None) -> Graph:
    """Run the passes of DEFAULT_ORDER that match, in order; stop after `stop_after`.

    The result's meta["passes"] lists the passes that ran (matched), appended to any
    already there.
    """
    if stop_after is not None and stop_after not in DEFAULT_ORDER:
        raise UsageError(
            f"unknown pass {stop_after!r} for stop_after; passes: {', '.join(DEFAULT_ORDER)}"
        )
    applied = list(graph.meta.get("passes", []))
    for name in DEFAULT_ORDER:
        graph_pass = PASSES[name]
        if graph_pass.match(graph):
            graph = graph_pass.run(graph)
            applied.append(name)
        if name == stop_after:
            break
    return Graph(graph.nodes, dt_s=graph.dt_s, meta={**graph.meta, "passes": applied})


__all__ = ["DEFAULT_ORDER", "PASSES", "GraphPass", "register", "run_passes"]
