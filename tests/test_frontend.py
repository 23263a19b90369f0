"""Frontend: torch model -> float IR Graph. The traced graph, run by the float64 test
interpreter, computes what the PyTorch model computes; everything the IR cannot express
is refused in one error that names every offender."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from snncompile.checkpoint import load_checkpoint
from snncompile.compiler import compile_model
from snncompile.errors import CorruptInputError, UnsupportedError, UsageError
from snncompile.frontend import load_user_model, trace, trace_checkpoint
from snncompile.ir import ops
from snncompile.ir.interpret import run_graph
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.models.neurons.lif import LIFNeuron
from snncompile.models.norm import SequenceBatchNorm
from snncompile.models.s4d import S4D

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((ROOT / "examples" / "checkpoints").glob("*.pt"))
HELPERS = Path(__file__).resolve().parent / "helpers"
TRACEABLE = ["spike-ssm", "spiking-ssm", "binary-s4d", "s4d"]
SPIKING = {"spike-ssm", "spiking-ssm", "binary-s4d"}


def _model(family: str, **overrides: object) -> nn.Module:
    torch.manual_seed(0)
    cfg = dict(family=family, d_input=3, d_output=4, d_model=8, n_layers=2, d_state=6)
    cfg.update(overrides)
    return build_model(ModelConfig(**cfg)).double()


def _with_bn_stats(model: nn.Module) -> nn.Module:
    """Move BatchNorm running statistics away from their init (mean 0, var 1)."""
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 20, model.config.d_input, dtype=torch.float64) * 2 + 0.5)
    return model.eval()


def assert_close(got: np.ndarray, want: np.ndarray, rel: float = 1e-9) -> None:
    scale = max(float(np.abs(want).max()), 1e-300)
    assert got.shape == want.shape
    err = float(np.abs(got - want).max()) / scale
    assert err <= rel, f"relative error {err:.3e} > {rel}"


# ---- structure


def test_trace_names_every_node_by_its_module() -> None:
    graph = trace(_model("spike-ssm", prenorm=True, pooling="last"), 3)
    names = [node.name for node in graph]
    block = [
        "norm",
        "ssm",
        "act",
        "dropout",
        "mix.proj",
        "mix",
        "add",
    ]
    expected = ["input", "encoder"]
    for i in range(2):
        expected += [f"blocks.{i}.{part}" for part in block]
    expected += ["pool", "decoder", "output"]
    assert names == expected
    kinds = {node.name: node.op.kind for node in graph}
    assert kinds["blocks.0.norm"] == "batchnorm"
    assert kinds["blocks.0.ssm"] == "s4d"
    assert kinds["blocks.0.act"] == "reset_refractory"
    assert kinds["blocks.0.mix.proj"] == "linear"
    assert kinds["blocks.0.mix"] == "glu"
    assert graph.node("pool").op.mode == "last"
    assert graph.node("blocks.0.add").inputs == ("encoder", "blocks.0.mix")
    assert graph.node("blocks.1.add").inputs == ("blocks.0.add", "blocks.1.mix")
    assert graph.size("blocks.0.mix.proj") == 16
    assert graph.size("output") == 4


def test_parameters_reach_the_ir_in_their_natural_units() -> None:
    model = _model("spike-ssm", trainable_beta=True, beta=0.7, theta_init=1.5, rho_init=0.25)
    graph = trace(model, 3)
    act = model.blocks[0].act
    op = graph.node("blocks.0.act").op
    assert isinstance(op, ops.ResetRefractory)
    np.testing.assert_array_equal(op.theta, act.theta.detach().numpy())
    np.testing.assert_array_equal(op.rho, act.rho.detach().numpy())
    np.testing.assert_array_equal(op.beta, act.beta.detach().numpy())
    assert op.theta == pytest.approx(1.5) and op.rho == pytest.approx(0.25)
    s4d = graph.node("blocks.0.ssm").op
    ssm = model.blocks[0].ssm
    assert s4d.a.dtype == np.complex128 and s4d.a.shape == (8, 3)
    # torch's exp, as the model computes it (numpy's exp can differ by an ulp: on CPUs
    # with AVX-512, numpy 1.26 uses its own vectorized exp).
    np.testing.assert_array_equal(s4d.a.real, -torch.exp(ssm.log_A_real).detach().numpy())
    np.testing.assert_array_equal(s4d.c, torch.view_as_complex(ssm.C[0]).detach().numpy())


def test_lif_threshold_is_exp_of_ln_vth_and_conv_projection_is_squeezed() -> None:
    model = _model("spiking-ssm")
    with torch.no_grad():
        model.blocks[1].act.ln_vth.copy_(torch.linspace(-0.5, 0.5, 8))
    graph = trace(model, 3)
    lif = graph.node("blocks.1.act").op
    assert isinstance(lif, ops.LIF) and lif.tau == 0.125
    ln_vth = model.blocks[1].act.ln_vth
    np.testing.assert_array_equal(lif.threshold, torch.exp(ln_vth).detach().numpy())
    assert lif.threshold[0] == pytest.approx(np.exp(-0.5), rel=1e-6)
    proj = graph.node("blocks.1.mix.proj").op
    conv = model.blocks[1].mix.proj
    assert isinstance(conv, nn.Conv1d)
    assert proj.weight.shape == (16, 8)
    np.testing.assert_array_equal(proj.weight, conv.weight.detach().numpy()[:, :, 0])


def test_trace_does_not_touch_the_callers_model() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig("binary-s4d", 3, 4, d_model=8, d_state=4, dropout=0.1))
    model.train()
    before = copy.deepcopy(model.state_dict())
    graph = trace(model, 3)
    assert model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert graph.node("blocks.0.dropout").op.p == 0.1


def test_gsu_mixer_is_kept_opaque_and_the_interpreter_refuses_it() -> None:
    graph = trace(_model("binary-s4d-gsu"), 3)
    op = graph.node("blocks.0.act").op
    assert isinstance(op, ops.Opaque) and op.module == "GSUMixer"
    with pytest.raises(UnsupportedError, match=r"blocks\.0\.act"):
        run_graph(graph, np.zeros((1, 5, 3)))


def test_bidirectional_s4d_is_refused_naming_every_layer() -> None:
    with pytest.raises(UnsupportedError) as info:
        trace(_model("s4d", bidirectional=True), 3)
    message = str(info.value)
    assert "blocks.0.ssm (S4D)" in message and "blocks.1.ssm (S4D)" in message
    assert "non-causal" in message
    assert info.value.exit_code == 4


def test_bad_input_size_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"linear weight has shape .*, input width is 5"):
        trace(_model("s4d"), 5)
    with pytest.raises(UsageError, match="positive int"):
        trace(_model("s4d"), 0)


def test_values_that_make_an_invalid_graph_name_their_source() -> None:
    model = _model("spike-ssm")
    with torch.no_grad():
        model.blocks[0].ssm.log_dt.fill_(-100.0)  # dt = e^-100: the pole rounds to 1
    with pytest.raises(UsageError, match=r"invalid: node 'blocks\.0\.ssm': ssm \|a_bar\|"):
        compile_model(model, stop_after="passes")
    with torch.no_grad():
        model.blocks[0].act.beta_fixed.fill_(2.0)
    with pytest.raises(CorruptInputError, match=r"^m\.pt: holds a model .* beta must be in"):
        trace(model, 3, source="m.pt")


# ---- the graph computes what the model computes


@pytest.mark.parametrize("family", TRACEABLE)
@pytest.mark.parametrize(
    ("prenorm", "pooling", "discretization"),
    [(False, "mean", "zoh"), (True, "last", "zoh"), (True, "mean", "bilinear")],
)
def test_interpreter_equals_the_model(
    family: str, prenorm: bool, pooling: str, discretization: str
) -> None:
    model = _model(
        family,
        prenorm=prenorm,
        pooling=pooling,
        discretization=discretization,
        trainable_beta=family == "spike-ssm",
        beta=0.8,
    )
    if prenorm:
        _with_bn_stats(model)
    model.eval()
    graph = trace(model, 3)
    torch.manual_seed(1)
    u = torch.randn(3, 25, 3, dtype=torch.float64) * 2
    with torch.no_grad():
        steps = model.forward_steps(u).numpy()
        parallel = model(u).numpy()
    traces: dict[str, np.ndarray] = {}
    logits = run_graph(graph, u.numpy(), traces)
    assert_close(logits, steps)
    assert_close(logits, parallel)
    if family in SPIKING:
        rate = traces["blocks.0.act"].mean()
        assert 0.0 < rate < 1.0, "spikes must be neither silent nor saturated for the test"
        assert set(np.unique(traces["blocks.0.act"])) <= {0.0, 1.0}


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.stem)
def test_interpreter_equals_bundled_checkpoints(path: Path) -> None:
    checkpoint = load_checkpoint(path)
    graph = trace_checkpoint(path)
    assert graph.meta["family"] == checkpoint.config.family
    model = checkpoint.model.double().eval()
    u = checkpoint.calibration[:6].double()
    with torch.no_grad():
        steps = model.forward_steps(u).numpy()
        parallel = model(u).numpy()
    logits = run_graph(graph, u.numpy())
    assert_close(logits, steps)
    assert_close(logits, parallel)


# ---- user models, layouts, functions


class ChannelsFirst(nn.Module):
    """Pointwise Conv1d, BatchNorm1d and GLU(dim=1) on (B, H, L), via transpose/permute."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.conv = nn.Conv1d(4, 8, kernel_size=1)
        self.bn = nn.BatchNorm1d(8)
        self.glu = nn.GLU(dim=1)
        self.ssm = S4D(4, 4)
        self.act = nn.GELU(approximate="tanh")
        self.decoder = nn.Linear(4, 2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.encoder(u).transpose(1, 2)
        h = self.glu(self.bn(self.conv(h)))
        h = self.act(self.ssm(h.permute(0, 2, 1).contiguous()))
        return self.decoder(h.transpose(2, 1).mean(dim=-1))


def test_layouts_are_tracked_through_transpose_and_permute() -> None:
    torch.manual_seed(0)
    model = ChannelsFirst().double()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    graph = trace(model, 3)
    assert [n.op.kind for n in graph] == [
        "input",
        "linear",
        "linear",
        "batchnorm",
        "glu",
        "s4d",
        "activation",
        "pool",
        "linear",
        "output",
    ]
    assert graph.node("act").op.function == "gelu-tanh"
    u = torch.randn(2, 15, 3, dtype=torch.float64)
    with torch.no_grad():
        want = model.eval()(u).numpy()
    assert_close(run_graph(graph, u.numpy()), want)


class Misused(nn.Module):
    """Every layer here is supported, but on the wrong layout."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 5)
        self.bn = nn.BatchNorm1d(3)
        self.conv = nn.Conv1d(3, 3, kernel_size=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        a = self.lin(u.transpose(1, 2))  # (B, 3, L=5): would mix time steps
        b = self.bn(u)  # channels-last
        c = self.conv(u)  # channels-last
        return (a.transpose(1, 2) + b + c)[:, -1]


def test_layers_on_the_wrong_layout_are_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedError) as info:
        trace(Misused(), 3)
    offenders = info.value.offenders
    assert any(o.startswith("lin (Linear)") and "mix time steps" in o for o in offenders)
    assert any(o.startswith("bn (BatchNorm1d)") and "over time steps" in o for o in offenders)
    assert any(o.startswith("conv (Conv1d)") and "channels-first" in o for o in offenders)
    assert len(offenders) == 3  # the add and the index downstream are not blamed


class _Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return x
        return -x


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.relu = nn.ReLU()
        self.branchy = _Branchy()
        self.conv = nn.Conv1d(4, 4, kernel_size=3)
        self.decoder = nn.Linear(4, 2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.relu(self.encoder(u)))
        h = self.branchy(h) * 2.0
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        return self.decoder(h[:, 0])


def test_every_unsupported_part_is_listed_in_one_error() -> None:
    with pytest.raises(UnsupportedError) as info:
        trace(Unsupported(), 3)
    message = str(info.value)
    offenders = info.value.offenders
    assert len(offenders) == 6, offenders
    assert offenders[0] == "relu (ReLU): not supported"
    assert offenders[1].startswith("torch.sigmoid in the model's forward")
    assert offenders[2].startswith("branchy (_Branchy): cannot trace its forward")
    assert offenders[3].startswith("operator.mul in the model's forward")
    assert offenders[4].startswith("conv (Conv1d): only a pointwise Conv1d")
    assert "kernel_size 3" in offenders[4]
    assert offenders[5].startswith("operator.getitem in the model's forward")
    assert "x[:, 0]" in offenders[5] and "only the last time step" in offenders[5]
    assert "Supported: modules: S4D" in message and "nn.GLU" in message
    assert message.count("\n") == 0


class AddChain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = u + self.a(u) + self.b(u)  # one 3-input add
        g = torch.add(h, self.a(h))  # a second call of `a`
        return g.add(h)[:, -1]


def test_add_chains_flatten_and_repeated_calls_get_unique_names() -> None:
    torch.manual_seed(0)
    model = AddChain().double()
    graph = trace(model, 3)
    adds = [node for node in graph if isinstance(node.op, ops.Add)]
    # g.add(h) absorbs g = torch.add(h, a(h)), whose only use it is; h has three uses.
    assert [(node.name, node.inputs) for node in adds] == [
        ("add", ("input", "a", "b")),
        ("add_1", ("add", "a_1", "add")),
    ]
    u = torch.randn(2, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        want = model(u).numpy()
    assert_close(run_graph(graph, u.numpy()), want)


class TwoInputs(nn.Module):
    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return u.mean(dim=1), mask


def test_extra_inputs_and_tuple_outputs_are_refused() -> None:
    with pytest.raises(UnsupportedError) as info:
        trace(TwoInputs(), 3)
    offenders = info.value.offenders
    assert any("forward argument 'mask'" in o for o in offenders)
    assert any("the model's output" in o and "tuple" in o for o in offenders)


class ReturnsAParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.bias


def test_an_output_not_computed_from_the_input_is_refused() -> None:
    with pytest.raises(UnsupportedError) as info:
        trace(ReturnsAParameter(), 3)
    assert info.value.offenders == ["the model's output: bias is not computed from the input"]


def test_sequence_batchnorm_keeps_the_batchnorm1d_state_dict() -> None:
    plain, ours = nn.BatchNorm1d(5), SequenceBatchNorm(5)
    with torch.no_grad():
        plain.running_mean.uniform_()
        plain.weight.uniform_()
    assert list(plain.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(plain.state_dict())
    ours.eval(), plain.eval()
    x = torch.randn(2, 7, 5)
    assert torch.equal(ours(x), plain(x.transpose(1, 2)).transpose(1, 2))
    assert torch.equal(ours(x[:, 0]), plain(x[:, 0]))


# ---- load_user_model


@pytest.fixture
def user_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(HELPERS))
    import tiny_user_model

    torch.manual_seed(3)
    model = tiny_user_model.build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        model.spike.ln_vth.fill_(-1.0)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    return path


def test_user_model_loads_traces_and_matches_its_forward(user_weights: Path) -> None:
    model = load_user_model("tiny_user_model:build", user_weights)
    assert not model.training
    saved = torch.load(user_weights, weights_only=True)
    assert torch.equal(model.ssm.C, saved["ssm.C"])
    graph = trace(model, 3)
    assert [n.op.kind for n in graph] == [
        "input",
        "linear",
        "s4d",
        "lif",
        "dropout",
        "linear",
        "glu",
        "add",
        "pool",
        "linear",
        "output",
    ]
    model = model.double()
    torch.manual_seed(4)
    u = torch.randn(4, 30, 3, dtype=torch.float64)
    with torch.no_grad():
        want = model(u).numpy()
    traces: dict[str, np.ndarray] = {}
    assert_close(run_graph(graph, u.numpy(), traces), want)
    assert 0.0 < traces["spike"].mean() < 1.0


@pytest.mark.parametrize(
    "entry", ["tiny_user_model", "tiny_user_model:", ":build", "a:b:c", "1mod:build", "m:f()"]
)
def test_malformed_entries_are_usage_errors(entry: str, user_weights: Path) -> None:
    with pytest.raises(UsageError, match="malformed"):
        load_user_model(entry, user_weights)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("no_such_module_xyz:build", "cannot import"),
        ("tiny_user_model:missing", "no attribute"),
        ("tiny_user_model:VALUE", "not callable"),
        ("tiny_user_model:not_a_module", "not a torch.nn.Module"),
        ("tiny_user_model:broken", "needs a config file"),
        ("tiny_user_model:exits", r"tiny_user_model:exits\(\) failed: it called sys.exit\(0\)"),
        ("tiny_user_model:closes", r"tiny_user_model:closes\(\) failed: GeneratorExit$"),
    ],
)
def test_bad_factories_are_usage_errors(entry: str, match: str, user_weights: Path) -> None:
    with pytest.raises(UsageError, match=match):
        load_user_model(entry, user_weights)


@pytest.mark.parametrize(
    ("entry", "error", "match"),
    [
        (
            "broken_user_model:lazy",
            UsageError,
            r"^looking up 'lazy' in 'broken_user_model' failed: ValueError: the lazy factory",
        ),
        (
            "user_model_missing_dependency:build",
            UsageError,
            r"^importing 'user_model_missing_dependency' failed: No module named "
            r"'user_model_missing'$",
        ),
        (
            "broken_user_model:bad_loader",
            UsageError,
            r"^loading .*weights.pt into broken_user_model:bad_loader\(\)'s model failed: "
            r"ValueError: custom loader failed$",
        ),
        (
            "broken_user_model:bad_eval",
            UsageError,
            r"^broken_user_model:bad_eval\(\)'s model.eval\(\) failed: ValueError: no eval",
        ),
    ],
)
def test_an_entrys_own_code_failing_is_a_usage_error(
    entry: str, error: type, match: str, user_weights: Path
) -> None:
    """Whatever the user's module raises is one usage error naming what failed: a
    module's __getattr__, its load_state_dict or eval raising a ValueError was an
    internal error (exit 1); a dependency missing whose name starts the module's was
    "cannot import model module" of the module itself."""
    with pytest.raises(error, match=match):
        load_user_model(entry, user_weights)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("broken_user_model:forward_exits", r"_ForwardExits.forward .*\(it called sys.exit\(3\)\)"),
        (
            "broken_user_model:part_exits",
            r"part \(_Exits\): cannot trace its forward \(GeneratorExit\)",
        ),
        ("broken_user_model:holds_lock", r"cannot copy _HoldsLock to compile it \(TypeError: "),
    ],
)
def test_an_entry_model_that_exits_or_cannot_be_copied_is_unsupported(
    entry: str, match: str, user_weights: Path
) -> None:
    """A forward calling sys.exit(3) ended export with exit 3 ("an equivalence check
    failed") in silence, a GeneratorExit escaped as a traceback, a model holding a lock
    was an internal error (deepcopy's TypeError)."""
    model = load_user_model(entry, user_weights)
    with pytest.raises(UnsupportedError, match=match):
        trace(model, 3)


def test_an_in_memory_model_that_cannot_be_copied_is_unsupported(user_weights: Path) -> None:
    """The API copies a model passed in memory before compiling it (the caller's keeps
    its training mode): deepcopy's TypeError was an internal error there too."""
    from snncompile.compiler import load_model

    model = load_user_model("broken_user_model:holds_lock", user_weights)
    with pytest.raises(UnsupportedError, match=r"^cannot copy _HoldsLock to compile it"):
        load_model(model)


def test_sigterm_while_an_entry_module_is_imported_is_not_its_sys_exit(
    user_weights: Path,
    tmp_path: Path,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    """SIGTERM's exit raised inside the user's import was taken for the module's own
    sys.exit(): a second line, "importing ... failed: it called sys.exit(143)"."""
    out = tmp_path / "art"
    run = cli("export", str(user_weights), "--entry", "user_model_terminated:build", "-o", str(out))
    assert (run.returncode, run.stdout, run.stderr) == (143, "", "error: terminated (SIGTERM)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_bare_pickle_as_weights_is_refused_naming_it_without_a_warning(
    user_weights: Path, tmp_path: Path, protocol: int
) -> None:
    """As a checkpoint is (one reader for both): torch warned in two lines about the
    pickle protocol before our error, and a protocol-5 pickle was called 'truncated or
    corrupt' instead of naming the object it would have called."""
    import pickle
    import warnings

    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps(_Payload(), protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CorruptInputError, match=r"refused.*\((builtins\.)?print\)"):
            load_user_model("tiny_user_model:build", path)


def test_bad_weights_are_corrupt_input(user_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError, match="no such file"):
        load_user_model("tiny_user_model:build", tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(
        CorruptInputError, match=r"not a weights file: .* starting with b'not a to'"
    ):
        load_user_model("tiny_user_model:build", garbage)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"encoder.weight": _Payload()}, unsafe)
    with pytest.raises(CorruptInputError, match="refused"):
        load_user_model("tiny_user_model:build", unsafe)
    state = torch.load(user_weights, weights_only=True)
    del state["ssm.D"]
    state["extra"] = torch.zeros(1)
    mismatch = tmp_path / "mismatch.pt"
    torch.save(state, mismatch)
    with pytest.raises(CorruptInputError, match="do not fit") as info:
        load_user_model("tiny_user_model:build", mismatch)
    assert "ssm.D" in str(info.value)


def test_a_user_model_with_our_neurons_and_torch_layers_traces_bilinear() -> None:
    # The helper's S4D is bilinear; the frontend keeps the choice for discretize_ssm.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), S4D(4, 4, discretization="bilinear"), LIFNeuron(4))
    graph = trace(model, 3)
    assert graph.node("1").op.discretization == "bilinear"
    assert graph.output.inputs == ("2",)


def test_verify_of_a_state_dict_names_the_calibration_inputs_it_ran_on(
    user_weights: Path, tmp_path: Path
) -> None:
    # A state_dict embeds nothing: the report said "the embedded calibration batch".
    from snncompile.api import verify_model

    x = np.random.default_rng(0).standard_normal((4, 12, 3))
    report = verify_model(user_weights, entry="tiny_user_model:build", calibration=x)
    assert report.data == "the calibration inputs" and report.n == 4
    # and that these are no held-out data (it passed without a word)
    assert report.warnings == [
        "verified on the calibration inputs, the inputs the quantization was calibrated on "
        "(the model names no task): pass --data FILE to verify on held-out inputs"
    ]
    held_out = tmp_path / "held_out.npy"
    np.save(held_out, x[:2])
    report = verify_model(user_weights, entry="tiny_user_model:build", calibration=x, data=held_out)
    assert report.data == str(held_out) and report.warnings == []


def test_an_entry_models_artifact_names_its_weights_file(
    user_weights: Path, tmp_path: Path
) -> None:
    """An --entry artifact's manifest names the weights file beside the entry: it named
    the entry alone, so the artifact could not be traced back to its weights."""
    from snncompile.api import export_model, inspect_path

    x = np.random.default_rng(0).standard_normal((4, 12, 3))
    out = tmp_path / "user.ref"
    export_model(
        user_weights, out, target="reference", entry="tiny_user_model:build", calibration=x
    )
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert source["entry"] == "tiny_user_model:build"
    assert source["weights"] == str(user_weights)
    assert inspect_path(out)["manifest"]["source"] == source


class DecoderFirst(nn.Module):
    """Registers its decoder before its encoder: the first nn.Linear is not the input's."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Linear(4, 3)
        self.encoder = nn.Linear(2, 4)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(u))[:, -1]


def test_compile_model_takes_the_input_width_of_an_in_memory_model() -> None:
    # The docs showed compile_model(model, input_size=...), which was a TypeError, and the
    # width was guessed from the first nn.Linear (here the decoder: 4, not 2).
    from snncompile.compiler import compile_model

    torch.manual_seed(0)
    model = DecoderFirst().double()
    x = np.random.default_rng(0).random((2, 5, 2))
    done = compile_model(model, input_size=2, calibration=x, stop_after="trace")
    assert done.graph.input.op.size == 2
    with pytest.raises(UsageError, match="input_size must be a positive int, got 0"):
        compile_model(model, input_size=0, calibration=x)
    with pytest.raises(UsageError, match="input_size applies to an in-memory or --entry model"):
        compile_model(ROOT / "examples" / "checkpoints" / "spike-ssm-sdigits.pt", input_size=1)


def test_a_model_without_calibration_inputs_is_told_both_ways_to_give_them() -> None:
    # It said "the checkpoint has none embedded; pass --calib FILE" to a Python caller
    # whose model came from memory.
    torch.manual_seed(0)
    cfg = ModelConfig(family="binary-s4d", d_input=1, d_output=2, d_model=4, d_state=4)
    with pytest.raises(UsageError) as info:
        compile_model(build_model(cfg), input_size=1)
    message = str(info.value)
    assert message.startswith("quantization needs calibration inputs and the model embeds none")
    assert "--calib FILE, or calibration= from Python" in message


def test_a_nir_graph_not_given_as_a_nir_path_is_told_how(tmp_path: Path) -> None:
    # It was "--dt and --reset apply to .nir sources only" (with dt) or a TypeError.
    import shutil

    import nir

    from snncompile.compiler import compile_model

    source = ROOT / "tests" / "data" / "nir-examples" / "braille_noDelay_bias_zero.nir"
    with pytest.raises(UsageError, match=r"in-memory NIR graph: write it with nir\.write"):
        compile_model(nir.read(source), dt=1e-4)
    shutil.copy(source, tmp_path / "braille.h5")
    with pytest.raises(UsageError, match="is an HDF5 file: a NIR graph is read as one when"):
        compile_model(tmp_path / "braille.h5", dt=1e-4)


@pytest.mark.parametrize(
    ("source", "config", "message"),
    [(42, None, "source must be a path or an nn.Module, got int"),
     (None, None, "source must be a path or an nn.Module, got NoneType"),
     (ROOT / "examples" / "checkpoints" / "spike-ssm-sdigits.pt", {"weight_bits": 4},
      "config must be a QuantConfig, got dict")],
)  # fmt: skip
def test_compile_model_names_arguments_of_the_wrong_kind(source, config, message) -> None:
    from snncompile.compiler import compile_model

    with pytest.raises(UsageError, match=message):
        compile_model(source, config=config)


def test_compile_model_leaves_the_callers_model_in_its_mode() -> None:
    # It called .eval() on the caller's object: a model in training stayed in eval.
    from snncompile.compiler import compile_model

    model = DecoderFirst().double().train()
    x = np.random.default_rng(0).random((2, 5, 2))
    compile_model(model, input_size=2, calibration=x, stop_after="trace")
    assert model.training


class MeanKeepingTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(u).mean(dim=1, keepdim=True))  # (B, 1, 2), not (B, 2)


def test_a_time_mean_that_keeps_its_axis_is_refused() -> None:
    """Pooling gives (B, d); with keepdim the model's output keeps a time axis of one,
    which the compiled network (one logit vector per sequence) does not compute."""
    with pytest.raises(UnsupportedError) as info:
        trace(MeanKeepingTime(), 3)
    assert any("keepdim=False" in o for o in info.value.offenders), info.value.offenders


@pytest.mark.parametrize("command", ["export", "verify"])
def test_what_an_entry_model_prints_goes_to_stderr_not_into_the_json_report(
    command: str,
    user_weights: Path,
    tmp_path: Path,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    """A factory or forward that prints (a debugging print) wrote into stdout, before the
    report: `--json` output was no JSON."""
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((4, 12, 3)))
    argv = [command, str(user_weights), "--entry", "tiny_user_model:talkative", "--calib", str(x)]
    if command == "export":
        argv += ["-o", str(tmp_path / "art")]
    run = cli(*argv, "--json")
    assert run.returncode == 0, run.stderr
    assert isinstance(json.loads(run.stdout), dict)
    assert "building the model" in run.stderr and "forward called" in run.stderr


def test_an_entry_forward_failing_on_the_verify_inputs_is_unsupported(
    user_weights: Path,
    tmp_path: Path,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    """A forward that traces, then raises on real inputs, was an internal error (exit 1,
    "a bug in snncompile") in verify's PyTorch run."""
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((4, 12, 3)))
    entry = "broken_user_model:refuses_real_inputs"
    run = cli("verify", str(user_weights), "--entry", entry, "--calib", str(x))
    assert (run.returncode, run.stdout) == (4, ""), run.stderr
    assert run.stderr == (
        "error: _RefusesRealInputs.forward failed on the verify inputs "
        "(ValueError: real inputs refused)\n"
    )
