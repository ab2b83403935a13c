"""How much a better translation could add to today's pipeline, and which of its errors cost.

Usage:
    python benchmarks/translation_headroom.py MODEL.pt TEST.csv N_PAIRS '[{}, {"translation_weight": 10.0}]' \
        [raw,translator,truth,truth+noise:3,...]

For the first ``N_PAIRS`` pairs of a phantom manifest (it needs the ``moving_as_fixed`` column: the moving
subject in the fixed modality without bias or noise, a perfect translation), each refinement setting of the list
(keys of ``innreg.config.RefineConfig`` over the model's; ``{}`` is the shipped default) runs once per source of
the translated channel (default ``raw,translator,truth``) through ``RegistrationModel.register``, the code behind
``innreg register`` and ``innreg evaluate``:

- ``raw``: ``--no-translate`` (the moving image in the translation's place, the fixed image in the inverse's);
- ``translator``: the model's translation and inverse (the default);
- ``truth``: the pair's ``moving_as_fixed``, normalised as ``register`` normalises the fixed image;
- ``truth+noise:F``: the truth plus white noise (seeded) of F times the moving image's noise s.d. (Donoho's
  estimate, ``translation_fidelity.noise_sd``, inside the head; 2D only);
- ``truth-blur:S``: the truth smoothed by a Gaussian of S voxels;
- ``truth-mix:A``: ``(1 - A) * truth + A * moving`` (the moving contrast left in);
- ``truth-brain`` / ``translation-brain``: the truth inside the brain (the moving labels) and the model's
  translation outside it / the other way round;
- ``truth+low:S`` / ``translation-low:S``: the truth plus the model's error smoothed by S voxels (its coarse
  error alone) / the model's translation minus that smoothed error (its fine error alone);
- ``translator-flip:AXES``: the model's translation averaged over the input flipped along every subset of the
  spatial axes ``AXES`` (digits, e.g. ``0`` or ``01``), each output flipped back (test-time augmentation);
- ``translator-coarse:F``: the model's translation of its input downsampled by ``F`` (as ``stage_pair``
  downsamples), resized back (what the translation's resolution is worth).

Every source but ``raw`` keeps the model's inverse channel (the phantom writes no perfect inverse) and stands in
for the guide's channel too, for a model with one. Prints the mean Dice over the fixed labels (as ``innreg
evaluate`` scores it) per setting and source, one thread. ``raw`` and ``translator`` with ``{}`` reproduce
``innreg evaluate`` with and without ``--no-translate``.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from innreg import load_model
from innreg.core.filters import downsample, gaussian_smooth, resize_linear
from innreg.data import load_image, load_pair, normalize_intensity, read_manifest, voxel_spacing
from innreg.evaluation import overlap_metrics

# A channel maker: (the model's translator, its input at the working resolution) -> the channel there.
Channel = Callable[[nn.Module, Tensor], Tensor]


class StandIn(nn.Module):
    """Stands in for a model's translator: ``forward`` gives what :attr:`channel` (set per pair) makes from the
    translator and its input; ``inverse`` stays the translator's."""

    def __init__(self, translator: nn.Module) -> None:
        super().__init__()
        self.translator = translator
        self.channel: Channel | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.channel(self.translator, x)

    def inverse(self, y: Tensor) -> Tensor:
        return self.translator.inverse(y)


def channel_of(source: str, truth: Tensor, moving: Tensor, brain: Tensor, noise_sd: float) -> Channel:
    """The channel maker of ``source`` (module docstring) for one pair; ``truth``, ``moving`` and ``brain``
    (``(1, 1, *S)``, normalised; brain 1 inside) at full resolution, resized to the translator's input."""
    name, _, arg = source.partition(":")
    value = float(arg) if arg else 0.0

    def at(image: Tensor, x: Tensor) -> Tensor:
        return resize_linear(image, tuple(x.shape[2:]))

    if name in ("truth", "truth+noise", "truth-blur", "truth-mix"):
        seeded = torch.Generator().manual_seed(0)
        image = {
            "truth": lambda: truth,
            "truth+noise": lambda: truth + value * noise_sd * torch.randn(truth.shape, generator=seeded),
            "truth-blur": lambda: gaussian_smooth(truth, value),
            "truth-mix": lambda: (1 - value) * truth + value * moving,
        }[name]()
        return lambda translator, x: at(image, x)
    if name in ("truth-brain", "translation-brain"):
        inside = brain if name == "truth-brain" else 1 - brain
        return lambda translator, x: at(inside, x) * at(truth, x) + (1 - at(inside, x)) * translator(x)
    if name in ("truth+low", "translation-low"):

        def split(translator: nn.Module, x: Tensor) -> Tensor:
            translated, target = translator(x), at(truth, x)
            coarse_error = gaussian_smooth(translated - target, value)
            return target + coarse_error if name == "truth+low" else translated - coarse_error

        return split
    if name == "translator-flip":
        axes = [2 + int(a) for a in arg]  # tensor dims of the spatial axes named
        subsets = [[a for a, keep in zip(axes, bits) if keep] for bits in itertools.product((0, 1), repeat=len(axes))]

        def averaged(translator: nn.Module, x: Tensor) -> Tensor:
            outputs = [translator(x.flip(dims)).flip(dims) if dims else translator(x) for dims in subsets]
            return sum(outputs) / len(outputs)

        return averaged
    if name == "translator-coarse":
        return lambda translator, x: at(translator(downsample(x, int(value))), x)
    raise SystemExit(f"unknown source {source!r} (see the module docstring)")


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]


def main(model_path: str, manifest: str, n_pairs: str, settings: str, sources: str = "raw,translator,truth") -> None:
    from translation_fidelity import noise_sd  # a sibling script

    torch.set_num_threads(1)
    records = read_manifest(manifest)[: int(n_pairs)]
    if any(r.moving_as_fixed is None or r.moving_seg is None for r in records):
        sys.exit(f"{manifest}: needs moving_seg and moving_as_fixed columns (a phantom manifest)")
    models = {"raw": load_model(model_path, "cpu", translate=False), "translator": load_model(model_path, "cpu")}
    stand_in_model = load_model(model_path, "cpu")
    network = stand_in_model.model
    if network.translator is None:
        sys.exit(f"{model_path}: the model has no translator")
    stand_in = StandIn(network.translator)
    network.translator = stand_in
    if network.guide is not None:  # the refinement matches the guide's channel (3D: the slice-wise guide)
        network.guide = stand_in
    shipped = stand_in_model.config
    for overrides in ast.literal_eval(settings):
        for source in sources.split(","):
            registrar = models.get(source, stand_in_model)
            registrar.config = shipped.updated(refine=overrides)
            dice = []
            for record in records:
                moving, fixed, moving_seg, fixed_seg = load_pair(record)
                if source not in models:  # a stand-in's channel, made from this pair's truth
                    m = normalize_intensity(moving.array, None, shipped.model.hu_curve)
                    truth = normalize_intensity(load_image(record.moving_as_fixed).array, None, shipped.model.hu_curve)
                    sd = noise_sd(m, m > 0.1) if source.startswith("truth+noise") else 0.0
                    brain = (moving_seg.array > 0).astype(np.float32)
                    stand_in.channel = channel_of(source, _tensor(truth), _tensor(m), _tensor(brain), sd)
                result = registrar.register(moving, fixed, moving_seg=moving_seg)
                dice.append(overlap_metrics(result.warped_seg, fixed_seg.array, voxel_spacing(fixed)).dice_mean)
            print(f"{source:24s} {overrides}: Dice {np.mean(dice):.4f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
