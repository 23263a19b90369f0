"""Outputs: refused up front when they cannot be written, written atomically, and a failed
write is one usage error naming the destination, with nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from snncompile.cli import main
from snncompile.errors import UsageError
from snncompile.outputs import OutputError, check_writable, umask, write_directory, write_file

CHECKPOINT = Path(__file__).parent.parent / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"


def test_write_file_is_atomic_with_ordinary_permissions(tmp_path: Path) -> None:
    path = write_file(tmp_path / "a" / "b" / "f.bin", lambda f: f.write(b"payload"))
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask()
    assert os.listdir(path.parent) == ["f.bin"]


def test_failed_write_file_leaves_nothing_not_even_its_parents(tmp_path: Path) -> None:
    def half_then_full(f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"f\.bin: cannot write: No space left on device"):
        write_file(tmp_path / "new" / "f.bin", half_then_full)
    assert os.listdir(tmp_path) == []


def test_failed_write_file_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def broken(f) -> None:  # type: ignore[no-untyped-def]
        raise OSError(5, "Input/output error")

    with pytest.raises(OutputError):
        write_file(path, broken)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_a_file_failing_inside_a_directory_names_the_directory(tmp_path: Path) -> None:
    def fill(tmp: Path) -> None:
        write_file(tmp / "inner.npz", lambda f: f.write(b"x"))
        write_file(tmp / "broken.npz", lambda f: (_ for _ in ()).throw(OSError(28, "disk full")))

    out = tmp_path / "deep" / "art"
    with pytest.raises(OutputError) as err:
        write_directory(out, fill)
    assert err.value.path == out and str(err.value) == f"{out}: cannot write: disk full"
    assert os.listdir(tmp_path) == []


def test_non_write_errors_pass_through_unchanged(tmp_path: Path) -> None:
    def fill(tmp: Path) -> None:
        raise UsageError("a bad option found late")

    with pytest.raises(UsageError, match="a bad option found late"):
        write_directory(tmp_path / "art", fill)
    assert os.listdir(tmp_path) == []


def test_overwrite_swaps_the_directory_whole(tmp_path: Path) -> None:
    out = write_directory(tmp_path / "art", lambda d: (d / "v").write_text("1"))
    write_directory(out, lambda d: (d / "w").write_text("2"), overwrite=True)
    assert os.listdir(out) == ["w"] and os.listdir(tmp_path) == ["art"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask()


@pytest.mark.parametrize(
    ("step", "left"),
    [("first rename", "v"), ("second rename", "w"), ("removal of the old", "w")],
)
def test_a_signal_anywhere_in_the_overwrite_swap_leaves_one_whole_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, left: str
) -> None:
    """Ctrl-C's KeyboardInterrupt raised as a rename of the swap returns, or inside the
    removal of the old artifact: `art` holds the old artifact or the new one, whole, and
    nothing else is left. It lost `art` (the old one hidden in `.art.*.old`, the error
    'Directory not empty'), or left a half-removed `.art.*.old` (helper-104)."""
    out = write_directory(tmp_path / "art", lambda d: (d / "v").write_text("old"))
    rename, rmtree = os.rename, shutil.rmtree
    renames: list[str] = []

    def interrupted_rename(src: str, dst: str) -> None:
        rename(src, dst)
        renames.append(dst)
        if step == f"{['first', 'second'][len(renames) - 1]} rename":
            raise KeyboardInterrupt

    def interrupted_rmtree(path: str, ignore_errors: bool = False) -> None:
        if step == "removal of the old" and str(path).endswith(".old"):
            monkeypatch.setattr(shutil, "rmtree", rmtree)  # the cleanup's own call works
            (Path(path) / "artifact" / "v").unlink()  # half removed
            raise KeyboardInterrupt
        rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(os, "rename", interrupted_rename)
    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        write_directory(out, lambda d: (d / "w").write_text("new"), overwrite=True)
    assert os.listdir(tmp_path) == ["art"] and os.listdir(out) == [left]


def test_check_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_writable(tmp_path / "not" / "yet" / "there.npz") == tmp_path / "not/yet/there.npz"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"-o .*file/out: .*file is not a directory"):
        check_writable(tmp_path / "file" / "out")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(UsageError, match="broken symbolic link"):
        check_writable(tmp_path / "dangling" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file"]  # no probe left
    # The check tries to create a file: os.access says yes to root (CI runs as root) for
    # /sys, where nothing can be created, and the failure came after the slow work.
    if Path("/sys").is_dir():
        with pytest.raises(UsageError, match=r"-o /sys/out\.pt: cannot write in /sys"):
            check_writable("/sys/out.pt")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(UsageError, match=f"cannot write in {tmp_path} \\(Permission denied\\)$"):
        check_writable(tmp_path / "sub" / "out.npz", what="--output")


def _run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    return int(done.value.code), capsys.readouterr().err


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """An output path whose parent is a file: unwritable even for root."""
    (tmp_path / "afile").write_text("not a directory")
    return tmp_path / "afile" / "out"


WRITERS = pytest.mark.parametrize(
    "argv",
    [
        ["export", CHECKPOINT],
        ["export", CHECKPOINT, "--target", "onnx", "--float"],
        ["train", "--family", "spike-ssm", "--epochs", "1", "--quiet"],
    ],
    ids=["export", "export-float", "train"],
)


def _no_slow_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import snncompile.api_train as api
    import snncompile.compiler as compiler

    def too_late(*args: object, **kwargs: object) -> None:
        raise AssertionError("the slow part ran before the output was checked")

    monkeypatch.setattr(api, "_train_with_progress", too_late)
    monkeypatch.setattr(compiler, "load_model", too_late)


@WRITERS
def test_unwritable_output_is_refused_before_the_work(  # type: ignore[no-untyped-def]
    blocked: Path, capsys, monkeypatch, argv
) -> None:
    _no_slow_work(monkeypatch)
    code, err = _run([*argv, "-o", blocked], capsys)
    assert code == 2 and err == f"error: -o {blocked}: {blocked.parent} is not a directory\n"
    assert os.listdir(blocked.parent.parent) == ["afile"]


@WRITERS
@pytest.mark.parametrize("where", ["name", "directory to make"])
def test_a_name_too_long_is_a_usage_error_before_the_work(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch, argv, where
) -> None:
    """Exit 2 as any bad -o, before compiling or training: export said so only when it
    looked (exit 6), and under a directory still to be made only mkdir found out."""
    _no_slow_work(monkeypatch)
    long_name = "x" * 300
    out = tmp_path / long_name if where == "name" else tmp_path / "new" / long_name / "m"
    code, err = _run([*argv, "-o", out], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"-o {out}: " in err and ("too long" in err or "longer than" in err)
    assert os.listdir(tmp_path) == []


def test_unwritable_simulate_output_is_refused_before_the_run(  # type: ignore[no-untyped-def]
    tmp_path: Path, blocked: Path, capsys, monkeypatch
) -> None:
    import snncompile.simulate as simulate

    art = tmp_path / "m.ref"
    assert _run(["export", CHECKPOINT, "-o", art], capsys)[0] == 0
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 1), np.float32))
    monkeypatch.setattr(simulate, "run_backend", lambda *a, **k: pytest.fail("ran"))
    code, err = _run(
        ["simulate", art, "--input", tmp_path / "x.npy", "-o", f"{blocked}.npz"], capsys
    )
    assert code == 2 and "is not a directory" in err and err.count("\n") == 1


def test_debug_shows_the_traceback_and_keeps_the_exit_code(blocked: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _run(["--debug", "export", CHECKPOINT, "-o", blocked], capsys)
    assert code == 2
    assert "Traceback (most recent call last)" in err and "check_writable" in err
    assert err.endswith(f"error: -o {blocked}: {blocked.parent} is not a directory\n")


TORCH_OOM = (  # as torch 2.14 words it on Linux
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
    "memory: you tried to allocate 2147483648 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (
            KeyError("blocks"),
            "internal error (KeyError: 'blocks'); this is a bug in snncompile: please report "
            "it with the traceback --debug prints",
        ),
        (
            MemoryError(),
            "out of memory (MemoryError); try fewer inputs at once or a smaller model",
        ),
        (  # torch's allocator raises a RuntimeError: it was called a bug (audit41)
            RuntimeError(TORCH_OOM),
            f"out of memory (RuntimeError: {TORCH_OOM}); try fewer inputs at once or a "
            "smaller model",
        ),
    ],
)
def test_an_unexpected_exception_is_one_line_exit_1(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch, raised: Exception, message: str
) -> None:
    import snncompile.compiler

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise raised

    monkeypatch.setattr(snncompile.compiler, "load_model", broken)
    code, err = _run(["export", CHECKPOINT, "-o", tmp_path / "a"], capsys)
    assert (code, err) == (1, f"error: {message}\n")
    assert not (tmp_path / "a").exists()
    code, err = _run(["--debug", "export", CHECKPOINT, "-o", tmp_path / "a"], capsys)
    assert code == 1 and "Traceback (most recent call last)" in err and "in broken" in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "nan", "--lr must be positive and finite, got nan"),
        ("--lr", "inf", "--lr must be positive and finite, got inf"),
        ("--weight-decay", "nan", "--weight-decay must be non-negative, got nan"),
        # These named fields (epochs, batch size, dropout), not the options (audit41).
        ("--epochs", "0", "--epochs must be at least 1, got 0"),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
        ("--dropout", "1.5", "--dropout must be in [0, 1), got 1.5"),
        ("--calib-size", "0", "--calib-size must be at least 1"),
        ("--width", "100000000", "--width must be in [1, 16384]"),
        ("--width", "0", "--width must be in [1, 16384], got 0"),
        ("--depth", "100000000", "--depth must be in [1, 256]"),
        ("--state-size", "0", "--state-size must be in [2, 16384], got 0"),
        # S4D's own check said "S4D d_state must be an even number >= 2" (helper-84).
        ("--state-size", "1", "--state-size must be in [2, 16384], got 1"),
        ("--state-size", "3", "--state-size must be even (N/2 complex modes), got 3"),
        ("--seed", "-1", "--seed must be in [0, 4294967295]"),
        ("--calib-size", "1000000", "--calib-size 1000000 is more than the 1437 training"),
        ("--listops-length", "5", "--listops-length applies to --task listops, not sdigits"),
        ("--listops-depth", "3", "--listops-depth applies to --task listops, not sdigits"),
    ],
)
def test_train_refuses_bad_settings_before_training(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch, option, value, message
) -> None:
    import snncompile.api_train as api

    monkeypatch.setattr(api, "_train_with_progress", lambda *a, **k: pytest.fail("trained"))
    code, err = _run(
        ["train", "--family", "spike-ssm", option, value, "-o", tmp_path / "m.pt"], capsys
    )
    assert code == 2 and message in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_train_checkpoint_refuses_listops_settings_for_another_task(tmp_path: Path) -> None:
    from snncompile.api import train_checkpoint

    with pytest.raises(UsageError, match="listops_length and listops_depth apply to listops"):
        train_checkpoint(family="s4d", task_name="sdigits", output=tmp_path / "m.pt",
                         listops_length=5)  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_train_refuses_an_output_inside_an_artifact(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # It was accepted; the artifact then held a file its manifest does not list, and
    # export --overwrite refused to replace it.
    artifact = tmp_path / "a"
    assert _run(["export", CHECKPOINT, "-o", artifact], capsys)[0] == 0
    before = sorted(os.listdir(artifact))
    code, err = _run(["train", "--family", "s4d", "-o", artifact / "m.pt"], capsys)
    assert (code, err) == (
        2,
        f"error: -o {artifact / 'm.pt'} is inside the artifact {artifact}; write it elsewhere\n",
    )
    assert sorted(os.listdir(artifact)) == before


def test_inside_an_artifact_is_judged_after_links_and_dot_dot(tmp_path: Path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text('{"format": "snncompile-artifact"}')
    (art / "notes").mkdir()
    (tmp_path / "real").mkdir()
    assert check_writable(art / ".." / "real" / "out.npz", file=True)  # refused before
    (tmp_path / "link").symlink_to(art / "notes")  # passed before
    with pytest.raises(UsageError, match=f"is inside the artifact {art}; write it elsewhere"):
        check_writable(tmp_path / "link" / "out.npz", file=True)


def test_train_refuses_a_listops_depth_that_would_take_hours(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["train", "--family", "s4d", "--task", "listops", "--listops-depth", "30"]
    code, err = _run([*argv, "-o", tmp_path / "m.pt"], capsys)
    expected = (
        "error: task depth must be at most 10, got 30 (--listops-length 128, --listops-depth 30)\n"
    )
    assert (code, err) == (2, expected)
    argv = ["train", "--family", "s4d", "--task", "listops", "--listops-length", "4096"]
    code, err = _run([*argv, "-o", tmp_path / "m.pt"], capsys)
    assert code == 2 and err.endswith(
        "lower the length (--listops-length 4096, --listops-depth 4)\n"
    )
    assert not (tmp_path / "m.pt").exists()


def test_sigterm_mid_write_exits_143_and_leaves_nothing(tmp_path: Path) -> None:
    """timeout(1) and CI cancellation send SIGTERM: the writers unwind as for Ctrl-C."""
    import subprocess
    import sys

    script = f"""
