"""Writing a phantom data set: NIfTI files, ``train.csv`` / ``test.csv`` and a contact sheet."""

from __future__ import annotations

import collections
import contextlib
import csv
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from innreg.atomic import check_output_dir, staged_dir
from innreg.data.deformations import DeformationParams
from innreg.data.io import Image, save_field, save_image
from innreg.data.phantom import simulate
from innreg.data.phantom.contact_sheet import save_contact_sheet
from innreg.data.phantom.head import HEAD_LABEL_DESCRIPTION
from innreg.data.phantom.simulate import MotionParams, PhantomPair, check_size, modality
from innreg.errors import InnregInputError, ignore_stop_signals, raise_if_stopped

MANIFEST_COLUMNS = ("moving", "fixed", "moving_seg", "fixed_seg", "true_ddf", "moving_as_fixed")
HEAD_COLUMNS = ("moving_head_labels", "fixed_head_labels")
_BRAIN_LABELS = "innreg phantom labels 0 bg 1 CSF 2 GM 3 WM"


def _write_pair(pair: PhantomPair, folder: Path, stem: str) -> dict[str, str]:
    """Write the files of a pair; return the manifest row (paths relative to the dataset root)."""
    reference = Image(pair.fixed, pair.affine)
    head = pair.moving_head_labels is not None
    rel = {key: f"images/{stem}_{key}.nii.gz" for key in MANIFEST_COLUMNS + (HEAD_COLUMNS if head else ())}
    images = (
        ("moving", pair.moving, pair.moving_modality),
        ("fixed", pair.fixed, pair.fixed_modality),
        ("moving_as_fixed", pair.moving_as_fixed, f"{pair.fixed_modality} of the moving anatomy"),
    )
    for role, image, description in images:
        save_image(folder / rel[role], image, reference, description=f"innreg phantom {description} ({role})")
    save_image(folder / rel["moving_seg"], pair.moving_seg, reference, dtype=np.uint8, description=_BRAIN_LABELS)
    save_image(folder / rel["fixed_seg"], pair.fixed_seg, reference, dtype=np.uint8, description=_BRAIN_LABELS)
    if head:
        for key, labels in zip(HEAD_COLUMNS, (pair.moving_head_labels, pair.fixed_head_labels)):
            save_image(folder / rel[key], labels, reference, dtype=np.uint8, description=HEAD_LABEL_DESCRIPTION)
    save_field(folder / rel["true_ddf"], pair.ddf, reference)
    return rel


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(MANIFEST_COLUMNS) + [c for c in HEAD_COLUMNS if rows and c in rows[0]]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@contextlib.contextmanager
def _single_torch_thread():
    """Run torch single-threaded: the per-pair tensors are small, so thread start-up only costs time."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class _Task:
    """Pair ``index`` of a data set: simulate it, write it, return its manifest row (and the pair if shown)."""

    index: int
    seed: int
    folder: Path
    keep: bool
    options: dict

    def __call__(self) -> tuple[dict[str, str], PhantomPair | None]:
        pair = simulate.make_phantom_pair(rng=np.random.default_rng([self.seed, self.index]), **self.options)
        return _write_pair(pair, self.folder, f"pair_{self.index:04d}"), pair if self.keep else None


def _run(task: _Task) -> tuple[dict[str, str], PhantomPair | None]:
    with _single_torch_thread():
        return task()


def _in_order(pool: ProcessPoolExecutor, tasks: Sequence[_Task], ahead: int) -> Iterator:
    """The results of ``tasks`` run by ``pool``, in order, with at most ``ahead`` submitted and not yet returned.

    Not ``pool.map``: it submits every task at once and, when its consumer stops, cancels them from this thread,
    racing the pool's own thread if a worker has died; here only the pool cancels (``shutdown``).
    """
    queued = iter(tasks)
    in_flight = collections.deque(pool.submit(_run, task) for task in itertools.islice(queued, ahead))
    while in_flight:
        result = in_flight.popleft().result()
        in_flight.extend(pool.submit(_run, task) for task in itertools.islice(queued, 1))
        yield result


@contextlib.contextmanager
def _pair_writer(workers: int) -> Iterator[Callable[[Sequence[_Task]], Iterator]]:
    """A function running tasks in order: in this process, or in ``workers`` spawned processes.

    Spawned (not forked) workers, so that no thread pool of the parent is copied mid-use; each loads
    the template once (a few seconds), which pays off from a few dozen pairs on. A stop (Ctrl-C, SIGTERM)
    cancels the pairs not yet handed to a worker and waits for the rest (about two a worker).
    """
    if workers <= 1:
        yield lambda tasks: map(_run, tasks)
        return
    # The workers leave SIGINT/SIGTERM to this process: killed by a signal to the whole group, they would break the
    # pool while this process stops it, a race in which Python 3.11 prints a traceback.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=ignore_stop_signals) as pool:
        try:
            yield lambda tasks: _in_order(pool, tasks, ahead=4 * workers)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def default_workers(n: int) -> int:
    """Worker processes for ``n`` pairs: the available cores (at most 4) from 32 pairs on, else 1."""
    return min(4, len(os.sched_getaffinity(0))) if n >= 32 else 1


def _prepare_destination(out_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work and creating nothing, an ``out_dir`` that cannot be written
    (:func:`innreg.atomic.check_output_dir`) or that holds something ``overwrite`` does not allow replacing."""
    check_output_dir(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InnregInputError(f"{out_dir}: already exists and is not empty; choose a new folder (Python: overwrite=True)")


def generate_phantom_dataset(
    out_dir: str | os.PathLike,
    moving: str = "t2",
    fixed: str = "t1",
    n: int = 200,
    dim: int = 2,
    size: Sequence[int] = (192, 160),
    seed: int = 0,
    test_fraction: float = 0.2,
    axis: str = "axial",
    progress: bool = True,
    deformation: DeformationParams | None = None,
    overwrite: bool = False,
    contact_sheet_pairs: int = 4,
    skull_stripped: bool = False,
    spacing: float | None = None,
    workers: int = 1,
    motion: MotionParams | None = MotionParams(),
) -> dict[str, Path]:
    """Write a phantom data set: NIfTI files, ``train.csv``/``test.csv`` and ``contact_sheet.png``.

    Layout of ``out_dir``: ``images/pair_NNNN_{moving,fixed,moving_seg,fixed_seg,true_ddf,moving_as_fixed}.nii.gz``
    and, for whole heads, ``..._{moving,fixed}_head_labels.nii.gz``; the manifests have these
    columns (:data:`MANIFEST_COLUMNS`, then :data:`HEAD_COLUMNS`) with paths relative to
    ``out_dir`` (training needs only the first two). Pair ``i`` is drawn from
    ``numpy.random.default_rng([seed, i])``, so it does not depend on ``n``. The last
    ``round(n * test_fraction)`` pairs form the test split. Everything is written into a temporary
    folder beside ``out_dir`` (:func:`innreg.atomic.staged_dir`) and moved in at the end, the manifests
    last, so an interrupted run leaves no half-written data set (a new ``out_dir`` appears in one rename).

    Args:
        out_dir: destination folder (must not exist or be empty, unless ``overwrite``).
        moving, fixed: modalities (see :data:`PHANTOM_MODALITIES`).
        n: number of pairs (at least 2).
        dim: 2 or 3.
        size: grid shape, 2 or 3 values of at least 16.
        seed: random seed.
        test_fraction: share of pairs in ``test.csv``.
        axis: 2D slice orientation.
        progress: show a tqdm progress bar.
        deformation: misalignment ranges (default :class:`DeformationParams`).
        overwrite: replace an existing non-empty ``out_dir``.
        contact_sheet_pairs: pairs shown in the contact sheet; 0 writes none.
        skull_stripped: the brain-only phantom (no head, no head motion, mild acquisition effects).
        spacing: voxel size in mm (default: fit the head or brain into the grid).
        workers: processes simulating and writing pairs (:func:`default_workers` suggests a number);
            the result does not depend on it.
        motion: rigid head motion between the two images of a pair, on top of ``deformation``
            (whole heads only; ``None``: none).

    Returns:
        ``{"train": train.csv, "test": test.csv, "contact_sheet": contact_sheet.png}`` paths (without
        ``contact_sheet`` when none was asked for).
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    modality(moving, "moving"), modality(fixed, "fixed")
    size = check_size(dim, size)
    if n < 2:
        raise InnregInputError(f"n={n}: need at least 2 pairs (one for training, one for testing)")
    if workers < 1:
        raise InnregInputError(f"workers={workers}: need at least 1")
    if contact_sheet_pairs < 0:
        raise InnregInputError(f"contact_sheet_pairs={contact_sheet_pairs}: must be 0 or more")
    if spacing is not None and spacing <= 0:
        raise InnregInputError(f"spacing={spacing}: must be positive")
    if not 0.0 < test_fraction < 1.0:
        raise InnregInputError(f"test_fraction={test_fraction}: must be between 0 and 1")
    _prepare_destination(out_dir, overwrite)
    n_test = min(max(1, round(n * test_fraction)), n - 1)

    # Staged beside out_dir and moved in at the end, manifests last, replacing every entry of an old data set:
    # an interrupted run leaves out_dir as it was, and the next run clears a killed one's staging folder.
    with staged_dir(out_dir, owned=("*",), last=("train.csv", "test.csv")) as tmp_dir:
        (tmp_dir / "images").mkdir()
        options = dict(moving=moving, fixed=fixed, dim=dim, size=size, deformation=deformation, axis=axis,
                       skull_stripped=skull_stripped, spacing=spacing, motion=motion)
        tasks = [_Task(i, seed, tmp_dir, i < contact_sheet_pairs, options) for i in range(n)]
        rows, shown = [], []
        with _pair_writer(workers) as run:
            for row, pair in tqdm(run(tasks), total=n, desc="phantom pairs", unit="pair", disable=not progress):
                raise_if_stopped()
                rows.append(row)
                if pair is not None:
                    shown.append(pair)
        if shown:
            save_contact_sheet(shown, tmp_dir / "contact_sheet.png")
        _write_manifest(tmp_dir / "train.csv", rows[: n - n_test])
        _write_manifest(tmp_dir / "test.csv", rows[n - n_test :])
    files = {"train": "train.csv", "test": "test.csv"} | ({"contact_sheet": "contact_sheet.png"} if shown else {})
    return {name: out_dir / file for name, file in files.items()}
