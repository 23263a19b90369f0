"""The float IR: a validated DAG of named ops over discrete time.

A Graph is a tuple of Nodes in topological order. Each node has a unique name (the
qualified name of the module it came from, e.g. "blocks.0.ssm"), an op
(snncompile.ir.ops), and the names of its inputs. Exactly one Input node, exactly one
Output node; every node's op checks its input widths. `dt_s` is the duration of one
step in seconds when known (NIR imports), else None (a trained sequence model's steps
are abstract).

A recurrent loop through several nodes is a DAG too: the edge that closes it is a
Feedback node (snncompile.ir.nir_ops) with no inputs, naming the later node whose earlier
output it carries (Op.references).

Graphs are immutable; passes build new ones with `replace_nodes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snncompile.ir.ops import Input, InvalidGraphError, Op, Output


def reachable(edges: Iterable[tuple[str, str]], start: str) -> set[str]:
    """`start` and every node a path of (src, dst) `edges` leads to from it (cycles too)."""
    succs: dict[str, list[str]] = {}
    for src, dst in edges:
        succs.setdefault(src, []).append(dst)
    seen, todo = {start}, [start]
    while todo:
        for nxt in succs.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@dataclass(frozen=True, eq=False)
class Node:
    """One op applied to the outputs of the named input nodes."""

    name: str
    op: Op
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Graph:
    """A DAG of Nodes in topological order; validated on construction."""

    nodes: tuple[Node, ...]
    dt_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "_sizes", self._validate())

    def _validate(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for node in self.nodes:
            if not node.name:
                raise InvalidGraphError("a node has an empty name")
            if node.name in sizes:
                raise InvalidGraphError(f"node name {node.name!r} is used twice")
            missing = [name for name in node.inputs if name not in sizes]
            if missing:
                raise InvalidGraphError(
                    f"node {node.name!r} reads {', '.join(missing)}, which is not an "
                    "earlier node (unknown name or not in topological order)"
                )
            try:
                sizes[node.name] = node.op.validate(tuple(sizes[i] for i in node.inputs))
            except InvalidGraphError as exc:
                raise InvalidGraphError(f"node {node.name!r}: {exc}") from None
        for node in self.nodes:
            for name, width in node.op.references().items():
                if sizes.get(name) != width:
                    raise InvalidGraphError(
                        f"node {node.name!r} reads node {name!r} of width {width}, which "
                        + ("does not exist" if name not in sizes else f"has width {sizes[name]}")
                    )
        for kind in (Input, Output):
            count = sum(isinstance(node.op, kind) for node in self.nodes)
            if count != 1:
                raise InvalidGraphError(f"a graph needs exactly one {kind.kind} node, has {count}")
        if self.dt_s is not None and not self.dt_s > 0:
            raise InvalidGraphError(f"dt_s must be positive, got {self.dt_s}")
        return sizes

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def size(self, name: str) -> int:
        """Output width of a node."""
        return self._sizes[name]  # type: ignore[attr-defined]

    @property
    def input(self) -> Node:
        return next(n for n in self.nodes if isinstance(n.op, Input))

    @property
    def output(self) -> Node:
        return next(n for n in self.nodes if isinstance(n.op, Output))

    def consumers(self, name: str) -> list[Node]:
        return [node for node in self.nodes if name in node.inputs]

    def replace_nodes(self, nodes: Iterable[Node]) -> Graph:
        return Graph(tuple(nodes), dt_s=self.dt_s, meta=dict(self.meta))

    def summary(self) -> list[dict[str, Any]]:
        """One row per node: name, op kind, inputs, output width, parameter count."""
        rows = []
        for node in self.nodes:
            n_params = sum(
                int(getattr(a, "nnz", a.size)) * (2 if a.dtype.kind == "c" else 1)
                for a in node.op.arrays().values()
            )
            rows.append(
                {
                    "name": node.name,
                    "op": node.op.kind,
                    "inputs": list(node.inputs),
                    "width": self.size(node.name),
                    "parameters": n_params,
                }
            )
        return rows
