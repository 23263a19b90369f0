"""Reading a NIR file and flattening it: what the importer and the NIR simulator share.

    flat = load_flat(path_or_graph)     # FlatNir: nodes by full name, edges, warnings

Reading (nir 1.0.8): `nir.read(path)` first, with nir's own shape check. If only that
check fails, the file is read again with `type_check=False` and a warning names the
problem; the importer then infers every shape from the node parameters and refuses the
file (CorruptInputError) if the parameters themselves disagree. This accepts
lif_rockpool.nir (its Output node declares a wrong shape that no computation uses) and
still refuses braille_legacy_cf1c59a.nir (its recurrent Affine does not fit its neuron).
Anything else nir cannot read (missing file, not HDF5, unknown fields, an edge naming a
missing node) is CorruptInputError with one line.

A graph that reaches flattening without an Input or Output node (older exports read
without the type check, which would add them; see _refuse_invented_ends), or a file
without any edge, is CorruptInputError too; more than one Input or Output is valid NIR
that snncompile does not compile (UnsupportedError). naming_file puts the file's path
before either.

Flattening: a nested NIRGraph `g` becomes its nodes named "g.<inner>"; an edge into `g`
goes to its (one) Input node and an edge out of it leaves from its (one) Output node;
those inner Input/Output nodes stay as identity relays.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import (
    CorruptInputError,
    MissingDependencyError,
    UnsupportedError,
    one_line_text,
)
from snncompile.ir.serialize import check_hdf5_size, check_hdf5_tree, require_file

# Node types of nir 1.0.8, which the importer takes all of (nir's reader knows no others).
NEURONS = ("I", "LI", "CubaLI", "IF", "LIF", "CubaLIF")
LINEAR = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")
SUPPORTED = ("Input", "Output", *LINEAR, "Delay", "Threshold", *NEURONS, "NIRGraph")


def unsupported_nodes_error(bad: list[str]) -> UnsupportedError:
    """One line naming every node ("name (type)") the importer cannot take."""
    return UnsupportedError(
        f"unsupported NIR node(s): {', '.join(bad)}; NIR import takes {', '.join(SUPPORTED)}"
    )


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise MissingDependencyError("NIR import needs the nir package: pip install nir") from None
    return nir


@dataclass
class FlatNir:
    """A NIR graph without nesting: nodes by full name, edges between full names.

    relays: inner Input/Output nodes of flattened subgraphs (identity);
    input, output: the names of the top-level Input and Output nodes;
    warnings: what reading had to overlook (one line each);
    metadata: the top-level graph's metadata.
    """

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]
    relays: set[str]
    input: str
    output: str
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def preds(self, name: str) -> list[str]:
        return [s for s, d in self.edges if d == name]

    def succs(self, name: str) -> list[str]:
        return [d for s, d in self.edges if s == name]


def read_nir(path: str | os.PathLike[str]) -> tuple[Any, list[str]]:
    """(nir.NIRGraph, warnings); CorruptInputError when nir 1.0.8 cannot read the file."""
    nir = _nir()
    path = Path(path)
    require_file(path)
    check_hdf5_tree(path)  # first: it follows no link out of the file
    check_hdf5_size(path)
    if _has_no_edges(path):  # nir would invent an Input and an Output for every node
        raise CorruptInputError(f"{path}: the NIR graph has no edges")
    try:
        graph = nir.read(path)
    # nir's reader raises whatever the malformed content triggers (KeyError, TypeError,
    # ValueError, OSError from h5py, ...): every one of them means "cannot read this file".
    except Exception as exc:
        strict_error = exc
    else:
        _refuse_invented_ends(path, graph)
        return graph, []
    unknown = _unknown_node_types(path)
    if unknown:  # nir's reader fails on the first one with a bare AssertionError
        raise unsupported_nodes_error(unknown) from None
    if not (isinstance(strict_error, ValueError) and "type" in str(strict_error).lower()):
        raise CorruptInputError(
            f"{path}: nir cannot read it ({type(strict_error).__name__}: "
            f"{one_line_text(strict_error)})"
        ) from None
    try:
        # Nested graphs typed first: nir completes a nested chain without an Input node
        # with one of its own, which the untyped read does not (such a chain compiled,
        # helper-87); only where a nested graph fails its own check, none is typed.
        graph = nir.read(path, type_check=False)
    except Exception:  # as above
        try:
            graph = _read_untyped(nir, path)
        except Exception as exc:
            raise CorruptInputError(
                f"{path}: nir cannot read it ({type(exc).__name__}: {one_line_text(exc)})"
            ) from None
    _refuse_invented_ends(path, graph)
    warning = (
        f"{path}: nir's type check failed ({one_line_text(strict_error)}"
        f"{_grouped_convolution_note(graph, str(strict_error))}); read without it, every "
        "shape is inferred from the node parameters"
    )
    return graph, [warning]


def _grouped_convolution_note(graph: Any, error: str) -> str:
    """Where nir's type error is about a grouped convolution's input, the channels it
    quotes are nir's in_channels / groups (its Conv1d and Conv2d declare weight.shape[1]),
    not what the file says: a note gives the count the import reads, so that the
    warning does not leave nir's shape as the only one it quotes (helper-88)."""
    nir = _nir()
    notes = []

    def walk(g: Any, prefix: str) -> None:
        for name, node in g.nodes.items():
            if isinstance(node, nir.NIRGraph):
                walk(node, f"{prefix}{name}.")
                continue
            if not isinstance(node, (nir.Conv1d, nir.Conv2d)) or f"-> {name}.input:" not in error:
                continue
            try:  # a malformed field is the importer's to name
                per_group, groups = int(np.shape(node.weight)[1]), int(node.groups)
            except (TypeError, ValueError, IndexError):
                continue
            if groups > 1:
                notes.append(f"{prefix + str(name)!r} takes {per_group * groups}, not {per_group}")

    walk(graph, "")
    if not notes:
        return ""
    return (
        "; nir counts a grouped convolution's input channels as in_channels / groups: "
        + ", ".join(notes)
    )


