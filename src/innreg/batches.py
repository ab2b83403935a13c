"""The training batches of a run, drawn by step number so that a resumed loop sees the same ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from innreg.config import Config
from innreg.data import PairDataset, PairRecord, pad_collate
from innreg.model import MIN_NETWORK_SIZE


class PairBatches:
    """The training batches of a run (used by :func:`train` and the two-stage baselines).

    ``batches(step)`` returns ``(moving, fixed)``, each ``(batch_size, 1, *S)`` on ``device``; the
    indices, slices and augmentations depend only on ``(seed, step)`` (and ``rank`` when several processes train, so each draws
    its own), so a resumed stage sees the batches it would have seen.
    """

    def __init__(
        self, records: Sequence[PairRecord], config: Config, device: torch.device, rank: int | None = None
    ) -> None:
        t = config.train
        # Each rank its own augmentations too (the dataset's randomness is keyed by its seed).
        seed = t.seed if rank is None else int(np.random.SeedSequence([t.seed, rank]).generate_state(1)[0])
        self.dataset = PairDataset(
            list(records),
            dim=config.model.dim,
            slice_axis=t.slice_axis,
            slice_range=tuple(t.slice_range),
            augment=t.augment,
            seed=seed,
            factor=config.model.input_factor,  # the networks train at their working resolution
            min_size=MIN_NETWORK_SIZE,
        )
        self.seed, self.batch_size, self.device = t.seed, t.batch_size, device
        self.rank = rank

    def batch(self, step: int) -> dict[str, Tensor]:
        """The images of step ``step`` (and ``fixed_mask``/``moving_mask`` if the pairs have masks) on ``device``."""
        rng = np.random.default_rng([self.seed, step] if self.rank is None else [self.seed, step, self.rank])
        n = len(self.dataset)
        idx = rng.choice(n, size=self.batch_size, replace=n < self.batch_size)
        # Slices and augmentations are numbered by step too, so a resumed run draws the same ones.
        batch = pad_collate([self.dataset.sample(int(i), step * self.batch_size + j) for j, i in enumerate(idx)])
        keys = ("moving", "fixed", "moving_mask", "fixed_mask")
        return {key: batch[key].to(self.device) for key in keys if key in batch}

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        batch = self.batch(step)
        return batch["moving"], batch["fixed"]
