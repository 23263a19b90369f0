"""`export --target nir`: every bundled model becomes a NIR graph that nir.read accepts
with type checking, and comes back as the same Graph (every array bit for bit) compiling
to the same integer netlist; each op's NIR encoding computes what the op computes."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import scipy.linalg
from scipy import sparse

from snncompile.cli import main
from snncompile.compiler import Compiled, compile_model
from snncompile.errors import CorruptInputError, UnsupportedError
from snncompile.frontend.nir_snncompile import read_snncompile_nir
from snncompile.ir import ops
from snncompile.ir.discretize import discretize_s4d
from snncompile.ir.graph import Graph, Node
from snncompile.ir.interpret import run_graph
from snncompile.ir.netlist import Netlist
from snncompile.lower.lower import lower
from snncompile.passes import run_passes
from snncompile.quantize.quantize import QuantConfig, quantize
from snncompile.targets.nir import (
    DEFAULT_DT_S,
    SSM_FORMS,
    decode_graph,
    encode_graph,
    graph_difference,
    prepare,
    s4d_continuous,
)
from snncompile.targets.nir.plain import run_plain, strip_metadata

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "examples" / "checkpoints"
BUNDLED = ("spike-ssm", "spiking-ssm", "binary-s4d")
EXAMPLES = Path(__file__).parent / "data" / "nir-examples"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture(scope="module", params=BUNDLED)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(compiled model, artifact directory) for one bundled checkpoint, via the CLI."""
    out = tmp_path_factory.mktemp("nir") / f"{request.param}.nir-artifact"
    source = CHECKPOINTS / f"{request.param}-sdigits.pt"
    with pytest.raises(SystemExit) as info:
        main(["export", str(source), "--target", "nir", "-o", str(out)])
    assert info.value.code in (0, None)
    return compile_model(source), out


def _netlist_difference(a: Netlist, b: Netlist) -> str | None:
    """None if two netlists are equal in every population param and synapse, bit for bit."""
    if (a.numeric, a.formats, a.input_scale, a.output_scale, a.dt_s) != (
        b.numeric,
        b.formats,
        b.input_scale,
        b.output_scale,
        b.dt_s,
    ):
        return "netlist header"
    if [p.name for p in a.populations] != [p.name for p in b.populations]:
        return "population names"
    for p, q in zip(a.populations, b.populations, strict=True):
        if (p.kind, p.size, p.attrs, sorted(p.params)) != (
            q.kind,
            q.size,
            q.attrs,
            sorted(q.params),
        ):
            return f"population {p.name}"
        for key, value in p.params.items():
            other = q.params[key]
            if value.dtype != other.dtype or value.tobytes() != other.tobytes():
                return f"population {p.name} param {key}"
    if [s.name for s in a.synapses] != [s.name for s in b.synapses]:
        return "synapse names"
    for s, t in zip(a.synapses, b.synapses, strict=True):
        if (s.src, s.dst, s.weight_exp, s.delay) != (t.src, t.dst, t.weight_exp, t.delay):
            return f"synapse {s.name}"
        ws = s.weight.toarray() if sparse.issparse(s.weight) else s.weight
        wt = t.weight.toarray() if sparse.issparse(t.weight) else t.weight
        if ws.dtype != wt.dtype or ws.tobytes() != wt.tobytes():
            return f"synapse {s.name} weight"
    return None


def test_export_writes_valid_nir_that_round_trips_exactly(exported) -> None:
    compiled, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "nir" and "model.nir" in manifest["files"]
    nir_graph = nir.read(out / "model.nir", type_check=True)  # valid NIR with type checking
    assert nir_graph.metadata["snncompile_format"] == "snncompile-nir"
    graph = read_snncompile_nir(out / "model.nir")
    assert graph is not None
    assert graph_difference(compiled.traced, graph) is None
    # The re-read graph compiles to the same integer netlist with the same calibration.
    cfg = QuantConfig()
    net, _ = quantize(lower(run_passes(graph), formats=cfg.formats()), compiled.calibration, cfg)
    assert _netlist_difference(compiled.netlist, net) is None
    assert net.numeric == "int"


def test_difference_helpers_see_a_one_bit_change(exported) -> None:
    compiled, _ = exported
    graph = compiled.traced
    node = next(n for n in graph if isinstance(n.op, ops.Linear))
    weight = node.op.weight.copy()
    weight.flat[0] = np.nextafter(weight.flat[0], np.inf)
    changed = graph.replace_nodes(
        Node(n.name, ops.Linear(weight=weight, bias=n.op.bias), n.inputs) if n is node else n
        for n in graph
    )
    assert graph_difference(graph, changed) == f"node {node.name!r}: weight differs"


def test_reader_says_none_for_files_other_tools_wrote(tmp_path: Path) -> None:
    for name in ("lif_norse.nir", "braille_noDelay_bias_zero.nir", "cnn_sinabs.nir"):
        assert read_snncompile_nir(EXAMPLES / name) is None
    assert read_snncompile_nir(nir.read(EXAMPLES / "lif_norse.nir")) is None
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5")
    assert read_snncompile_nir(junk) is None
    with pytest.raises(CorruptInputError, match="no such file"):
        read_snncompile_nir(tmp_path / "missing.nir")


def test_an_edited_file_is_refused_where_nir_holds_a_derived_parameter(
    exported, tmp_path: Path
) -> None:
    _, out = exported
    nir_graph = nir.read(out / "model.nir")
    b_re = nir_graph.nodes["blocks_0_ssm"].nodes["b_re"]
    b_re.weight = b_re.weight * 1.5  # retuned in NIR, but the exact S4D is in the metadata
    nir.write(tmp_path / "edited.nir", nir_graph)
    with pytest.raises(
        CorruptInputError, match=r"blocks_0_ssm.*b_re.*edited after it was exported"
    ):
        read_snncompile_nir(tmp_path / "edited.nir")


