"""Command line interface: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import sys

import click

from snncompile import __version__
from snncompile.errors import SnnCompileError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snncompile")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Compile trained spiking state-space models for neuromorphic targets."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps SnnCompileError to its one-line message and exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="snncompile", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except SnnCompileError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    # standalone_mode=False returns ctx.exit()'s code (e.g. 0 after --help), else the result.
    sys.exit(rv if isinstance(rv, int) else 0)