import os, signal
import snncompile.artifact as artifact
from snncompile.cli import main
real = artifact.save_graph
def save_then_terminated(*args):
    real(*args)
    os.kill(os.getpid(), signal.SIGTERM)
artifact.save_graph = save_then_terminated
main(["export", {str(CHECKPOINT)!r}, "-o", {str(tmp_path / "new" / "art")!r}])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 143, done.stderr
    assert done.stderr.endswith("error: terminated (SIGTERM)\n")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("signum", "debug"), [("SIGINT", False), ("SIGTERM", False), ("SIGINT", True)]
)
def test_a_signal_after_the_command_finished_does_not_undo_its_exit_code(
    tmp_path: Path, signum: str, debug: bool
) -> None:
    """Ctrl-C in the ~0.5 s of interpreter teardown after an export had replaced its
    artifact exited 130 in silence ("interrupted, nothing written"). The signal is sent
    from an atexit hook, i.e. after main() has returned, as in that teardown."""
    import subprocess
    import sys

    script = f"""
import atexit, os, signal, sys, time
from snncompile.cli import main
def late():
    os.kill(os.getpid(), signal.{signum})
    time.sleep(0.1)
atexit.register(late)
sys.argv = ["snncompile", *{["--debug"] if debug else []!r}, "export", {str(CHECKPOINT)!r},
            "-o", {str(tmp_path / "a")!r}]
main()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert (tmp_path / "a" / "manifest.json").is_file()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_during_exit_handlers_registered_by_the_command_is_ignored(
    tmp_path: Path, signum: str
) -> None:
    """torch registers exit handlers when the command imports it; a Ctrl-C while they ran
    printed "Exception ignored in atexit callback ... KeyboardInterrupt" after a complete
    export (the guard, registered before them, ran after them)."""
    import subprocess
    import sys

    script = f"""
