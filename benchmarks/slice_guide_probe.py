"""A slice-wise 2D guide for a trained 3D model, trained on its aligned training volumes (run by hand).

Usage:
    python benchmarks/slice_guide_probe.py align MODEL.pt TRAIN.csv ALIGNED.pt
    python benchmarks/slice_guide_probe.py train MODEL.pt ALIGNED.pt GUIDE.pt [--steps N] [--factor F]
    python benchmarks/slice_guide_probe.py attach MODEL.pt GUIDE.pt OUT.pt

``align`` registers every training pair with the model's own pipeline (``innreg register``'s code, at
full resolution) and keeps the aligned moving image, the fixed image (both percentile-normalised) and
the voxels the warp covered. ``train`` trains the guide ``model: {guide: inn, guide_slices: true}`` gives
the model (a 2D INN with its translator's settings) in the translator stages' loop: ``N`` Adam steps (2000)
at the 3D CPU default's ``train.guide_lr`` (3e-3) on batches of random 96x96 crops one slice thick, masked
L1 both ways; ``--factor 2`` trains on the volumes at half resolution, the grid on which a 3D CPU model
translates. ``attach`` writes a copy of the model file with those settings and this guide, for ``innreg
evaluate``.

The shipped default (``Config.sized_for``) trains the same guide inside ``innreg train``'s translator
stages instead (five rounds of alignment and 400 steps each). ``benchmarks/RESULTS.md`` section 27.
"""

from __future__ import annotations

import argparse
import time

import torch

from innreg import load_model
from innreg.config import Config
from innreg.core.filters import downsample
from innreg.data import normalize_percentile, read_manifest
from innreg.data.pairs import load_pair
from innreg.model import INNReg
from innreg.model_file import read_model, save_model
from innreg.translation_training import COVERED, aligned_pair, train_translator


def with_slice_guide(config: Config) -> Config:
    return config.updated(model={"guide": "inn", "guide_slices": True})


def align(model_path: str, pairs: str, out: str) -> None:
    registrar = load_model(model_path, "cpu")
    aligned = []
    for record in read_manifest(pairs):
        moving, fixed, _, _ = load_pair(record)
        start = time.perf_counter()
        ddf = torch.from_numpy(registrar.register(moving, fixed).ddf)[None]
        m, f = (torch.from_numpy(normalize_percentile(i.array))[None, None].float() for i in (moving, fixed))
        aligned.append(aligned_pair(m, f, ddf))
        print(f"{record.moving}: {time.perf_counter() - start:.1f} s", flush=True)
    torch.save(aligned, out)


def train(model_path: str, aligned_path: str, out: str, steps: int, factor: int) -> None:
    """The translator stages' own loop (:func:`innreg.translation_training.train_translator`) on the
    aligned volumes, ``steps`` steps at the 3D CPU default's guide rate."""
    aligned = torch.load(aligned_path)
    if factor > 1:
        aligned = [
            (downsample(a, factor), downsample(f, factor), (downsample(c, factor) > COVERED).float())
            for a, f, c in aligned
        ]
    config = with_slice_guide(read_model(model_path).config)
    guide_lr = Config.sized_for(3, "cpu").train.guide_lr
    # steps above train.steps: a translator round is capped at train.steps.
    stage = {"translator_steps": steps, "steps": max(steps, config.train.steps), "guide_lr": guide_lr}
    config = config.updated(train=stage)
    torch.manual_seed(0)
    model = INNReg(config.model)
    train_translator(model, aligned, config, discriminator=None, seed=config.train.seed, progress=True)
    torch.save(model.guide.net.state_dict(), out)


def attach(model_path: str, guide_path: str, out: str) -> None:
    saved = read_model(model_path)
    config = with_slice_guide(saved.config)
    network = saved.network()
    state = network.state_dict()
    network = type(network)(config.model)
    network.load_state_dict({**state, **{f"guide.net.{k}": v for k, v in torch.load(guide_path).items()}})
    save_model(network, config, out, {**saved.info, "slice_guide": guide_path})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["align", "train", "attach"])
    parser.add_argument("args", nargs=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--factor", type=int, default=1)
    a = parser.parse_args()
    torch.set_num_threads(1)
    if a.mode == "align":
        align(*a.args)
    elif a.mode == "train":
        train(*a.args, a.steps, a.factor)
    elif a.mode == "attach":
        attach(*a.args)
