"""On-disk forms of the Netlist and the float Graph: a JSON file plus an .npz of arrays.

    save_netlist(net, directory)   -> directory/netlist.json + directory/netlist.npz
    save_graph(graph, directory)   -> directory/graph.json + directory/graph.npz

The JSON holds the structure (populations, synapses, nodes), small scalars, attrs,
formats and meta; every array lives in the .npz (read with allow_pickle=False) and the
JSON names it by key. An array is described as one of

    {"array": key}                                        a real array, dtype kept
    {"complex": [real_key, imag_key]}                     a complex array
    {"csr": [data_key, indices_key, indptr_key], "shape": [rows, cols]}   scipy CSR

so the files are readable without numpy's pickle and without this package. Floats in
the JSON are written with repr, which reads back to the same double: a round trip is
exact. Loading validates everything (the Netlist and Graph constructors do the rest) and
raises CorruptInputError with one line naming the file and the problem. docs/formats.md
describes the format.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import CorruptInputError, UsageError, one_line_text
from snncompile.ir.compartments import with_added_params
from snncompile.ir.graph import Graph, Node
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.ir.ops import OPS, InvalidGraphError
from snncompile.outputs import read_npy_header, write_file, write_npz

VERSION = 1
NETLIST_FORMAT = "snncompile-netlist"
GRAPH_FORMAT = "snncompile-graph"
_REAL_KINDS = "biuf"  # bool, int, uint, float: what an array in the .npz may hold


# -- writing ----------------------------------------------------------------------------


class _ArrayWriter:
    """Collects arrays under readable keys and returns the JSON description of each."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _put(self, key: str, value: np.ndarray) -> str:
        if key in self.arrays:
            raise UsageError(f"array key {key!r} is used twice")
        self.arrays[key] = np.asarray(value, order="C")  # ascontiguousarray would make 0-d 1-d
        return key

    def put(self, key: str, value: Any) -> dict[str, Any]:
        if sparse.issparse(value):
            csr = value.tocsr()
            return {
                "csr": [
                    self._put(f"{key}.data", csr.data),
                    self._put(f"{key}.indices", csr.indices),
                    self._put(f"{key}.indptr", csr.indptr),
                ],
                "shape": [int(n) for n in csr.shape],
            }
        value = np.asarray(value)
        if value.dtype.kind == "c":
            return {
                "complex": [
                    self._put(f"{key}.real", value.real),
                    self._put(f"{key}.imag", value.imag),
                ]
            }
        if value.dtype.kind not in _REAL_KINDS:
            raise UsageError(f"array {key!r} has dtype {value.dtype}, which cannot be saved")
        return {"array": self._put(key, value)}


