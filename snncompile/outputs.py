"""Writing what a command produces: checked before the slow work, then written atomically.

    check_writable(path, what="-o")                # before compiling or training: UsageError
    write_file(path, lambda f: f.write(b), "wb")   # a temporary file beside it, renamed
    write_npz(path, {"x": x})                      # the same, for an .npz
    write_through_memory(path, fill)               # an HDF5 file filled in memory first
    write_directory(out, fill, overwrite=False)    # a temporary directory beside it, renamed

A destination that cannot be written (a read-only directory, a parent that is a file)
is a usage error (exit 2, OutputError) naming the path, never a traceback after minutes
of work, and a failed write leaves nothing behind: no partial file, no half-filled
directory, no parent directories created for it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from snncompile.cli_signals import signals_held
from snncompile.errors import UsageError


def umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str], *, what: str = "-o", file: bool = False) -> Path:
    """Raise UsageError unless `path` can be created or replaced by this process, and is
    not inside an snncompile artifact (a file its manifest does not list).

    Walks up to the nearest existing ancestor: it must be a directory this process may
    create entries in (parents that do not exist yet are made when writing). file: the
    path names a file, so a trailing separator (a directory) is refused (Path drops it).
    """
    if not os.fspath(path):  # Path("") is ".", which would then "already exist"
        raise UsageError(f"{what} is empty: name the file or directory to write")
    separators = tuple(s for s in (os.sep, os.altsep) if s)
    if file and os.fspath(path).endswith(separators):
        raise UsageError(f"{what} {os.fspath(path)} names a directory; name the file to write")
    path = Path(path)
    try:  # a name the system refuses (too long, ...) here, not from a later exists()
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # not there yet, or under a file: the walk below says which
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or type(exc).__name__}") from None
    ancestor = path.absolute().parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link: mkdir would fail on it
            raise UsageError(f"{what} {path}: {ancestor} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{what} {path}: {ancestor} is not a directory")
    _check_name_lengths(path, ancestor, what)
    from snncompile.artifact import artifact_above  # it imports this module

    holder = artifact_above(path)
    if holder is not None:  # its manifest would not list it; --overwrite would refuse
        raise UsageError(f"{what} {path} is inside the artifact {holder}; write it elsewhere")
    # A real probe, not os.access: for root, access() says yes to a read-only mount or
    # /proc, and the failure came after the training or compiling it was meant to spare.
    with signals_held():  # a signal in between left the probe file behind
        try:
            handle, probe = tempfile.mkstemp(prefix=".snncompile-probe-", dir=ancestor)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"{what} {path}: cannot write in {ancestor} ({reason})") from None
        os.close(handle)
        os.unlink(probe)
    return path


def _check_name_lengths(path: Path, ancestor: Path, what: str) -> None:
    """Refuse a name below `ancestor` (the nearest existing directory) longer than its
    file system takes: under a directory still to be made, only mkdir would find out,
    after the compile or training."""
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError):  # no such limit known here: the write will say
        return
    for name in path.absolute().relative_to(ancestor).parts:
        if len(os.fsencode(name)) > name_max:
            raise UsageError(f"{what} {path}: a name is longer than {name_max} bytes")


class OutputError(UsageError):
    """A destination could not be written (exit 2, as any other bad -o)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot write: {reason}")
        self.path = path
        self.reason = reason


def _reason(exc: BaseException) -> str | None:
    """What went wrong, if `exc` is a failed write (else None: not ours to rename)."""
    if isinstance(exc, OutputError):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def write_file(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None], mode: str = "wb"
) -> Path:
    """Write `path` atomically: `write(f)` fills a temporary file beside it, then a rename.

    The file gets the usual permissions (0666 less the umask; mkstemp makes 0600).
    """
    path = Path(path)
    created = _missing_parents(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with signals_held():  # else a signal inside mkstemp leaves its file unnamed here
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _remove_empty(created)
        reason = _reason(exc)
        if reason is not None:
            raise OutputError(path, reason) from None
        raise
    return path


def npz_member_names(path: Path) -> set[str]:
    """The member names of the .npz at `path` when every member is a .npy array (its
    header read, no data); empty for any other file, or one that is not regular (a FIFO
    blocked the zip reader forever: helper-74). What the writers look at before
    replacing an output of their own: a zip whose one member is named x.npy but holds
    text is not such an output."""
    import zipfile
    import zlib

    if not Path(path).is_file():
        return set()
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not all(_holds_npy_header(archive, name) for name in names):
                return set()
            return set(names)
    except (OSError, ValueError, RuntimeError, zlib.error, NotImplementedError, zipfile.BadZipFile):
        # ValueError: a member name that is not UTF-8 (UnicodeDecodeError); RuntimeError:
        # an encrypted member; NotImplementedError: a compression method zipfile lacks
        return set()


def read_npy_header(stream: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """(shape, dtype) of the .npy header `stream` starts with, None for a format version
    np.load refuses. numpy's public readers stop at 2.0; this one, which np.load itself
    uses, reads all three (3.0 is 2.0 with a UTF-8 header). A stream that is no .npy
    raises ValueError (its magic), and so does a damaged header: numpy retries a header
    it cannot parse through tokenize, whose TokenError (an unclosed bracket) it lets
    through (that was an internal error, exit 1, of a damaged --input file)."""
    import tokenize

    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0), (3, 0)):
        return None
    try:
        shape, _, dtype = np.lib.format._read_array_header(stream, version)
    except tokenize.TokenError as exc:
        raise ValueError(f"Cannot parse header: {exc.args[0]}") from None
    return shape, dtype


