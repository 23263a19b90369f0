"""What a NIR consumer that ignores snncompile's metadata computes, measured on the
bundled sdigits models and their real test inputs (docs/targets.md, "## nir").

    python benchmarks/nir_without_metadata.py [--limit N] [--json]

For each bundled model: export its graph to NIR, strip every metadata entry, and run the
stripped graph with snncompile.targets.nir.plain (forward Euler at the stated dt, edges
that close a cycle delayed by one step). Compared with our float model (the traced
graph, run by snncompile.ir.interpret):

- per node, fed our model's exact input to that node: SSM output error (relative RMS),
  neuron spike agreement, GLU error; and the SSM -> neuron pair (spikes the consumer's
  SSM and neuron produce from our SSM input);
- end to end: the stripped graph's output at the last step (its pool is a running sum:
  read raw, and divided by the number of steps as the metadata says) -- argmax agreement
  with our model and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402, F401  (this checkout's snncompile.targets)

from snncompile.compiler import compile_model  # noqa: E402
from snncompile.data import load_task  # noqa: E402
from snncompile.ir import ops  # noqa: E402
from snncompile.ir.interpret import run_graph  # noqa: E402
from snncompile.targets.nir import DEFAULT_DT_S, encode_graph, nir_name  # noqa: E402
from snncompile.targets.nir.plain import run_plain, strip_metadata  # noqa: E402

MODELS = ("spike-ssm", "spiking-ssm", "binary-s4d")


def _alone(node: Any, n_in: int, n_out: int) -> Any:
    """One NIR node (or subgraph) between an Input and an Output."""
    import nir

    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "op": node,
            "output": nir.Output(output_type={"output": np.array([n_out])}),
        },
        edges=[("input", "op"), ("op", "output")],
    )


def _rel_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / max(np.sqrt(np.mean(b**2)), 1e-300))


def measure(model: str, x: np.ndarray, labels: np.ndarray, ssm_form: str) -> dict[str, Any]:
    graph = compile_model(
        ROOT / "examples" / "checkpoints" / f"{model}-sdigits.pt", stop_after="trace"
    ).graph
    stripped = strip_metadata(encode_graph(graph, ssm_form=ssm_form))
    dt = DEFAULT_DT_S
    traces: dict[str, np.ndarray] = {}
    logits = run_graph(graph, x, traces)
    result: dict[str, Any] = {
        "model": model,
        "ssm_form": ssm_form,
        "n": int(x.shape[0]),
        "steps": int(x.shape[1]),
    }
    layers: dict[str, Any] = {}
    for node in graph:
        if len(node.inputs) != 1 or isinstance(node.op, (ops.Output, ops.Pool)):
            continue
        if traces[node.inputs[0]].ndim != 3:
            continue  # after the pool: covered by the end-to-end numbers
        src = node.inputs[0]
        alone = _alone(stripped.nodes[nir_name(node.name)], graph.size(src), graph.size(node.name))
        with np.errstate(over="ignore", invalid="ignore"):
            plain = run_plain(alone, traces[src], dt)
        ours = traces[node.name]
        entry: dict[str, Any] = {"op": node.op.kind}
        if isinstance(node.op, (ops.ResetRefractory, ops.LIF, ops.Heaviside)):
            entry["spike_agreement"] = float(np.mean(plain == ours))
            entry["spike_rate_ours"] = float(ours.mean())
            entry["spike_rate_plain"] = float(np.nanmean(plain))
        elif isinstance(node.op, (ops.Linear, ops.Dropout, ops.Identity)):
            entry["max_abs_error"] = float(np.max(np.abs(plain - ours)))
        else:
            entry["relative_rms_error"] = _rel_rms(plain, ours)
            entry["finite"] = bool(np.all(np.isfinite(plain)))
        if isinstance(node.op, ops.S4D) and ssm_form == "continuous":
            dt_h = np.exp(node.op.log_dt)[:, None]
            entry["modes_unstable_under_euler"] = int(np.sum(np.abs(1 + dt_h * node.op.a) >= 1))
            entry["modes"] = int(node.op.a.size)
            # Forward Euler proper (both rotation couplings from the previous step):
            z = np.zeros((x.shape[0], *node.op.a.shape), complex)
            euler = []
            u = traces[src]
            for t in range(u.shape[1]):
                z = (1 + dt_h * node.op.a) * z + dt_h * node.op.b * u[:, t, :, None]
                euler.append(2 * (node.op.c * z).sum(-1).real + node.op.d * u[:, t])
            with np.errstate(over="ignore", invalid="ignore"):
                entry["relative_rms_error_forward_euler"] = _rel_rms(np.stack(euler, 1), ours)
        if isinstance(node.op, ops.S4D):
            u = traces[src]
            (act,) = graph.consumers(node.name)
            pair = _alone_pair(stripped, node.name, act.name, graph.size(src))
            with np.errstate(over="ignore", invalid="ignore"):
                spikes = run_plain(pair, u, dt)
            layers[f"{node.name} -> {act.name}"] = {
                "op": "ssm+neuron",
                "spike_agreement": float(np.mean(spikes == traces[act.name])),
            }
            # A consumer that reads only the 'discretization' key and dt, and discretizes
            # the continuous system in the NIR parameters by that rule (right for the
            # continuous form; for the Euler form, the mistake of discretizing it exactly):
            y_rule = _ssm_by_rule(
                stripped.nodes[nir_name(node.name)], node.op.discretization, dt, u
            )
            entry["relative_rms_error_rule_from_nir_params"] = _rel_rms(y_rule, ours)
            act_alone = _alone(
                stripped.nodes[nir_name(act.name)], graph.size(node.name), graph.size(act.name)
            )
            layers[f"{node.name} (rule) -> {act.name}"] = {
                "op": "ssm+neuron",
                "spike_agreement": float(
                    np.mean(run_plain(act_alone, y_rule, dt) == traces[act.name])
                ),
            }
        layers[node.name] = entry
    result["nodes"] = layers
    with np.errstate(over="ignore", invalid="ignore"):
        out = run_plain(stripped, x, dt)[:, -1]
    bias = graph.node(graph.output.inputs[0]).op.bias
    for label, plain_logits in (("raw", out), ("divided", (out - bias) / x.shape[1] + bias)):
        finite = np.all(np.isfinite(plain_logits), axis=1)
        pred = np.where(finite, np.argmax(np.nan_to_num(plain_logits), axis=1), -1)
        result[f"end_to_end_{label}"] = {
            "argmax_agreement": float(np.mean(pred == logits.argmax(1))),
            "accuracy": float(np.mean(pred == labels)),
            "finite_fraction": float(finite.mean()),
        }
    result["accuracy_ours"] = float(np.mean(logits.argmax(1) == labels))
    return result


def _ssm_by_rule(block: Any, rule: str, dt: float, u: np.ndarray) -> np.ndarray:
    """The S4D subgraph's continuous (A', B', C, D) read from NIR parameters alone,
    discretized by `rule` at dt (complex form of the 2x2 blocks), run on u (B, L, H)."""
    x_re = block.nodes["x_re"]
    h = block.nodes["d"].scale.size
    m = x_re.tau.size // h
    chan = np.repeat(np.arange(h), m)
    rows = np.arange(h * m)
    a = (-1.0 / x_re.tau + 1j * block.nodes["rot_re_to_im"].scale).reshape(h, m)
    b = block.nodes["b_re"].weight[rows, chan] + 1j * block.nodes["b_im"].weight[rows, chan]
    b = b.reshape(h, m)
    c = block.nodes["c_re"].weight[chan, rows] - 1j * block.nodes["c_im"].weight[chan, rows]
    c = c.reshape(h, m) / 2
    if rule == "zoh":
        a_bar = np.exp(dt * a)
        b_bar = (a_bar - 1) / a * b
    else:
        a_bar = (1 + dt * a / 2) / (1 - dt * a / 2)
        b_bar = dt / (1 - dt * a / 2) * b
    z = np.zeros((u.shape[0], h, m), complex)
    ys = []
    for t in range(u.shape[1]):
        z = a_bar * z + b_bar * u[:, t, :, None]
        ys.append(2 * (c * z).sum(-1).real + block.nodes["d"].scale * u[:, t])
    return np.stack(ys, 1)


def _alone_pair(stripped: Any, ssm: str, act: str, n_in: int) -> Any:
    import nir

    first, second = stripped.nodes[nir_name(ssm)], stripped.nodes[nir_name(act)]
    width = int(next(iter(second.output_type.values()))[0])
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "ssm": first,
            "act": second,
            "output": nir.Output(output_type={"output": np.array([width])}),
        },
        edges=[("input", "ssm"), ("ssm", "act"), ("act", "output")],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="test samples (default all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    task = load_task("sdigits")
    x = task.featurize(task.test.inputs)[: args.limit]
    labels = np.asarray(task.test.labels)[: args.limit]
    results = [measure(m, x, labels, form) for form in ("continuous", "euler") for m in MODELS]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"## {r['model']}, SSM form {r['ssm_form']} ({r['n']} sdigits test sequences x "
            f"{r['steps']} steps)"
        )
        for name, entry in r["nodes"].items():
            values = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in entry.items()
                if k != "op"
            )
            print(f"  {name:<28} {entry['op']:<17} {values}")
        print(f"  our accuracy {r['accuracy_ours']:.4f}")
        for label in ("raw", "divided"):
            e = r[f"end_to_end_{label}"]
            print(
                f"  end to end ({label}): argmax agreement {e['argmax_agreement']:.4f}, "
                f"accuracy {e['accuracy']:.4f}, finite {e['finite_fraction']:.3f}"
            )


if __name__ == "__main__":
    main()
