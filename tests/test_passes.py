"""Graph passes: each one rewrites what it should, leaves what it cannot, and the graph
computes the same thing before and after (checked with the float64 test interpreter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from snncompile.checkpoint import load_checkpoint
from snncompile.errors import UsageError
from snncompile.frontend import trace, trace_checkpoint
from snncompile.ir import ops
from snncompile.ir.discretize import discretize_s4d
from snncompile.ir.graph import Graph, Node
from snncompile.ir.interpret import run_graph
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.passes import DEFAULT_ORDER, PASSES, run_passes

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((ROOT / "examples" / "checkpoints").glob("*.pt"))
H = 6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _inputs(d_in: int = 3, seed: int = 1) -> np.ndarray:
    return _rng(seed).normal(size=(3, 20, d_in)) * 2


def _model(family: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(family=family, d_input=3, d_output=4, d_model=8, n_layers=2, d_state=6)
    cfg.update(overrides)
    model = build_model(ModelConfig(**cfg)).double()
    if cfg.get("prenorm"):
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 20, 3, dtype=torch.float64) * 2 + 0.5)
    return model.eval()


def _linear(n_out: int, n_in: int, seed: int) -> ops.Linear:
    rng = _rng(seed)
    return ops.Linear(rng.normal(size=(n_out, n_in)), rng.normal(size=n_out))


def _bn(seed: int, scale_zero: bool = False) -> ops.BatchNorm:
    rng = _rng(seed)
    weight = rng.uniform(0.5, 2.0, H) * rng.choice([-1, 1], H)
    if scale_zero:
        weight[0] = 0.0
    return ops.BatchNorm(
        rng.normal(size=H), rng.uniform(0.5, 2.0, H), weight, rng.normal(size=H), 1e-5
    )


def _s4d(seed: int, discretization: str = "zoh") -> ops.S4D:
    rng = _rng(seed)
    m = 3
    return ops.S4D(
        log_dt=rng.uniform(np.log(1e-2), np.log(0.5), H),
        a=-rng.uniform(0.1, 1.0, (H, m)) + 1j * np.pi * np.arange(m),
        b=rng.normal(size=(H, m)) + 1j * rng.normal(size=(H, m)),
        c=rng.normal(size=(H, m)) + 1j * rng.normal(size=(H, m)),
        d=rng.normal(size=H),
        discretization=discretization,
    )


def _graph(*nodes: Node) -> Graph:
    return Graph((Node("input", ops.Input(3)), *nodes))


def _same_function(before: Graph, after: Graph, rel: float = 1e-9) -> dict[str, np.ndarray]:
    """Outputs agree to `rel`; returns the traces of `after` for further checks."""
    u = _inputs(before.size(before.input.name))
    want = run_graph(before, u)
    traces: dict[str, np.ndarray] = {}
    got = run_graph(after, u, traces)
    scale = float(np.abs(want).max())
    assert scale > 0
    assert float(np.abs(got - want).max()) <= rel * scale
    return traces


def _kinds(graph: Graph) -> list[str]:
    return [node.op.kind for node in graph]


# ---- registry and run_passes


def test_registry_holds_the_default_passes_in_order() -> None:
    assert DEFAULT_ORDER == ("drop_identity", "discretize_ssm", "fold_batchnorm", "fold_thresholds")
    assert set(PASSES) == set(DEFAULT_ORDER)
    for name, graph_pass in PASSES.items():
        assert graph_pass.name == name and graph_pass.description


def test_unknown_stop_after_lists_the_pass_names() -> None:
    graph = trace(_model("s4d"), 3)
    with pytest.raises(UsageError) as info:
        run_passes(graph, stop_after="fold_bn")
    for name in DEFAULT_ORDER:
        assert name in str(info.value)


def test_stop_after_stops_and_meta_records_the_passes_that_ran() -> None:
    graph = trace(_model("spike-ssm", prenorm=True, theta_init=1.7), 3)
    partial = run_passes(graph, stop_after="discretize_ssm")
    assert partial.meta["passes"] == ["drop_identity", "discretize_ssm"]
    assert "batchnorm" in _kinds(partial) and "ssm" in _kinds(partial)
    full = run_passes(partial)
    assert full.meta["passes"] == [*DEFAULT_ORDER]  # the first two had nothing left to do
    assert not any(PASSES[name].match(full) for name in DEFAULT_ORDER)
    _same_function(graph, full)


@pytest.mark.parametrize("family", ["spike-ssm", "spiking-ssm", "binary-s4d", "s4d"])
def test_all_passes_keep_the_model_function(family: str) -> None:
    model = _model(family, prenorm=True, dropout=0.2, theta_init=1.3)
    if family == "spiking-ssm":
        with torch.no_grad():
            model.blocks[0].act.ln_vth.copy_(torch.linspace(-1, 1, 8))
    graph = trace(model, 3)
    done = run_passes(graph)
    assert not {"dropout", "identity", "batchnorm", "affine", "s4d"} & set(_kinds(done))
    traces = _same_function(graph, done)
    u = torch.from_numpy(_inputs())
    with torch.no_grad():
        steps = model.forward_steps(u).numpy()
    got = run_graph(done, u.numpy())
    assert np.abs(got - steps).max() <= 1e-9 * np.abs(steps).max()
    if family in ("spike-ssm", "spiking-ssm"):
        before: dict[str, np.ndarray] = {}
        run_graph(graph, _inputs(), before)
        for name in ("blocks.0.act", "blocks.1.act"):
            np.testing.assert_array_equal(traces[name], before[name])


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.stem)
def test_passes_on_bundled_checkpoints_keep_logits_and_spikes(path: Path) -> None:
    checkpoint = load_checkpoint(path)
    graph = trace_checkpoint(path)
    done = run_passes(graph)
    u = checkpoint.calibration[:6].double()
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    want = run_graph(graph, u.numpy(), before)
    got = run_graph(done, u.numpy(), after)
    assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()
    with torch.no_grad():
        steps = checkpoint.model.double().forward_steps(u).numpy()
    assert np.abs(got - steps).max() <= 1e-9 * np.abs(steps).max()
    if checkpoint.config.family != "s4d":
        for i in range(checkpoint.config.n_layers):
            np.testing.assert_array_equal(after[f"blocks.{i}.act"], before[f"blocks.{i}.act"])


# ---- drop_identity


def test_drop_identity_rewires_chains_adds_and_the_output() -> None:
    graph = _graph(
        Node("lin", _linear(H, 3, 0), ("input",)),
        Node("drop", ops.Dropout(0.5), ("lin",)),
        Node("id", ops.Identity(), ("drop",)),
        Node("sum", ops.Add(), ("lin", "id")),
        Node("last_id", ops.Identity(), ("sum",)),
        Node("output", ops.Output(), ("last_id",)),
    )
    drop = PASSES["drop_identity"]
    assert drop.match(graph)
    done = drop.run(graph)
    assert [n.name for n in done] == ["input", "lin", "sum", "output"]
    assert done.node("sum").inputs == ("lin", "lin")
    assert done.output.inputs == ("sum",)
    assert not drop.match(done)
    _same_function(graph, done, rel=0.0)


# ---- discretize_ssm


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_discretize_matches_the_torch_layer(discretization: str) -> None:
    model = _model("s4d", discretization=discretization)
    graph = trace(model, 3)
    done = PASSES["discretize_ssm"].run(graph)
    assert "s4d" not in _kinds(done)
    for i, block in enumerate(model.blocks):
        ssm = done.node(f"blocks.{i}.ssm").op
        assert isinstance(ssm, ops.SSM)
        a_bar, b_bar, c = (t.detach().numpy() for t in block.ssm.discretize())
        assert ssm.a_bar.dtype == np.complex128
        np.testing.assert_allclose(ssm.a_bar, a_bar, rtol=1e-14)
        np.testing.assert_allclose(ssm.b_bar, b_bar, rtol=1e-14)
        np.testing.assert_array_equal(ssm.c, c[0])
        np.testing.assert_array_equal(ssm.u_shift, np.zeros(8))
    _same_function(graph, done, rel=1e-12)


def test_zoh_and_bilinear_differ() -> None:
    # Guards the test above: it would pass trivially if both paths were one formula.
    zoh = PASSES["discretize_ssm"].run(trace(_model("s4d", discretization="zoh"), 3))
    bil = PASSES["discretize_ssm"].run(trace(_model("s4d", discretization="bilinear"), 3))
    diff = np.abs(zoh.node("blocks.0.ssm").op.a_bar - bil.node("blocks.0.ssm").op.a_bar)
    assert diff.max() > 1e-8


# ---- fold_batchnorm


def _fold(graph: Graph) -> Graph:
    fold = PASSES["fold_batchnorm"]
    assert fold.match(graph)
    done = fold.run(graph)
    assert not fold.match(done)
    return done


def test_batchnorm_folds_into_the_previous_linear() -> None:
    graph = _graph(
        Node("lin", _linear(H, 3, 0), ("input",)),
        Node("bn", _bn(1), ("lin",)),
        Node("gelu", ops.Activation("gelu"), ("bn",)),
        Node("output", ops.Output(), ("gelu",)),
    )
    done = _fold(graph)
    assert _kinds(done) == ["input", "linear", "activation", "output"]
    assert done.node("gelu").inputs == ("lin",)
    _same_function(graph, done)


def test_batchnorm_folds_into_the_next_linear_when_the_previous_is_shared() -> None:
    graph = _graph(
        Node("enc", _linear(H, 3, 0), ("input",)),
        Node("bn", _bn(1), ("enc",)),
        Node("lin", _linear(H, H, 2), ("bn",)),
        Node("sum", ops.Add(), ("enc", "lin")),
        Node("output", ops.Output(), ("sum",)),
    )
    done = _fold(graph)
    assert _kinds(done) == ["input", "linear", "linear", "add", "output"]
    assert done.node("lin").inputs == ("enc",)
    _same_function(graph, done)


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("discretized", [True, False])
def test_batchnorm_folds_into_the_next_ssm_with_its_shift(discretized: bool, chained: bool) -> None:
    """Chained: the second BatchNorm folds first, so the first meets an SSM that already
    has a shift (u_shift' = (u_shift + shift) / scale)."""
    ssm = _s4d(3)
    bns = [Node("bn", _bn(1), ("enc",))]
    if chained:
        bns.append(Node("bn2", _bn(2), ("bn",)))
    graph = _graph(
        Node("enc", _linear(H, 3, 0), ("input",)),
        *bns,
        Node("ssm", ssm, (bns[-1].name,)),
        Node("sum", ops.Add(), ("enc", "ssm")),
        Node("output", ops.Output(), ("sum",)),
    )
    if discretized:
        graph = PASSES["discretize_ssm"].run(graph)
    done = _fold(graph)
    # Standalone (not discretized first), the S4D is discretized on the spot.
    assert _kinds(done) == ["input", "linear", "ssm", "add", "output"]
    folded = done.node("ssm").op
    assert np.all(folded.u_shift != 0)
    _same_function(graph, done)


def test_batchnorm_that_cannot_fold_becomes_a_channel_affine() -> None:
    graph = _graph(
        Node("enc", _linear(H, 3, 0), ("input",)),
        Node("bn", _bn(1), ("enc",)),  # enc is shared; bn feeds two nodes
        Node("spike", ops.Heaviside(), ("bn",)),
        Node("sum", ops.Add(), ("enc", "bn", "spike")),
        Node("bn2", _bn(2, scale_zero=True), ("sum",)),  # zero scale: no shift into the SSM
        Node("ssm", _s4d(3), ("bn2",)),
        Node("output", ops.Output(), ("ssm",)),
    )
    done = PASSES["discretize_ssm"].run(graph)
    done = _fold(done)
    assert _kinds(done) == [
        "input",
        "linear",
        "affine",
        "heaviside",
        "add",
        "affine",
        "ssm",
        "output",
    ]
    _same_function(graph, done)


def test_batchnorm_after_batchnorm_folds_repeatedly() -> None:
    graph = _graph(
        Node("lin", _linear(H, 3, 0), ("input",)),
        Node("bn1", _bn(1), ("lin",)),
        Node("bn2", _bn(2), ("bn1",)),
        Node("output", ops.Output(), ("bn2",)),
    )
    done = _fold(graph)
    assert _kinds(done) == ["input", "linear", "output"]
    _same_function(graph, done)


# ---- fold_thresholds


def _neuron_graph(producer: ops.Op, neuron: ops.Op, shared: bool = False) -> Graph:
    tail = (
        Node("sum", ops.Add(), ("prod", "spike"))
        if shared
        else Node("sum", ops.Identity(), ("spike",))
    )
    return _graph(
        Node("enc", _linear(H, 3, 0), ("input",)),
        Node("prod", producer, ("enc",)),
        Node("spike", neuron, ("prod",)),
        tail,
        Node("mix", _linear(2, H, 9), ("sum",)),
        Node("output", ops.Output(), ("mix",)),
    )


def _reset_refractory(seed: int) -> ops.ResetRefractory:
    rng = _rng(seed)
    return ops.ResetRefractory(
        beta=rng.uniform(0.0, 0.95, H), theta=rng.uniform(0.2, 3.0, H), rho=rng.uniform(0, 1, H)
    )


def _lif(seed: int) -> ops.LIF:
    return ops.LIF(tau=0.25, threshold=_rng(seed).uniform(0.2, 3.0, H))


@pytest.mark.parametrize("neuron", ["reset_refractory", "lif"])
@pytest.mark.parametrize("producer", ["ssm", "s4d", "linear"])
def test_thresholds_fold_into_the_producer_and_spikes_do_not_change(
    neuron: str, producer: str
) -> None:
    make_neuron = _reset_refractory if neuron == "reset_refractory" else _lif
    prod = {
        "s4d": _s4d(3),
        "ssm": discretize_s4d(_s4d(3)),
        "linear": _linear(H, H, 4),
    }[producer]
    if producer == "linear":
        prod = ops.Linear(prod.weight * 3, prod.bias)  # make spikes busy
    graph = _neuron_graph(prod, make_neuron(5))
    fold = PASSES["fold_thresholds"]
    assert fold.match(graph)
    done = fold.run(graph)
    assert not fold.match(done)
    new = done.node("spike").op
    old = graph.node("spike").op
    if neuron == "reset_refractory":
        np.testing.assert_array_equal(new.theta, np.ones(H))
        np.testing.assert_allclose(new.rho, old.rho / old.theta, rtol=1e-15)
        np.testing.assert_array_equal(new.beta, old.beta)
    else:
        np.testing.assert_array_equal(new.threshold, np.ones(H))
    before: dict[str, np.ndarray] = {}
    run_graph(graph, _inputs(), before)
    after = _same_function(graph, done)
    assert 0.05 < before["spike"].mean() < 0.95, "spikes must be busy for the test to mean much"
    np.testing.assert_array_equal(after["spike"], before["spike"])


def test_thresholds_stay_when_the_producer_has_other_consumers() -> None:
    graph = _neuron_graph(_linear(H, H, 4), _reset_refractory(5), shared=True)
    assert not PASSES["fold_thresholds"].match(graph)
    other = _neuron_graph(ops.Activation("gelu"), _lif(5))  # not a Linear/SSM producer
    assert not PASSES["fold_thresholds"].match(other)
    assert run_passes(graph).node("spike").op.theta is graph.node("spike").op.theta


@pytest.mark.parametrize(
    ("field", "value"), [("max_rounds", 0), ("max_rounds", "x"), ("headroom_bits", 1.5)]
)
def test_quant_config_refuses_what_it_cannot_use(field: str, value: object) -> None:
    from snncompile.errors import UsageError
    from snncompile.quantize.quantize import QuantConfig

    with pytest.raises(UsageError, match=f"{field} must be an integer in"):
        QuantConfig(**{field: value})


def test_a_neuron_keeping_its_threshold_lowers_to_the_same_function() -> None:
    """Where fold_thresholds cannot fold (the producer has another consumer), lowering
    scales the neuron's input by 1/theta itself and must scale rho alike (rho / theta);
    the float64 netlist then computes what the graph does."""
    from snncompile.lower.lower import lower
    from snncompile.reference.simulator import simulate

    busy = _linear(H, H, 4)
    graph = _neuron_graph(ops.Linear(busy.weight * 3, busy.bias), _reset_refractory(5), True)
    nodes = list(graph)
    tail = nodes[-1]
    graph = Graph((*nodes[:-1], Node("pool", ops.Pool("mean"), (tail.inputs[0],)),
                   Node("output", ops.Output(), ("pool",))))  # fmt: skip
    passed = run_passes(graph)
    assert not np.all(passed.node("spike").op.theta == 1.0)  # nothing folded
    u = _inputs()
    traces: dict[str, np.ndarray] = {}
    want = run_graph(graph, u, traces)
    assert 0.05 < traces["spike"].mean() < 0.95
    got = simulate(lower(passed), u).logits
    assert float(np.abs(got - want).max()) <= 1e-9 * float(np.abs(want).max())
