"""The training batches of a run, drawn by step number so that a resumed loop sees the same ones."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from innreg.config import Config
from innreg.data import PairDataset, PairRecord, pad_collate
from innreg.model import MIN_NETWORK_SIZE

_KEYS = ("moving", "fixed", "moving_mask", "fixed_mask")


class _StepDraws(Dataset):
    """The CPU batch of each step number: a map-style dataset indexed by step, so DataLoader workers can
    prepare the coming steps. ``torch_seed`` is the training process's ``torch.initial_seed()``, which
    the augmentations depend on and which a worker process does not share."""

    def __init__(self, dataset: PairDataset, seed: int, batch_size: int, rank: int | None, torch_seed: int) -> None:
        self.dataset, self.seed, self.batch_size, self.rank, self.torch_seed = dataset, seed, batch_size, rank, torch_seed

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, step] if self.rank is None else [self.seed, step, self.rank])
        n = len(self.dataset)
        idx = rng.choice(n, size=self.batch_size, replace=n < self.batch_size)
        # Slices and augmentations are numbered by step too, so a resumed run draws the same ones.
        batch = pad_collate([self.dataset.sample(int(i), step * self.batch_size + j, self.torch_seed) for j, i in enumerate(idx)])
        return {key: batch[key] for key in _KEYS if key in batch}


class PairBatches:
    """The training batches of a run (used by :func:`train` and the two-stage baselines).

    ``batches(step)`` returns ``(moving, fixed)``, each ``(batch_size, 1, *S)`` on ``device``; the
    indices, slices and augmentations depend only on ``(seed, step)`` (and ``rank`` when several processes train, so each draws
    its own), so a resumed stage sees the batches it would have seen. With ``train.data_workers`` > 0,
    that many worker processes prepare the next steps' batches while the current step runs (the same
    batches: a call for another step than the next, or after the torch seed changed, starts them again).
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
            hu_curve=config.model.hu_curve,
        )
        self.seed, self.batch_size, self.device = t.seed, t.batch_size, device
        self.rank = rank
        self.workers = t.data_workers
        self._ahead: tuple[object, int, int] | None = None  # (loader iterator, its next step, its torch seed)

    def _draws(self, torch_seed: int) -> _StepDraws:
        return _StepDraws(self.dataset, self.seed, self.batch_size, self.rank, torch_seed)

    def batch(self, step: int) -> dict[str, Tensor]:
        """The images of step ``step`` (and ``fixed_mask``/``moving_mask`` if the pairs have masks) on ``device``."""
        torch_seed = torch.initial_seed()
        if self.workers == 0:
            batch = self._draws(torch_seed)[step]
        else:
            if self._ahead is None or self._ahead[1:] != (step, torch_seed):
                self.close()
                # Every pair loaded here first: forked workers then share the arrays (one copy in memory,
                # not one per worker), and a bad file stops the run with its one-line error, not a
                # worker's traceback.
                for index in range(len(self.dataset)):
                    self.dataset.volumes(index)
                loader = DataLoader(
                    self._draws(torch_seed), batch_size=None, sampler=itertools.count(step), num_workers=self.workers,
                    prefetch_factor=2, pin_memory=self.device.type == "cuda",
                )  # fmt: skip
                self._ahead = (iter(loader), step, torch_seed)
            batch = next(self._ahead[0])
            self._ahead = (self._ahead[0], step + 1, torch_seed)
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def close(self) -> None:
        """Stop the worker processes (if any); the next call starts them again."""
        self._ahead = None  # the loader's iterator ends its workers when it is released

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        batch = self.batch(step)
        return batch["moving"], batch["fixed"]
