"""How a CLI command ends on a signal.

Ctrl-C (SIGINT), SIGTERM (timeout, CI cancellation) and SIGHUP (the terminal or ssh
session closed) unwind the command: KeyboardInterrupt (exit 130, "error: interrupted")
or SystemExit(128 + signal) after one line on stderr, raised where the command is, so
the writers' `except BaseException` blocks remove their temporaries. What makes that
hold:

- A signal inherited as ignored stays ignored (`nohup snncompile export ...`, or a
  background job's SIGINT).
- The first signal decides the exit code and the message, whatever happens next:
  writing the message to a terminal that has gone raises OSError (EIO), which used to
  turn a hangup into exit 1; a signal dropped at the command's very end (below) used to
  leave exit 0.
- An exception raised while Python runs a weakref callback or a __del__ is dropped
  there ("Exception ignored in ..."): the command went on for minutes after a SIGTERM.
  Such a dropped signal is delivered again a moment later from another thread, while
  the same command still runs; a delivery that lands while the hook catching the drop
  still runs is put off again, not raised there (where it would be dropped once more).
- A further signal while the first one's cleanup runs (an exception being handled)
  waits for it, for up to CLEANUP_GRACE_S: a second Ctrl-C, or a CI cancel's SIGINT then
  SIGTERM, left a half-removed temporary. Past that, it interrupts the cleanup, as a
  cleanup that hangs (Lava's stop can) must still end.
- A signal inside a `signals_held()` block is raised as the block ends: the writers
  create their temporaries in one, so that a file tempfile.mkstemp made is named
  where their cleanup looks (a signal inside mkstemp, after the file existed, left it).
- After the command (a whole process, not a call from Python), a signal while the
  interpreter exits (torch's and Lava's exit handlers, then the freeing of their
  modules, together about 1 s) does not change the command's own exit code: its output
  is complete. During the exit handlers the process ends at once with that code; after
  them Python puts the default action back on every signal it handles, which killed the
  finished process (a shell saw 143 after a complete export), so they are ignored there
  (`_ignore_signals_in_teardown`). It used to exit 130 in silence ("interrupted, nothing
  written") or print a traceback. The cost: a teardown that hung there would end only
  by SIGKILL. Ending the process from the last exit handler (os._exit) would leave no
  window at all, but it would also replace the exit status of a script that called
  main() and went on.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from snncompile.errors import SignalExit

# Signal name -> the one line printed when it ends a command (SIGINT's is printed by
# the CLI when click reports the interrupt, here only when that did not happen).
MESSAGES = {
    "SIGINT": "interrupted",
    "SIGTERM": "terminated (SIGTERM)",
    "SIGHUP": "hung up (SIGHUP)",
}
# How long a further signal lets a running cleanup finish before interrupting it.
CLEANUP_GRACE_S = 5.0
# Delay of a re-delivery: a dropped signal's, or a deferred one's.
_RETRY_S = 0.01


class _Command:
    """One running command: its process, and the first signal that arrived."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.signum: int | None = None
        self.since = 0.0  # time.monotonic() of the first signal
        self.announced = False  # its line was printed
        self.retry_pending = False  # one re-delivery at a time
        # Depth of _on_unraisable on the main thread, where signal handlers run and a
        # raise inside the hook is dropped again (a hook in another thread delays none).
        self.in_hook = 0
        # Depth of `signals_held` blocks, and the signal that arrived inside one.
        self.holding = 0
        self.held: int | None = None

    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


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
        signum: signal.signal(signum, _on_signal)
        for signum in _signals(MESSAGES)
        if signal.getsignal(signum) is not signal.SIG_IGN  # nohup: stays ignored
    }
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_on_unraisable, previous_hook)
    code = 1
    try:
        run()
    except BaseException as exc:
        code = _exit_code(exc.code) if isinstance(exc, SystemExit) else 1
        expected = command.exit_code()
        if expected is None or (code == expected and isinstance(exc, SystemExit)):
            raise
        # The first signal decides: the command finished as it came (it was dropped at
        # the very end), another signal or an OSError (a terminal gone) came after it.
        _announce(command)
        code = expected
        raise SystemExit(code) from None
    finally:
        _current = outer
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            if handler is not None:  # None: not ours to restore (set outside Python)
                signal.signal(signum, handler)
        # At the process's exit, not before: a script calling main() with sys.argv set
        # and catching SystemExit stays interruptible. Registered last, it runs first
        # among the exit handlers.
        if whole_process:
            atexit.register(_finish_at_once_on_signals, code)