def _read_untyped(nir: Any, path: Path) -> Any:
    """nir.read(path, type_check=False) for nested subgraphs too: nir's reader passes
    type_check to the top-level graph only, so a subgraph whose declared types disagree
    (nir's Conv1d and Conv2d declare weight.shape[1] input channels, a grouped
    convolution's in_channels / groups) failed the read that was to overlook it (exit 6,
    while the same nodes at the top level compiled). The reader's own steps, with the
    flag set at every level."""
    import h5py
    from nir.serialization import hdf2dict

    with h5py.File(path, "r") as f:
        data = hdf2dict(f["node"])

    def untyped(node: Any) -> None:
        if isinstance(node, dict) and node.get("type") == "NIRGraph":
            if "type_check" in node:  # as nir.read refuses it: a key the reader sets
                raise ValueError("the graph holds a 'type_check' key, which nir refuses")
            node["type_check"] = False
            for inner in (node.get("nodes") or {}).values():
                untyped(inner)

    untyped(data)
    return nir.dict2NIRNode(data)


# Why a graph's dead ends are refused (files here, in-memory graphs by the importer).
DEAD_ENDS_NOTE = "(a node nothing feeds or that feeds nothing is not compiled)"


def _refuse_invented_ends(path: Path, graph: Any) -> None:
    """nir's type check gives every node without an incoming edge an Input node of its
    own ("input_<name>") and every node without an outgoing one an Output, in nested
    subgraphs too. Where a graph has no Input (Output) in the file and nir made exactly
    one, that completes a plain chain and is kept (such files compiled before); beside
    the file's own, or several, they are nodes nothing feeds (that feed nothing), named
    as such (nested ones dotted): the graph then failed as "2 Input nodes (input,
    input_lif)", or a subgraph as "has 2 and 1", naming nodes the file lacks."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ends = _invented_ends(graph, f["node"], "")
    except Exception:  # h5py raises OSError, KeyError, TypeError, ...: nir read it anyway
        return
    if ends:
        raise UnsupportedError(f"{path}: {', '.join(ends)} {DEAD_ENDS_NOTE}")


def _invented_ends(graph: Any, group: Any, prefix: str) -> list[str]:
    """What `_refuse_invented_ends` names in `graph` (HDF5 `group`) and its subgraphs."""
    nir = _nir()
    in_file = set(group["nodes"].keys())
    invented = set(graph.nodes) - in_file
    ends = []
    for end, made, where in (
        (nir.Input, [dst for src, dst in graph.edges if src in invented], "input"),
        (nir.Output, [src for src, dst in graph.edges if dst in invented], "output"),
    ):
        own = any(isinstance(graph.nodes[n], end) for n in in_file if n in graph.nodes)
        if own or len(made) > 1:
            ends += [f"node {prefix + name!r} has no {where} edge" for name in sorted(made)]
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph) and name in in_file:
            ends += _invented_ends(node, group["nodes"][name], f"{prefix}{name}.")
    return ends


def _has_no_edges(path: Path) -> bool:
    """Whether the file's top-level graph holds nodes but an empty edge list (False when
    its layout is not NIR's: nir's reader reports that)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            edges, nodes = f["node"]["edges"], f["node"]["nodes"]
            return len(nodes) > 0 and edges.shape[0] == 0
    except Exception:  # h5py raises OSError, KeyError, AttributeError, TypeError, ...
        return False


