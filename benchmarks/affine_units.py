"""How many hidden units of the affine stage's head are alive, and does its output depend on the pair (run by hand).

Usage:
    python benchmarks/affine_units.py TEST.csv N_PAIRS MODEL_OR_CHECKPOINT.pt [...]

For each file (a model file, or a training checkpoint of the joint steps or of the distillation, whose registration weights are put into the first model file given), the first ``N_PAIRS``
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


def _pairs(manifest: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for record in read_manifest(manifest)[:n]:
        images = [normalize_percentile(nib.load(path).get_fdata()) for path in (record.moving, record.fixed)]
        out.append(tuple(torch.as_tensor(a, dtype=torch.float32)[None, None] for a in images))
    return out


def _registration_weights(path: str) -> dict[str, torch.Tensor] | None:
    """The registration network's weights in a training checkpoint (``None`` for a model file)."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    parts = data.get("parts") if isinstance(data, dict) else None
    if not parts:
        return None
    if "registration" in parts:  # the distillation's checkpoint
        return parts["registration"]
    prefix = "registration."  # the joint steps' checkpoint: the whole model
    return {k[len(prefix):]: v for k, v in parts["model"].items() if k.startswith(prefix)}


def main(argv: list[str]) -> None:
    manifest, n, *paths = argv
    pairs = _pairs(manifest, int(n))
    base = None
    for path in paths:
        weights = _registration_weights(path)
        if weights is None:
            base = load_model(path, "cpu")
            net = base.model.registration
        else:
            net = base.model.registration
            net.load_state_dict(weights)
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
