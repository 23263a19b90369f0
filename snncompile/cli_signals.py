"""How a CLI command ends on a signal.

SIGTERM (timeout, CI cancellation) and SIGHUP (the terminal or ssh session closed)
unwind the command like Ctrl-C: a SystemExit(128 + signal) raised where the command is,
so the writers' `except BaseException` blocks remove their temporaries, after one line
on stderr. What makes that hold:

- A signal inherited as ignored stays ignored (`nohup snncompile export ...`).
- An exception raised while Python runs a weakref callback or a __del__ is dropped
  there ("Exception ignored in ..."): the command went on for minutes after a SIGTERM.
  Such a dropped SystemExit (or KeyboardInterrupt) is delivered again a moment later
  from another thread, while the same command still runs.
- A second signal while an exception is being handled (a cleanup running) does not
  cut the cleanup short; it is looked at again a moment later.
- Once a terminating signal arrived, the command exits 128 + its number whatever else
  happens: writing the message to a terminal that has gone raises OSError (EIO), which
  used to turn a hangup into exit 1.
- After the command (a whole process, not a call from Python), a signal during the
  interpreter's teardown (torch's and Lava's exit handlers, about 0.5 s) ends the
  process at once with the command's own exit code: its output is complete. It used to
  exit 130 in silence ("interrupted, nothing written") or print a traceback.
"""

from __future__ import annotations

import _thread
import atexit
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

# Signal name -> the one line printed when it ends a command.
TERMINATING = {"SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)"}
# How long a signal waits before it is delivered again (dropped, or during a cleanup).
_RETRY_S = 0.01


class _Command:
    """One running command: the process it runs in, and the terminating signal, once
    one arrived."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.terminating: int | None = None


_current: _Command | None = None


def run_command(run: Callable[[], None], *, whole_process: bool) -> None:
    """Run `run` (which ends in SystemExit with the command's exit code) with the signal
    handling above; the caller's handlers come back afterwards (tests and scripts call
    the CLI in-process). Off the main thread Python delivers no signals: run as is."""
    global _current
    if threading.current_thread() is not threading.main_thread():
        run()
        return
    command = _Command()
    outer, _current = _current, command
    previous = {
        signum: signal.signal(signum, _terminated)
        for signum in _signals(TERMINATING)
        if signal.getsignal(signum) is not signal.SIG_IGN  # nohup: stays ignored
    }
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_on_unraisable, previous_hook)
    code = 1
    try:
        run()
    except SystemExit as exc:
        code = _exit_code(exc.code)
        if command.terminating is not None and code != 128 + command.terminating:
            code = 128 + command.terminating  # it finished as the signal came, or
            raise SystemExit(code) from None  # the signal was dropped at its very end
        raise
    except BaseException:
        if command.terminating is None:
            raise
        code = 128 + command.terminating  # e.g. OSError writing to a closed terminal
        raise SystemExit(code) from None
    finally:
        _current = outer
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            if handler is not None:  # None: not ours to restore (set outside Python)
                signal.signal(signum, handler)
        if whole_process:  # registered last, it runs first among the exit handlers
            atexit.register(_finish_at_once_on_signals, code)


def _terminated(signum: int, frame: object) -> None:
    command = _current
    if command is None or os.getpid() != command.pid:
        # A process forked while the command ran (Lava's workers and its shared-memory
        # manager) inherits this handler and ignores the signal, as they hold SIGINT: a
        # SIGTERM to the process group reaches the CLI's process too, which stops them
        # and releases the shared memory. Ended by the signal themselves, they left the
        # segments to Python's resource tracker, which warned about them on stderr.
        return
    if command.terminating is None:
        command.terminating = signum
        _say(f"error: {TERMINATING[signal.Signals(signum).name]}")
    elif sys.exc_info()[1] is not None:  # unwinding already: let its cleanup finish
        _deliver_later(command, signum)
        return
    raise SystemExit(128 + signum)


def _on_unraisable(previous: Callable[[Any], None], unraisable: Any) -> None:
    """sys.unraisablehook while a command runs: re-deliver a dropped signal (delivered
    from here, its handler would run at once, inside this hook, and be dropped again);
    anything else goes to the hook that was there before."""
    command, exc = _current, unraisable.exc_value
    if command is not None and command.terminating is not None and isinstance(exc, SystemExit):
        _deliver_later(command, command.terminating)
    elif command is not None and isinstance(exc, KeyboardInterrupt):
        _deliver_later(command, signal.SIGINT)
    else:
        previous(unraisable)


def _deliver_later(command: _Command, signum: int) -> None:
    def deliver() -> None:
        if _current is command:  # not into a later command, or the caller's code
            _thread.interrupt_main(signum)

    timer = threading.Timer(_RETRY_S, deliver)
    timer.daemon = True
    timer.start()


def _finish_at_once_on_signals(code: int) -> None:
    """At the process's exit (atexit), after the command finished with `code`: a signal
    ends the process at once with that code, its output flushed."""

    def finish(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed pipe or terminal: nothing more can be said
                pass
        os._exit(code)

    for signum in _signals(("SIGINT", *TERMINATING)):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, finish)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the terminal is gone (EIO) or stderr closed
        pass


def _signals(names: Any) -> list[int]:
    """The signals of these names this platform has (no SIGHUP on Windows)."""
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def _exit_code(code: object) -> int:
    """The process exit status a SystemExit's code gives (None 0, a message 1)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