def _unknown_node_types(path: Path) -> list[str]:
    """Every node ("name (type)", nested names dotted) whose HDF5 `type` string is not a
    node type of nir 1.0.8; [] when the file's layout is not NIR's (the caller then
    reports the reader's own error)."""
    import h5py

    found: list[str] = []

    def walk(group: Any, prefix: str) -> None:
        nodes = group.get("nodes")
        if not isinstance(nodes, h5py.Group):
            return
        for name, node in nodes.items():
            kind = node.get("type") if isinstance(node, h5py.Group) else None
            if not isinstance(kind, h5py.Dataset):
                continue
            value = kind[()]
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text == "NIRGraph":
                walk(node, f"{prefix}{name}.")
            elif text not in SUPPORTED:
                found.append(f"{prefix}{name} ({text})")

    try:
        with h5py.File(path, "r") as f:
            top = f.get("node")
            if isinstance(top, h5py.Group):
                walk(top, "")
    except (OSError, ValueError):  # not HDF5 at all: nir's error says so
        return []
    return found


def _check_values(name: str, node: Any) -> None:
    """Parameters are finite real numbers. A NaN or inf is a damaged file (it would
    surface later, folded into some other value, as a confusing error about that value);
    complex values would lose their imaginary part in silence, strings fail deep inside."""
    for key, value in vars(node).items():
        if not isinstance(value, (np.ndarray, float, complex)):
            continue
        array = np.asarray(value)
        where = f"node {name!r} ({type(node).__name__})"
        if array.dtype.kind == "c":
            raise CorruptInputError(f"{where} has complex {key}; NIR parameters are real")
        if array.dtype.kind not in "biuf":
            raise CorruptInputError(f"{where} has {key} of {array.dtype} values, not numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise CorruptInputError(f"{where} has a NaN or infinite {key}")


def flatten(graph: Any, warnings: list[str] | None = None) -> FlatNir:
    """Flatten nested subgraphs (see the module docstring); CorruptInputError on dangling
    edges or no Input/Output, UnsupportedError for more than one top-level of either."""
    nir = _nir()
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    relays: set[str] = set()

    def walk(g: Any, prefix: str) -> None:
        entry: dict[str, str] = {}
        exit_: dict[str, str] = {}
        for name, node in g.nodes.items():
            full = prefix + str(name)
            if isinstance(node, nir.NIRGraph):
                ins = [n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
                outs = [n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
                if len(ins) != 1 or len(outs) != 1:
                    raise UnsupportedError(
                        f"subgraph {full}: needs one Input and one Output node, has "
                        f"{len(ins)} and {len(outs)}"
                    )
                walk(node, full + ".")
                entry[full], exit_[full] = f"{full}.{ins[0]}", f"{full}.{outs[0]}"
                relays.update((entry[full], exit_[full]))
            else:
                _check_values(full, node)
                nodes[full] = node
        for src, dst in g.edges:
            s = exit_.get(prefix + str(src), prefix + str(src))
            d = entry.get(prefix + str(dst), prefix + str(dst))
            for end in (s, d):
                if end not in nodes and end not in entry and end not in exit_:
                    raise CorruptInputError(f"NIR edge ({src!r}, {dst!r}) names no node {end!r}")
            edges.append((s, d))

    walk(graph, "")
    top_in = [n for n, v in nodes.items() if isinstance(v, nir.Input) and n not in relays]
    top_out = [n for n, v in nodes.items() if isinstance(v, nir.Output) and n not in relays]
    if not top_in or not top_out:  # every NIR graph has them; older exports did not
        raise CorruptInputError(
            f"the NIR graph has {len(top_in)} Input and {len(top_out)} Output nodes (an "
            "old or malformed export)"
        )
    if len(top_in) != 1 or len(top_out) != 1:
        raise UnsupportedError(
            f"snncompile compiles NIR graphs with one Input and one Output node; this one "
            f"has {len(top_in)} ({', '.join(top_in)}) and {len(top_out)} "
            f"({', '.join(top_out)})"
        )
    _check_ends(edges, top_in[0], top_out[0])
    return FlatNir(
        nodes,
        edges,
        relays,
        top_in[0],
        top_out[0],
        list(warnings or []),
        dict(getattr(graph, "metadata", {}) or {}),
    )


def _check_ends(edges: list[tuple[str, str]], input_name: str, output_name: str) -> None:
    """CorruptInputError for an edge into the Input node or out of the Output node: the
    import dropped the first without a word and compiled the second as a feedback loop."""
    for src, dst in edges:
        if dst == input_name:
            raise CorruptInputError(
                f"NIR edge ({src!r}, {dst!r}) leads into the Input node; nothing may feed it"
            )
        if src == output_name:
            raise CorruptInputError(
                f"NIR edge ({src!r}, {dst!r}) leaves the Output node; it may feed nothing"
            )


@contextmanager
def naming_file(source: Any) -> Iterator[None]:
    """A CorruptInputError or UnsupportedError raised inside starts with the .nir file's
    path (as pathlib writes it: ./g.nir is g.nir; unless it names the file already), so
    that every refusal of a NIR graph says which file it is about, as a checkpoint's
    does. No-op for an in-memory graph (or None)."""
    if not isinstance(source, (str, os.PathLike)):
        yield
        return
    name = str(Path(source))
    try:
        yield
    except (CorruptInputError, UnsupportedError) as exc:
        if name in str(exc):
            raise
        raise type(exc)(f"{name}: {exc}") from None


def load_flat(source: Any) -> FlatNir:
    """A path to a .nir file or an in-memory nir.NIRGraph -> FlatNir."""
    if isinstance(source, (str, os.PathLike)):
        with naming_file(source):
            graph, warnings = read_nir(source)
            return flatten(graph, warnings)
    return flatten(source)


def forward_order(flat: FlatNir) -> tuple[list[str], set[tuple[str, str]]]:
    """(evaluation order, back edges): a depth-first search from the Input marks every
    edge that closes a cycle as a back edge (it carries the previous step's value); the
    other edges form a DAG, ordered topologically. Deterministic: edges in file order."""
    succs: dict[str, list[str]] = {n: [] for n in flat.nodes}
    for s, d in flat.edges:
        succs[s].append(d)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done

    def dfs(root: str) -> None:
        stack = [(root, iter(succs[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succs[nxt])))

    dfs(flat.input)
    for name in flat.nodes:  # nodes the input does not reach (the importer refuses them)
        if name not in state:
            dfs(name)
    indegree = {n: 0 for n in flat.nodes}
    for s, d in flat.edges:
        if (s, d) not in back:
            indegree[d] += 1
    order, ready = [], [n for n in flat.nodes if indegree[n] == 0]
    while ready:
        node = ready.pop(0)
        order.append(node)
        for s, d in flat.edges:
            if s == node and (s, d) not in back:
                indegree[d] -= 1
                if indegree[d] == 0:
                    ready.append(d)
    return order, back