import atexit, os, signal, sys, time
import snncompile.artifact as artifact
from snncompile.cli import main
real = artifact.save_graph
def late():
    os.kill(os.getpid(), signal.{signum})
    time.sleep(0.1)
def save_and_register(*args):
    real(*args)
    atexit.register(late)  # as torch's handlers: registered while the command runs
artifact.save_graph = save_and_register
sys.argv = ["snncompile", "export", {str(CHECKPOINT)!r}, "-o", {str(tmp_path / "a")!r}]
main()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert (tmp_path / "a" / "manifest.json").is_file()


def _export_signalled_in_a_weakref_callback(out: Path, signum: str, prelude: str = "") -> str:
    """A script (after `prelude`) whose export, once its graph is saved, gets `signum`
    inside a weakref callback, where Python drops the handler's exception, then sleeps
    where the signal is delivered again; it prints "went on" if the signal was lost."""
    return (
        prelude
        + f"""
import os, signal, time, weakref
import snncompile.artifact as artifact
from snncompile.cli import main
real = artifact.save_graph
class Thing:
    pass
def callback(ref):
    os.kill(os.getpid(), signal.{signum})
    for _ in range(100000):  # the handler runs here, inside the callback
        pass
def save_then_signalled(*args):
    real(*args)
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    time.sleep(5)  # where the signal is delivered again
    print("went on")
artifact.save_graph = save_then_signalled
main(["export", {str(CHECKPOINT)!r}, "-o", {str(out)!r}])
"""
    )


