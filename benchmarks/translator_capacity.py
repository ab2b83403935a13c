"""How faithful can a translator architecture be at best, and what keeps it from that? (run by hand;
RESULTS.md sections 2e, 2f).

Usage:
    python benchmarks/translator_capacity.py ARCH TRAIN.csv TEST.csv STEPS [--lr LR] [--crop N]
        [--source ideal|truth|refined] [--model MODEL.pt] [--moving-intensity MODE] [--model-options JSON]

``ARCH`` is ``inn`` (the default INN translator of ``ModelConfig``), ``resnet`` (the package's "w/o INN"
ablation, a CycleGAN generator) or ``unet`` (a plain residual U-Net, :class:`innreg.nn.UNetTranslator`, as a yardstick). The
translator is trained on pairs from ``--source``:

* ``ideal`` (default): each 2D training pair's moving image and its ``moving_as_fixed`` rendering (the
  phantom's moving anatomy in the fixed contrast, without noise or bias, so perfectly aligned and clean),
  data a registration never has;
* ``truth``: the moving image aligned by the phantom's true field, against the noisy fixed image (the
  stages' target with a perfect alignment);
* ``refined``: the moving image aligned by the refinement of ``--model`` from its affine stage, MIND only,
  against the fixed image: what the translator stages' first round trains on
  (:func:`innreg.translation_training.align_pairs`). The alignment's endpoint error against the true
  field, in the brain and in the rest of the head, is printed too.

STEPS Adam steps of a batch of two random crops drawn and flipped as the translator stages draw them (96
voxels a side, the stages' crop size; ``--crop 0``: whole images) with the stages' L1 loss (both
directions for the INN) on the voxels the alignment covers, gradients clipped at norm 1 (the stages clip
at ``train.grad_clip``), at ``--lr`` (3e-3 for the INN, 1e-3 otherwise). Printed: the mean NCC inside
the head of the translated moving image with ``moving_as_fixed`` (``innreg evaluate``'s
``translation_ncc``) on the first 12 training pairs and on every test pair, each beside the untranslated
floor, and on the test pairs the NCC inside the brain (labels 1-3) and in the rest of the head. What an
architecture cannot reach from ideal data it will not reach from misaligned, noisy fixed images either;
what it reaches from ``truth`` but not from ``refined`` the alignment costs it.

``--moving-intensity`` maps the moving image (the translator's input) otherwise than registration does,
to see what CT in Hounsfield units loses to the percentile normalisation (RESULTS.md 2h): ``percentile``
(default, as registration), ``hu-curve`` (``innreg.data.intensity.HU_CURVE_KNOTS``: piecewise linear
through -1000, -100, 100, 1500 HU to 0, 0.2, 0.9, 1: air to fat, soft tissue, bone; what ``model.hu_curve``
gives every input in HU since section 32), ``soft-tissue-window`` (-160 to 240 HU to 0-1, clipped) or ``rank``
(the image's empirical CDF). The alignment, the targets and the scores are unchanged.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import Tensor, nn

from innreg import load_model
from innreg.config import ModelConfig
from innreg.data import PairRecord, hu_curve_map, load_field, load_image, normalize_percentile, read_manifest
from innreg.evaluation import endpoint_error_mm, head_mask, translation_fidelity
from innreg.inference import RegistrationModel, grid_spacing
from innreg.metrics import ncc
from innreg.model import build_translator
from innreg.nn import warp
from innreg.pipeline import refined_field
from innreg.translation_training import aligned_pair, random_batch, translation_loss


def build(arch: str, options: dict | None = None) -> nn.Module:
    """A fresh 2D translator of the named kind (``innreg.model.build_translator``; seeded by the caller),
    with ``options`` overriding other :class:`~innreg.config.ModelConfig` fields (e.g. ``inn_latent``)."""
    return build_translator(ModelConfig(**{**(options or {}), "dim": 2, "translator": arch}))


Triple = tuple[Tensor, Tensor, Tensor]  # (moving, target, covered), each (1, 1, *S)


MOVING_INTENSITY = {
    "percentile": normalize_percentile,
    "hu-curve": hu_curve_map,
    "soft-tissue-window": lambda a: np.clip((a + 160.0) / 400.0, 0.0, 1.0),
    "rank": lambda a: (np.argsort(np.argsort(a, axis=None, kind="stable")) / (a.size - 1)).reshape(a.shape),
}


def as_tensor(image: np.ndarray, intensity: str = "percentile") -> Tensor:
    """``(1, 1, *S)`` float32, mapped by ``MOVING_INTENSITY[intensity]`` (by default normalised as
    registration normalises an image)."""
    array = MOVING_INTENSITY[intensity](np.asarray(image, dtype=np.float32))
    return torch.from_numpy(np.asarray(array, dtype=np.float32))[None, None]


def _epe(ddf: Tensor, true: Tensor, spacing: tuple[float, ...], brain: np.ndarray, rest: np.ndarray) -> tuple[float, float]:
    """Endpoint error (mm) of ``ddf`` against ``true`` in the brain and in the rest of the head."""
    field, true = ddf[0].numpy(), true[0].numpy()
    return endpoint_error_mm(field, true, spacing, brain), endpoint_error_mm(field, true, spacing, rest)


def load_set(csv: str, source: str, intensity: str, model: RegistrationModel | None = None) -> list[Triple]:
    """Training triples of every pair of a phantom manifest from ``source`` (module docstring); for
    ``refined`` the alignment's mean endpoint errors (brain, rest of the head; the identity's beside
    them) are printed."""
    pairs, errors = [], []
    for record in read_manifest(csv):
        if not record.moving_as_fixed or (source != "ideal" and not record.true_ddf):
            raise SystemExit(f"{csv}: needs moving_as_fixed and true_ddf columns (a whole-head phantom set)")
        moving_array = load_image(record.moving).array
        moving = as_tensor(moving_array, intensity)
        if source == "ideal":
            pairs.append((moving, as_tensor(load_image(record.moving_as_fixed).array), torch.ones_like(moving)))
            continue
        fixed_image = load_image(record.fixed)
        fixed, true = as_tensor(fixed_image.array), torch.from_numpy(load_field(record.true_ddf))[None]
        ddf = true if source == "truth" else refined_field(model.model, as_tensor(moving_array), fixed, model.config, guided=False)
        pairs.append(aligned_pair(moving, fixed, ddf))
        if source == "refined":
            seg = load_image(record.fixed_seg).array
            brain = (seg >= 1) & (seg <= 3)
            rest = head_mask(warp(as_tensor(load_image(record.moving_as_fixed).array), true)[0, 0].numpy()) & ~brain
            spacing = grid_spacing(fixed_image)
            errors.append(_epe(ddf, true, spacing, brain, rest) + _epe(torch.zeros_like(true), true, spacing, brain, rest))
    if errors:
        e = np.mean(errors, axis=0)
        print(f"refined alignment, endpoint error: brain {e[0]:.2f} mm, rest of the head {e[1]:.2f} mm "
              f"(unregistered {e[2]:.2f} / {e[3]:.2f} mm), {len(errors)} training pairs", flush=True)
    return pairs


def train(net: nn.Module, pairs: list[Triple], steps: int, lr: float, crop: int) -> None:
    """``steps`` Adam steps on batches of two as the translator stages draw them
    (:func:`~innreg.translation_training.random_batch`) with their L1
    (:func:`~innreg.translation_training.translation_loss`) on the covered voxels."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for step in range(steps):
        loss = translation_loss(net, *random_batch(pairs, rng, 2, crop))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            print(f"step {step}: L1 {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


@torch.no_grad()
def scores(net: nn.Module, records: list[PairRecord], intensity: str) -> np.ndarray:
    """Per pair: NCC with ``moving_as_fixed`` inside the head of the translation and of the untranslated
    image (:func:`~innreg.evaluation.translation_fidelity`), then the translation's plain NCC inside the
    brain (labels 1-3 of ``moving_seg``) and in the rest of the head."""
    rows = []
    for record in records:
        moving = load_image(record.moving).array
        truth = load_image(record.moving_as_fixed).array
        translated = net(as_tensor(moving, intensity))[0, 0].numpy()
        fidelity = translation_fidelity(translated, moving, truth)
        seg = load_image(record.moving_seg).array
        brain = (seg >= 1) & (seg <= 3)
        head = head_mask(truth)
        rows.append([fidelity.ncc, fidelity.identity_ncc, ncc(translated, truth, brain), ncc(translated, truth, head & ~brain)])
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=["inn", "resnet", "unet"])
    parser.add_argument("train_csv")
    parser.add_argument("test_csv")
    parser.add_argument("steps", type=int)
    parser.add_argument("--lr", type=float, default=None, help="default: 3e-3 for the INN, 1e-3 otherwise")
    parser.add_argument("--crop", type=int, default=96, help="crop size in voxels (0: whole images)")
    parser.add_argument("--source", choices=["ideal", "truth", "refined"], default="ideal")
    parser.add_argument("--model", help="trained model whose refinement aligns the pairs (--source refined)")
    parser.add_argument("--moving-intensity", choices=sorted(MOVING_INTENSITY), default="percentile")
    parser.add_argument("--model-options", type=json.loads, default={}, help='JSON ModelConfig overrides, e.g. \'{"inn_latent": 1}\'')
    args = parser.parse_args()
    if args.source == "refined" and not args.model:
        parser.error("--source refined needs --model")
    torch.set_num_threads(1)
    model = load_model(args.model, "cpu") if args.model else None
    training = load_set(args.train_csv, args.source, args.moving_intensity, model)
    torch.manual_seed(0)
    net = build(args.arch, args.model_options)
    lr = args.lr if args.lr is not None else (3e-3 if args.arch == "inn" else 1e-3)
    start = time.perf_counter()
    train(net, training, args.steps, lr, args.crop)
    net.eval()
    train_rows = scores(net, read_manifest(args.train_csv)[:12], args.moving_intensity)
    test_rows = scores(net, read_manifest(args.test_csv), args.moving_intensity)
    (train_ncc, train_floor), (test_ncc, test_floor, brain, rest) = train_rows.mean(0)[:2], test_rows.mean(0)
    print(
        f"{args.arch} {json.dumps(args.model_options)}, {args.source} pairs, {args.moving_intensity} moving, {args.steps} steps, lr {lr:g}, crop {args.crop}: "
        f"train NCC {train_ncc:.3f} (floor {train_floor:.3f}), test NCC {test_ncc:.3f} (floor {test_floor:.3f}; "
        f"brain {brain:.3f}, rest of the head {rest:.3f}), {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
