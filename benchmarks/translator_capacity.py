"""How faithful can a translator architecture be at best? (run by hand; RESULTS.md section 2e).

Usage:
    python benchmarks/translator_capacity.py ARCH TRAIN.csv TEST.csv STEPS [--lr LR] [--crop N]

``ARCH`` is ``inn`` (the default INN translator of ``ModelConfig``), ``resnet`` (the package's "w/o INN"
ablation, a CycleGAN generator) or ``unet`` (a plain residual U-Net, defined here as a yardstick). The
translator is trained on the ideal data a registration never has: each 2D training pair's moving image
and its ``moving_as_fixed`` rendering (the phantom's moving anatomy in the fixed contrast, without
noise or bias, so perfectly aligned and clean), STEPS Adam steps of a batch of two random crops drawn and
flipped as the translator stages draw them (96 voxels a side, the stages' crop size; ``--crop 0``: whole
images) with the stages' L1 loss (both directions for the INN), gradients clipped at norm 1 (the stages
clip at ``train.grad_clip``), at ``--lr`` (3e-3 for the INN, 1e-3 otherwise). Printed: the
mean NCC inside the head of the translated moving image with ``moving_as_fixed`` (``innreg evaluate``'s
``translation_ncc``) on the first 12 training pairs and on every test pair, each beside the
untranslated floor. What an architecture cannot reach here it will not reach from misaligned, noisy
fixed images either.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import Tensor, nn

from innreg.config import ModelConfig
from innreg.data import load_image, normalize_percentile, read_manifest
from innreg.evaluation import translation_fidelity
from innreg.model import build_translator
from innreg.nn.layers import conv
from innreg.nn.unet import UNet
from innreg.translation_training import random_batch, translation_loss


class UNetTranslator(nn.Module):
    """A residual U-Net translator, ``x + conv(UNet(x))``, for 2D sizes divisible by 16."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = UNet(2, 1, [16, 32, 32, 32], [32, 32, 32, 32, 16, 16])
        self.head = conv(2)(16, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.head(self.unet(x))


def build(arch: str) -> nn.Module:
    """A fresh translator of the named kind (seeded by the caller)."""
    if arch == "unet":
        return UNetTranslator()
    return build_translator(ModelConfig(dim=2, translator=arch))


def load_set(csv: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(moving, moving_as_fixed)`` arrays of every pair of a phantom manifest."""
    pairs = []
    for record in read_manifest(csv):
        if not record.moving_as_fixed:
            raise SystemExit(f"{csv}: needs a moving_as_fixed column (a whole-head phantom set)")
        pairs.append((load_image(record.moving).array, load_image(record.moving_as_fixed).array))
    return pairs


def as_tensor(image: np.ndarray) -> Tensor:
    """``(1, 1, *S)`` float32, normalised as registration normalises an image."""
    return torch.from_numpy(normalize_percentile(np.asarray(image, dtype=np.float32)))[None, None]


def train(net: nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]], steps: int, lr: float, crop: int) -> None:
    """``steps`` Adam steps on batches of two as the translator stages draw them
    (:func:`~innreg.translation_training.random_batch`) with their L1
    (:func:`~innreg.translation_training.translation_loss`), every voxel covered."""
    tensors = [(as_tensor(m), as_tensor(t)) for m, t in pairs]
    aligned = [(x, y, torch.ones_like(x)) for x, y in tensors]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for step in range(steps):
        loss = translation_loss(net, *random_batch(aligned, rng, 2, crop))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            print(f"step {step}: L1 {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


@torch.no_grad()
def mean_ncc(net: nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Mean NCC of the translation and of the untranslated image with ``moving_as_fixed``."""
    scores = [translation_fidelity(net(as_tensor(m))[0, 0].numpy(), m, t) for m, t in pairs]
    return float(np.mean([s.ncc for s in scores])), float(np.mean([s.identity_ncc for s in scores]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=["inn", "resnet", "unet"])
    parser.add_argument("train_csv")
    parser.add_argument("test_csv")
    parser.add_argument("steps", type=int)
    parser.add_argument("--lr", type=float, default=None, help="default: 3e-3 for the INN, 1e-3 otherwise")
    parser.add_argument("--crop", type=int, default=96, help="crop size in voxels (0: whole images)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build(args.arch)
    lr = args.lr if args.lr is not None else (3e-3 if args.arch == "inn" else 1e-3)
    training = load_set(args.train_csv)
    start = time.perf_counter()
    train(net, training, args.steps, lr, args.crop)
    net.eval()
    train_ncc, train_floor = mean_ncc(net, training[:12])
    test_ncc, test_floor = mean_ncc(net, load_set(args.test_csv))
    print(
        f"{args.arch}, {args.steps} steps, lr {lr:g}, crop {args.crop}: "
        f"train NCC {train_ncc:.3f} (floor {train_floor:.3f}), test NCC {test_ncc:.3f} (floor {test_floor:.3f}), "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
