"""SDN: a tiny causal CNN that predicts the LIF's leaked after-reset potential (SpikingSSM).

For the exact hard-reset LIF with threshold 1 (snncompile.models.neurons.lif) the
after-reset potential u_{t-1} depends on all past inputs, which forces a sequential
loop. With tau = 0.125, tau^8 ~ 6e-8, so the last 8 inputs determine tau * u_{t-1}
almost exactly. The SDN learns that map once, on N(0, 1) inputs; training a spiking
model then computes every step at once: s_t = [SDN(y)_t + y_t >= 1].

Architecture (ours; 169 parameters, BatchNorm folded away after training):

    y (N, L) -> pointwise Conv1d(1 -> 8) -> ReLU
             -> depthwise causal Conv1d(8, kernel 8): output t reads inputs t-8 .. t-1
             -> ReLU -> pointwise Conv1d(8 -> 8) -> ReLU -> pointwise Conv1d(8 -> 1)
             -> pred (N, L) ~ tau * u_{t-1}

The shipped weights (sdn_weights.npz beside this file) were made by

    python -m snncompile.models.sdn -o snncompile/models/sdn_weights.npz

(-o had that default then; it is required now, so that a trial run cannot replace the
package's one SDN) and the file records its tau, seed, epochs and measured spike
agreement. The default 300 epochs take hours on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snncompile.errors import CorruptInputError, UsageError

WEIGHTS_PATH = Path(__file__).with_name("sdn_weights.npz")
CHANNELS = 8
KERNEL = 8
# Sequences per slice of `predict_channels`: every intermediate of the network is then
# about 4 MB (SLICE_ELEMENTS floats: rows x CHANNELS x L), which stays in cache and is reused by
# the allocator. One call over a whole (16 x 128, 4096) batch makes 270 MB temporaries
# and ran 2-4.5x slower on a 2-core CPU (2026-12-05: 1.15 s against 0.25 s by hand;
# about 2x in a review's run).
SLICE_ELEMENTS = 1 << 20
_LAYERS = ("lift", "window", "mix", "out")


class SurrogateDynamicNetwork(nn.Module):
    """The deployed (BatchNorm-folded, frozen) SDN: (N, L) inputs -> (N, L) predictions."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = float(tau)
        self.lift = nn.Conv1d(1, CHANNELS, 1)
        self.window = nn.Conv1d(CHANNELS, CHANNELS, KERNEL, groups=CHANNELS)
        self.mix = nn.Conv1d(CHANNELS, CHANNELS, 1)
        self.out = nn.Conv1d(CHANNELS, 1, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # The pointwise layers as a broadcast multiply-add and two small matmuls: the
        # same function as calling the Conv1d modules, at half their time on a CPU
        # (oneDNN is slow for 1 or 8 channels); sums may round in another order (~1e-7).
        lift = torch.addcmul(
            self.lift.bias.view(CHANNELS, 1), y.unsqueeze(1), self.lift.weight.view(CHANNELS, 1)
        )
        # Left-pad by KERNEL and drop the last output: output t then covers t-8 .. t-1.
        h = F.relu(self.window(F.pad(F.relu(lift), (KERNEL, 0)))[..., :-1])
        h = F.relu(torch.matmul(self.mix.weight.squeeze(-1), h) + self.mix.bias.view(-1, 1))
        return (torch.matmul(self.out.weight.squeeze(-1), h) + self.out.bias.view(1, 1)).squeeze(1)

    def predict_channels(self, y: torch.Tensor) -> torch.Tensor:
        """Predictions for every channel of a (B, L, H) batch, as (B, L, H): out[b, :, h]
        is forward(y[b, :, h]). Computed without autograd, in slices of sequences
        (several batch rows of short sequences, or part of one row's channels)."""
        batch, length, channels = y.shape
        rows = max(1, SLICE_ELEMENTS // max(1, length * CHANNELS))
        batch_step, channel_step = max(1, rows // channels), min(rows, channels)
        out = torch.empty(y.shape, dtype=torch.float32)
        with torch.no_grad():
            for b0 in range(0, batch, batch_step):
                b1 = min(batch, b0 + batch_step)
                for h0 in range(0, channels, channel_step):
                    h1 = min(channels, h0 + channel_step)
                    part = y[b0:b1, :, h0:h1].detach().float().transpose(1, 2)
                    predicted = self(part.reshape(-1, length).contiguous())
                    out[b0:b1, :, h0:h1] = predicted.view(b1 - b0, h1 - h0, length).transpose(1, 2)
        return out


class _TrainableSDN(SurrogateDynamicNetwork):
    """The same network with BatchNorm after the lift, window and mix layers (training only)."""

    def __init__(self, tau: float) -> None:
        super().__init__(tau)
        self.bn_lift = nn.BatchNorm1d(CHANNELS)
        self.bn_window = nn.BatchNorm1d(CHANNELS)
        self.bn_mix = nn.BatchNorm1d(CHANNELS)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn_lift(self.lift(y.unsqueeze(1))))
        h = F.relu(self.bn_window(self.window(F.pad(h, (KERNEL, 0)))[..., :-1]))
        return self.out(F.relu(self.bn_mix(self.mix(h)))).squeeze(1)

    def folded(self) -> SurrogateDynamicNetwork:
        """Fold each eval-mode BatchNorm into the conv before it."""
        net = SurrogateDynamicNetwork(self.tau)
        for name, bn in (("lift", self.bn_lift), ("window", self.bn_window), ("mix", self.bn_mix)):
            conv = getattr(self, name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            target = getattr(net, name)
            target.weight.data = conv.weight.data * scale.view(-1, 1, 1)
            target.bias.data = (conv.bias.data - bn.running_mean) * scale + bn.bias.data
        net.out.load_state_dict(self.out.state_dict())
        return net.requires_grad_(False).eval()


def exact_lif(y: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact hard-reset LIF on (N, L): returns (spikes, leak) with leak_t = tau * u_{t-1}."""
    u = torch.zeros_like(y[:, 0])
    spikes, leaks = [], []
    for y_t in y.unbind(dim=1):
        leak = tau * u
        m = leak + y_t
        s = (m >= 1.0).to(y.dtype)
        u = m * (1.0 - s)
        spikes.append(s)
        leaks.append(leak)
    return torch.stack(spikes, 1), torch.stack(leaks, 1)


def spike_agreement(net: nn.Module, y: torch.Tensor) -> float:
    """Fraction of (sequence, step) spikes where the SDN-based spike equals the exact LIF."""
    with torch.no_grad():
        exact, _ = exact_lif(y, net.tau)
        predicted = (net(y) + y >= 1.0).to(y.dtype)
    return float((predicted == exact).float().mean())


def train_sdn(
    *,
    tau: float = 0.125,
    epochs: int = 300,
    seed: int = 0,
    length: int = 1024,
    log: Callable[[str], None] | None = None,
) -> tuple[SurrogateDynamicNetwork, float]:
    """Train on fresh N(0, 1) batches; return the folded network and its held-out agreement."""
    torch.manual_seed(seed)
    net = _TrainableSDN(tau)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    batches_per_epoch, batch = 8, 64
    for epoch in range(epochs):
        net.train()
        for _ in range(batches_per_epoch):
            y = torch.randn(batch, length)
            _, leak = exact_lif(y, tau)
            loss = F.mse_loss(net(y), leak)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        if log is not None and (epoch + 1) % 10 == 0:
            log(f"epoch {epoch + 1}/{epochs}: mse {loss.item():.2e}")
    net.eval()
    folded = net.folded()
    held_out = torch.randn(256, length, generator=torch.Generator().manual_seed(seed + 1))
    return folded, spike_agreement(folded, held_out)


def save_sdn(net: SurrogateDynamicNetwork, path: Path, **meta: object) -> None:
    arrays: dict[str, np.ndarray] = {}
    for layer in _LAYERS:
        conv = getattr(net, layer)
        arrays[f"{layer}.weight"] = conv.weight.detach().numpy().astype(np.float32)
        arrays[f"{layer}.bias"] = conv.bias.detach().numpy().astype(np.float32)
    arrays["tau"] = np.array(net.tau)
    for key, value in meta.items():
        arrays[f"meta.{key}"] = np.array(value)
    np.savez(path, **arrays)


def read_sdn(path: Path) -> SurrogateDynamicNetwork:
    """Read SDN weights written by save_sdn; CorruptInputError if missing or malformed."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise CorruptInputError(f"{path}: SDN weights not found (reinstall snncompile)") from None
    except (OSError, ValueError) as exc:
        raise CorruptInputError(f"{path}: unreadable SDN weights ({exc})") from None
    try:
        net = SurrogateDynamicNetwork(float(arrays["tau"]))
        for layer in _LAYERS:
            conv = getattr(net, layer)
            for part in ("weight", "bias"):
                value = torch.from_numpy(arrays[f"{layer}.{part}"])
                if value.shape != getattr(conv, part).shape:
                    raise ValueError(f"{layer}.{part} has shape {tuple(value.shape)}")
                getattr(conv, part).data = value.float()
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptInputError(f"{path}: malformed SDN weights ({exc})") from None
    return net.requires_grad_(False).eval()


@functools.lru_cache(maxsize=4)
def load_sdn(tau: float, path: Path = WEIGHTS_PATH) -> SurrogateDynamicNetwork:
    """The shipped SDN for `tau` (cached; frozen)."""
    net = read_sdn(path)
    if abs(net.tau - tau) > 1e-12:
        raise UsageError(
            f"the shipped SDN was trained for tau={net.tau}, not {tau}: use the LIF's "
            "exact mode, or train an SDN for this tau (`python -m snncompile.models.sdn "
            f"--tau {tau} -o FILE`, hours) and put it in place of {path}"
        )
    return net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the SDN and write its weights.")
    parser.add_argument("--tau", type=float, default=0.125)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help=f"the .npz to write (the package's own is {WEIGHTS_PATH})",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    net, agreement = train_sdn(
        tau=args.tau, epochs=args.epochs, seed=args.seed, log=lambda msg: print(msg, flush=True)
    )
    command = "python -m snncompile.models.sdn " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    n_params = sum(p.numel() for p in net.parameters())
    save_sdn(
        net,
        args.output,
        seed=args.seed,
        epochs=args.epochs,
        agreement=agreement,
        n_params=n_params,
        command=command.strip(),
    )
    print(
        f"wrote {args.output}: {n_params} parameters, spike agreement with the exact LIF "
        f"{agreement:.4%} on 256 held-out N(0,1) sequences of length 1024, "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