def test_an_edited_linear_weight_is_read_as_edited(exported, tmp_path: Path) -> None:
    # Affine weight and bias are the Linear op's arrays themselves (not copied into the
    # metadata), so an edit there is a consistent edit of the network, and it is taken.
    compiled, out = exported
    nir_graph = nir.read(out / "model.nir")
    nir_graph.nodes["encoder"].weight = nir_graph.nodes["encoder"].weight * 1.5
    nir.write(tmp_path / "edited.nir", nir_graph)
    graph = read_snncompile_nir(tmp_path / "edited.nir")
    assert graph_difference(compiled.traced, graph) == "node 'encoder': weight differs"
    np.testing.assert_array_equal(
        graph.node("encoder").op.weight, compiled.traced.node("encoder").op.weight * 1.5
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("snncompile_version", 2, "version 2 is not supported"),
        ("snncompile_dt_s", -1.0, "snncompile_dt_s is missing or not positive"),
        ("snncompile_node_order", "[", "snncompile_node_order' is missing or not JSON"),
    ],
)
def test_damaged_graph_metadata_is_one_corrupt_input_line(
    key: str, value: object, message: str, tmp_path: Path
) -> None:
    graph = _one_op_graph(ops.Heaviside(), 3)
    nir_graph = encode_graph(graph)
    nir_graph.metadata[key] = value
    nir.write(tmp_path / "bad.nir", nir_graph)
    with pytest.raises(CorruptInputError, match=message):
        read_snncompile_nir(tmp_path / "bad.nir")


def test_stripped_file_is_still_valid_nir_and_no_longer_ours(exported, tmp_path: Path) -> None:
    _, out = exported
    stripped = strip_metadata(nir.read(out / "model.nir"))
    nir.write(tmp_path / "stripped.nir", stripped)
    back = nir.read(tmp_path / "stripped.nir", type_check=True)
    assert back.metadata == {} and read_snncompile_nir(tmp_path / "stripped.nir") is None


def test_cli_inspect_shows_the_nir_section(exported, capsys) -> None:
    _, out = exported
    code, text, _ = run(["inspect", out], capsys)
    assert code == 0 and "nir: model.nir (NIR 1.0.8, dt 0.001 s, SSM form continuous)" in text


def test_an_artifact_directory_named_dot_nir_is_inspected_as_an_artifact(
    exported, tmp_path: Path, capsys
) -> None:
    _, out = exported
    named = tmp_path / "model.nir"
    shutil.copytree(out, named)
    code, text, err = run(["inspect", named], capsys)
    assert code == 0, err
    assert "nir: model.nir (NIR 1.0.8" in text


def test_inspect_of_our_model_nir_names_snncompile_and_its_dt(exported, capsys) -> None:
    _, out = exported
    code, text, err = run(["inspect", out / "model.nir"], capsys)
    assert code == 0 and not err
    assert "written by   snncompile" in text and "0.001 s per step" in text
    code, text, _ = run(["inspect", out / "model.nir", "--json"], capsys)
    info = json.loads(text)
    assert code == 0 and info["written_by_snncompile"] and info["dt_s"] == 0.001
    assert len(info["nodes"]) > 3


def test_export_of_our_model_nir_takes_the_dt_inspect_shows_and_no_other(
    exported, tmp_path: Path, capsys
) -> None:
    """inspect says the file states 0.001 s per step: `--dt 1e-3` is that dt (the same
    netlist as without it); any other dt is a one-line usage error naming the stated one."""
    _, out = exported
    code, _, err = run(["export", out / "model.nir", "--dt", "1e-3", "-o", tmp_path / "a"], capsys)
    assert code == 0, err
    code, _, err = run(["export", out / "model.nir", "--dt", "1e-4", "-o", tmp_path / "b"], capsys)
    assert code == 2 and not (tmp_path / "b").exists()
    assert "states dt = 0.001 s" in err and "leave --dt out" in err and err.count("\n") == 1
    plain = compile_model(out / "model.nir")
    assert (
        _netlist_difference(compile_model(out / "model.nir", dt=1e-3).netlist, plain.netlist)
        is None
    )


def test_the_cli_round_trip_gives_the_identical_netlist_on_the_calibration_batch(
    exported, tmp_path: Path, capsys
) -> None:
    """README: `data --split calibration` writes what the checkpoint's export calibrated
    on, and `export model.nir --calib` of it compiles the identical integer netlist
    (helper-71 found no command that wrote the batch; the test split's first 32 inputs
    gave another netlist for spike-ssm)."""
    from snncompile.artifact import read_artifact

    compiled, out = exported
    source = CHECKPOINTS / f"{out.name.split('.')[0]}-sdigits.pt"
    calib = tmp_path / "calib.npz"
    code, text, err = run(["data", source, "--split", "calibration", "-o", calib], capsys)
    assert (
        code == 0 and text == f"wrote {calib}: the checkpoint's calibration batch, x (32, 64, 1)\n"
    )
    code, _, err = run(
        ["export", out / "model.nir", "--calib", calib, "-o", tmp_path / "a"], capsys
    )
    assert code == 0, err
    assert _netlist_difference(compiled.netlist, read_artifact(tmp_path / "a").netlist) is None


# -- per-op encodings ----------------------------------------------------------------------


