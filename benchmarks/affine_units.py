"""How many hidden units of the affine stage's head are alive, and does its output depend on the pair (run by hand).

Usage:
    python benchmarks/affine_units.py TEST.csv N_PAIRS MODEL_OR_CHECKPOINT.pt [...]

For each file (a model file, or a training checkpoint of the joint steps or of the distillation, whose
registration weights are put into a model built from the checkpoint's config, or for the distillation's
checkpoint, which holds none, into the file's before it), the first ``N_PAIRS``
pairs of ``TEST.csv`` are normalised as inference normalises them and fed to the affine stage. Printed:
the hidden units that are positive for at least one pair (a plain ReLU unit, ``model.affine_slope: 0``,
negative for every input gets no gradient again: a dead unit; a leaky one still learns), and the spread
over the pairs of the predicted translation (voxels) and matrix entries. An affine stage whose ReLU units
are all dead predicts one map for every pair (``benchmarks/RESULTS.md`` section 10).
"""

from __future__ import annotations

import sys

import nibabel as nib
import torch

from innreg import load_model
from innreg.data import normalize_percentile, read_manifest
from innreg.model import INNReg
from innreg.model_file import upgraded_config


def _pairs(manifest: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for record in read_manifest(manifest)[:n]:
        images = [normalize_percentile(nib.load(path).get_fdata()) for path in (record.moving, record.fixed)]
        out.append(tuple(torch.as_tensor(a, dtype=torch.float32)[None, None] for a in images))
    return out


def _network(path: str, last: INNReg | None) -> INNReg:
    """The model of a model file, or the registration weights of a training checkpoint put into a model
    built from its config (the joint steps' checkpoint holds one) or else into ``last``."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    parts = data.get("parts") if isinstance(data, dict) else None
    if not parts:
        return load_model(path, "cpu").model
    if "registration" in parts:  # the distillation's checkpoint
        weights = parts["registration"]
    else:  # the joint steps' checkpoint: the whole model
        prefix = "registration."
        weights = {k[len(prefix):]: v for k, v in parts["model"].items() if k.startswith(prefix)}
    config = (data.get("extra") or {}).get("config")
    model = INNReg(upgraded_config(config, path).model) if config else last
    if model is None:
        raise SystemExit(f"{path}: a distillation checkpoint needs a model file or joint checkpoint before it")
    model.registration.load_state_dict(weights)
    return model


def main(argv: list[str]) -> None:
    manifest, n, *paths = argv
    pairs = _pairs(manifest, int(n))
    model = None
    for path in paths:
        model = _network(path, model)
        net = model.registration
        affine = net.affine.eval()
        hidden = []
        handle = affine.head[1].register_forward_hook(lambda _m, _i, out: hidden.append(out.detach()))
        with torch.no_grad():
            maps = [affine(m, f) for m, f in pairs]
        handle.remove()
        alive = int((torch.cat(hidden) > 0).any(0).sum())
        matrices = torch.cat([a for a, _ in maps])
        translations = torch.cat([t for _, t in maps])
        print(
            f"{path}: {alive} of {hidden[0].shape[1]} hidden units alive; over {len(pairs)} pairs translation s.d. "
            f"{translations.std(0).mean():.2f} voxels, matrix s.d. {matrices.std(0).mean():.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
