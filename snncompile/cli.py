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


def _argv_for_meta() -> str:
    import shlex

    return "snncompile " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@cli.command()
@click.option(
    "--family",
    required=True,
    help="Model family: spike-ssm, spiking-ssm, binary-s4d, binary-s4d-gsu or s4d.",
)
@click.option(
    "--task", "task_name", default="sdigits", show_default=True, help="sdigits or listops."
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write."
)
@click.option("--epochs", default=30, show_default=True, type=int)
@click.option("--width", default=64, show_default=True, type=int, help="Channels H (d_model).")
@click.option("--depth", default=2, show_default=True, type=int, help="Number of blocks.")
@click.option(
    "--state-size",
    default=64,
    show_default=True,
    type=int,
    help="SSM state size N (N/2 complex modes).",
)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--lr", default=1e-2, show_default=True, type=float)
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--dropout", default=0.0, show_default=True, type=float)
@click.option(
    "--prenorm/--no-prenorm", default=False, show_default=True, help="BatchNorm before each S4D."
)
@click.option("--pooling", default="mean", show_default=True, type=click.Choice(["mean", "last"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--listops-length", default=128, show_default=True, type=int)
@click.option("--listops-depth", default=4, show_default=True, type=int)
@click.option(
    "--calib-size", default=32, show_default=True, type=int, help="Inputs embedded for calibration."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(
    family: str,
    task_name: str,
    output: str,
    epochs: int,
    width: int,
    depth: int,
    state_size: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    dropout: float,
    prenorm: bool,
    pooling: str,
    seed: int,
    listops_length: int,
    listops_depth: int,
    calib_size: int,
    quiet: bool,
) -> None:
    """Train a model on a bundled task and save a checkpoint (with a calibration batch)."""
    from snncompile.api import train_checkpoint

    result = train_checkpoint(
        family=family,
        task_name=task_name,
        output=output,
        epochs=epochs,
        width=width,
        depth=depth,
        state_size=state_size,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        dropout=dropout,
        prenorm=prenorm,
        pooling=pooling,
        seed=seed,
        listops_length=listops_length,
        listops_depth=listops_depth,
        calib_size=calib_size,
        progress=not quiet,
        command=_argv_for_meta(),
    )
    click.echo(
        f"saved {output}: test accuracy {result.accuracy:.2%}, "
        f"spike rates {_format_rates(result.spike_rates)}, {result.seconds:.0f} s"
    )


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model: str, as_json: bool) -> None:
    """Evaluate a checkpoint on the test split of the task it was trained on."""
    import json

    from snncompile.api import evaluate_checkpoint

    result = evaluate_checkpoint(model)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"{model}: {result.family} on {result.task} ({result.n} test inputs)")
    click.echo(f"  test accuracy  {result.accuracy:.2%}")
    if result.spike_rates:
        click.echo(f"  spike rates    {_format_rates(result.spike_rates)}")
    if result.recorded_accuracy is not None:
        click.echo(f"  recorded at training time: {result.recorded_accuracy:.2%}")


def _format_rates(rates: dict[str, float]) -> str:
    if not rates:
        return "n/a (non-spiking)"
    return ", ".join(f"{name} {rate:.3f}" for name, rate in rates.items())


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
