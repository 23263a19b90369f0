"""Command line interface: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from snncompile import __version__
from snncompile.api import DATA_SPLITS
from snncompile.cli_signals import mark_announced, run_command
from snncompile.cli_text import (
    TARGET_PRINTERS,
    format_rates,
    inputs_text,
    latency_text,
    print_artifact,
    print_checkpoint,
    print_export,
    print_float_artifact,
    print_float_export,
    print_nir_graph,
    print_stopped,
    print_verify,
    print_verify_nir,
    stopped_summary,
    strict_json,
    support_table,
)
from snncompile.errors import (
    CorruptInputError,
    EquivalenceError,
    SnnCompileError,
    UsageError,
    is_out_of_memory,
)
from snncompile.reference.malloc import tune_malloc_for_tiles
from snncompile.simulate import BACKENDS
from snncompile.targets import TARGETS


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past click (whose own handling prints a blank line
    before main's one-line message)."""


class _PipeClosed(Exception):
    """stdout's reader went away (`snncompile inspect ... | head -1`), carried past click
    (which exits 1, our code for a bug)."""


class _InputPath(click.Path):
    """click.Path for something to read: an empty one is refused as such (exit 2, as an
    empty -o is), where Path("") was "." and reported as "not a file" (exit 6), and an
    empty --target-config was ignored."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value:
            what = "file" if not self.dir_okay else "file or directory"
            self.fail(f"the path is empty: name the {what} to read", param, ctx)
        return super().convert(value, param, ctx)


class _ContextOnErrors:
    """click's option parser raises its errors (`-o` without a value, a flag given one)
    without the command's context, so they lacked the "(see snncompile CMD --help)" that
    every other usage error ends in: attach it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as exc:
            if exc.ctx is None:
                exc.ctx = ctx
            raise


class _Command(_ContextOnErrors, click.Command):
    pass


class _Group(_ContextOnErrors, click.Group):
    command_class = _Command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None
        except BrokenPipeError:
            raise _PipeClosed() from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--neuron-method",
    metavar="[pmbc|compiled|sequential]",
    help="How spike-ssm's neurons compute in training: pmbc (the default), compiled "
    "(fastest on a CPU) or sequential; the same spikes, gradients equal to rounding.",
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
    neuron_method: str | None,
    quiet: bool,
) -> None:
    """Train a model on a bundled task and save a checkpoint (with a calibration batch)."""
    from snncompile.api import train_checkpoint

    ctx = click.get_current_context()
    listops_only = [
        "--" + name.replace("_", "-")
        for name in ("listops_length", "listops_depth")
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    ]
    from snncompile.data import TASKS

    # It was ignored without a word; an unknown task is named as such below.
    if listops_only and task_name in TASKS and task_name != "listops":
        verb = "apply" if len(listops_only) > 1 else "applies"
        raise UsageError(f"{' and '.join(listops_only)} {verb} to --task listops, not {task_name}")

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
        neuron_method=neuron_method,
        progress=not quiet,
        command=_argv_for_meta(),
    )
    click.echo(
        f"saved {output}: test accuracy {result.accuracy:.2%}, "
        f"spike rates {format_rates(result.spike_rates)}, {result.train_seconds:.0f} s"
    )