@pytest.mark.parametrize(("signum", "code", "message"), [
    ("SIGTERM", 143, "terminated (SIGTERM)"),
    ("SIGHUP", 129, "hung up (SIGHUP)"),
    ("SIGINT", 130, "interrupted"),
])  # fmt: skip
def test_a_signal_handled_inside_a_weakref_callback_still_ends_the_command(
    tmp_path: Path, signum: str, code: int, message: str
) -> None:
    """Python drops an exception raised in a weakref callback ("Exception ignored"): a
    SIGTERM handled there was lost and the export went on (for 13 minutes in an audit),
    SIGHUP ended it with 129 and no message, leaving its temporary directory."""
    done = _python(_export_signalled_in_a_weakref_callback(tmp_path / "new" / "art", signum))
    assert (done.returncode, done.stdout) == (code, ""), done.stderr
    assert done.stderr == f"error: {message}\n"
    assert os.listdir(tmp_path) == []


def test_a_redelivered_signal_arriving_inside_the_hook_is_not_lost(tmp_path: Path) -> None:
    """The hook that catches a dropped signal starts a timer to deliver it again; on a
    loaded machine the timer fired before the hook returned, its handler raised inside
    the hook, was dropped once more ("Exception ignored in sys.unraisablehook") and the
    export went on to write its artifact (a full test run, 2026-12-07). Forced here: the
    hook's first timer start waits until the timer has fired."""
    fire_inside_the_hook = """
import threading
real_start = threading.Timer.start
def start_and_fire(timer):
    real_start(timer)
    if not getattr(threading, "fired", False):
        threading.fired = True
        timer.finished.wait(2.0)
        for _ in range(200000):  # the re-delivered handler runs here, inside the hook
            pass
threading.Timer.start = start_and_fire
"""
    out = tmp_path / "new" / "art"
    done = _python(_export_signalled_in_a_weakref_callback(out, "SIGTERM", fire_inside_the_hook))
    assert (done.returncode, done.stdout) == (143, ""), done.stderr
    assert done.stderr == "error: terminated (SIGTERM)\n"
    assert os.listdir(tmp_path) == []


def _python(script: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_a_hangup_ignored_by_nohup_stays_ignored(tmp_path: Path) -> None:
    """`nohup snncompile export ...` must survive the logout it is for: SIGHUP, inherited
    as ignored, ended the export with 129 once the CLI handled it."""
    done = _python(f"""
import os, signal
signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
import snncompile.artifact as artifact
from snncompile.cli import main
real = artifact.save_graph
def save_then_hung_up(*args):
    real(*args)
    os.kill(os.getpid(), signal.SIGHUP)
artifact.save_graph = save_then_hung_up
main(["export", {str(CHECKPOINT)!r}, "-o", {str(tmp_path / "a")!r}])
""")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "manifest.json").is_file()


def test_a_hangup_whose_terminal_is_gone_still_exits_129(tmp_path: Path) -> None:
    """Writing the message to a closed terminal raises OSError (EIO), which turned the
    hangup into exit 1 ("a bug"); the temporaries go either way."""
    done = _python(f"""
import errno, os, signal, sys
import snncompile.artifact as artifact
from snncompile.cli import main
class GoneTerminal:
    def write(self, text):
        raise OSError(errno.EIO, "Input/output error")
    def flush(self):
        raise OSError(errno.EIO, "Input/output error")
real = artifact.save_graph
def save_then_hung_up(*args):
    real(*args)
    sys.stderr = GoneTerminal()
    os.kill(os.getpid(), signal.SIGHUP)
artifact.save_graph = save_then_hung_up
try:
    main(["export", {str(CHECKPOINT)!r}, "-o", {str(tmp_path / "new" / "a")!r}])
except SystemExit as exc:
    os._exit(exc.code)
""")
    assert done.returncode == 129, done.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_dropped_at_the_end_of_a_call_does_not_reach_the_next(signum: str) -> None:
    """A re-delivery scheduled at the very end of one in-process call fired into the next
    call (exit 130 or a second "terminated" of a command that got no signal) or into the
    caller's own code. The call the signal came to exits as the signal says, also when
    it finished before the re-delivery (a dropped Ctrl-C gave exit 0)."""
    done = _python(f"""
import os, signal, sys, time, weakref
import snncompile.cli as cli
real = cli.support_table
class Thing:
    pass
def callback(ref):
    os.kill(os.getpid(), signal.{signum})
    for _ in range(100000):  # the handler runs here, inside the callback: dropped
        pass
def table_then_signalled(matrix):
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    return real(matrix)
for call in (1, 2):
    cli.support_table = table_then_signalled if call == 1 else real
    try:
        cli.main(["targets"] if call == 1 else ["--version"])
    except SystemExit as exc:
        print(f"call {{call}}: exit {{exc.code}}")
    time.sleep(0.1)
print("caller went on")
""")
    first = "call 1: exit 143" if signum == "SIGTERM" else "call 1: exit 130"
    lines = [line for line in done.stdout.splitlines() if line.startswith("call")]
    assert lines == [first, "call 2: exit 0", "caller went on"], done.stdout + done.stderr


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_python_frees_its_modules_keeps_the_exit_code(
    tmp_path: Path, signum: str
) -> None:
    """After the exit handlers Python puts the default action back on the signals it
    handles and frees its modules (torch's for most of a second): a SIGTERM there killed
    a finished export, which a shell saw as 143 (helper-62). The signal is sent from a
    __del__ that runs when __main__'s names are freed, after every exit handler."""
    done = _python(f"""
import os, signal, sys, time
from snncompile.cli import main
class Late:
    def __del__(self):
        os.kill(os.getpid(), signal.{signum})
        time.sleep(0.1)
        print("went on", flush=True)
late = Late()
sys.argv = ["snncompile", "export", {str(CHECKPOINT)!r}, "-o", {str(tmp_path / "a")!r}]
main()
""")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.endswith("went on\n")  # the signal came while Python was exiting
    assert (tmp_path / "a" / "manifest.json").is_file()


