"""The pass registry and the small rewrite helpers passes share.

A pass is an object with a `name`, a one-line `description`, `match(graph) -> bool`
(does it have anything to do on this graph) and `run(graph) -> Graph` (a new graph that
computes the same function; graphs are immutable). `@register` adds a pass class to
PASSES under its name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from snncompile.ir.graph import Graph, Node
from snncompile.ir.ops import Op


class GraphPass(Protocol):
    name: str
    description: str

    def match(self, graph: Graph) -> bool: ...

    def run(self, graph: Graph) -> Graph: ...


PASSES: dict[str, GraphPass] = {}

_P = TypeVar("_P")


def register(cls: type[_P]) -> type[_P]:
    """Class decorator: instantiate the pass and add it to PASSES under its name."""
    instance = cls()
    PASSES[instance.name] = instance  # type: ignore[attr-defined]
    return cls


def sole_consumer(graph: Graph, name: str) -> Node | None:
    """The one node reading `name`, if exactly one node reads it, and reads it once."""
    consumers = graph.consumers(name)
    if len(consumers) == 1 and consumers[0].inputs.count(name) == 1:
        return consumers[0]
    return None


def rebuild(
    graph: Graph,
    *,
    ops: dict[str, Op] | None = None,
    drop: Iterable[str] = (),
    alias: dict[str, str] | None = None,
) -> Graph:
    """A new graph: node ops replaced by name (`ops`), nodes removed (`drop`, each
    replaced in its consumers by `alias[name]`), everything else as it was."""
    ops = ops or {}
    alias = dict(alias or {})
    dropped = set(drop)
    nodes = []
    for node in graph:
        inputs = tuple(_resolve(alias, name) for name in node.inputs)
        if node.name in dropped:
            continue
        nodes.append(Node(node.name, ops.get(node.name, node.op), inputs))
    return graph.replace_nodes(nodes)


def _resolve(alias: dict[str, str], name: str) -> str:
    while name in alias:
        name = alias[name]
    return name
