"""One exception hierarchy; each class carries the process exit code the CLI uses.

Exit codes (documented in README.md):
    0 ok, 1 internal error, 2 usage, 3 equivalence check failed,
    4 unsupported model/op, 5 hardware rule violated, 6 corrupt or unreadable input,
    7 missing optional dependency.
"""

from __future__ import annotations


class SnnCompileError(Exception):
    """Base class. The message is one line meant for the user."""

    exit_code: int = 1


class UsageError(SnnCompileError):
    """The command line or API call is malformed (bad option value, wrong combination)."""

    exit_code = 2


class ArgumentTypeError(UsageError, TypeError):
    """A Python API argument of the wrong type (a path given None, a count given 1.5 or
    True): a UsageError (exit 2) like any bad argument, and a TypeError, as Python's
    convention has it. A value of the right type that is out of range stays a plain
    UsageError. Raised by the checks of snncompile.arguments."""


class EquivalenceError(SnnCompileError):
    """A declared verification tolerance was not met."""

    exit_code = 3


class UnsupportedError(SnnCompileError):
    """The model contains an op or module a stage/target cannot take."""

    exit_code = 4


class HardwareRuleError(SnnCompileError):
    """A hardware design rule (bit width, fan-in, cores, delays) is violated."""

    exit_code = 5


class CorruptInputError(SnnCompileError):
    """An input file is missing, truncated, of the wrong format or version, or unsafe."""

    exit_code = 6


class MissingDependencyError(SnnCompileError):
    """An optional dependency needed for the requested action is not installed."""

    exit_code = 7


def invalid_model(detail: str, source: object = None) -> SnnCompileError:
    """The error for a model whose values make an invalid graph (a pole that rounds to 1,
    a neuron decay >= 1): the file they came from is corrupt input (exit 6), an in-memory
    model (or a wrong input_size given with it) a usage error. `detail` is the graph's
    own message, naming node and rule."""
    if source is not None:
        return CorruptInputError(f"{source}: holds a model the compiler cannot take: {detail}")
    return UsageError(f"the traced graph is invalid: {detail}")


def one_line_text(exc: BaseException, limit: int = 200) -> str:
    """An exception's message (from a library: nir, h5py) for one of our one-line
    errors: whitespace runs made one space, cut at `limit` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SignalExit(SystemExit):
    """The SystemExit(128 + signal) that SIGTERM or SIGHUP raises in a running command
    (cli_signals). Code that catches what the user's own code raises, sys.exit()
    included (USER_CODE_ERRORS), lets it through: a SIGTERM while an --entry module was
    imported was reported as "importing ... failed: it called sys.exit(143)"."""


# What the user's own code (an --entry module, its factory, its model's forward under
# tracing) may raise that is its failure, not ours: any Exception, and a sys.exit() or
# GeneratorExit, which are not Exceptions (a sys.exit(3) in a forward ended export with
# exit 3, "an equivalence check failed", in silence). Catch SignalExit before it.
USER_CODE_ERRORS = (Exception, SystemExit, GeneratorExit)


def user_code_failure(exc: BaseException) -> str:
    """What the user's code raised, for a one-line error."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = one_line_text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError (numpy's too), or torch's CPU allocator failing, which raises
    a RuntimeError ("DefaultCPUAllocator: can't allocate memory"): exit 1, never blamed
    on the input or the user's code."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )
