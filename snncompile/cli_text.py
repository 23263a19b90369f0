"""What the CLI prints: the human-readable reports of verify, export, inspect, simulate
and targets (their --json forms are `strict_json` of the same data). No policy here:
each function formats a result the API returned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the reports' modules import numpy and more; printing needs none
    from snncompile.compiler import Compiled
    from snncompile.verify.nir import NirVerifyReport
    from snncompile.verify.quantized import VerifyReport


def print_verify(model: str, r: VerifyReport) -> None:
    click.echo(
        f"{model}: float PyTorch vs quantized reference on {inputs_text(r.n)} ({r.data}), "
        f"{r.steps} steps, output latency {r.latency} steps"
        + (f", in {r.parts} parts of the batch" if r.parts > 1 else "")
    )
    click.echo(
        f"  lowering (float64 netlist vs PyTorch)  relative error {r.lowering_relative_error:.2e}"
    )
    click.echo(f"  argmax agreement                       {agreement(r.argmax_agreement)}")
    if r.float_accuracy is not None:
        click.echo(
            f"  accuracy float / quantized / delta     {r.float_accuracy:.2%} / "
            f"{r.quantized_accuracy:.2%} / {100 * r.accuracy_delta:+.2f} points"
        )
    click.echo(
        f"  logit error max abs / relative         {r.logit_max_abs_error:.4g} / "
        f"{r.logit_relative_error:.4g}"
    )
    print_spikes_and_verdict(r)


def agreement(value: float) -> str:
    """A fraction agreeing as a percentage, 100.00% only when nothing differs (a few
    differing values in millions rounded to 100.00% beside a listed divergence)."""
    text = f"{value:.2%}"
    if text == "100.00%" and value < 1:
        return ">99.99%"
    return text


def print_spikes_and_verdict(r: VerifyReport | NirVerifyReport) -> None:
    """Per-layer spike agreement, first divergence, events, rung 3 and the verdict."""
    for name, value in r.spike_agreement.items():
        rates = r.spike_rates[name]
        click.echo(
            f"  spike agreement {name:<22} {agreement(value)}   rate float {rates['float']:.4f}"
            f" quantized {rates['quantized']:.4f}"
        )
    if r.first_divergence:
        d = r.first_divergence
        click.echo(
            f"  first spike divergence: {d['population']} at step {d['step']} (input {d['sample']})"
        )
    click.echo(f"  saturation events: {sum(r.events.values()) if r.events else 0}")
    if r.target_check is not None:
        print_target_check(r.target_check)
    click.echo("  PASSED" if r.passed else "  FAILED: " + "; ".join(r.failures))


def print_verify_nir(model: str, r: NirVerifyReport) -> None:
    click.echo(
        f"{model}: float NIR simulation (dt {r.dt_s:g} s, reset {r.reset}) vs the compiled "
        f"network on {inputs_text(r.n)} ({r.data}), {r.steps} steps, output latency "
        + latency_text({"output_latency": r.latency, "ticks_per_step": r.ticks_per_step})
        + (f", in {r.parts} parts of the batch" if r.parts > 1 else "")
    )
    exact = all(value in (1.0, None) for value in r.lowering_agreement.values())
    tied = sum(r.lowering_ties.values())  # samples parted at a threshold tie
    if r.lowering_agreement:
        verdict = "exact" if exact else "NOT exact"
        if tied and not any(f.startswith("lowering not exact") for f in r.failures):
            verdict = f"exact but for threshold ties ({tied} of {r.n} samples parted at a tie)"
        click.echo(f"  lowering (float64 netlist spikes)      {verdict}")
    else:
        click.echo("  lowering (float64 netlist spikes)      no spiking population to compare")
    if r.output_lowering_error is None:
        click.echo("  lowering (float64 netlist outputs)     not compared (every sample tied)")
    else:
        click.echo(
            f"  lowering (float64 netlist outputs)     relative error {r.output_lowering_error:.2e}"
        )
    click.echo(
        f"  quantized outputs                      relative error {r.output_relative_error:.2e}"
    )
    print_spikes_and_verdict(r)


def print_target_check(c: dict) -> None:
    ticks = c.get("ticks_per_step", 1)
    run = (
        f"{c['simulated_steps']} steps each (output latency {c['output_latency']})"
        if ticks == 1
        else f"{c['steps']} model steps of {ticks} ticks, {c['simulated_steps']} ticks each "
        f"(output latency {c['output_latency']} ticks)"
    )
    runs = c.get("runs", 1)
    parts = f", in {runs} runs of up to {inputs_text(-(-c['n'] // runs))}" if runs > 1 else ""
    if c.get("streamed"):
        parts += ", compared while running"
    click.echo(
        f"quantized reference vs {c['backend']} on the same {inputs_text(c['n'])}, {run}{parts}"
    )
    click.echo(f"  alignment: {c['alignment']}")
    verdict = "exact" if c["exact"] else f"NOT exact: {c['divergence']}"
    click.echo(
        f"  {c['values_compared']:,} values compared (messages, states and inputs of "
        f"{c['populations']} populations in {c['traces']} traces, and the readout), "
        f"{c['values_differing']:,} differ: {verdict}"
    )
    click.echo(
        f"  time: reference {c['reference_seconds']:.2f} s, {c['backend']} "
        f"{c['backend_seconds']:.2f} s"
    )


def print_float_export(model: str, path: str, manifest: dict, as_json: bool) -> None:
    if as_json:
        click.echo(strict_json(manifest))
        return
    check = manifest["check"]
    click.echo(f"wrote {path} (target onnx, {manifest['numeric']}) from {model}")
    click.echo(f"  states        {len(manifest['interface']['states'])} tensors, no latency")
    click.echo(
        f"  check         onnxruntime vs PyTorch forward on {check['sequences']} x "
        f"{check['steps']} steps: max relative logit error {check['max_relative_error']:.2e} "
        f"(tolerance {check['tolerance']:g})"
    )


def stopped_summary(compiled: Compiled) -> dict:
    net = compiled.netlist or compiled.float_netlist
    summary: dict = {"stopped_after": compiled.stopped_after}
    if net is None:
        summary["graph"] = compiled.graph.summary()
        return summary
    summary["netlist"] = {
        "numeric": net.numeric,
        "populations": len(net.populations),
        "counts": net.counts(),
        "output_latency": net.output_latency,
        "ticks_per_step": net.ticks_per_step,
    }
    if compiled.report is not None:
        summary["calibration_events"] = compiled.report.calibration_events
        summary["calibration_origin"] = compiled.meta["calibration_origin"]
    return summary


def print_stopped(summary: dict) -> None:
    step = summary["stopped_after"]
    if "graph" in summary:
        click.echo(f"stopped after {step}: float graph of {len(summary['graph'])} nodes")
        print_table(
            ["name", "op", "width", "parameters"],
            [[r["name"], r["op"], r["width"], r["parameters"]] for r in summary["graph"]],
        )
        return
    net = summary["netlist"]
    click.echo(
        f"stopped after {step}: {net['numeric']} netlist, {net['populations']} populations, "
        f"output latency {latency_text(net)}"
    )
    click.echo(f"  {format_counts(net['counts'])}")
    if "calibration_events" in summary:
        click.echo(
            f"  calibration saturation events: {format_events(summary['calibration_events'])}"
        )
        click.echo(f"  calibration inputs: {summary['calibration_origin']}")
    click.echo("nothing written")


def latency_text(info: dict) -> str:
    """'3 steps', or '7 ticks (3 ticks per model step)' for a time-multiplexed network."""
    ticks = info.get("ticks_per_step", 1)
    if ticks == 1:
        return f"{info['output_latency']} steps"
    return f"{info['output_latency']} ticks ({ticks} ticks per model step)"


def print_export(
    model: str, path: str, target: str, report: dict, calib_default: str | None = None
) -> None:
    counts = dict(report["counts"])
    weights = counts.pop("synapses")
    rates = {
        name: pop["spike_rate"]
        for name, pop in report["populations"].items()
        if "spike_rate" in pop
    }
    calib = report["calibration"]
    click.echo(f"wrote {path} (target {target}) from {model}")
    click.echo(f"  populations   {len(report['populations'])}: {format_counts(counts)}")
    click.echo(f"  compartments  {sum(counts.values())}, synaptic weights {weights}")
    click.echo(f"  latency       {latency_text(report)} from input to readout")
    click.echo(
        f"  calibration   {' x '.join(map(str, calib['shape']))}: saturation events "
        f"{format_events(calib['saturation_events'])}"
    )
    if calib_default is not None:  # what that batch is, when the user gave none
        click.echo(f"                {calib_default}")
    click.echo(f"  spike rates   {format_rates(rates)}")
    from snncompile.quantize.quantize import precision_notes, silent_in_calibration_warnings

    for warning in silent_in_calibration_warnings(report["populations"]):
        click.echo(f"  warning       {warning}")
    # Coarser than asked (a's rounding, narrowed messages): worth knowing when verify
    # disappoints, which repeats them among its warnings.
    for label, text in precision_notes(report["populations"]):
        click.echo(f"  {label:<14}{text}")


def print_nir_graph(info: dict) -> None:
    dt, ours = info["dt_s"], info["written_by_snncompile"]
    if ours:
        stated = f"{dt} s per step, as the file states (export reads it back without --dt)"
    elif dt is not None:
        stated = f"{dt} s (stated in the file)"
    else:
        stated = "not stated: export needs --dt"
    click.echo(f"NIR graph {info['path']}")
    click.echo(f"  written by   {'snncompile (read back exactly)' if ours else 'another tool'}")
    click.echo(f"  dt           {stated}")
    click.echo(
        f"  graph        {len(info['nodes'])} nodes, {info['edges']} edges "
        f"(input {info['input']}, output {info['output']})"
    )
    print_table(
        ["node", "type", "parameters"],
        [[n["name"], n["type"], n["parameters"]] for n in info["nodes"]],
    )
    for warning in info["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def print_checkpoint(info: dict) -> None:
    accuracy = "" if info["accuracy"] is None else f" (test accuracy {info['accuracy']:.2%})"
    calib = info["calibration_shape"]
    click.echo(f"checkpoint {info['path']}")
    click.echo(f"  family       {info['family']}")
    click.echo(f"  task         {info['task'] or 'unknown'}{accuracy}")
    if info["finetune"] is not None:
        before = info["finetune"]["accuracy_before"]
        was = "" if before is None else f" (test accuracy before: {before:.2%})"
        bits = info["finetune"]["weight_bits"]
        click.echo(f"  fine-tuned   weights on export's {bits}-bit grid{was}")
    click.echo(f"  parameters   {info['parameters']} (trainable)")
    click.echo(f"  calibration  {' x '.join(map(str, calib)) if calib else 'none embedded'}")
    if info["layers"]:
        # A graph op holds fixed values too (a neuron's beta), complex ones as two: its
        # count is not the trainable parameters' share, and the rows need not sum to it.
        click.echo("layers (traced graph; values: the numbers each op holds, fixed ones too):")
        print_table(
            ["name", "op", "width", "values"],
            [[r["name"], r["op"], r["width"], r["parameters"]] for r in info["layers"]],
        )
    click.echo("targets:")
    verdicts = list(info["targets"].values())
    if len(verdicts) > 1 and all(not v["ok"] and v["why"] == verdicts[0]["why"] for v in verdicts):
        # One reason for every target (a non-causal model): said once, not six times.
        click.echo(f"  none ({', '.join(info['targets'])}): {verdicts[0]['why']}")
        return
    for target, verdict in info["targets"].items():
        click.echo(f"  {target:<13} {'yes' if verdict['ok'] else 'no'}: {verdict['why']}")


def print_header(info: dict) -> None:
    """The lines every artifact kind shares: what it is, where from, made when and with what."""
    m = info["manifest"]
    source = m.get("source", {})
    entry = source.get("entry") and f"{source['entry']} with weights {source.get('weights', '?')}"
    origin = (
        source.get("checkpoint") or entry or source.get("nir_file") or "a model passed in memory"
    )
    details = ", ".join(f"{k} {source[k]}" for k in ("family", "task") if k in source)
    tools = ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).items())
    click.echo(f"artifact {info['path']} ({m['format']} v{m['version']}, target {m['target']})")
    click.echo(f"  source       {origin}" + (f" ({details})" if details else ""))
    click.echo(f"  exported     {m.get('created', '?')} with {tools}")


def print_float_artifact(info: dict) -> None:
    m = info["manifest"]
    interface, check = m.get("interface", {}), m.get("check", {})
    print_header(info)
    click.echo(f"  numeric      {m.get('numeric')} (the float model's step graph, no netlist)")
    click.echo(
        f"  interface    {m.get('input_size')} inputs -> {m.get('output_size')} outputs, "
        f"{len(interface.get('states', {}))} state tensors, pooling {interface.get('pooling')}"
    )
    click.echo(
        f"  checked      max relative error {check.get('max_relative_error', float('nan')):.2e} "
        f"(tolerance {check.get('tolerance')}) against {check.get('reference')}, "
        f"{check.get('sequences')} x {check.get('steps')} steps"
    )
    click.echo(f"  files        {', '.join(info['files'])}")


def print_artifact(info: dict) -> None:
    print_header(info)
    bits = ", ".join(f"{k.removesuffix('_bits')} {v}" for k, v in info["formats"].items())
    click.echo(f"  numeric      {info['numeric']}, bits: {bits}")
    click.echo(f"  latency      {latency_text(info)} from input to readout")
    click.echo(f"  counts       {format_counts(info['counts'])}")
    for name, printer in TARGET_PRINTERS.items():
        if name in info:
            printer(info[name])
    click.echo("populations:")
    columns = ["name", "kind", "size", "latency", "in_log2", "out_log2", "spike_rate"]
    print_table(
        columns,
        [
            [
                p["name"],
                p["kind"],
                p["size"],
                p["latency"],
                p.get("in_scale_log2", ""),
                p.get("out_scale_log2", ""),
                f"{p['spike_rate']:.4f}" if "spike_rate" in p else "",
            ]
            for p in info["populations"]
        ],
    )
    click.echo("synapses:")
    print_table(
        ["name", "src", "dst", "shape", "weight_exp", "delay"],
        [
            [
                s["name"],
                s["src"],
                s["dst"],
                "x".join(map(str, s["shape"])),
                s["weight_exp"],
                s["delay"],
            ]
            for s in info["synapses"]
        ],
    )


def print_loihi2(s: dict) -> None:
    peak, limits, est = s["peak_per_core"], s["limits_per_core"], s["estimate"]
    ops, energy, dense = est["synaptic_ops"], est["energy_pj"], est["dense_model"]
    click.echo(
        f"loihi2: {s['cores']} core(s) on {s['chips']} chip(s) ({s['cores_per_chip']} cores "
        "per chip); the most any core uses:"
    )
    for key, label in (
        ("compartments", "compartments"),
        ("synapse_bytes", "synapse bytes"),
        ("input_axons", "input axons"),
        ("output_axons", "output axons"),
    ):
        click.echo(f"  {label:<14} {peak[key]} of {limits[key]}")
    low, high = s["weight_exp_range"]
    click.echo(
        f"  weight exponents checked against [{low}, {high}] (Loihi 2's own range is not "
        "public; Loihi 1's was [-8, 7])"
    )
    layers = s["netx_layers"]
    click.echo(
        f"  netx           layers 0-{layers - 1} of network.net load in lava-dl's netx "
        f"(hdf5.Network(..., num_layers={layers}))"
        if layers
        else "  netx           no layer of network.net loads in lava-dl's netx (docs/formats.md)"
    )
    if s["overrides"]:
        click.echo(f"  target config overridden: {', '.join(sorted(s['overrides']))}")
    steps = est["steps_per_inference"]
    click.echo(f"estimate per inference ({steps} steps; not a Loihi measurement):")
    click.echo(
        f"  synaptic ops   {ops['per_inference']:.4g} ({ops['accumulates_per_inference']:.4g} "
        f"accumulates from spikes, {ops['macs_per_inference']:.4g} multiply-accumulates from "
        "graded messages)"
    )
    click.echo(
        f"  energy         {microjoules(energy['synaptic_per_inference'])} synaptic, "
        f"{microjoules(energy['total_per_inference'])} with compartment updates "
        f"({est['compartment_macs_per_inference']:.4g} MACs)"
    )
    if dense:
        click.echo(
            f"  dense model    {dense['macs_per_inference']:.4g} MACs, "
            f"{microjoules(dense['energy_pj_per_inference'])}"
        )


def print_nir(s: dict) -> None:
    nodes = ", ".join(f"{n} {kind}" for kind, n in sorted(s["nir_nodes"].items()))
    click.echo(
        f"nir: {s['file']} (NIR {s['nir_version']}, dt {s['dt_s']:g} s, SSM form "
        f"{s['ssm_form']}): {nodes}"
    )
    for op, lost in s["lossy_without_metadata"].items():
        click.echo(f"  without snncompile metadata, {op}: {lost}")


# Targets whose export and inspect print a section of their own.
def print_onnx(s: dict) -> None:
    ticks = s.get("ticks_per_step", 1)
    step = "one step" if ticks == 1 else f"one model step ({ticks} ticks) per call"
    extra = s.get("extra_calls", s["output_latency"])
    tail = f"{extra} extra steps" if ticks == 1 else f"{extra} extra calls"
    click.echo(
        f"  onnx          {s['file']}: {step}, opset {s['opset']}, {s['nodes']} nodes, "
        f"{s['states']} state tensors ({s['state_values']} values per sample), "
        f"{s['bytes']} bytes; run {tail} after the input"
    )


TARGET_PRINTERS = {"loihi2": print_loihi2, "nir": print_nir, "onnx": print_onnx}


def microjoules(pj: float) -> str:
    return f"{pj / 1e6:.3g} uJ"


def print_table(headers: list[str], rows: list[list]) -> None:
    """Left-aligned text columns, two spaces apart, indented: readable and greppable."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def inputs_text(n: int) -> str:
    """ "1 input", "2 inputs": a count of input sequences (samples) in a summary."""
    return f"{n} input" if n == 1 else f"{n} inputs"


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def format_events(events: dict[str, int]) -> str:
    if not events:
        return "none"
    return ", ".join(f"{name} {n}" for name, n in events.items())