def _one_op_graph(op: ops.Op, width: int) -> Graph:
    return Graph(
        (
            Node("input", ops.Input(width)),
            Node("op", op, ("input",)),
            Node("output", ops.Output(), ("op",)),
        )
    )


def _random_s4d(h: int, m: int, rule: str, seed: int) -> ops.S4D:
    rng = np.random.default_rng(seed)
    return ops.S4D(
        log_dt=rng.uniform(np.log(1e-3), np.log(1e-1), h),
        a=-rng.uniform(0.1, 1.0, (h, m)) + 1j * np.pi * rng.integers(0, 32, (h, m)),
        b=rng.normal(size=(h, m)) + 1j * rng.normal(size=(h, m)),
        c=rng.normal(size=(h, m)) + 1j * rng.normal(size=(h, m)),
        d=rng.normal(size=h),
        discretization=rule,
    )


def _ssm_from_nir_block(block: nir.NIRGraph, rule: str, dt: float):
    """The exported continuous-time system, read from the NIR parameters alone, as one real
    2x2 block per mode, discretized by `rule` at dt with real matrix algebra (expm)."""
    x_re, x_im = block.nodes["x_re"], block.nodes["x_im"]
    n = x_re.tau.size
    h = block.nodes["d"].scale.size
    chan = np.repeat(np.arange(h), n // h)
    # tau dv/dt = -v + r I  ->  dv/dt = -v/tau + (r/tau) I
    g_re, g_im = x_re.r / x_re.tau, x_im.r / x_im.tau
    a = np.zeros((n, 2, 2))
    a[:, 0, 0], a[:, 1, 1] = -1 / x_re.tau, -1 / x_im.tau
    a[:, 0, 1] = g_re * block.nodes["rot_im_to_re"].scale
    a[:, 1, 0] = g_im * block.nodes["rot_re_to_im"].scale
    b = np.stack(
        [
            g_re * block.nodes["b_re"].weight[np.arange(n), chan],
            g_im * block.nodes["b_im"].weight[np.arange(n), chan],
        ],
        axis=1,
    )
    a_bar, b_bar = np.empty_like(a), np.empty_like(b)
    for k in range(n):
        if rule == "zoh":  # exp([[A, B], [0, 0]] dt) = [[A_bar, B_bar], [0, 1]]
            aug = np.zeros((3, 3))
            aug[:2, :2], aug[:2, 2] = a[k], b[k]
            e = scipy.linalg.expm(aug * dt)
            a_bar[k], b_bar[k] = e[:2, :2], e[:2, 2]
        else:  # bilinear: (I - dt A/2)^-1 (I + dt A/2), (I - dt A/2)^-1 dt B
            inv = np.linalg.inv(np.eye(2) - dt * a[k] / 2)
            a_bar[k], b_bar[k] = inv @ (np.eye(2) + dt * a[k] / 2), inv @ (dt * b[k])
    c = np.stack(
        [
            block.nodes["c_re"].weight[chan, np.arange(n)],
            block.nodes["c_im"].weight[chan, np.arange(n)],
        ],
        axis=1,
    )
    return a_bar, b_bar, c, block.nodes["d"].scale, chan


@pytest.mark.parametrize("rule", ["zoh", "bilinear"])
def test_ssm_rotation_blocks_discretized_by_the_stated_rule_are_our_ssm(rule: str) -> None:
    op = _random_s4d(6, 5, rule, seed=1)
    block = encode_graph(_one_op_graph(op, 6)).nodes["op"]
    assert block.metadata["snncompile"]["discretization"] == rule
    a_bar, b_bar, c, d, chan = _ssm_from_nir_block(block, rule, DEFAULT_DT_S)
    u = np.random.default_rng(2).normal(size=(3, 40, 6))
    state = np.zeros((3, a_bar.shape[0], 2))
    ys = []
    for t in range(u.shape[1]):
        ut = u[:, t][:, chan]
        state = np.einsum("kij,bkj->bki", a_bar, state) + b_bar[None] * ut[..., None]
        y = np.zeros((3, 6))
        np.add.at(y.T, chan, np.einsum("kj,bkj->kb", c, state))
        ys.append(y + d * u[:, t])
    ours = run_graph(_one_op_graph(discretize_s4d(op), 6), u)
    np.testing.assert_allclose(np.stack(ys, axis=1), ours, rtol=0, atol=1e-9)


def test_bundled_ssm_blocks_reproduce_a_bar_and_b_bar(exported) -> None:
    compiled, out = exported
    nir_graph = nir.read(out / "model.nir")
    node = compiled.traced.node("blocks.0.ssm")
    a_bar, b_bar, _, _, _ = _ssm_from_nir_block(nir_graph.nodes["blocks_0_ssm"], "zoh", 1e-3)
    ssm = discretize_s4d(node.op)
    # A_bar acts on (re, im) as the complex multiply: first column is (Re, Im) of a_bar.
    np.testing.assert_allclose(a_bar[:, 0, 0], ssm.a_bar.real.ravel(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_bar[:, 1, 0], ssm.a_bar.imag.ravel(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b_bar[:, 0], ssm.b_bar.real.ravel(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b_bar[:, 1], ssm.b_bar.imag.ravel(), rtol=1e-9, atol=1e-12)


def test_s4d_continuous_system_scales_time_per_channel() -> None:
    op = _random_s4d(3, 2, "zoh", seed=3)
    a_c, b_c = s4d_continuous(op, 0.01)
    dt_h = np.exp(op.log_dt)[:, None]
    np.testing.assert_allclose(np.exp(0.01 * a_c), np.exp(dt_h * op.a), rtol=1e-12)
    np.testing.assert_allclose(b_c * 0.01, op.b * dt_h, rtol=1e-12)


def _plain_vs_ours(op: ops.Op, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    graph = _one_op_graph(op, x.shape[-1])
    plain = run_plain(strip_metadata(encode_graph(graph)), x, DEFAULT_DT_S)
    return plain, run_graph(graph, x)


def test_reset_refractory_subgraph_is_exact_under_euler_without_metadata() -> None:
    rng = np.random.default_rng(4)
    h = 16
    op = ops.ResetRefractory(
        beta=rng.uniform(0, 0.95, h), theta=rng.uniform(0.5, 2, h), rho=rng.uniform(0, 1, h)
    )
    x = rng.normal(0.6, 1.0, (4, 200, h))
    plain, ours = _plain_vs_ours(op, x)
    assert ours.mean() > 0.05  # the test exercises many resets
    np.testing.assert_array_equal(plain, ours)


def test_lif_is_exact_under_euler_but_for_the_spike_test_at_equality() -> None:
    rng = np.random.default_rng(5)
    h = 16
    op = ops.LIF(tau=0.125, threshold=rng.uniform(0.5, 2, h))
    x = rng.normal(0.5, 1.0, (4, 200, h))
    plain, ours = _plain_vs_ours(op, x)
    assert ours.mean() > 0.05
    np.testing.assert_array_equal(plain, ours)
    # On the threshold itself NIR's strict test and our >= part ways; the metadata says >=.
    node = encode_graph(_one_op_graph(op, h)).nodes["op"]
    assert node.metadata["snncompile"]["spike_test"] == ">="
    at = np.broadcast_to(op.threshold, (1, 1, h))
    plain, ours = _plain_vs_ours(op, at)
    assert ours.all() and not plain.any()


def test_heaviside_add_and_identity_are_exact_without_metadata() -> None:
    x = np.random.default_rng(6).normal(size=(2, 30, 5))
    x[0, 0, 0] = 0.0  # strict test at zero on both sides
    plain, ours = _plain_vs_ours(ops.Heaviside(), x)
    np.testing.assert_array_equal(plain, ours)
    plain, ours = _plain_vs_ours(ops.Dropout(p=0.1), x)
    np.testing.assert_array_equal(plain, ours)
    add = Graph(
        (
            Node("input", ops.Input(5)),
            Node("a", ops.Linear(weight=np.eye(5) * 2, bias=np.ones(5)), ("input",)),
            Node("sum", ops.Add(), ("a", "input")),
            Node("output", ops.Output(), ("sum",)),
        )
    )
    plain = run_plain(strip_metadata(encode_graph(add)), x, DEFAULT_DT_S)
    np.testing.assert_array_equal(plain, run_graph(add, x))


def test_glu_and_mean_pool_without_metadata_are_what_the_docs_say() -> None:
    x = np.random.default_rng(7).normal(size=(2, 30, 8))
    plain, ours = _plain_vs_ours(ops.GLU(gate="sigmoid"), x)
    np.testing.assert_array_equal(plain, x[..., :4])  # y = a: the gate is metadata only
    assert not np.allclose(plain, ours)
    graph = _one_op_graph(ops.Pool(mode="mean"), 8)
    plain = run_plain(strip_metadata(encode_graph(graph)), x, DEFAULT_DT_S)
    np.testing.assert_allclose(plain[:, -1] / x.shape[1], run_graph(graph, x), rtol=1e-12)


def test_a_model_nir_cannot_express_is_refused_in_one_line(capsys) -> None:
    graph = compile_model(CHECKPOINTS / "s4d-sdigits.pt", stop_after="trace").graph
    with pytest.raises(UnsupportedError) as info:
        encode_graph(graph)
    message = str(info.value)
    assert "\n" not in message
    assert "blocks.0.act (activation gelu)" in message and "onnx --float" in message
    with pytest.raises(UnsupportedError, match="ssm"):
        prepare(Compiled(model=None, graph=run_passes(graph)))  # type: ignore[arg-type]
    code, _, err = run(
        ["export", CHECKPOINTS / "s4d-sdigits.pt", "--target", "nir", "-o", "x"], capsys
    )
    # Refused by the nir target itself right after tracing, not by the lowering later.
    assert code == 4 and "no NIR encoding for blocks.0.act (activation gelu)" in err
    assert len(err.strip().splitlines()) == 1


def test_every_op_the_encoder_takes_round_trips_through_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    h = 4
    nodes = [
        Node("in", ops.Input(3)),
        Node(
            "enc",
            ops.Linear(weight=rng.normal(size=(h, 3)), bias=np.array([0.0, -0.0, 1, 2])),
            ("in",),
        ),
        Node(
            "bn",
            ops.BatchNorm(
                mean=rng.normal(size=h),
                var=rng.uniform(0.5, 2, h),
                weight=rng.normal(size=h),
                bias=rng.normal(size=h),
                eps=1e-5,
            ),
            ("enc",),
        ),
        Node("aff", ops.ChannelAffine(scale=rng.normal(size=h), shift=rng.normal(size=h)), ("bn",)),
        Node("s4d", _random_s4d(h, 3, "bilinear", seed=9), ("aff",)),
        Node("lif", ops.LIF(tau=0.0, threshold=rng.uniform(0.5, 2, h)), ("s4d",)),
        Node("drop", ops.Dropout(p=0.25), ("lif",)),
        Node("id", ops.Identity(), ("drop",)),
        Node(
            "rr", ops.ResetRefractory(beta=np.zeros(h), theta=np.ones(h), rho=np.zeros(h)), ("id",)
        ),
        Node("hv", ops.Heaviside(), ("aff",)),
        Node("sum", ops.Add(), ("hv", "rr", "hv")),  # input order, and one input twice
        Node(
            "proj",
            ops.Linear(weight=rng.normal(size=(2 * h, h)), bias=rng.normal(size=2 * h)),
            ("sum",),
        ),
        Node("glu", ops.GLU(gate="hard-sigmoid"), ("proj",)),
        Node("pool", ops.Pool(mode="last"), ("glu",)),
        Node("out", ops.Output(), ("pool",)),
    ]
    graph = Graph(tuple(nodes), dt_s=2.5e-4, meta={"source": "test", "passes": []})
    nir.write(tmp_path / "all.nir", encode_graph(graph))
    back = read_snncompile_nir(tmp_path / "all.nir")
    assert graph_difference(graph, back) is None
    assert float(nir.read(tmp_path / "all.nir").metadata["snncompile_dt_s"]) == 2.5e-4
    meta = nir.read(tmp_path / "all.nir").nodes["rr"].metadata["snncompile"]
    assert meta["reset"] == "subtract" and meta["spike_test"] == ">"
    np.testing.assert_array_equal(meta["refractory_rho"], np.zeros(h))
    lost = nir.read(tmp_path / "all.nir").nodes["sum"].metadata["snncompile"]
    assert lost["lost_without_metadata"] == "an input read more than once counts once"
    x = rng.normal(size=(2, 12, 3))
    np.testing.assert_array_equal(run_graph(back, x), run_graph(graph, x))


# -- a real consumer's graph executor ------------------------------------------------------
#
# nirtorch 2.6 wires a NIR graph into torch.fx (fan-in sums, recurrent edges, subgraphs);
# it maps only linear nodes itself, so the neurons here are forward-Euler modules written
# from the NIR node equations. It checks that targets/nir/plain.py's conventions (which
# edge of a loop is delayed, what is summed) are those of a framework in use.


def _nirtorch_run(nir_graph: nir.NIRGraph, x: np.ndarray, dt: float) -> np.ndarray:
    import nirtorch
    import torch

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64))

    class Affine(torch.nn.Module):
        def __init__(self, node) -> None:
            super().__init__()
            self.w = t(node.weight)
            self.b = t(node.bias) if hasattr(node, "bias") else None

        def forward(self, x):
            x = x.double()  # nirtorch's placeholders for not-yet-computed inputs are float32
            return x @ self.w.T + (0 if self.b is None else self.b)

    class Elementwise(torch.nn.Module):
        def __init__(self, node) -> None:
            super().__init__()
            self.node = node

        def forward(self, x):
            if isinstance(self.node, nir.Scale):
                return x * t(self.node.scale)
            return (x > t(self.node.threshold)).double()

    class Neuron(torch.nn.Module):
        def __init__(self, node) -> None:
            super().__init__()
            self.node = node

        def forward(self, x, state=None):
            n = self.node
            v = torch.zeros_like(x) if state is None else state
            if isinstance(n, nir.I):
                v = v + dt * t(n.r) * x
                return v, v
            v = v + dt / t(n.tau) * (t(n.v_leak) - v + t(n.r) * x)
            if isinstance(n, nir.LI):
                return v, v
            z = (v > t(n.v_threshold)).double()
            return z, torch.where(z > 0, t(n.v_reset), v)

    node_map = {nir.Affine: Affine, nir.Linear: Affine, nir.Scale: Elementwise}
    node_map.update({nir.Threshold: Elementwise, nir.LI: Neuron, nir.LIF: Neuron, nir.I: Neuron})
    module = nirtorch.nir_to_torch(nir_graph, node_map, dtype=torch.float64)
    state, ys = None, []
    for step in range(x.shape[1]):
        y, state = module(torch.from_numpy(x[:, step]), state)
        ys.append(y.numpy())
    return np.stack(ys, axis=1)


def test_plain_simulator_and_nirtorch_compute_the_same_on_our_subgraphs() -> None:
    rng = np.random.default_rng(10)
    h = 6
    s4d = ops.S4D(
        log_dt=np.log(np.full(h, 0.01)),
        a=-0.5 + 1j * np.pi * rng.integers(0, 5, (h, 3)),
        b=rng.normal(size=(h, 3)) + 1j * rng.normal(size=(h, 3)),
        c=rng.normal(size=(h, 3)) + 1j * rng.normal(size=(h, 3)),
        d=rng.normal(size=h),
        discretization="zoh",
    )
    neurons = [
        ops.ResetRefractory(
            beta=rng.uniform(0, 0.9, h), theta=rng.uniform(0.5, 2, h), rho=rng.uniform(0, 1, h)
        ),
        ops.LIF(tau=0.125, threshold=rng.uniform(0.5, 2, h)),
        ops.Heaviside(),
    ]
    x = rng.normal(0.5, 1.0, (3, 40, h))
    for op in [s4d, *neurons, ops.Pool(mode="mean")]:
        graph = strip_metadata(encode_graph(_one_op_graph(op, h)))
        plain = run_plain(graph, x, DEFAULT_DT_S)
        np.testing.assert_allclose(
            _nirtorch_run(graph, x, DEFAULT_DT_S), plain, rtol=1e-12, atol=1e-12
        )
    # nirtorch's loop is forward Euler: both rotation couplings from the previous step.
    dt_h = 0.01
    z = np.zeros((3, h, 3), complex)
    euler = []
    for step in range(x.shape[1]):
        z = (1 + dt_h * s4d.a) * z + dt_h * s4d.b * x[:, step, :, None]
        euler.append(2 * (s4d.c * z).sum(-1).real + s4d.d * x[:, step])
    graph = strip_metadata(encode_graph(_one_op_graph(s4d, h)))
    np.testing.assert_allclose(
        run_plain(graph, x, DEFAULT_DT_S), np.stack(euler, 1), rtol=1e-9, atol=1e-9
    )


def test_plain_simulator_and_nirtorch_agree_on_a_whole_stripped_bundled_model(exported) -> None:
    compiled, _ = exported
    # In memory, nodes in topological order: nirtorch 2.6 cannot build a graph with
    # subgraphs from nir.read's alphabetical order (AttributeError; docs/targets.md).
    stripped = strip_metadata(encode_graph(compiled.traced))
    x = compiled.calibration[:4, :20]  # 20 steps: before the Euler-run SSM overflows
    plain = run_plain(stripped, x, DEFAULT_DT_S)
    np.testing.assert_allclose(
        _nirtorch_run(stripped, x, DEFAULT_DT_S), plain, rtol=1e-9, atol=1e-9
    )


# -- the Euler form of the SSM (--nir-ssm euler) ---------------------------------------------


@pytest.mark.parametrize("rule", ["zoh", "bilinear"])
def test_euler_form_ssm_run_by_a_plain_euler_consumer_is_our_ssm(rule: str, tmp_path: Path) -> None:
    op = _random_s4d(6, 5, rule, seed=11)
    graph = _one_op_graph(op, 6)
    nir.write(tmp_path / "e.nir", encode_graph(graph, ssm_form="euler"))
    written = nir.read(tmp_path / "e.nir", type_check=True)
    assert written.nodes["op"].metadata["snncompile"]["ssm_form"] == "euler"
    assert graph_difference(graph, read_snncompile_nir(tmp_path / "e.nir")) is None
    u = np.random.default_rng(12).normal(size=(3, 60, 6))
    plain = run_plain(strip_metadata(written), u, DEFAULT_DT_S)
    ours = run_graph(_one_op_graph(discretize_s4d(op), 6), u)
    np.testing.assert_allclose(plain, ours, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        _nirtorch_run(strip_metadata(written), u, DEFAULT_DT_S), ours, atol=1e-9
    )


def test_cli_euler_form_and_its_flag_on_other_targets(tmp_path: Path, capsys) -> None:
    source = CHECKPOINTS / "binary-s4d-sdigits.pt"
    out = tmp_path / "e"
    code, text, err = run(
        ["export", source, "--target", "nir", "--nir-ssm", "euler", "-o", out], capsys
    )
    assert code == 0, err
    assert "SSM form euler" in text
    assert json.loads((out / "manifest.json").read_text())["nir"]["ssm_form"] == "euler"
    graph = read_snncompile_nir(out / "model.nir")
    traced = compile_model(source, stop_after="trace").graph
    assert graph_difference(traced, graph) is None
    code, _, err = run(["export", source, "--nir-ssm", "euler", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "--nir-ssm does not apply to --target reference" in err
    assert not (tmp_path / "r").exists()
    assert SSM_FORMS == ("continuous", "euler")


# -- the stated dt (--nir-dt) ------------------------------------------------------------


def test_a_model_encoded_at_another_dt_computes_the_same_under_euler(exported) -> None:
    """Every NIR parameter scales with the dt the file states so that forward Euler at that
    dt is our step: a consumer stepping at 1e-4 s (snnTorch's importer) or 0.1 s computes
    what one at the default 1e-3 s does, on a whole bundled model with its metadata gone."""
    compiled, _ = exported
    x = compiled.calibration[:4, :20]  # 20 steps: before the Euler-run SSM overflows
    default = run_plain(strip_metadata(encode_graph(compiled.traced)), x, DEFAULT_DT_S)
    for dt in (1e-4, 0.1):
        stripped = strip_metadata(encode_graph(compiled.traced, dt_s=dt))
        np.testing.assert_allclose(run_plain(stripped, x, dt), default, rtol=1e-9, atol=1e-9)
    assert np.any(default != 0)


def test_cli_nir_dt_is_the_dt_the_file_states(tmp_path: Path, capsys) -> None:
    """`--nir-dt 1e-4` writes a file stating 1e-4 s (metadata, manifest, inspect), whose
    LIF time constants are a tenth of the default export's, and which reads back as the
    traced graph; a re-export of it takes that dt and no other."""
    source = CHECKPOINTS / "spiking-ssm-sdigits.pt"
    out, default = tmp_path / "e", tmp_path / "d"
    code, text, err = run(
        ["export", source, "--target", "nir", "--nir-dt", "1e-4", "-o", out], capsys
    )
    assert code == 0, err
    assert "dt 0.0001 s" in text
    assert json.loads((out / "manifest.json").read_text())["nir"]["dt_s"] == 1e-4
    written = nir.read(out / "model.nir", type_check=True)
    assert float(written.metadata["snncompile_dt_s"]) == 1e-4
    traced = compile_model(source, stop_after="trace").graph
    assert graph_difference(traced, read_snncompile_nir(out / "model.nir")) is None
    code, _, err = run(["export", source, "--target", "nir", "-o", default], capsys)
    assert code == 0, err
    at_default = nir.read(default / "model.nir", type_check=True)
    lifs = [name for name, node in written.nodes.items() if isinstance(node, nir.LIF)]
    assert lifs
    for name in lifs:
        np.testing.assert_allclose(written.nodes[name].tau * 10, at_default.nodes[name].tau)
    code, info, err = run(["inspect", out, "--json"], capsys)
    assert code == 0 and json.loads(info)["nir"]["dt_s"] == 1e-4
    code, _, err = run(["export", out / "model.nir", "--dt", "1e-3", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "states dt = 0.0001 s" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--nir-dt must be a positive number of seconds, got 0"),
        ("-1e-3", "--nir-dt must be a positive number of seconds, got -0.001"),
        ("nan", "--nir-dt must be a positive number of seconds, got nan"),
        ("inf", "--nir-dt must be a positive number of seconds, got inf"),
        # the S4D's continuous rates scale with 1/dt: at 1e300 s they are subnormal
        ("1e300", "--nir-dt 1e+300: the NIR parameter blocks_0_ssm/"),
    ],
)
def test_cli_a_nir_dt_that_cannot_be_stated_is_one_line_and_writes_nothing(
    value: str, message: str, tmp_path: Path, capsys
) -> None:
    source = CHECKPOINTS / "spike-ssm-sdigits.pt"
    out = tmp_path / "e"
    code, _, err = run(["export", source, "--target", "nir", "--nir-dt", value, "-o", out], capsys)
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_nir_dt_applies_to_the_nir_target_only_and_takes_real_numbers(
    tmp_path: Path, capsys
) -> None:
    from snncompile.api import export_model
    from snncompile.errors import ArgumentTypeError

    source = CHECKPOINTS / "spike-ssm-sdigits.pt"
    code, _, err = run(["export", source, "--nir-dt", "1e-4", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "--nir-dt does not apply to --target reference" in err
    assert "it applies to --target nir" in err and not (tmp_path / "r").exists()
    with pytest.raises(
        ArgumentTypeError, match=r"target_options\['nir_dt'\] must be a real number, got '1e-4'"
    ):
        export_model(source, tmp_path / "a", target="nir", target_options={"nir_dt": "1e-4"})
    assert not (tmp_path / "a").exists()


def _edit_metadata(nir_graph, case: str) -> None:  # type: ignore[no-untyped-def]
    if case == "dt a string":
        nir_graph.metadata["snncompile_dt_s"] = "abc"
    elif case == "graph dt a string":
        nir_graph.metadata["snncompile_graph_dt_s"] = '"abc"'
    else:  # a node's snncompile metadata not an object
        next(iter(nir_graph.nodes.values())).metadata = {"snncompile": "text"}


def _rehash(directory: Path, name: str) -> None:
    import hashlib

    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


# Sets exp one ulp up on every value (real and imaginary parts) where the
# compiler derives parameters with it (the SSM discretization, the NIR codec's channel
# steps): the rounding of another CPU's numpy (which differs in the last bit for about
# a quarter of inputs), on any CPU. numpy's own exp stays a ufunc for everything else.
_EXP_ONE_ULP_UP = """
import sys, types
import numpy
def exp(x, *args, **kwargs):
    y = numpy.exp(x, *args, **kwargs)
    up = lambda v: numpy.nextafter(v, numpy.inf)
    return up(y.real) + 1j * up(y.imag) if numpy.iscomplexobj(y) else up(y)
class OtherExp(types.ModuleType):
    exp = staticmethod(exp)
    def __getattr__(self, name):
        return getattr(numpy, name)
import snncompile.ir.discretize, snncompile.targets.nir.codec
snncompile.ir.discretize.np = snncompile.targets.nir.codec.np = OtherExp("numpy")
"""

# Runs each CLI command of the JSON list in argv[1] in this one process, as its own
# process would (its exit code: the SystemExit's, 0 if main returned), and prints the
# codes as the last line: one interpreter start instead of one per command.
_EACH_COMMAND = """
import json, sys
from snncompile.cli import main
codes = []
for args in json.loads(sys.argv[1]):
    try:
        main(args)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) else int(exc.code is not None))
    sys.stdout.flush()
print(json.dumps(codes))
"""


def _other_roundings() -> dict[str, tuple[list[str], dict[str, str]]]:
    """How to run the CLI with exp rounding otherwise than here: (command, environment)."""
    import os
    import sys

    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    up = _EXP_ONE_ULP_UP + _EACH_COMMAND
    ways = {"exp one ulp up": ([sys.executable, "-c", up], dict(os.environ))}
    avx512 = [f for f in __cpu_dispatch__ if f.startswith("AVX512") and __cpu_features__.get(f)]
    if avx512:  # the real thing: numpy's exp without its AVX-512 kernels
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(avx512)}
        ways["numpy without AVX-512"] = ([sys.executable, "-c", _EACH_COMMAND], env)
    return ways


@pytest.mark.parametrize("form", ["continuous", "euler"])
def test_an_artifact_reads_where_numpy_rounds_exp_differently(form, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A NIR export read in a process whose exp rounds otherwise (numpy without its
    AVX-512 kernels, where this CPU has them, and exp one ulp up on every value):
    inspect and simulate accept it (they called it edited, exit 6), and re-importing the
    .nir compiles."""
    import subprocess

    artifact = tmp_path / "a"
    source = CHECKPOINTS / "spike-ssm-sdigits.pt"
    argv = ["export", source, "--target", "nir", "--nir-ssm", form, "-o", artifact]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64, 1)))
    for way, (command, env) in _other_roundings().items():
        commands = [
            ["inspect", artifact],
            ["simulate", artifact, "--input", x, "-o", tmp_path / f"{way}.npz"],
            ["export", artifact / "model.nir", "--target", "onnx", "-o", tmp_path / way],
        ]
        listed = json.dumps([[str(a) for a in args] for args in commands])
        out = subprocess.run([*command, listed], capture_output=True, text=True, env=env)
        assert out.returncode == 0, (way, out.stderr)
        codes = json.loads(out.stdout.splitlines()[-1])
        for args, code in zip(commands, codes, strict=True):
            assert code == 0, (way, args[0], out.stderr)


def test_re_exporting_an_artifacts_model_nir_over_it_is_refused(exported, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """-o naming the artifact that holds the .nir being exported: refused, exit 2, the
    artifact untouched (--overwrite deleted the source, and the new manifest named it)."""
    import shutil

    _, artifact = exported
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    argv = ["export", copy / "model.nir", "--target", "onnx", "-o", copy, "--overwrite"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "holds the model being exported" in err, err
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_model_nir_swapped_for_another_graph_is_refused(exported, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """model.nir replaced by another well-formed graph (one weight doubled, written with
    snncompile's metadata as export writes it) and rehashed into the manifest: inspect
    and simulate refuse the artifact in one line naming the file (both accepted it, and
    a consumer would have imported a network that verify never checked)."""
    import dataclasses
    import shutil

    _, artifact = exported
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    original = nir.read(copy / "model.nir")
    graph = decode_graph(original)
    name = next(n.name for n in graph if "weight" in n.op.arrays())
    nodes = tuple(
        Node(n.name, dataclasses.replace(n.op, weight=n.op.weight * 2), n.inputs)
        if n.name == name
        else n
        for n in graph
    )
    other = Graph(nodes, dt_s=graph.dt_s, meta=graph.meta)
    dt_s = float(np.asarray(original.metadata["snncompile_dt_s"]))
    nir.write(copy / "model.nir", encode_graph(other, dt_s=dt_s))
    _rehash(copy, "model.nir")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64, 1)))
    out = tmp_path / "out.npz"
    for args in (["inspect", copy], ["simulate", copy, "--input", x, "-o", out]):
        code, _, err = run(args, capsys)
        assert code == 6 and err.count("\n") == 1, err
        assert f"{copy / 'model.nir'}: is not the graph of graph.json" in err, err
        assert f"node {name!r}" in err, err  # names what differs
    assert not out.exists()
    # A graph whose values the passes refuse (an S4D step so short its poles round to
    # one): exit 6 naming the file, not an internal error after numpy's warnings.
    nodes = tuple(
        Node(n.name, dataclasses.replace(n.op, log_dt=np.full_like(n.op.log_dt, -800.0)), n.inputs)
        if n.op.kind == "s4d"
        else n
        for n in graph
    )
    with np.errstate(all="ignore"):  # the pole's tau overflows, as intended
        broken = encode_graph(Graph(nodes, graph.dt_s, graph.meta), dt_s=dt_s)
    nir.write(copy / "model.nir", broken)
    _rehash(copy, "model.nir")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings printed lines first
        code, _, err = run(["inspect", copy], capsys)
    assert code == 6 and err.count("\n") == 1, err
    assert f"{copy / 'model.nir'}: holds a model the compiler cannot take" in err, err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dt a string", "snncompile_dt_s is missing or not positive"),
        ("graph dt a string", "snncompile_graph_dt_s 'abc' is not a positive dt"),
        ("node metadata text", "no 'snncompile' metadata"),
    ],
)
def test_inspect_refuses_edited_snncompile_metadata(  # type: ignore[no-untyped-def]
    exported, tmp_path, capsys, case, message
) -> None:
    """model.nir edited and rehashed into the manifest: inspect checks the metadata as a
    re-import does, in one line (it was a ValueError or AttributeError traceback)."""
    import hashlib
    import shutil

    _, artifact = exported
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    nir_graph = nir.read(copy / "model.nir")
    _edit_metadata(nir_graph, case)
    nir.write(copy / "model.nir", nir_graph)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["model.nir"] = hashlib.sha256((copy / "model.nir").read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(copy)])
    err = capsys.readouterr().err
    assert info.value.code == 6 and err.count("\n") == 1 and message in err, err


def test_a_dropped_edge_in_a_file_of_ours_is_one_refusal_for_inspect_and_export(
    exported, tmp_path, capsys
) -> None:
    """The decoder's edge removed from an exported model.nir: inspect called the graph
    unsupported (exit 4) and export called the file corrupt (exit 6) (helper-63)."""
    import h5py

    _, artifact = exported
    path = tmp_path / "model.nir"
    path.write_bytes((artifact / "model.nir").read_bytes())
    with h5py.File(path, "r+") as f:
        kept = [edge for edge in f["node/edges"][()] if b"decoder" not in edge[1]]
        del f["node/edges"]
        f.create_dataset("node/edges", data=np.array(kept, dtype=object), dtype=h5py.string_dtype())
    for argv in (["inspect", path], ["export", path, "-o", tmp_path / "a"]):
        code, out, err = run(argv, capsys)
        assert (code, out, err.count("\n")) == (6, "", 1), err
        assert "the NIR nodes are not the nodes the snncompile metadata lists" in err, err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_the_manifest_names_a_pool_lossy_only_when_it_is_a_mean(pooling: str) -> None:
    # A last-step pool is exact for a consumer without our metadata (read at the last
    # step); the manifest called every pool "mean: a running sum ..." (helper-68).
    import torch

    from snncompile.models.backbone import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(family="binary-s4d", d_input=2, d_output=3, d_model=4, n_layers=1,
                         d_state=4, pooling=pooling)  # fmt: skip
    calibration = np.random.default_rng(0).standard_normal((4, 8, 2))
    compiled = compile_model(build_model(config).eval(), calibration=calibration)
    lossy = prepare(compiled).manifest()["nir"]["lossy_without_metadata"]
    assert ("pool" in lossy) == (pooling == "mean")
    assert "glu" in lossy and "s4d" in lossy
