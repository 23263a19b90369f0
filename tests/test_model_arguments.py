"""The model classes refuse wrong arguments and inputs with a one-line UsageError that
names the class and the argument, not with an error from deep inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snncompile.errors import UsageError
from snncompile.models.backbone import ModelConfig, SequenceModel, build_model
from snncompile.models.mixing import GLUMixer, GSUMixer
from snncompile.models.neurons.heaviside import HeavisideNeuron
from snncompile.models.neurons.lif import LIFNeuron
from snncompile.models.neurons.reset_refractory import ResetRefractoryNeuron
from snncompile.models.s4d import S4D

CONSTRUCTORS = [
    (lambda: S4D("3", 4), "S4D d_model must be a positive int, got '3'"),
    (lambda: S4D(3, 4.0), "S4D d_state must be a positive int, got 4.0"),
    (lambda: S4D(3, 4, dt_min="0.1"), "S4D dt_min must be a finite number"),
    (lambda: S4D(3, 4, dt_max=float("nan")), "S4D dt_max must be a finite number"),
    (lambda: LIFNeuron("3"), "LIFNeuron channels must be a positive int"),
    (lambda: LIFNeuron(3.0), "LIFNeuron channels must be a positive int, got 3.0"),
    (lambda: LIFNeuron(True), "LIFNeuron channels must be a positive int, got True"),
    (lambda: LIFNeuron(3, tau="x"), "LIFNeuron tau must be a finite number, got 'x'"),
    (lambda: HeavisideNeuron("3"), "HeavisideNeuron channels must be a positive int"),
    (lambda: HeavisideNeuron(3, slope=0), "HeavisideNeuron slope must be positive"),
    (lambda: ResetRefractoryNeuron(2.5), "ResetRefractoryNeuron channels must be a positive"),
    (
        lambda: ResetRefractoryNeuron(2, max_passes=0),
        "ResetRefractoryNeuron max_passes must be a positive int, got 0",
    ),
    (
        lambda: ResetRefractoryNeuron(2, max_passes=1.0),
        "ResetRefractoryNeuron max_passes must be a positive int, got 1.0",
    ),
    (lambda: ResetRefractoryNeuron(2, slope=0), "ResetRefractoryNeuron slope must be positive"),
    (
        lambda: ResetRefractoryNeuron(2, slope=float("inf")),
        "ResetRefractoryNeuron slope must be a finite number, got inf",
    ),
    (lambda: GLUMixer("3"), "GLUMixer d_model must be a positive int"),
    (lambda: GLUMixer(0), "GLUMixer d_model must be a positive int, got 0"),
    (lambda: GSUMixer(None), "GSUMixer d_model must be a positive int, got None"),
    (lambda: build_model({}), "model config lacks required keys: family, d_input, d_output"),
    (lambda: build_model(["spike-ssm"]), "needs a ModelConfig"),
    (lambda: SequenceModel({"family": "s4d"}), "SequenceModel needs a ModelConfig"),
    (lambda: ModelConfig.from_dict("s4d"), "a model config must be a dict, got str"),
]


@pytest.mark.parametrize("make, message", CONSTRUCTORS)
def test_wrong_constructor_arguments_are_named(make, message) -> None:
    with pytest.raises(UsageError) as info:
        make()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def _model() -> SequenceModel:
    return build_model(ModelConfig(family="s4d", d_input=2, d_output=3, d_model=4, d_state=4))


INPUTS = [
    (lambda: S4D(4, 4)(torch.zeros(2, 3)), "S4D expects x of shape (B, L, 4), got (2, 3)"),
    (lambda: S4D(4, 4)(torch.zeros(2, 3, 5)), "S4D expects x of shape (B, L, 4), got (2, 3, 5)"),
    (
        lambda: S4D(4, 4).step(torch.zeros(2, 3, 4), S4D(4, 4).init_state(2)),
        "S4D.step expects x of shape (B, 4), got (2, 3, 4)",
    ),
    (lambda: LIFNeuron(4)(torch.zeros(2, 3, 5)), "LIFNeuron expects x of shape (B, L, 4)"),
    (
        lambda: LIFNeuron(4).step(torch.zeros(2, 5), (torch.zeros(2, 4),)),
        "LIFNeuron.step expects x of shape (B, 4), got (2, 5)",
    ),
    (lambda: HeavisideNeuron(4)([0.5]), "HeavisideNeuron expects a tensor, got list"),
    (lambda: HeavisideNeuron(4)(torch.zeros(2, 3, 4, dtype=torch.int64)), "floating-point"),
    (lambda: ResetRefractoryNeuron(4)([1.0]), "ResetRefractoryNeuron expects a tensor"),
    (
        lambda: GLUMixer(4)(torch.zeros(2, 3, 5)),
        "GLUMixer expects x of shape (B, L, 4) or (B, 4), got (2, 3, 5)",
    ),
    (lambda: GSUMixer(4)(torch.zeros(5)), "GSUMixer expects x of shape (B, L, 4) or (B, 4)"),
    (lambda: _model()(torch.zeros(2, 3, 5)), "SequenceModel expects x of shape (B, L, 2)"),
    (lambda: _model().forward_steps(torch.zeros(2, 5)), "forward_steps expects x of shape"),
    # These failed inside torch (torch.cat, MKL FFT, a matmul, Linear) or, for NaN,
    # returned NaN logits in every family but spike-ssm (audit41).
    (lambda: _model()(torch.zeros(2, 0, 2)), "SequenceModel expects at least one sequence of"),
    (lambda: _model()(torch.zeros(0, 3, 2)), "at least one step, got shape (0, 3, 2)"),
    (
        lambda: _model()(torch.zeros(2, 3, 2, dtype=torch.float64)),
        "SequenceModel x is torch.float64 but its weights are torch.float32",
    ),
    (lambda: _model()(np.zeros((2, 3, 2))), "SequenceModel expects a tensor, got ndarray"),
    (lambda: _model()(torch.full((2, 3, 2), float("nan"))), "SequenceModel x holds NaN or inf"),
    (
        lambda: _model().forward_steps(torch.full((2, 3, 2), float("inf"))),
        "SequenceModel.forward_steps x holds NaN or inf",
    ),
]


@pytest.mark.parametrize("run, message", INPUTS)
def test_wrong_inputs_are_named(run, message) -> None:
    with pytest.raises(UsageError) as info:
        run()
    assert message in str(info.value)


def test_numpy_numbers_are_numbers() -> None:
    # The first checks took only Python's int and float: np.int64(4) was "not an int".
    ssm = S4D(np.int64(4), np.int32(4), dt_min=np.float32(1e-3))
    assert (ssm.d_model, ssm.d_state) == (4, 4)
    assert type(ssm.d_model) is int and type(ssm.d_state) is int  # json-able in configs
    with pytest.raises(UsageError, match="LIFNeuron tau must be a finite number, got 1000"):
        LIFNeuron(3, tau=10**400)  # past float64: was an OverflowError
    assert LIFNeuron(np.int64(3), tau=np.float32(0.125)).tau == pytest.approx(0.125)
    with pytest.raises(UsageError, match="LIFNeuron channels must be a positive int, got 0"):
        LIFNeuron(np.int64(0))
    with pytest.raises(UsageError, match="must be a positive int, got True"):
        LIFNeuron(np.bool_(True))
    neuron = ResetRefractoryNeuron(np.int64(2), max_passes=np.int64(3), slope=np.float32(4))
    assert (neuron.max_passes, neuron.slope) == (3, 4.0)  # np.int64 was "not an int"


def test_heaviside_takes_any_layout() -> None:
    # Stateless: a channels-first user model applies it to (B, H, L) (the tracer compiles
    # that), so only the kind of input is checked.
    x = torch.randn(2, 4, 7)
    assert torch.equal(HeavisideNeuron(4)(x), (x > 0).float())


def test_right_inputs_still_run_in_both_layouts() -> None:
    # The checks accept what the layers are documented to take, sequences and steps.
    assert GLUMixer(4)(torch.zeros(2, 3, 4)).shape == (2, 3, 4)
    assert GLUMixer(4)(torch.zeros(2, 4)).shape == (2, 4)
    assert GSUMixer(4)(torch.randn(2, 4)).shape == (2, 4)
    model = _model().eval()
    u = torch.randn(2, 5, 2)
    torch.testing.assert_close(model(u), model.forward_steps(u), rtol=1e-4, atol=1e-5)


def test_model_config_takes_numpy_numbers_as_plain_ones() -> None:
    config = ModelConfig(
        family="s4d", d_input=1, d_output=10, d_state=np.int64(8), beta=np.float32(0.25)
    )
    assert type(config.d_state) is int and config.d_state == 8  # json-able in checkpoints
    assert type(config.beta) is float and config.beta == 0.25
    # np.str_ too: save pickled it, and load then refused the file (audit42)
    assert type(ModelConfig(family=np.str_("s4d"), d_input=1, d_output=10).family) is str
    with pytest.raises(UsageError, match=r"d_state must be an integer, got 8\.5"):
        ModelConfig(family="s4d", d_input=1, d_output=10, d_state=np.float64(8.5))