def _on_signal(signum: int, frame: object) -> None:
    command = _current
    if command is None or os.getpid() != command.pid:
        # A process forked while the command ran (Lava's workers and its shared-memory
        # manager) inherits this handler and ignores the signal, as they hold SIGINT: a
        # signal to the process group reaches the CLI's process too, which stops them
        # and releases the shared memory. Ended by the signal themselves, they left the
        # segments to Python's resource tracker, which warned about them on stderr.
        return
    if command.signum is None:
        command.signum, command.since = signum, time.monotonic()
        if signum != signal.SIGINT:  # click reports a KeyboardInterrupt as "interrupted"
            _announce(command)
    elif sys.exc_info()[1] is not None and time.monotonic() - command.since < CLEANUP_GRACE_S:
        _deliver_later(command, signum)  # unwinding already: let its cleanup finish
        return
    if command.in_hook:
        # Raised inside the hook it would be dropped once more, and lost: a re-delivery
        # can arrive while the hook still starts its timer on a loaded machine (seen
        # once in a full test run: the export went on).
        _deliver_later(command, signum)
        return
    if command.holding and (
        command.held is None or time.monotonic() - command.since < CLEANUP_GRACE_S
    ):
        # Raised as the block ends; a further signal past the grace interrupts a block
        # that hangs (a creation on a stuck network file system), as it would a cleanup.
        command.held = command.held or signum
        return
    raise _signal_exception(signum)


def _signal_exception(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return SignalExit(128 + signum)  # not the user's sys.exit() (errors.USER_CODE_ERRORS)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Inside a running command, a signal arriving in this block is raised as it ends,
    not inside it: around `x = create()`, so that whatever `create` made is in `x` when
    the signal's exception unwinds (tempfile.mkstemp raised inside, after its file
    existed and before it returned: the empty temporary stayed beside -o). Keep such a
    block short: the signal waits for it (a further one, past CLEANUP_GRACE_S after the
    first, does not). Elsewhere (no command, another thread, where
    no signal handler runs) it holds nothing."""
    command = _current
    if command is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    command.holding += 1
    try:
        yield
    except BaseException:
        command.holding -= 1
        if not command.holding and command.held is not None:
            _deliver_later(command, command.held)  # after the block's own exception
            command.held = None
        raise
    command.holding -= 1
    if not command.holding and command.held is not None:
        signum, command.held = command.held, None
        raise _signal_exception(signum)


def _on_unraisable(previous: Callable[[Any], None], unraisable: Any) -> None:
    """sys.unraisablehook while a command runs: re-deliver a dropped signal (delivered
    from here, its handler would run at once, inside this hook, and be dropped again);
    anything else goes to the hook that was there before."""
    command, exc = _current, unraisable.exc_value
    if command is None or threading.current_thread() is not threading.main_thread():
        previous(unraisable)  # a signal's exception is raised on the main thread only
        return
    command.in_hook += 1
    try:
        if command.signum is not None and isinstance(exc, (SystemExit, KeyboardInterrupt)):
            _deliver_later(command, command.signum)
            return
        previous(unraisable)
    finally:
        command.in_hook -= 1


def _deliver_later(command: _Command, signum: int) -> None:
    if command.retry_pending:
        return

    def deliver() -> None:
        command.retry_pending = False
        if _current is command:  # not into a later command, or the caller's code
            _thread.interrupt_main(signum)

    command.retry_pending = True
    timer = threading.Timer(_RETRY_S, deliver)
    timer.daemon = True
    timer.start()


def _announce(command: _Command) -> None:
    if command.announced or command.signum is None:
        return
    command.announced = True
    line = f"error: {MESSAGES[signal.Signals(command.signum).name]}"
    try:
        print(line, file=sys.stderr, flush=True)
    except Exception:  # the terminal is gone (EIO), stderr closed, a reentrant write
        pass


def mark_announced() -> None:
    """The CLI printed the running command's interrupt line itself."""
    if _current is not None:
        _current.announced = True


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

    global _finishing
    _finishing = finish
    for signum in _signals(MESSAGES):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, finish)


_finishing: Callable[[int, object], None] | None = None


def _ignore_signals_in_teardown() -> None:
    """The last exit handler (registered when this module is imported, before torch's
    and Lava's): after the exit handlers Python resets each signal it handles to the
    default action, but leaves an ignored one ignored, and then frees its modules."""
    for signum in _signals(MESSAGES):
        if _finishing is not None and signal.getsignal(signum) is _finishing:
            signal.signal(signum, signal.SIG_IGN)


atexit.register(_ignore_signals_in_teardown)


def _signals(names: Any) -> list[int]:
    """The signals of these names this platform has (no SIGHUP on Windows)."""
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def _exit_code(code: object) -> int:
    """The process exit status a SystemExit's code gives (None 0, a message 1)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