def test_a_signal_during_teardown_keeps_a_failed_commands_exit_code(tmp_path: Path) -> None:
    """After the command, a signal ends the process at once with the command's code."""
    done = _python(f"""
import atexit, os, signal, sys, time
from snncompile.cli import main
atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(1), print("went on")))
sys.argv = ["snncompile", "export", {str(tmp_path / "missing.pt")!r}, "-o", {str(tmp_path / "a")!r}]
main()
""")
    assert (done.returncode, done.stdout) == (6, ""), done.stderr
    assert done.stderr.count("\n") == 1 and "missing.pt" in done.stderr


@pytest.mark.parametrize(
    ("first", "second"),
    [("SIGINT", "SIGINT"), ("SIGINT", "SIGTERM"), ("SIGTERM", "SIGINT"), ("SIGTERM", "SIGTERM")],
)
def test_a_second_signal_during_the_cleanup_waits_for_it(
    tmp_path: Path, first: str, second: str
) -> None:
    """A double Ctrl-C, or a CI cancel's SIGINT then SIGTERM, arriving while the writer
    removed its temporary: the second signal cut the removal short and left it (audit48).
    The first signal decides the exit code."""
    done = _python(f"""
import os, shutil, signal, sys
from pathlib import Path
import snncompile.outputs as outputs
from snncompile.cli_signals import run_command
where = Path({str(tmp_path)!r})
real = shutil.rmtree
def rmtree(path, **kw):
    os.kill(os.getpid(), signal.{second})  # the second signal, during the cleanup
    for _ in range(100000):
        pass
    real(path, **kw)
outputs.shutil.rmtree = rmtree
def fill(tmp):
    (tmp / "f").write_text("x")
    os.kill(os.getpid(), signal.{first})
    for _ in range(100000):
        pass
def run():
    try:
        outputs.write_directory(where / "out", fill)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
try:
    run_command(run, whole_process=False)
except SystemExit as exc:
    print("exit", exc.code)
""")
    code = {"SIGINT": 130, "SIGTERM": 143}[first]
    assert done.stdout == f"exit {code}\n", done.stdout + done.stderr
    assert os.listdir(tmp_path) == []


def test_a_cleanup_that_hangs_is_interrupted_after_the_grace_period() -> None:
    """A further SIGTERM must still end a cleanup that never returns (Lava's stop can
    wait forever): it waits CLEANUP_GRACE_S (0.2 s here), then interrupts it."""
    done = _python("""
import os, signal, time
import snncompile.cli_signals as cli_signals
cli_signals.CLEANUP_GRACE_S = 0.2
def run():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100000):
            pass
    finally:  # a cleanup that hangs
        os.kill(os.getpid(), signal.SIGTERM)
        start = time.monotonic()
        while time.monotonic() - start < 20:
            time.sleep(0.001)
        print("the cleanup ran to its end")
start = time.monotonic()
try:
    cli_signals.run_command(run, whole_process=False)
except SystemExit as exc:
    print("exit", exc.code, time.monotonic() - start < 10)
""")
    assert done.stdout == "exit 143 True\n", done.stdout + done.stderr
    assert done.stderr == "error: terminated (SIGTERM)\n"


def test_other_unraisable_exceptions_reach_the_callers_hook() -> None:
    done = _python("""
import sys, weakref
import snncompile.cli as cli
seen = []
sys.unraisablehook = lambda unraisable: seen.append(type(unraisable.exc_value).__name__)
real = cli.support_table
class Thing:
    pass
def callback(ref):
    raise ValueError("in a callback")
def table(matrix):
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    return real(matrix)
cli.support_table = table
try:
    cli.main(["targets"])
except SystemExit:
    pass
print(seen)
""")
    assert done.stdout.endswith("['ValueError']\n"), done.stdout + done.stderr


