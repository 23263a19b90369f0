"""Read back a NIR graph that snncompile wrote (`export --target nir`), exactly.

    graph = read_snncompile_nir("model.nir")     # Graph, or None if another tool wrote it

A file is ours when its graph metadata says so ("snncompile_format": "snncompile-nir");
anything else returns None and goes to the generic NIR importer. Ours is rebuilt from the
exact ops in the node metadata and then re-encoded: every NIR parameter in the file must
equal the one computed from that metadata, bit for bit, so a file edited after export is
refused (CorruptInputError) rather than half trusted. The result equals the exported
Graph (every op, every array), so compiling it gives the same integer netlist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snncompile.errors import CorruptInputError, MissingDependencyError
from snncompile.ir.graph import Graph
from snncompile.ir.serialize import check_hdf5_size, check_hdf5_tree, require_file


def _metadata_value(path: str | os.PathLike[str], key: str) -> Any:
    """The top-level graph metadata `key` of an HDF5 file, None if absent or not HDF5;
    builds no nodes."""
    import h5py

    if not Path(path).is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            item = f.get(f"node/metadata/{key}")
            if item is None or not isinstance(item, h5py.Dataset):
                return None
            value = item[()]
    except OSError:
        return None  # not HDF5: not ours; the generic importer reports what it is
    return value.decode("utf-8") if isinstance(value, bytes) else value


def is_snncompile_nir(path: str | os.PathLike[str]) -> bool:
    """Whether the file is HDF5 whose graph metadata names our format (`export --target
    nir` wrote it)."""
    from snncompile.targets.nir.codec import FORMAT

    return _metadata_value(path, "snncompile_format") == FORMAT


def stated_dt_s(path: str | os.PathLike[str]) -> float | None:
    """The step (s) a file of ours states its NIR time constants at (snncompile_dt_s:
    what inspect shows, and the only --dt export accepts for it); None if not stated."""
    value = _metadata_value(path, "snncompile_dt_s")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def read_snncompile_nir(source: str | os.PathLike[str] | Any) -> Graph | None:
    """The Graph in a snncompile-written NIR file or nir.NIRGraph; None if not ours.

    Raises CorruptInputError (exit 6) when the file is ours but damaged or edited, and
    MissingDependencyError (exit 7) without the nir package.
    """
    try:
        import nir
    except ImportError:
        raise MissingDependencyError("reading NIR files needs the `nir` package") from None
    from snncompile.targets.nir.codec import decode_graph, is_ours

    if isinstance(source, nir.NIRGraph):
        return decode_graph(source) if is_ours(source) else None
    path = Path(source)
    require_file(path)
    if not is_snncompile_nir(path):
        return None
    check_hdf5_tree(path)
    check_hdf5_size(path)
    try:
        nir_graph = nir.read(path, type_check=True)
    except Exception as exc:  # nir raises bare ValueError/KeyError/AssertionError
        raise CorruptInputError(f"{path}: snncompile NIR file unreadable ({exc})") from None
    try:
        return decode_graph(nir_graph)
    except CorruptInputError as exc:
        raise CorruptInputError(f"{path}: {exc}") from None
