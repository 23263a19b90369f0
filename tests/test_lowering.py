"""Lowering is exact: the float64 netlist reproduces PyTorch step mode (rung 1 of DESIGN.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snncompile.compiler import compile_model
from snncompile.errors import UnsupportedError
from snncompile.frontend.torch_trace import trace
from snncompile.lower.lower import lower
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.passes import run_passes
from snncompile.reference.simulator import simulate

CHECKPOINTS = sorted(
    p
    for p in (Path(__file__).parents[1] / "examples" / "checkpoints").glob("*.pt")
    if not p.name.startswith("s4d")  # the GELU baseline has no compartment (tested below)
)
HELPERS = Path(__file__).parent / "helpers"


def _step_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    model = model.double().eval()
    with torch.no_grad():
        if hasattr(model, "forward_steps"):
            return model.forward_steps(torch.from_numpy(x)).numpy()
        return model(torch.from_numpy(x)).numpy()


def _assert_exact(model: torch.nn.Module, width: int, x: np.ndarray) -> None:
    net = lower(run_passes(trace(model, width)))
    got = simulate(net, x).logits
    want = _step_logits(model, x)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-9 * scale, np.abs(got - want).max() / scale


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.stem)
def test_bundled_models_lower_exactly(path: Path) -> None:
    compiled = compile_model(path, stop_after="lower")
    x = compiled_calibration(path)
    got = simulate(compiled.float_netlist, x).logits
    want = _step_logits(compiled.model, x)
    assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()


def compiled_calibration(path: Path) -> np.ndarray:
    from snncompile.checkpoint import load_checkpoint

    return load_checkpoint(path).calibration.double().numpy()


@pytest.mark.parametrize(
    "overrides",
    [
        {"family": "spike-ssm", "prenorm": True, "pooling": "last"},
        {"family": "spiking-ssm", "prenorm": True, "discretization": "bilinear"},
        {"family": "binary-s4d", "gate": "hard-sigmoid", "ssm_init": "inv"},
        {"family": "spike-ssm", "n_layers": 3, "trainable_beta": True, "rho_init": 0.0},
    ],
    ids=lambda o: "-".join(f"{v}" for v in o.values()),
)
def test_random_models_lower_exactly(overrides: dict) -> None:
    torch.manual_seed(1)
    cfg = {"d_input": 2, "d_output": 3, "d_model": 6, "d_state": 8, "n_layers": 2, **overrides}
    model = build_model(ModelConfig(**cfg))
    # Give BatchNorm non-trivial statistics, and spike-friendly input magnitudes.
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 12, 2) * 3)
    model.eval()
    x = np.random.default_rng(0).normal(scale=3.0, size=(5, 12, 2))
    _assert_exact(model, 2, x)
    spikes = simulate(lower(run_passes(trace(model, 2))), x, record=True).traces
    rates = [spikes[n].mean() for n in spikes if n.endswith(".act")]
    assert all(0.0 < r < 1.0 for r in rates), rates  # neither silent nor saturated


def test_user_model_lowers_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HELPERS))
    sys.modules.pop("tiny_user_model", None)
    import tiny_user_model

    torch.manual_seed(3)
    model = tiny_user_model.build().eval()
    x = np.random.default_rng(1).normal(scale=2.0, size=(4, 10, tiny_user_model.D_INPUT))
    _assert_exact(model, tiny_user_model.D_INPUT, x)


@pytest.mark.parametrize(
    ("family", "op"), [("s4d", "Activation gelu"), ("binary-s4d-gsu", "Opaque GSUMixer")]
)
def test_ops_without_compartments_are_refused_by_name(family: str, op: str) -> None:
    """The op is named with what it keeps (it said only 'Opaque'), and the way out names
    the op it is for (it said 'these ops' right after the list of ops the targets take)."""
    model = build_model(ModelConfig(family=family, d_input=1, d_output=2, d_model=4, d_state=4))
    with pytest.raises(UnsupportedError) as info:
        lower(run_passes(trace(model, 1)))
    message = str(info.value)
    parts = f"blocks.0.act ({op}), blocks.1.act ({op})"
    assert message.startswith(f"no compartment for {parts}; the reference,")
    assert message.endswith(f"; a float model with this op ({op}) can still go to `onnx --float`")


def test_residual_paths_are_delayed_to_arrive_together() -> None:
    model = build_model(
        ModelConfig(family="spike-ssm", d_input=1, d_output=2, d_model=4, d_state=4)
    )
    net = lower(run_passes(trace(model, 1)))
    latency = net.latency()
    for syn in net.synapses:
        if net.population(syn.src).kind == "bias":
            assert syn.delay == latency[syn.dst] - 1
        else:
            assert latency[syn.src] + 1 + syn.delay == latency[syn.dst], syn.name
    skip = next(s for s in net.synapses if s.src == "encoder" and s.dst.endswith("add"))
    assert skip.delay == 3  # around ssm -> neuron -> glu
