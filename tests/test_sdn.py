"""SDN: shipped weights reach >= 99.5% spike agreement; causal; safe loading; training works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from snncompile.errors import CorruptInputError
from snncompile.models import sdn as sdn_module
from snncompile.models.sdn import (
    WEIGHTS_PATH,
    _TrainableSDN,
    load_sdn,
    read_sdn,
    save_sdn,
    spike_agreement,
)


def test_shipped_sdn_agrees_with_exact_lif_on_normal_inputs() -> None:
    net = load_sdn(0.125)
    y = torch.randn(300, 1024, generator=torch.Generator().manual_seed(1234))
    assert spike_agreement(net, y) >= 0.995


def test_shipped_sdn_is_small_and_records_its_provenance() -> None:
    net = load_sdn(0.125)
    assert 100 <= sum(p.numel() for p in net.parameters()) <= 200
    with np.load(WEIGHTS_PATH, allow_pickle=False) as data:
        assert float(data["meta.agreement"]) >= 0.995
        assert str(data["meta.command"]).startswith("python -m snncompile.models.sdn")


def test_prediction_at_t_reads_only_steps_t_minus_8_to_t_minus_1() -> None:
    net = load_sdn(0.125)
    y = torch.randn(1, 64)
    base = net(y)
    for changed_step in (20, 40):
        z = y.clone()
        z[0, changed_step] += 3.0
        diff = (net(z) - base).abs()[0] > 1e-7
        moved = set(np.flatnonzero(diff.numpy()).tolist())
        assert moved <= set(range(changed_step + 1, changed_step + 9))
        assert moved  # the change is seen by the steps after it


@pytest.mark.parametrize("slice_elements", [1, 3 * 20 * 8, 2 * 7 * 20 * 8, 1 << 20])
def test_predict_channels_is_forward_of_every_channel(monkeypatch, slice_elements) -> None:
    # 1: one channel per slice; 3 * 20 * 8: three channels of 20 steps, which does not
    # divide 7 channels; two batch rows per slice; 1 << 20: everything at once.
    monkeypatch.setattr(sdn_module, "SLICE_ELEMENTS", slice_elements)
    net = load_sdn(0.125)
    y = torch.randn(3, 20, 7, generator=torch.Generator().manual_seed(5))
    out = net.predict_channels(y)
    assert out.shape == y.shape
    for b in range(3):
        for h in range(7):
            # The convolution kernels may sum in another order for another batch size.
            expected = net(y[b, :, h][None])[0]
            torch.testing.assert_close(out[b, :, h], expected, rtol=1e-6, atol=1e-6)


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError, match="not found"):
        read_sdn(tmp_path / "none.npz")


def test_malformed_weights(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, tau=np.array(0.125))
    with pytest.raises(CorruptInputError, match="malformed"):
        read_sdn(bad)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(CorruptInputError):
        read_sdn(garbage)


def test_folding_batchnorm_preserves_the_function(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _TrainableSDN(0.125)
    net.train()
    net(torch.randn(8, 100))  # populate running statistics
    net.eval()
    y = torch.randn(4, 100)
    folded = net.folded()
    assert torch.allclose(net(y), folded(y), atol=1e-5)
    save_sdn(folded, tmp_path / "w.npz", seed=0)
    assert torch.equal(read_sdn(tmp_path / "w.npz")(y), folded(y))


def test_the_shipped_sdn_is_refused_for_another_tau() -> None:
    from snncompile.errors import UsageError

    with pytest.raises(UsageError, match=r"the shipped SDN was trained for tau=0\.125, not 0\.2"):
        load_sdn(0.2)


def test_training_names_its_output_and_never_defaults_to_the_shipped_file(capsys) -> None:
    # -o defaulted to the package's own sdn_weights.npz: a trial run replaced it, and
    # every LIF of another tau then failed to load (helper-66).
    before = sdn_module.WEIGHTS_PATH.read_bytes()
    with pytest.raises(SystemExit) as info:
        sdn_module.main(["--epochs", "1"])
    assert info.value.code == 2 and "-o/--output" in capsys.readouterr().err
    assert sdn_module.WEIGHTS_PATH.read_bytes() == before