def test_a_caller_that_goes_on_after_main_keeps_its_ctrl_c() -> None:
    """The teardown's signal guard is for the process's exit only: a script or notebook
    calling main() (sys.argv set) and catching SystemExit stays interruptible."""
    import subprocess
    import sys

    script = """
import os, signal, sys, time
from snncompile.cli import main
sys.argv = ["snncompile", "--version"]
try:
    main()
except SystemExit:
    pass
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)
except KeyboardInterrupt:
    print("interrupted")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.endswith("interrupted\n"), done.stdout + done.stderr


def test_write_npz_round_trips_and_a_failed_write_says_one_thing(  # type: ignore[no-untyped-def]
    tmp_path: Path, capfd, monkeypatch
) -> None:
    import gc

    from snncompile.outputs import write_npz

    path = write_npz(tmp_path / "a.npz", {"x": np.arange(5)})
    with np.load(path) as loaded:
        assert loaded["x"].tolist() == [0, 1, 2, 3, 4]

    class FullDisk:
        def __init__(self, f) -> None:  # type: ignore[no-untyped-def]
            self.f = f

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
            self.f.close()

        def write(self, data) -> None:  # type: ignore[no-untyped-def]
            raise OSError(28, "No space left on device")

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OutputError, match="No space left on device"):
        write_npz(tmp_path / "b.npz", {"x": np.zeros(1000)})
    gc.collect()  # numpy's zip writer, had it been left open, complains when collected
    assert capfd.readouterr().err == ""
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]


def test_npz_member_names_counts_only_archives_of_npy_arrays(tmp_path: Path) -> None:
    """What --overwrite may replace: a zip is an output of ours only if every member is
    a .npy array; member names alone let a zip of text named x.npy be replaced."""
    import zipfile

    from snncompile.outputs import npz_member_names

    np.savez(tmp_path / "ok.npz", x=np.zeros((2, 3)), y=np.arange(2))
    assert npz_member_names(tmp_path / "ok.npz") == {"x.npy", "y.npy"}
    header = (tmp_path / "ok.npz").read_bytes()
    cases = {
        "text.npz": b"not an array",
        "magic-only.npz": b"\x93NUMPY\x01\x00",  # header cut short
        "bad-header.npz": b"\x93NUMPY\x01\x00\x04\x00{'a'",
        "version-9.npz": b"\x93NUMPY\x09\x00\x04\x00{}  ",
    }
    for name, content in cases.items():
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("x.npy", content)
        assert npz_member_names(tmp_path / name) == set(), name
    with zipfile.ZipFile(tmp_path / "mixed.npz", "w") as archive:
        with zipfile.ZipFile(tmp_path / "ok.npz") as ok:
            archive.writestr("x.npy", ok.read("x.npy"))
        archive.writestr("y.npy", b"text")
    assert npz_member_names(tmp_path / "mixed.npz") == set()
    (tmp_path / "cut.npz").write_bytes(header[: len(header) // 2])
    assert npz_member_names(tmp_path / "cut.npz") == set()
    # a name flagged UTF-8 that is not: zipfile's UnicodeDecodeError was exit 1 (helper-76)
    data = bytearray(header)
    at = data.find(b"PK\x01\x02")
    data[at + 9] |= 0x08  # general purpose flag bit 11
    data[at + 46] = 0xFF
    (tmp_path / "name.npz").write_bytes(bytes(data))
    assert npz_member_names(tmp_path / "name.npz") == set()
    # members flagged encrypted: zipfile's RuntimeError was exit 1 (helper-79)
    data = bytearray(header)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at != -1:
            data[at + flags_at] |= 0x01
            at = data.find(signature, at + 4)
    (tmp_path / "encrypted.npz").write_bytes(bytes(data))
    assert npz_member_names(tmp_path / "encrypted.npz") == set()


def test_json_output_is_strict_json_even_with_nan_metadata(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    import torch

    payload = torch.load(CHECKPOINT, weights_only=True)
    payload["meta"]["test_accuracy"] = float("nan")
    torch.save(payload, tmp_path / "nan.pt")
    with pytest.raises(SystemExit) as done:
        main(["inspect", str(tmp_path / "nan.pt"), "--json"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    info = json.loads(out, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert info["accuracy"] is None


def test_a_path_the_system_refuses_and_a_deeply_nested_file_are_corrupt_input(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys
) -> None:
    too_long = tmp_path / ("x" * 300)
    code, err = _run(["inspect", too_long], capsys)
    assert (code, err) == (6, f"error: {too_long}: File name too long\n")
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    code, err = _run(["inspect", nested], capsys)
    assert (code, err) == (
        6,
        f"error: {nested}/manifest.json: not valid JSON (nested too deeply to read)\n",
    )


def test_a_huge_value_quoted_from_a_file_or_an_option_is_cut_to_one_short_line(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys
) -> None:
    """A manifest's target of 100,000 characters, and an option value as long: the error
    line quoted them whole (100 KB; helper-104). Its head and tail stay."""
    art = tmp_path / "a"
    art.mkdir()
    manifest = {"format": "snncompile-artifact", "version": 1, "target": "t" * 100_000, "files": {}}
    (art / "manifest.json").write_text(json.dumps(manifest))
    code, err = _run(["inspect", art], capsys)
    assert code == 6 and err.count("\n") == 1 and len(err) < 2100, len(err)
    assert err.startswith(f"error: {art}/manifest.json: target 'ttt")
    assert "characters cut)... ttt" in err
    assert err.endswith("' is not one this snncompile knows (reference, lava, loihi2, nir, onnx)\n")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 4, 1)))
    code, err = _run(["simulate", art, "--input", inputs, "--backend", "x" * 100_000], capsys)
    assert code == 2 and err.count("\n") == 1 and len(err) < 2100, len(err)
    assert err.endswith(
        "is not one of 'reference', 'lava', 'onnx'. (see snncompile simulate --help)\n"
    )


def test_an_empty_output_name_is_named_as_such(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _run(["export", CHECKPOINT, "-o", ""], capsys)
    assert (code, err) == (2, "error: -o is empty: name the file or directory to write\n")
    # simulate said "-o must name an .npz file, got " (helper-84)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 4, 1)))
    code, err = _run(["simulate", tmp_path, "--input", inputs, "-o", ""], capsys)
    assert (code, err) == (2, "error: -o is empty: name the file or directory to write\n")


def test_a_path_with_a_line_break_is_named_on_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Every error is one line, even naming a file whose name holds a line break (it
    printed on two)."""
    bad = tmp_path / "x\ny.pt"
    bad.write_bytes(b"not a checkpoint")
    for path, shown in ((bad, "x\\ny.pt"), (tmp_path / "no\nfile.pt", "no\\nfile.pt")):
        code, err = _run(["inspect", path], capsys)
        assert code == 6 and err.count("\n") == 1 and shown in err, err