def format_rates(rates: dict[str, float]) -> str:
    if not rates:
        return "n/a (non-spiking)"
    return ", ".join(f"{name} {rate:.3f}" for name, rate in rates.items())


def support_table(matrix: dict) -> str:
    """The matrix as Markdown tables (the README carries this output)."""
    names = list(matrix["targets"])
    head = "| {} | " + " | ".join(names) + " |"
    rule = "|---|" + "|".join(":---:" for _ in names) + "|"
    lines = ["| target | what it is |", "|---|---|"]
    lines += [f"| {name} | {summary} |" for name, summary in matrix["targets"].items()]
    lines += ["", head.format("graph op (as traced)"), rule]
    for label, row in matrix["ops"].items():
        lines.append(f"| {label} | " + " | ".join(yes_no(row[n]) for n in names) + " |")
    lines += ["", head.format("model family"), rule]
    for family, row in matrix["families"].items():
        cells = [yes_no(row[n]["ok"]) for n in names]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def yes_no(ok: bool) -> str:
    return "yes" if ok else "no"


def strict_json(data: object) -> str:
    """Strict JSON for --json: a NaN or inf (from a metadata value, say) becomes null
    instead of the bare NaN that JSON parsers reject."""
    import json
    import math

    def strict(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: strict(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [strict(item) for item in value]
        return value

    return json.dumps(strict(data), indent=2, allow_nan=False)