def _holds_npy_header(archive: Any, name: str) -> bool:
    """Whether member `name` starts with a .npy header numpy reads."""
    with archive.open(name) as member:
        try:
            return read_npy_header(member) is not None
        except (ValueError, EOFError):
            return False


def write_npz(path: str | os.PathLike[str], arrays: dict[str, Any]) -> Path:
    """write_file of an .npz of `arrays`, packed in memory first: numpy's zip writer left
    open on a failed disk write prints "Exception ignored" noise after our error line."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_file(path, lambda f: f.write(buffer.getbuffer()))


def write_through_memory(path: str | os.PathLike[str], fill: Callable[[IO[bytes]], None]) -> None:
    """Write `path` (inside a directory being built) from an in-memory file that `fill`
    writes, in one plain write: for HDF5 writers (h5py, nir.write). HDF5 buffers its own
    writes and reports a failed one (a full disk, a file size limit) from its
    destructors: dozens of "Exception ignored" tracebacks, then a crash at the process's
    exit (SIGSEGV, exit 139) that left the artifact's temporary directory behind
    (helper-107, measured). In memory nothing fails, and the write that can raises a
    plain OSError, which write_directory reports as an OutputError."""
    buffer = io.BytesIO()
    fill(buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def write_directory(
    out: str | os.PathLike[str], fill: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Create directory `out` atomically: `fill(tmp)` writes into a temporary directory
    beside it, which is then renamed into place.

    With `overwrite`, an existing `out` (the caller has checked it may be replaced) is
    moved aside first and restored if the rename fails. Permissions: 0777 less the umask.
    """
    out = Path(out)
    created = _missing_parents(out)
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with signals_held():  # else a signal inside mkdtemp leaves it unnamed here
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        fill(tmp)
        os.chmod(tmp, 0o777 & ~umask())
        _move_into_place(tmp, out, overwrite)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        reason = _reason(exc)  # a file inside failing is the directory failing
        if reason is not None:
            raise OutputError(out, reason) from None
        raise
    return out


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename tmp to out; an existing out (checked replaceable) is swapped out first.

    The swap is two renames and a removal, and a signal's exception can land between any
    two of them (as a rename returns, too): whatever happened, `_settle_swap` leaves one
    whole artifact at out. It used to leave out missing, the old artifact hidden in a
    `.out.*.old` directory, after a Ctrl-C as the first rename returned (helper-104)."""
    if not (overwrite and out.exists()):
        os.rename(tmp, out)  # fails rather than merge if out appeared meanwhile (non-empty)
        return
    old: Path | None = None
    try:
        with signals_held():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / "artifact")  # fails if a concurrent writer moved `out` first
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if old is not None:
            _settle_swap(out, old)
        raise


def _settle_swap(out: Path, old: Path) -> None:
    """After a swap stopped anywhere: if out is gone, the old artifact goes back there;
    then `old` is removed, unless it still holds the one copy of the old artifact."""
    moved = old / "artifact"
    if moved.exists() and not os.path.lexists(out):
        try:
            os.rename(moved, out)
        except OSError:
            return  # the old artifact stays in `old`: never delete the only copy
    shutil.rmtree(old, ignore_errors=True)


def _missing_parents(path: Path) -> list[Path]:
    """The parents of `path` that do not exist yet, outermost first."""
    return [p for p in reversed(path.absolute().parents) if not p.exists()]


def _remove_empty(created: list[Path]) -> None:
    """Remove directories this write created (innermost first) if they are still empty."""
    for parent in reversed(created):
        try:
            parent.rmdir()
        except OSError:
            pass