def test_a_checkpoint_whose_listops_task_cannot_be_drawn_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reachable but too rare task_args (a hand-edited file) stop generation; the error
    names the checkpoint and suggests no train-only option (it named --listops-*)."""
    import torch

    import snncompile
    from snncompile.data import listops
    from snncompile.models.backbone import ModelConfig, build_model

    cfg = ModelConfig(
        family="binary-s4d",
        d_input=listops.VOCAB_SIZE,
        d_output=listops.N_CLASSES,
        d_model=8,
        d_state=4,
        n_layers=1,
    )
    path = tmp_path / "m.pt"
    meta = {"task": "listops", "task_args": {"length": 1024, "depth": 4, "seed": 0}}
    calibration = torch.zeros(2, 8, listops.VOCAB_SIZE)
    snncompile.save(build_model(cfg), path, calibration=calibration, meta=meta)
    for command in ("evaluate", "verify"):
        code, err = _run([command, path], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert f"{path}: cannot rebuild its task 'listops'" in err and "too rare" in err, err
        assert "--listops" not in err, err


def test_running_out_of_memory_reading_inputs_is_exit_1_not_a_damaged_file(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Headers are checked against their bytes first, so a MemoryError from numpy is the
    machine's, not the file's (it was exit 6, "unreadable (MemoryError)")."""
    import numpy as np

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 8, 1), np.float32))

    def out_of_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise MemoryError

    monkeypatch.setattr(np, "load", out_of_memory)
    code, err = _run(["export", CHECKPOINT, "--calib", x, "-o", tmp_path / "a"], capsys)
    assert (code, err) == (
        1,
        "error: out of memory (MemoryError); try fewer inputs at once or a smaller model\n",
    )