@cli.command()
@click.argument("model", type=_InputPath(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write."
)
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--weight-decay", default=0.0, show_default=True, type=float)
@click.option(
    "--weight-bits", default=8, show_default=True, type=int, help="As export's (its grid)."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def finetune(
    model: str,
    output: str,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    weight_bits: int,
    seed: int,
    quiet: bool,
) -> None:
    """Quantization-aware fine-tuning: train MODEL on its task with the encoder's, GLU
    projections' and decoder's weights on export's grid, save them on it, and say what
    export's weight rounding still loses."""
    from snncompile.api import finetune_checkpoint

    result = finetune_checkpoint(
        model,
        output,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        weight_bits=weight_bits,
        seed=seed,
        progress=not quiet,
        command=_argv_for_meta(),
    )
    click.echo(
        f"saved {output}: test accuracy {result.accuracy_before:.2%} -> {result.accuracy:.2%} "
        f"with {len(result.parameters)} weight and bias tensors on the {weight_bits}-bit grid, "
        f"{result.train_seconds:.0f} s"
    )
    rounding = result.export_weight_rounding
    if "not_measured" in rounding:
        click.echo(f"  export's weight rounding: not measured ({rounding['not_measured']})")
    elif rounding["largest_relative_rms_error"] == 0:
        click.echo("  export's weight rounding: exact in every synapse")
    else:
        click.echo(
            "  export's weight rounding: largest relative rms error "
            f"{rounding['largest_relative_rms_error']:.3g} ({rounding['synapse']})"
        )


@cli.command()
@click.argument("model", type=_InputPath(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .npz to write."
)
@click.option(
    "--split",
    type=click.Choice(DATA_SPLITS),
    default="test",
    show_default=True,
    help="calibration: the checkpoint's embedded calibration batch (x alone), what export "
    "calibrates on without --calib.",
)
@click.option("--limit", type=int, default=None, help="At most this many sequences.")
@click.option(
    "--overwrite", is_flag=True, help="Replace an earlier output (an .npz of x and y, or x, only)."
)
def data(model: str, output: str, split: str, limit: int | None, overwrite: bool) -> None:
    """Write the inputs x and labels y of the task MODEL was trained on (an .npz, as
    simulate --input and verify --data read), or its calibration batch."""
    from snncompile.api import write_task_data

    done = write_task_data(model, output, split=split, limit=limit, overwrite=overwrite)
    shape = tuple(done["x"])
    if split == "calibration":
        click.echo(f"wrote {done['path']}: the checkpoint's calibration batch, x {shape}")
    else:
        click.echo(f"wrote {done['path']}: the {done['task']} {split} split, x {shape}, labels y")


@cli.command()
@click.argument("model", type=_InputPath(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model: str, as_json: bool) -> None:
    """Evaluate a checkpoint on the test split of the task it was trained on."""
    from snncompile.api import evaluate_checkpoint

    result = evaluate_checkpoint(model)
    if as_json:
        click.echo(strict_json(result.to_dict()))
        return
    click.echo(f"{model}: {result.family} on {result.task} ({result.n} test inputs)")
    click.echo(f"  test accuracy  {result.accuracy:.2%}")
    if result.spike_rates:
        click.echo(f"  spike rates    {format_rates(result.spike_rates)}")
    if result.recorded_accuracy is not None:
        click.echo(f"  recorded at training time: {result.recorded_accuracy:.2%}")


def _quant_options(func):
    """The bit-width and calibration options shared by export and verify."""
    options = [
        click.option("--weight-bits", default=8, show_default=True, type=int),
        click.option("--state-bits", default=24, show_default=True, type=int),
        click.option("--message-bits", default=24, show_default=True, type=int),
        click.option("--ssm-frac-bits", default=16, show_default=True, type=int),
        click.option(
            "--act-bits",
            default=16,
            show_default=True,
            type=int,
            help="Calibrated range of graded messages.",
        ),
        click.option("--headroom-bits", default=2, show_default=True, type=int),
        click.option(
            "--netx-weights",
            is_flag=True,
            help="Put the chain of LIF layers from the input at weight exponent 0, which "
            "lava-dl's netx can load from a loihi2 network.net given narrow input messages "
            "(e.g. --message-bits 8 --act-bits 8; docs/formats.md).",
        ),
        click.option(
            "--calib",
            type=_InputPath(dir_okay=False),
            help="Calibration inputs, as simulate --input takes them: .npy (batch, steps, "
            "inputs) or (steps, inputs), or .npz with x; default: the checkpoint's embedded "
            "batch (Bernoulli spikes for a .nir graph; --entry needs it).",
        ),
        click.option(
            "--entry",
            help="package.module:factory building your model (MODEL is then its state_dict).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _quant_config(kw: dict):
    from snncompile.quantize.quantize import QuantConfig

    names = (
        "weight_bits",
        "state_bits",
        "message_bits",
        "ssm_frac_bits",
        "act_bits",
        "headroom_bits",
        "netx_weights",
    )
    values = {name: kw.pop(name) for name in names}
    # None when every bit width is click's default: export --float refuses only widths
    # the user gave (it accepted --weight-bits 8, the default, and refused 4).
    ctx = click.get_current_context()
    given = [ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE for name in names]
    with _fields_as_options(names):
        try:
            return QuantConfig(**values) if any(given) else None
        except UsageError as exc:
            if not str(exc).startswith("act_bits ") or given[names.index("act_bits")]:
                raise
            # "--act-bits must be in [2, --message-bits = 12], got 16" named a value the
            # user never typed: --message-bits alone went below --act-bits' default.
            raise UsageError(
                f"--message-bits {values['message_bits']} is below --act-bits' default "
                f"{values['act_bits']}: give --act-bits {values['message_bits']} or less too"
            ) from None


@contextlib.contextmanager
def _fields_as_options(names: Sequence[str]) -> Iterator[None]:
    """A UsageError of a config built from options names its fields as those options
    (QuantConfig says "weight_bits must be ...": the user typed --weight-bits)."""
    try:
        yield
    except UsageError as exc:
        message = str(exc)
        for name in names:
            message = re.sub(rf"\b{name}\b", "--" + name.replace("_", "-"), message)
        raise UsageError(message) from None


def _nir_options(fn):
    """--dt and --reset: how a .nir source is imported (docs/nir.md)."""
    fn = click.option(
        "--reset",
        type=click.Choice(["zero", "subtract", "subtract-delayed"]),
        default="zero",
        show_default=True,
        help="NIR sources: spiking neurons reset to zero, subtract the threshold in the "
        "step that spikes, or one step later undecayed (snnTorch's subtract).",
    )(fn)
    return click.option(
        "--dt",
        type=float,
        metavar="SECONDS",
        help="NIR sources: the forward-Euler time step (required unless the file states dt).",
    )(fn)


def _calibration(path: str | None):
    if path is None:
        return None
    from snncompile.compiler import read_sequences

    return read_sequences(path, what="--calib")[0]


@cli.command()
@click.argument("model", type=_InputPath(dir_okay=False))
@click.option(
    "--target",
    default="reference",
    show_default=True,
    type=click.Choice(list(BACKENDS)),
    help="reference: float vs quantized reference. Any other: also runs the integer "
    "netlist on that target and requires it to equal the reference in every value.",
)
@click.option(
    "--data",
    type=_InputPath(dir_okay=False),
    help="Inputs: .npy (batch, steps, inputs) or one sequence (steps, inputs), or .npz "
    "with x and optional y labels. Default: the checkpoint's task test split (else its "
    "calibration batch, with a warning; Bernoulli spikes for a .nir graph).",
)
@click.option("--limit", type=int, help="Use only the first N inputs.")
@click.option("--min-argmax-agreement", default=0.98, show_default=True, type=float)
@click.option(
    "--max-accuracy-drop", default=1.0, show_default=True, type=float, help="In accuracy points."
)
@click.option(
    "--max-logit-error",
    default=0.5,
    show_default=True,
    type=float,
    help="Largest logit error over the largest float logit (a .nir source: pooled outputs "
    "against the NIR simulation's); catches a saturated readout that argmax hides.",
)
@click.option("--min-spike-agreement", type=float, help="Per spiking layer (off by default).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_nir_options
@_quant_options
def verify(
    model: str,
    target: str,
    data: str | None,
    limit: int | None,
    min_argmax_agreement: float,
    max_accuracy_drop: float,
    max_logit_error: float,
    min_spike_agreement: float | None,
    as_json: bool,
    dt: float | None,
    reset: str,
    **kw: Any,
) -> int:
    """Compile MODEL and check it against the float PyTorch model on real inputs.

    Three rungs: the float64 netlist reproduces PyTorch (lowering exact); the quantized
    reference vs PyTorch within the declared tolerances; with --target lava or onnx, that
    target's run equals the reference's in every population at every step. A .nir MODEL
    is checked against snncompile's float simulation of the NIR graph (spike agreement;
    inputs from --data, else Bernoulli spikes). Exit code 3 when a check fails; the
    failed criterion is printed.
    """
    from snncompile.api import LOGIT_CRITERIA, logit_criterion_refused, verify_model
    from snncompile.frontend.nir_compile import is_nir_source
    from snncompile.verify.quantized import Tolerances

    ctx = click.get_current_context()
    if is_nir_source(model):  # given at its default value it was accepted without a word
        for name in LOGIT_CRITERIA:
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
                raise logit_criterion_refused(name)
    if not 0.0 <= max_accuracy_drop <= 100.0:  # NaN fails this too
        raise UsageError(f"--max-accuracy-drop must be in [0, 100] points, got {max_accuracy_drop}")
    with _fields_as_options(("min_argmax_agreement", "max_logit_error", "min_spike_agreement")):
        tolerances = Tolerances(
            min_argmax_agreement=min_argmax_agreement,
            max_accuracy_drop=max_accuracy_drop / 100.0,
            max_logit_error=max_logit_error,
            min_spike_agreement=min_spike_agreement,
        )
    calibration = _calibration(kw.pop("calib"))
    entry = kw.pop("entry")
    rung3 = f"running the network on {target} and the reference, comparing every value"
    with _progress({"verify-target": rung3}) as on_step, _user_prints_on_stderr():
        report = verify_model(
            model,
            data=data,
            target=target,
            tolerances=tolerances,
            config=_quant_config(kw),
            calibration=calibration,
            entry=entry,
            limit=limit,
            dt=dt,
            reset=reset,
            on_step=on_step,
            on_progress=_percent(on_step, rung3),
        )
    if as_json:
        click.echo(strict_json(report.to_dict()))
    elif hasattr(report, "lowering_agreement"):
        print_verify_nir(model, report)
    else:
        print_verify(model, report)
    for warning in getattr(report, "warnings", []):
        if not as_json:
            click.echo(f"warning: {warning}", err=True)
    if report.failures:
        raise EquivalenceError("; ".join(report.failures))
    return 0


_STEP_LABELS = {
    "load": "reading the model",
    "trace": "tracing the model",
    "passes": "running graph passes",
    "lower": "lowering to compartments",
    "quantize": "quantizing (calibration runs of the integer network)",
    "loihi2": "mapping on Loihi 2 cores, design-rule check, activity run for the estimate",
    "write": "writing the artifact (one more calibration run for the report)",
    "verify": "checking the quantized network against the source model (rungs 1 and 2)",
    "read": "reading the artifact and the inputs",
}


@contextlib.contextmanager
def _progress(labels: dict[str, str] | None = None):
    """A spinner naming the current step, on a terminal only: piped stderr stays clean
    (one line per error), so scripts and tests see no progress output. `labels` adds or
    overrides step labels for one command."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    names = {**_STEP_LABELS, **(labels or {})}
    with Console(stderr=True).status("starting") as status:
        yield lambda step: status.update(names.get(step, step))


def _user_prints_on_stderr() -> contextlib.AbstractContextManager[Any]:
    """While export or verify runs the user's code (an --entry module, its factory, its
    forward under tracing and on the verify inputs), what it prints goes to stderr:
    stdout holds the report alone (a print in a forward made `--json` output no JSON)."""
    return contextlib.redirect_stdout(sys.stderr)


def _percent(on_step: Callable[[str], None] | None, label: str) -> Callable[[float], None] | None:
    """A progress callback showing `label: N%` on the spinner, updated when N changes
    (a run reports every tile or step: thousands of times); None without a spinner."""
    if on_step is None:
        return None
    shown = [-1]

    def show(fraction: float) -> None:
        percent = int(100 * fraction)
        if percent != shown[0]:
            shown[0] = percent
            on_step(f"{label}: {percent}%")

    return show


@cli.command()
@click.argument("model", type=_InputPath(dir_okay=False))
@click.option(
    "--target",
    default="reference",
    show_default=True,
    type=click.Choice(list(TARGETS)),
    help="What to compile for (`snncompile targets` lists what each takes): "
    + "; ".join(f"{t.name}: {t.summary}" for t in TARGETS.values())
    + ".",
)
@click.option(
    "-o", "--output", metavar="OUT", type=click.Path(), help="Artifact directory to write."
)
@click.option(
    "--target-config",
    metavar="FILE.toml",
    type=_InputPath(dir_okay=False),
    help="Override entries of the target description (loihi2 only; see docs/targets.md).",
)
@click.option(
    "--nir-ssm",
    "ssm_form",
    type=click.Choice(["continuous", "euler"]),
    help="nir only: write each S4D as its trained continuous system (default; a consumer "
    "discretizes it by the rule in the metadata) or as the system whose forward Euler step "
    "is our SSM (for frameworks that integrate with Euler). See docs/targets.md.",
)
@click.option(
    "--nir-dt",
    "nir_dt",
    type=float,
    metavar="SECONDS",
    help="nir only: the step duration the file states, which the NIR parameters are "
    "computed for (default: the dt a .nir source is read at, else 1e-3 s; snnTorch's "
    "importer assumes 1e-4). See docs/targets.md.",
)
@click.option(
    "--stop-after",
    metavar="STEP",
    help="Stop after a step (trace, a pass name, passes, lower, quantize), print what it "
    "reached and write nothing.",
)
@click.option(
    "--float",
    "float_export",
    is_flag=True,
    help="onnx only: export the float PyTorch model one step at a time (no integer "
    "netlist; for models the netlist cannot express), checked against PyTorch to 1e-5.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing artifact at OUT.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_nir_options
@_quant_options
def export(
    model: str,
    target: str,
    output: str | None,
    target_config: str | None,
    ssm_form: str | None,
    nir_dt: float | None,
    stop_after: str | None,
    float_export: bool,
    overwrite: bool,
    as_json: bool,
    dt: float | None,
    reset: str,
    **kw: Any,
) -> None:
    """Compile MODEL (a checkpoint, a state_dict with --entry, or a .nir graph) and write
    an artifact."""
    from snncompile.api import export_model

    calibration = _calibration(kw.pop("calib"))
    entry = kw.pop("entry")
    config = _quant_config(kw)
    with _progress() as on_step, _user_prints_on_stderr():
        result = export_model(
            model,
            output,
            target=target,
            entry=entry,
            calibration=calibration,
            config=config,
            stop_after=stop_after,
            overwrite=overwrite,
            on_step=on_step,
            target_config=target_config,
            dt=dt,
            reset=reset,
            target_options={"nir_ssm": ssm_form, "nir_dt": nir_dt},
            float_export=float_export,
        )
    compiled_meta = result.compiled.meta if result.compiled is not None else {}
    for warning in compiled_meta.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if float_export:
        print_float_export(model, str(result.path), result.report, as_json)
        return
    if stop_after is not None:
        summary = stopped_summary(result.compiled)
        if as_json:
            click.echo(strict_json(summary))
        else:
            print_stopped(summary)
        return
    if as_json:
        click.echo(strict_json(result.report))
        return
    default = result.compiled.meta.get("calibration_default") if calibration is None else None
    print_export(model, str(result.path), target, result.report, default)
    if result.target_summary is not None:
        TARGET_PRINTERS[target](result.target_summary)


@cli.command(name="inspect")
@click.argument("path", type=_InputPath())
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect_command(path: str, as_json: bool) -> None:
    """Describe a checkpoint (layers, task, what each target can take), a .nir graph
    (nodes, the dt it states, who wrote it) or an artifact."""
    from snncompile.api import inspect_path

    info = inspect_path(path)
    if as_json:
        click.echo(strict_json(info))
    elif info["kind"] == "nir":
        print_nir_graph(info)
    elif info["kind"] == "artifact":
        print_artifact(info)
    elif info["kind"] == "float-artifact":
        print_float_artifact(info)
    else:
        print_checkpoint(info)


@cli.command()
@click.argument("artifact", type=_InputPath())
@click.option(
    "--input",
    "input_path",
    required=True,
    type=_InputPath(dir_okay=False),
    help=".npy (batch, steps, inputs) or (steps, inputs), or .npz with x (or a single "
    "array) [and labels y]; float, int or bool.",
)
@click.option(
    "--backend",
    default="reference",
    show_default=True,
    type=click.Choice(list(BACKENDS)),
    help="reference: our numpy simulator; lava: Lava's bit-accurate CPU simulator; onnx: "
    "the ONNX step graph in onnxruntime (an onnx artifact's model.onnx, else built from "
    "the netlist; also a --target onnx --float export).",
)
@click.option("--steps", type=int, help="Use only the first N input steps.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write logits, predictions and the readout state to OUT.npz.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def simulate(
    artifact: str,
    input_path: str,
    backend: str,
    steps: int | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Run a compiled artifact on inputs (no torch needed)."""
    from snncompile.simulate import simulate_artifact

    label = f"simulating on {backend}"
    with _progress({"simulate": label}) as on_step:
        s = simulate_artifact(
            artifact, input_path, backend=backend, steps=steps, output=output,
            on_step=on_step, on_progress=_percent(on_step, label),
        )  # fmt: skip
    if as_json:
        click.echo(strict_json(s.to_dict()))
        return
    shown = " ".join(str(p) for p in s.predictions[:20])
    more = " ..." if len(s.predictions) > 20 else ""
    click.echo(
        f"{artifact}: {inputs_text(s.n)} x {s.steps} steps on {s.backend}, output latency "
        + latency_text({"output_latency": s.latency, "ticks_per_step": s.ticks_per_step})
    )
    click.echo(f"  predictions      {shown}{more}")
    if s.accuracy is not None:
        click.echo(f"  accuracy         {s.accuracy:.2%}")
    click.echo(f"  spike rates      {format_rates(s.spike_rates)}")
    if s.saturation_events is None:
        click.echo("  saturation       none counted (a float graph has no integer widths)")
    else:
        events = sum(s.saturation_events.values())
        # docs/targets.md, "Not exact": Lava's own LIF and Dense/Sparse count nothing.
        uncounted = " (Lava's own Dense, Sparse and LIF count none)" if s.backend == "lava" else ""
        click.echo(
            f"  saturation       {events} event(s)"
            + (f" in {', '.join(s.saturation_events)}" if events else "")
            + uncounted
        )
    unit = "steps/s" if s.ticks_per_step == 1 else "ticks/s"
    click.echo(f"  speed            {s.steps_per_second:.1f} {unit} ({s.seconds:.2f} s)")
    if s.output:
        click.echo(f"  wrote            {s.output}")
    for warning in s.warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command(name="targets")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def targets_command(as_json: bool) -> None:
    """Which graph op and which model family each target takes (from the registries)."""
    from snncompile.support import support_matrix

    matrix = support_matrix()
    if as_json:
        click.echo(strict_json(matrix))
        return
    click.echo(support_table(matrix))


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps SnnCompileError to its one-line message and exit code; signals
    end a command as `cli_signals` describes."""
    whole_process = argv is None  # the command itself, not a call from Python
    args = [str(a) for a in (argv if argv is not None else sys.argv[1:])]
    debug = "--debug" in args
    if debug:  # a group option, taken anywhere (`snncompile export ... --debug`)
        argv = ["--debug", *(a for a in args if a != "--debug")]
    tune_malloc_for_tiles()  # the reference's tile arrays (snncompile.reference.malloc)
    if whole_process:
        _buffer_stdout()
    run_command(lambda: _main(argv, debug), whole_process=whole_process)


def _buffer_stdout() -> None:
    """Under PYTHONUNBUFFERED (python -u) stdout writes straight to its file, and CPython
    takes a short write as done: a JSON report larger than the pipe, cut off by a reader
    that left (`| head -1`), lost its rest silently and exited 0, not 141 (helper-71,
    measured). A buffer retries what is left, and fails with BrokenPipeError. Lines
    still go out as written (line buffering), as before."""
    raw = getattr(sys.stdout, "buffer", None)
    if not isinstance(raw, io.RawIOBase):  # buffered already (the default), or replaced
        return
    sys.stdout.flush()
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=sys.stdout.encoding,
        errors=sys.stdout.errors,
        line_buffering=True,
    )


# An error line longer than this loses its middle: a value quoted from an edited file (a
# manifest's target of 100,000 characters) was printed whole, a 100 KB "line".
MAX_ERROR_CHARS = 2000


def _one_line(message: str) -> str:
    """An error message on one line: a path holding a line break (a legal file name)
    shows it escaped, as Python's repr would; past MAX_ERROR_CHARS, its middle is cut."""
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    if len(message) <= MAX_ERROR_CHARS:
        return message
    keep = (MAX_ERROR_CHARS - 40) // 2
    cut = len(message) - 2 * keep
    return f"{message[:keep]} ...({cut:,} characters cut)... {message[-keep:]}"


def _stdout_to_devnull() -> None:
    """stdout goes nowhere, so that the interpreter's final flush of what is left cannot
    fail again (it printed "Exception ignored" lines and exited 120)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _flush_stdout() -> None:
    """Flush stdout while its failure can still be told: a reader gone is 141, as a
    process ended by SIGPIPE; a device that takes nothing (`> /dev/full`) one line and
    exit 2, as any output that cannot be written (it exited 120 with a traceback of
    Python's own, or 6 as if an input were corrupt; helper-74)."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        sys.exit(128 + signal.SIGPIPE)
    except OSError as exc:
        _stdout_unwritable(exc)


def _stdout_unwritable(exc: OSError) -> NoReturn:
    """One line and exit 2 for stdout that takes nothing more; what it still holds goes
    nowhere."""
    _stdout_to_devnull()
    click.echo(f"error: standard output: cannot write: {exc.strerror or exc}", err=True)
    sys.exit(UsageError.exit_code)


def _main(argv: list[str] | None, debug: bool) -> None:
    try:
        _run_cli(argv, debug)
    finally:
        _flush_stdout()


def _run_cli(argv: list[str] | None, debug: bool) -> None:
    try:
        rv = cli.main(args=argv, prog_name="snncompile", standalone_mode=False)
    except (click.exceptions.Abort, _Interrupted):
        mark_announced()
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except _PipeClosed:  # silent, as a process killed by SIGPIPE
        _stdout_to_devnull()
        sys.exit(128 + signal.SIGPIPE)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `snncompile`: the help
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:  # usage errors: exit 2
        # One line, as every other error (click's own show() adds its usage text).
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        message = _one_line(" ".join(exc.format_message().split()))
        click.echo(f"error: {message}{hint}", err=True)
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except SnnCompileError as exc:
        if debug:  # the traceback, and still the documented exit code
            traceback.print_exc()
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except RecursionError:  # only inputs nest without bound: JSON/TOML, NIR subgraphs
        click.echo("error: an input is nested too deeply to read (RecursionError)", err=True)
        sys.exit(CorruptInputError.exit_code)
    except OSError as exc:  # a path the system refuses (a name too long, ...); writes are
        # OutputError (a SnnCompileError) already, but for stdout's: a full device
        # without a file name is that (a report larger than the buffer), or the flush
        # tells (what the buffer still holds)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and exc.filename is None:
            _stdout_unwritable(exc)
        _flush_stdout()
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {_one_line(f'{where}{exc.strerror or exc}')}", err=True)
        sys.exit(CorruptInputError.exit_code)
    except Exception as exc:  # not an error we raise on purpose: a bug, or out of memory
        if debug:
            traceback.print_exc()
        detail = " ".join(str(exc).split())[:200]
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        if is_out_of_memory(exc):
            click.echo(
                f"error: out of memory ({what}); try fewer inputs at once or a smaller model",
                err=True,
            )
        else:
            click.echo(
                f"error: internal error ({what}); this is a bug in snncompile: please "
                "report it with the traceback --debug prints",
                err=True,
            )
        sys.exit(1)
    # standalone_mode=False returns ctx.exit()'s code (e.g. 0 after --help), else the result.
    sys.exit(rv if isinstance(rv, int) else 0)
