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
from innreg.errors import ignore_stop_signals
from innreg.model import MIN_NETWORK_SIZE

_KEYS = ("moving", "fixed", "moving_mask", "fixed_mask")


def step_indices(
    n_pairs: int, batch_size: int, seed: int, step: int, rank: int | None = None, world_size: int = 1
) -> np.ndarray:
    """The indices of the pairs in step ``step``'s batch, ``(batch_size,)``, a function of ``(seed, step)``.

    One process (``rank=None``) draws ``batch_size`` distinct pairs (with replacement only when there are
    fewer pairs). Under torchrun every rank draws the same order of all pairs and takes its own slice of
    it, so the ranks' batches of a step are disjoint while there are ``world_size * batch_size`` pairs or
    more (a shorter order is repeated to that length), as a distributed sampler's shards are.
    """
    rng = np.random.default_rng([seed, step])
    if rank is None:
        return rng.choice(n_pairs, size=batch_size, replace=n_pairs < batch_size)
    order = np.resize(rng.permutation(n_pairs), world_size * batch_size)
    return order[rank * batch_size : (rank + 1) * batch_size]


class _StepDraws(Dataset):
    """The CPU batch of each step number: a map-style dataset indexed by step, so DataLoader workers can
    prepare the coming steps. ``torch_seed`` is the training process's ``torch.initial_seed()``, which
    the augmentations depend on and which a worker process does not share."""

    def __init__(
        self, dataset: PairDataset, seed: int, batch_size: int, shard: tuple[int, int] | None, torch_seed: int
    ) -> None:
        self.dataset, self.seed, self.batch_size, self.shard = dataset, seed, batch_size, shard
        self.torch_seed = torch_seed

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        rank, world_size = self.shard or (None, 1)
        idx = step_indices(len(self.dataset), self.batch_size, self.seed, step, rank, world_size)
        # Slices and augmentations are numbered by step too, so a resumed run draws the same ones.
        batch = pad_collate([self.dataset.sample(int(i), step * self.batch_size + j, self.torch_seed) for j, i in enumerate(idx)])
        return {key: batch[key] for key in _KEYS if key in batch}


class PairBatches:
    """The training batches of a run (used by :func:`train` and the two-stage baselines).

    ``batches(step)`` returns ``(moving, fixed)``, each ``(batch_size, 1, *S)`` on ``device``; the
    indices, slices and augmentations depend only on ``(seed, step)`` (and ``shard``, ``(rank, world_size)``, when
    several processes train: each takes its own share of the step's pairs, :func:`step_indices`, and draws its
    own augmentations), so a resumed stage sees the batches it would have seen. With ``train.data_workers`` > 0,
    that many worker processes prepare the next steps' batches while the current step runs (the same
    batches: a call for another step than the next, or after the torch seed changed, starts them again).
    """

    def __init__(
        self, records: Sequence[PairRecord], config: Config, device: torch.device, shard: tuple[int, int] | None = None
    ) -> None:
        t = config.train
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard (rank, world_size) needs 0 <= rank < world_size, got {shard}")
        # Each rank its own augmentations too (the dataset's randomness is keyed by its seed).
        seed = t.seed if shard is None else int(np.random.SeedSequence([t.seed, shard[0]]).generate_state(1)[0])
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
        self.shard = shard
        self.workers = t.data_workers
        self._ahead: tuple[object, int, int] | None = None  # (loader iterator, its next step, its torch seed)

    def _draws(self, torch_seed: int) -> _StepDraws:
        return _StepDraws(self.dataset, self.seed, self.batch_size, self.shard, torch_seed)

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
                    # The workers leave SIGINT/SIGTERM to the training loop, which stops after its step and then
                    # ends them (a worker that died first would fail that step); orphaned, a worker ends by itself.
                    worker_init_fn=ignore_stop_signals,
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