def test_boundaries_of_outputs_and_options(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each rule at its edge (audit44: every one of these could move by one unnoticed):
    a 255-byte name is the longest a Linux file system takes; snncompile with no command
    is a usage error; --dropout 1 would drop everything; `data -o` never follows a
    symlink to replace what it points at; an input of zero steps is refused."""
    from snncompile.compiler import check_inputs

    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    assert check_writable(tmp_path / ("x" * name_max))  # no error
    with pytest.raises(UsageError, match="too long"):
        check_writable(tmp_path / ("x" * (name_max + 1)))
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 2
    capsys.readouterr()
    _no_slow_work(monkeypatch)
    argv = ["train", "--family", "s4d", "--dropout", "1", "-o", tmp_path / "m.pt"]
    assert _run(argv, capsys) == (2, "error: --dropout must be in [0, 1), got 1.0\n")
    real = tmp_path / "real.npz"
    np.savez(real, x=np.zeros(1), y=np.zeros(1))
    (tmp_path / "link.npz").symlink_to(real)
    code, err = _run(["data", CHECKPOINT, "-o", tmp_path / "link.npz", "--overwrite"], capsys)
    assert code == 2 and "is not an .npz of x and y, or x, alone" in err, err
    assert (tmp_path / "link.npz").is_symlink()
    with pytest.raises(UsageError, match=r"--input must have shape .*got \(1, 0, 1\)"):
        check_inputs(np.zeros((1, 0, 1)), 1, what="--input")


def test_the_members_of_a_fifo_are_none_and_reading_them_does_not_block(tmp_path):
    """`data -o fifo.npz --overwrite` blocked forever in the zip reader (helper-74)."""
    import threading

    from snncompile.outputs import npz_member_names

    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    found: dict[str, set[str]] = {}
    reader = threading.Thread(target=lambda: found.update(names=npz_member_names(fifo)))
    reader.daemon = True
    reader.start()
    reader.join(5)
    blocked = reader.is_alive()
    if blocked:  # opening the FIFO to read waits for a writer: a writer's open releases it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert not blocked and found == {"names": set()}


# A process whose files may not grow past 2,000 bytes, as on a full disk: a write past
# it fails with EFBIG (SIGXFSZ ignored, else the signal kills the process).
_FILE_SIZE_LIMIT = """
import errno, resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
def must_fail(write, path):
    try:
        write(path)
    except OSError as exc:
        assert exc.errno == errno.EFBIG, exc
        print("refused", flush=True)
"""


def test_the_hdf5_writers_fail_on_a_full_disk_with_a_plain_oserror(tmp_path: Path) -> None:
    """network.net (loihi2) and model.nir (nir) are HDF5, which h5py wrote straight to
    disk: a failed write there printed dozens of "Exception ignored" tracebacks, then the
    process crashed at exit (SIGSEGV, 139), leaving the artifact's temporary directory
    (export --target nir under a file size limit, helper-107). Both now fill the file in
    memory and write it in one go. No torch here: the writers alone, in a subprocess."""
    nir_file = Path(__file__).parent / "data" / "nir-examples" / "lif_norse.nir"
    done = _python(
        _FILE_SIZE_LIMIT
        + f"""
import nir
import numpy as np
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.targets.loihi2 import write_network
from snncompile.targets.nir import Build
pops = (Population("in", "input", 40), Population("out", "readout", 40, attrs={{"mode": "mean"}}))
weight = np.arange(1600.0).reshape(40, 40) % 100
net = Netlist(pops, (Synapse("w", "in", "out", weight),), numeric="int", formats=Formats())
must_fail(lambda path: write_network(net, path), {str(tmp_path / "network.net")!r})
build = Build(nir_graph=nir.read({str(nir_file)!r}), graph=None, dt_s=1e-3)
must_fail(build.files()["model.nir"], {str(tmp_path / "model.nir")!r})
"""
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "refused\nrefused\n", "")


_TEMPORARY_CREATIONS = {  # what each writes, the name its temporary starts with
    "write_file": (lambda d: write_file(d / "f.npz", lambda f: f.write(b"x")), ".f.npz."),
    "write_directory": (lambda d: write_directory(d / "art", lambda t: None), ".art."),
    "overwrite": (
        lambda d: write_directory(d / "art", lambda t: None, overwrite=True),
        ".art.",  # the second one: the .old beside the .tmp
    ),
    "check_writable": (lambda d: check_writable(d / "f.npz"), ".snncompile-probe-"),
}


@pytest.mark.parametrize("case", list(_TEMPORARY_CREATIONS))
def test_a_signal_inside_mkstemp_or_mkdtemp_leaves_no_temporary(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, case: str
) -> None:
    """SIGTERM handled inside tempfile.mkstemp or mkdtemp, after the file or directory
    existed and before it returned: the writer never learnt its name, and the empty
    temporary (or the check's probe) stayed beside -o. Forced here as the creation
    returns; the command (as the CLI runs one) still ends with 143."""
    import signal
    import sys

    from snncompile.cli_signals import run_command

    write, prefix = _TEMPORARY_CREATIONS[case]
    if case == "overwrite":
        write_directory(tmp_path / "art", lambda t: (t / "v").write_text("old"))
    before = sorted(os.listdir(tmp_path))
    creations = [0]
    signalled_at = 2 if case == "overwrite" else 1

    def signalled(create, creates=lambda *args: True):  # type: ignore[no-untyped-def]
        def created(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = create(path, *args, **kwargs)
            if creates(*args) and os.path.basename(path).startswith(prefix):
                creations[0] += 1
                if creations[0] == signalled_at:
                    signal.raise_signal(signal.SIGTERM)  # its handler runs here
            return result

        return created

    # os.open creates with O_CREAT; rmtree's opening of the directory does not count
    monkeypatch.setattr(os, "open", signalled(os.open, lambda flags, *_: flags & os.O_CREAT))
    monkeypatch.setattr(os, "mkdir", signalled(os.mkdir))
    with pytest.raises(SystemExit) as info:
        run_command(lambda: (write(tmp_path), sys.exit(0)), whole_process=False)
    assert (info.value.code, creations[0]) == (143, signalled_at)
    assert capsys.readouterr().err == "error: terminated (SIGTERM)\n"
    assert sorted(os.listdir(tmp_path)) == before
    if case == "overwrite":
        assert (tmp_path / "art" / "v").read_text() == "old"


def test_a_signal_held_by_a_block_that_raises_is_delivered_after_it(capsys) -> None:  # type: ignore[no-untyped-def]
    """A block holding signals that ends in its own exception, caught by its caller: the
    held signal comes a moment later, and still ends the command."""
    import signal
    import time

    from snncompile.cli_signals import run_command, signals_held

    def body() -> None:
        try:
            with signals_held():
                signal.raise_signal(signal.SIGTERM)
                raise OSError("the block's own failure")
        except OSError:
            pass
        for _ in range(200):  # where the held signal is delivered (between bytecodes:
            time.sleep(0.01)  # interrupt_main's re-delivery does not wake a long sleep)
        print("went on")

    with pytest.raises(SystemExit) as info:
        run_command(body, whole_process=False)
    assert info.value.code == 143
    assert capsys.readouterr() == ("", "error: terminated (SIGTERM)\n")


def test_a_further_signal_past_the_grace_interrupts_a_block_that_hangs(  # type: ignore[no-untyped-def]
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block holding signals may hang (a temporary created on a stuck network file
    system): the first signal waits for it, a further one past the grace does not."""
    import signal
    import time

    import snncompile.cli_signals as cli_signals

    monkeypatch.setattr(cli_signals, "CLEANUP_GRACE_S", 0.05)
    reached = []

    def body() -> None:
        with cli_signals.signals_held():
            signal.raise_signal(signal.SIGTERM)
            reached.append("held")
            time.sleep(0.1)
            signal.raise_signal(signal.SIGTERM)  # past the grace: raised here
            reached.append("went on")

    with pytest.raises(SystemExit) as info:
        cli_signals.run_command(body, whole_process=False)
    assert (info.value.code, reached) == (143, ["held"])
    assert capsys.readouterr().err == "error: terminated (SIGTERM)\n"