def _plain(value: Any, where: str) -> Any:
    """A JSON-ready copy of meta/attrs: numpy scalars unwrapped, tuples as lists."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{where} is {value}; only finite numbers can be saved")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise UsageError(f"{where} has a non-string key {key!r}")
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise UsageError(f"{where} holds a {type(value).__name__}, which cannot be saved as JSON")


def _save(directory: str | os.PathLike[str], stem: str, doc: dict, arrays: _ArrayWriter) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc["arrays"] = f"{stem}.npz"
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    # The .npz goes first: a JSON file on disk always names arrays that exist.
    write_npz(directory / f"{stem}.npz", arrays.arrays)
    write_file(directory / f"{stem}.json", lambda f: f.write(text), "w")
    return directory / f"{stem}.json"


def save_netlist(net: Netlist, directory: str | os.PathLike[str]) -> Path:
    """Write netlist.json and netlist.npz into `directory`; returns the JSON path."""
    arrays = _ArrayWriter()
    populations = [
        {
            "name": pop.name,
            "kind": pop.kind,
            "size": pop.size,
            "params": {k: arrays.put(f"pop{i}.{k}", v) for k, v in pop.params.items()},
            "attrs": _plain(pop.attrs, f"population {pop.name!r} attrs"),
        }
        for i, pop in enumerate(net.populations)
    ]
    synapses = [
        {
            "name": syn.name,
            "src": syn.src,
            "dst": syn.dst,
            "weight": arrays.put(f"syn{i}.weight", syn.weight),
            "weight_exp": int(syn.weight_exp),
            "delay": int(syn.delay),
            "lag": int(syn.lag),
        }
        for i, syn in enumerate(net.synapses)
    ]
    doc = {
        "format": NETLIST_FORMAT,
        "version": VERSION,
        "numeric": net.numeric,
        "formats": net.formats.to_dict(),
        "input_scale": float(net.input_scale),
        "output_scale": float(net.output_scale),
        "dt_s": None if net.dt_s is None else float(net.dt_s),
        "ticks_per_step": int(net.ticks_per_step),
        "meta": _plain(net.meta, "netlist meta"),
        "populations": populations,
        "synapses": synapses,
    }
    return _save(directory, "netlist", doc, arrays)


def save_graph(graph: Graph, directory: str | os.PathLike[str]) -> Path:
    """Write graph.json and graph.npz into `directory`; returns the JSON path."""
    arrays = _ArrayWriter()
    nodes = [
        {
            "name": node.name,
            "op": node.op.kind,
            "inputs": list(node.inputs),
            "attrs": _plain(node.op.attributes(), f"node {node.name!r} attrs"),
            "arrays": {k: arrays.put(f"node{i}.{k}", v) for k, v in node.op.arrays().items()},
        }
        for i, node in enumerate(graph.nodes)
    ]
    doc = {
        "format": GRAPH_FORMAT,
        "version": VERSION,
        "dt_s": None if graph.dt_s is None else float(graph.dt_s),
        "meta": _plain(graph.meta, "graph meta"),
        "nodes": nodes,
    }
    return _save(directory, "graph", doc, arrays)


# -- reading ----------------------------------------------------------------------------


class _Doc:
    """Typed access to a parsed JSON document; every failure names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.arrays_path: Path | None = None  # the .npz its arrays come from, once opened

    def fail(self, message: str) -> CorruptInputError:
        return CorruptInputError(f"{self.path}: {message}")

    def fail_content(self, message: str) -> CorruptInputError:
        """A value built from this file and its arrays is invalid: either may be at fault
        (an edited .npz made the netlist's weights non-integer, not its JSON)."""
        if self.arrays_path is None:
            return self.fail(message)
        return CorruptInputError(f"{self.path} or {self.arrays_path.name}: {message}")

    def get(self, obj: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(f"{where} is not a JSON object")
        if key not in obj:
            raise self.fail(f"{where} has no {key!r}")
        value = obj[key]
        # bool is an int in Python; a JSON true is never a valid size or count here.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise self.fail(f"{where}.{key} has the wrong type ({type(value).__name__})")
        return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_NUMBER = (int, float)


def read_versioned_json(path: Path, format_name: str) -> dict[str, Any]:
    """A JSON object tagged {"format": format_name, "version": 1}; CorruptInputError else."""
    return _read_json(path, format_name)[1]


def parse_json(text: str) -> Any:
    """json.loads, raising json.JSONDecodeError (which every reader reports with its
    file's name) also for the two ways JSON text fails beyond its syntax: nesting past
    Python's recursion limit (RecursionError) and an integer of more than 4300 digits
    (ValueError, Python's guard against quadratic int parsing)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", text, 0) from None
    except ValueError as exc:
        detail = without_python_advice(exc)
        raise json.JSONDecodeError(f"a number too long to read ({detail})", text, 0) from None


def without_python_advice(exc: BaseException) -> str:
    """A parser's message on one line, cut before Python's advice (its int-digit guard
    ends "; use sys.set_int_max_str_digits() ...", which is not the user's fix)."""
    return " ".join(str(exc).split(";")[0].split())


def peek_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, not a regular file (opening
    a FIFO would block), not UTF-8 JSON or not an object: for guesses about what a
    directory is, which must never fail or wait."""
    if not path.is_file():
        return None
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _read_json(path: Path, format_name: str) -> tuple[_Doc, dict[str, Any]]:
    doc = _Doc(path)
    if not path.is_file():
        raise doc.fail("not a regular file" if path.exists() else "no such file")
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise doc.fail("not a text file") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}: " if exc.pos else ""  # pos 0: parse_json's, no place
        raise doc.fail(f"not valid JSON ({where}{exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != format_name:
        raise doc.fail(f"not a {format_name} file (no format tag {format_name!r})")
    version = data.get("version")
    if not is_version(version, VERSION):
        raise doc.fail(
            f"{format_name} version {version!r} is not supported (this snncompile reads "
            f"version {VERSION})"
        )
    return doc, data


def unpacked_bytes(path: Path) -> int:
    """What the arrays of an .npy/.npz file occupy once read: the file's size, or for a
    zip archive its members' unpacked sizes (from its directory, nothing inflated)."""
    if not zipfile.is_zipfile(path):
        return path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


# What zipfile raises for a member it cannot read: encrypted (RuntimeError), or stored
# with a compression it lacks (NotImplementedError, e.g. deflate64).
UNREADABLE_MEMBER = (RuntimeError, NotImplementedError)


def check_npy_layouts(path: Path, label: str, is_zip: bool) -> None:
    """CorruptInputError unless every .npy header (the file's, or each .npz member's that
    is an .npy) declares non-negative sizes whose data fills its bytes exactly; `label`
    names the file in the message. numpy took a header declaring (8, -64, 1) and
    returned some other shape, and one declaring a huge shape in a small file ran out of
    memory allocating it (read as exit 1, "out of memory", for a damaged file)."""
    if not is_zip:
        with path.open("rb") as file:
            _check_npy_header(file, path.stat().st_size, label)
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            # Whatever its name: np.load's archive reads a member "x" as well as "x.npy".
            try:
                member = archive.open(info)
                magic = member.read(6)
            except UNREADABLE_MEMBER:
                continue  # refused as unreadable if it is loaded
            with member:
                if magic != b"\x93NUMPY":
                    continue  # refused as "not a .npy array" once loaded
                member.seek(0)
                name = info.filename.removesuffix(".npy")
                _check_npy_header(member, info.file_size, f"{label}: member {name!r}")


def _check_npy_header(stream: Any, size: int, where: str) -> None:
    header = read_npy_header(stream)  # 3.0 too, which took a crafted shape unchecked
    if header is None:  # np.load refuses any other version
        return
    shape, dtype = header
    if any(dim < 0 for dim in shape):
        raise CorruptInputError(f"{where}: its header declares shape {shape}")
    if dtype.hasobject:  # np.load refuses it (allow_pickle=False), naming why
        return
    declared = stream.tell() + math.prod(shape) * dtype.itemsize
    if size != declared:
        raise CorruptInputError(f"{where} holds {size:,} bytes; its header declares {declared:,}")


def hdf5_data_bytes(path: Path) -> int:
    """What the datasets of an HDF5 file (a .nir, a network.net) occupy once read, from
    their shapes and dtypes (nothing read: a 21 KB file can declare a 30000x30000
    dataset it never stored). 0 if the file is not HDF5 (its reader reports that)."""
    import h5py

    total = 0

    def add(_name: str, item: object) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset):
            total += int(np.prod(item.shape, dtype=np.float64)) * item.dtype.itemsize

    try:
        file = h5py.File(path, "r")
    except (OSError, ValueError, TypeError):
        return 0
    with file:
        try:
            file.visititems(add)
        except H5_ERRORS as exc:
            raise damaged_hdf5(path, exc) from None
    return total


# What h5py raises for an HDF5 file whose inner structures are damaged (a byte changed
# anywhere in a .nir): RuntimeError ("Link iteration failed (bad local heap signature)"),
# KeyError ("Unable to synchronously open object (...)"), OSError, ValueError, TypeError.
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def damaged_hdf5(path: Path, exc: BaseException) -> CorruptInputError:
    """The error for an HDF5 file that opens but cannot be walked: exit 6, one line."""
    text = one_line_text(exc)
    return CorruptInputError(f"{path}: a damaged HDF5 file ({type(exc).__name__}: {text})")


# The first 8 bytes of every HDF5 file (NIR graphs, netx network.net).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_hdf5_size(path: Path) -> None:
    """CorruptInputError for an HDF5 file whose datasets would unpack past
    MAX_NPZ_UNPACKED_BYTES (the same bound as an artifact's .npz), or whose datasets do not
    finish reading (`check_hdf5_reads`)."""
    data_bytes = hdf5_data_bytes(path)
    _refuse_past_limit(path, data_bytes, "datasets")
    check_hdf5_reads(path, data_bytes)


# How long reading an HDF5 file's datasets may take before it counts as never finishing:
# the bundled .nir files read in milliseconds, and the largest file the size check lets
# through (2 GiB) in seconds; the allowance grows with the data.
HDF5_READ_SECONDS = 30.0
HDF5_READ_BYTES_PER_SECOND = 50e6


def _read_every_dataset(path: Path) -> None:
    import h5py

    def read(_name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            item[()]

    with h5py.File(path, "r") as file:
        file.visititems(read)


def check_hdf5_reads(path: Path, data_bytes: int) -> None:
    """CorruptInputError for an HDF5 file whose datasets do not finish reading. One
    changed byte in a .nir's variable-length strings (lif_norse.nir's byte 2184 set to
    0xEA) made libhdf5 2.0 loop without end inside the read, where no Python signal
    handler runs: the process ignored Ctrl-C and SIGTERM. So a forked child reads every
    dataset first and the parent waits for it in Python, interruptible, killing it past
    the time allowed. A child that fails (an error h5py raises) passes: the reader then
    reports that error in its own words. Where fork is missing (not POSIX) it passes."""
    if not hasattr(os, "fork"):
        return
    allowed_s = HDF5_READ_SECONDS + data_bytes / HDF5_READ_BYTES_PER_SECOND
    pid = os.fork()
    if pid == 0:  # the child: only read, and leave without Python's exit handlers
        code = 1
        try:
            _read_every_dataset(path)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + allowed_s
    try:
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.005)
    except BaseException:  # Ctrl-C or SIGTERM while waiting: the child goes too
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise CorruptInputError(
        f"{path}: a damaged HDF5 file (reading its datasets did not finish in {allowed_s:.0f} s)"
    )


def check_hdf5_tree(path: Path) -> None:
    """CorruptInputError for an HDF5 file that reads another file (an external link to an
    object of one, a dataset stored in one or virtual over others: its reader would open
    any file on the disk, or a FIFO that blocked the process beyond SIGTERM), or in which
    one group is reachable by two paths (a second hard or soft link to it, or a link back
    to an ancestor). NIR files and network.net are trees of groups, and nir's reader
    walks every path: a 190 KB file linking each level's group twice took 2^depth reads,
    a link to an ancestor recursed without end. Files that are not HDF5 pass (their
    reader reports that)."""
    import h5py

    try:
        file = h5py.File(path, "r")
    except (OSError, ValueError):
        return
    with file:
        seen = {file.id: "/"}
        stack = [file]
        while stack:
            group = stack.pop()
            try:
                names = list(group)
            except H5_ERRORS as exc:  # its reader would fail there too, or read past it
                raise damaged_hdf5(path, exc) from None
            for name in names:
                where = f"{group.name.rstrip('/')}/{name}"
                try:
                    link = group.get(name, getlink=True)  # the link itself, not followed
                except (OSError, KeyError, ValueError):
                    continue  # unreadable: the reader reports it
                if isinstance(link, h5py.ExternalLink):
                    raise CorruptInputError(
                        f"{path}: HDF5 link {where} points into another file "
                        f"({link.filename!r}); the file must hold its own data"
                    )
                try:
                    item = group.get(name)  # follows soft links; None when dangling
                except (OSError, KeyError, ValueError):
                    continue
                if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
                    stored = (
                        "virtual over other files"
                        if item.is_virtual
                        else f"stored in {item.external[0][0]!r}"
                    )
                    raise CorruptInputError(
                        f"{path}: HDF5 dataset {where} is {stored}; the file must hold its own data"
                    )
                if not isinstance(item, h5py.Group):
                    continue
                if item.id in seen:
                    raise CorruptInputError(
                        f"{path}: HDF5 group {where} is also linked at {seen[item.id]} (a "
                        "NIR file and a network.net are trees of groups)"
                    )
                seen[item.id] = where
                stack.append(item)


def _refuse_past_limit(path: Path, unpacked: int, what: str) -> None:
    if unpacked > MAX_NPZ_UNPACKED_BYTES:
        raise CorruptInputError(
            f"{path}: its {what} unpack to {unpacked / 2**30:.1f} GiB, more than any "
            f"network holds ({MAX_NPZ_UNPACKED_BYTES / 2**30:.0f} GiB)"
        )


def require_file(path: Path) -> None:
    """CorruptInputError unless path is a regular file: "no such file", or what it is
    instead (a FIFO was called missing; reading one waits for a writer)."""
    if path.is_file():
        return
    if not path.exists():
        raise CorruptInputError(f"{path}: no such file")
    kind = "a directory" if path.is_dir() else "not a regular file"
    raise CorruptInputError(f"{path}: {kind}")


def is_version(value: object, expected: int) -> bool:
    """A format version field equal to `expected` (an int: `true` == 1 in Python)."""
    return type(value) is int and value == expected


# An .npz whose members unpack past this is refused before any is read: the bundled
# networks hold about 1.5 MB, a full Loihi 2 chip's synapse memory is far below it, and a
# damaged (rehashed) member of 10**9 values would otherwise be allocated first.
MAX_NPZ_UNPACKED_BYTES = 1 << 31


class _ArrayReader:
    """Arrays of one .npz, rebuilt from their JSON descriptions."""

    def __init__(self, doc: _Doc, path: Path) -> None:
        self.doc = doc
        self.path = path
        doc.arrays_path = path
        require_file(path)
        try:
            _refuse_past_limit(path, unpacked_bytes(path), "arrays")
            check_npy_layouts(path, str(path), zipfile.is_zipfile(path))
            self.npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise CorruptInputError(f"{path}: not a readable .npz ({exc})") from None
        if not isinstance(self.npz, np.lib.npyio.NpzFile):
            raise CorruptInputError(f"{path}: a single .npy array, not an .npz archive")

    def close(self) -> None:
        self.npz.close()

    def _load(self, key: Any, where: str) -> np.ndarray:
        if not isinstance(key, str):
            raise self.doc.fail(f"{where} names no array")
        if key not in self.npz.files:
            raise CorruptInputError(f"{self.path}: array {key!r} ({where}) is missing")
        try:
            value = self.npz[key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, *UNREADABLE_MEMBER) as exc:
            raise CorruptInputError(f"{self.path}: array {key!r} is unreadable ({exc})") from None
        if value.dtype.kind not in _REAL_KINDS:
            raise CorruptInputError(f"{self.path}: array {key!r} has dtype {value.dtype}")
        return value

    def get(self, desc: Any, where: str) -> np.ndarray | sparse.csr_matrix:
        if isinstance(desc, dict) and "array" in desc:
            return self._load(desc["array"], where)
        if isinstance(desc, dict) and _parts(desc, "complex", 2):
            real, imag = (self._load(k, where) for k in desc["complex"])
            if real.shape != imag.shape or real.dtype != imag.dtype or real.dtype.kind != "f":
                raise self.doc.fail_content(f"{where}: real and imaginary parts do not match")
            # Assign the parts: re + 1j * im would lose the sign of a zero imaginary part.
            value = np.empty(real.shape, np.result_type(real.dtype, np.complex64))
            value.real, value.imag = real, imag
            return value
        if isinstance(desc, dict) and _parts(desc, "csr", 3):
            data, indices, indptr = (self._load(k, where) for k in desc["csr"])
            shape = desc.get("shape")
            if not (isinstance(shape, list) and len(shape) == 2):
                raise self.doc.fail(f"{where}: sparse matrix has no shape")
            if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
                # scipy truncated fractional indices and warned (on stderr) about NaN ones
                raise self.doc.fail_content(f"{where}: sparse matrix indices are not integers")
            if data.dtype.kind == "f" and data.dtype.itemsize < 8:
                data = data.astype(np.float64)  # exact; scipy's kernels lack float16
            try:
                matrix = sparse.csr_matrix((data, indices, indptr), shape=tuple(shape))
                matrix.check_format(full_check=True)
            except (ValueError, TypeError) as exc:
                raise self.doc.fail_content(f"{where}: invalid sparse matrix ({exc})") from None
            return matrix
        raise self.doc.fail(f"{where}: unknown array description {desc!r}")


def _parts(desc: dict, kind: str, count: int) -> bool:
    """Whether an array description names `count` parts of `kind` as a list (a number
    there, from an edited file, made len() raise TypeError: exit 1)."""
    parts = desc.get(kind)
    return isinstance(parts, list) and len(parts) == count


def _optional_float(doc: _Doc, data: dict, key: str, where: str) -> float | None:
    value = doc.get(data, key, (*_NUMBER, type(None)), where)
    return None if value is None else float(value)


def _build(doc: _Doc, make: Callable[[], Any]) -> Any:
    """Run a constructor; its validation errors become CorruptInputError."""
    try:
        return make()
    except (InvalidGraphError, TypeError, ValueError) as exc:
        raise doc.fail_content(f"invalid content: {exc}") from None


def load_netlist(directory: str | os.PathLike[str]) -> Netlist:
    """Read netlist.json + netlist.npz from `directory` (validated; CorruptInputError)."""
    directory = Path(directory)
    doc, data = _read_json(directory / "netlist.json", NETLIST_FORMAT)
    reader = _ArrayReader(doc, directory / "netlist.npz")
    try:
        pops = []
        for i, p in enumerate(doc.get(data, "populations", list, "netlist")):
            where = f"populations[{i}]"
            params = doc.get(p, "params", dict, where)
            pops.append(
                Population(
                    name=doc.get(p, "name", str, where),
                    kind=doc.get(p, "kind", str, where),
                    size=doc.get(p, "size", int, where),
                    params=with_added_params(
                        doc.get(p, "kind", str, where),
                        {k: reader.get(v, f"{where}.params.{k}") for k, v in params.items()},
                    ),
                    attrs=doc.get(p, "attrs", dict, where),
                )
            )
        synapses = []
        for i, s in enumerate(doc.get(data, "synapses", list, "netlist")):
            where = f"synapses[{i}]"
            synapses.append(
                Synapse(
                    name=doc.get(s, "name", str, where),
                    src=doc.get(s, "src", str, where),
                    dst=doc.get(s, "dst", str, where),
                    weight=reader.get(doc.get(s, "weight", dict, where), f"{where}.weight"),
                    weight_exp=doc.get(s, "weight_exp", int, where),
                    delay=doc.get(s, "delay", int, where),
                    # "lag" came after version 1 was first written: absent means 0.
                    lag=doc.get(s, "lag", int, where) if "lag" in s else 0,
                )
            )
        formats = doc.get(data, "formats", dict, "netlist")
        return _build(
            doc,
            lambda: Netlist(
                tuple(pops),
                tuple(synapses),
                numeric=doc.get(data, "numeric", str, "netlist"),
                formats=Formats(**formats),
                input_scale=float(doc.get(data, "input_scale", _NUMBER, "netlist")),
                output_scale=float(doc.get(data, "output_scale", _NUMBER, "netlist")),
                dt_s=_optional_float(doc, data, "dt_s", "netlist"),
                meta=doc.get(data, "meta", dict, "netlist"),
                # Came after version 1 was first written: absent means 1. (An older reader
                # that ignores it refuses such a netlist: its lagged synapses fail the check.)
                ticks_per_step=(
                    doc.get(data, "ticks_per_step", int, "netlist")
                    if "ticks_per_step" in data
                    else 1
                ),
            ),
        )
    finally:
        reader.close()


# Op field annotations (strings under `from __future__ import annotations`) -> JSON types.
_ATTR_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": _NUMBER, "str": (str,)}


def _check_op_fields(doc: _Doc, cls: type, attrs: dict, arrays: dict, where: str) -> None:
    """Every field of the op present once, arrays as arrays and scalars of their type."""
    expected = {f.name for f in fields(cls)}
    given = set(attrs) | set(arrays)
    if given != expected or set(attrs) & set(arrays):
        raise doc.fail(f"{where}: op {cls.kind!r} takes {sorted(expected)}, got {sorted(given)}")
    for f in fields(cls):
        annotation = str(f.type)
        if annotation in ("np.ndarray", "sparse.csr_matrix"):
            if f.name not in arrays:
                raise doc.fail(f"{where}: {f.name} must be an array")
            continue
        value = attrs.get(f.name)
        wanted = _ATTR_TYPES.get(annotation, ())
        if f.name in arrays or (
            wanted and (isinstance(value, bool) or not isinstance(value, wanted))
        ):
            raise doc.fail(f"{where}: {f.name} must be a {annotation}")


def load_graph(directory: str | os.PathLike[str]) -> Graph:
    """Read graph.json + graph.npz from `directory` (validated; CorruptInputError)."""
    directory = Path(directory)
    doc, data = _read_json(directory / "graph.json", GRAPH_FORMAT)
    reader = _ArrayReader(doc, directory / "graph.npz")
    try:
        nodes = []
        for i, n in enumerate(doc.get(data, "nodes", list, "graph")):
            where = f"nodes[{i}]"
            kind = doc.get(n, "op", str, where)
            if kind not in OPS:
                raise doc.fail(f"{where}: unknown op {kind!r}")
            cls = OPS[kind]
            attrs = doc.get(n, "attrs", dict, where)
            arrays = {
                k: reader.get(v, f"{where}.arrays.{k}")
                for k, v in doc.get(n, "arrays", dict, where).items()
            }
            _check_op_fields(doc, cls, attrs, arrays, where)
            inputs = doc.get(n, "inputs", list, where)
            if not all(isinstance(name, str) for name in inputs):
                raise doc.fail(f"{where}.inputs must be names")
            name = doc.get(n, "name", str, where)
            op = _build(doc, lambda cls=cls, attrs=attrs, arrays=arrays: cls(**attrs, **arrays))
            nodes.append(Node(name, op, tuple(inputs)))
        return _build(
            doc,
            lambda: Graph(
                tuple(nodes),
                dt_s=_optional_float(doc, data, "dt_s", "graph"),
                meta=doc.get(data, "meta", dict, "graph"),
            ),
        )
    finally:
        reader.close()
