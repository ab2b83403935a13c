"""The one training loop of innreg: steps, progress, history, resumable checkpoints.

Every optimisation that trains weights runs here: the joint training (:mod:`innreg.training`), the
translator stages (:mod:`innreg.translation_training`), the distillation (:mod:`innreg.distillation`) and
the two stages of the CycleGAN baseline. A loop is given the modules and optimisers it changes
(``parts``) and a ``step_fn(step) -> logs``; it owns the step counter, the wall-clock tally, the log
history, the progress bar and the checkpoint file. A step's randomness must be keyed by its step
number (as :class:`innreg.batches.PairBatches` does), so a resumed loop draws what the
uninterrupted one would have.

Checkpoint file (one format, ``CHECKPOINT_FORMAT``): ``{"format", "name", "step", "seconds",
"history", "parts": {name: state_dict}, "extra", "rng_torch", "rng_numpy"}`` written atomically; ``extra`` holds what the caller
adds (the joint training stores its config there).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from innreg.core.enums import LrSchedule
from innreg.errors import InnregInputError, StopSignal, TrainingDivergedError, stop_received, stop_signals_handled_by
from innreg.model_file import save_atomic

CHECKPOINT_FORMAT = "innreg-checkpoint/2"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class LoopState:
    """Where a loop stands: steps done, their wall seconds and one log row per step."""

    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def save_checkpoint(path: Path, name: str, state: LoopState, parts: Mapping[str, Stateful | None], extra: dict | None = None) -> None:
    """Write a loop's checkpoint atomically (``None`` parts are stored as ``None``)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "name": name,
        "step": state.step,
        "seconds": state.seconds,
        "history": state.history,
        "parts": {key: None if part is None else part.state_dict() for key, part in parts.items()},
        "extra": extra or {},
        # Step-keyed draws make batches repeat on resume; the generators are stored for anything else.
        "rng_torch": torch.get_rng_state(),
        "rng_numpy": np.random.get_state(),
    }
    save_atomic(payload, path)


def read_checkpoint(path: Path, name: str | None = None) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, checked; ``name`` must match when given."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which and why
        raise InnregInputError(f"{path}: cannot read checkpoint ({err.__class__.__name__}: {err})") from err
    if isinstance(saved, dict) and saved.get("format") == _JOINT_CHECKPOINT_V1:
        saved = _upgraded_v1(saved)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise InnregInputError(f"{path}: not an innreg training checkpoint (or one from an older innreg)")
    if name is not None and saved.get("name") != name:
        raise InnregInputError(f"{path}: a checkpoint of {saved.get('name')!r}, expected {name!r}")
    return saved


# The joint training's own format before the loops were one: upgraded on reading, so a run started with
# an older innreg resumes.
_JOINT_CHECKPOINT_V1 = "innreg-checkpoint/1"


def _upgraded_v1(saved: dict[str, Any]) -> dict[str, Any]:
    parts = {key: saved.get(key) for key in ("model", "discriminator", "opt_g", "opt_d", "scaler")}
    kept = ("step", "seconds", "history", "rng_torch", "rng_numpy")
    return {"format": CHECKPOINT_FORMAT, "name": "train", "parts": parts, "extra": {"config": saved["config"]}} | {
        key: saved.get(key, 0.0 if key == "seconds" else None) for key in kept
    }


def restore(saved: dict[str, Any], parts: Mapping[str, Stateful | None]) -> LoopState:
    """Load the parts of a checkpoint read by :func:`read_checkpoint` and return its :class:`LoopState`."""
    for key, part in parts.items():
        if part is not None and saved["parts"].get(key) is not None:
            part.load_state_dict(saved["parts"][key])
    torch.set_rng_state(saved["rng_torch"])
    np.random.set_state(saved["rng_numpy"])
    return LoopState(saved["step"], saved["seconds"], list(saved["history"]))


def scheduled_lr(base: float, step: int, steps: int, schedule: LrSchedule | str) -> float:
    """The learning rate of step ``step`` (0-based) of a loop of ``steps``: ``base`` throughout, or for
    ``cosine`` ``base * (1 + cos(pi * step / steps)) / 2`` (``base`` at the first step, near 0 at the
    last). A function of the step alone, so a resumed loop continues the schedule."""
    if LrSchedule(schedule) is LrSchedule.CONSTANT:
        return base
    return base * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))


def set_lr(optimisers: Iterable[torch.optim.Optimizer | None], lr: float) -> None:
    """Set every parameter group of the given optimisers (``None`` entries skipped) to ``lr``."""
    for opt in optimisers:
        for group in [] if opt is None else opt.param_groups:
            group["lr"] = lr


def optimiser_step(
    optimiser: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[torch.nn.Parameter],
    grad_clip: float,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """One update of every trainer: clear the gradients, backpropagate ``loss``, clip the gradients' norm
    to ``grad_clip`` (``train.grad_clip``), step. With a ``scaler`` (mixed precision) the loss is scaled
    and the gradients unscaled before the clip; the caller calls ``scaler.update()`` once per iteration.

    Raises:
        TrainingDivergedError: the gradients are not finite (a finite loss can have them), before the
            update: the clip would turn them into NaN weights. An active fp16 scaler skips such a step
            itself (and lowers its scale) instead.
    """
    optimiser.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimiser)
    norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    if not torch.isfinite(norm) and (scaler is None or not scaler.is_enabled()):
        raise TrainingDivergedError("gradients not finite")
    if scaler is None:
        optimiser.step()
    else:
        scaler.step(optimiser)


def run_loop(
    name: str,
    steps: int,
    step_fn: Callable[[int], dict[str, float]],
    parts: Mapping[str, Stateful | None],
    checkpoint: Path | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    state: LoopState | None = None,
    on_step: Callable[[LoopState, dict[str, float]], None] | None = None,
    writer: bool = True,
    extra: Callable[[], dict] | None = None,
    postfix: tuple[str, ...] = ("total", "sim", "nmi", "l1", "distil"),
    agree: Callable[[int], int] | None = None,
) -> LoopState:
    """Run ``step_fn(k)`` for the steps ``k`` not done yet, up to ``steps``; return the final state.

    A step whose logs hold a NaN or infinite value, or that raises
    :class:`~innreg.errors.TrainingDivergedError` itself (the joint step does, before its update), ends
    the loop at once with one naming the loop, the step and the last checkpoint, before the state moves
    on or anything is saved: a diverged optimisation never overwrites the last good checkpoint, and no
    model is written from it.

    Args:
        name: the loop's name (progress bar, checkpoint check).
        steps: total number of steps.
        step_fn: one optimisation step; returns its logs (floats).
        parts: modules and optimisers the checkpoint holds, by name (``None`` entries are skipped).
        checkpoint: file to resume from (when it exists and ``state`` is not given) and to save to
            every ``checkpoint_every`` steps, at the end and on Ctrl-C (after the step in progress);
            ``None``: not resumable.
        progress: show a progress bar.
        state: a state restored by the caller (the joint training reads its checkpoint first to
            learn its config); otherwise read from ``checkpoint`` or fresh.
        on_step: called after each step with the state and the step's logs (``step`` added).
        writer: whether this process writes the checkpoint (rank 0 of a multi-process run).
        extra: returns the checkpoint's ``extra`` entry at save time.
        postfix: log keys shown on the progress bar.
        agree: under torchrun, ``agree(value)`` is the largest ``value`` over the ranks (a collective every
            rank calls once after each step, :func:`innreg.distributed.max_over_ranks`): a stop signal that
            reached one rank first stops every rank after the same step, and all wait for the checkpoint
            before leaving (a rank that left early would make torchrun kill the one writing it).

    Raises:
        StopSignal: SIGINT or SIGTERM arrived (see :func:`_stop_after_step`); raised after the step in
            progress and its checkpoint.
    """
    from tqdm.auto import tqdm

    if state is None:
        state = restore(read_checkpoint(checkpoint, name), parts) if checkpoint is not None and checkpoint.exists() else LoopState()

    saved_step = state.step

    def save() -> None:
        nonlocal saved_step
        if checkpoint is not None and writer:
            save_checkpoint(checkpoint, name, state, parts, extra() if extra is not None else None)
        saved_step = state.step

    bar = tqdm(total=steps, initial=state.step, desc=name, unit="step", disable=not progress, dynamic_ncols=True)
    with _stop_after_step() as stop_requested:
        try:
            while state.step < steps:
                start = time.perf_counter()
                try:
                    logs = step_fn(state.step)
                except TrainingDivergedError as err:  # a step that found its own loss not finite
                    raise _diverged(name, state.step + 1, str(err), checkpoint, saved_step) from None
                bad = sorted(key for key, value in logs.items() if not math.isfinite(value))
                if bad:
                    raise _diverged(name, state.step + 1, f"{', '.join(bad)} not finite", checkpoint, saved_step)
                state.seconds += time.perf_counter() - start
                state.step += 1
                logs = {**logs, "step": state.step}
                state.history.append(logs)
                if on_step is not None:
                    on_step(state, logs)
                bar.update(1)
                # Significant digits, not decimals: a small loss must not read 0.000.
                bar.set_postfix({k: f"{logs[k]:.4g}" for k in postfix if k in logs})
                stop = stop_requested() if agree is None else agree(stop_requested())
                if state.step % checkpoint_every == 0 or state.step == steps or stop:
                    save()
                if stop:
                    if agree is not None:
                        agree(stop)  # every rank waits here for the checkpoint
                    raise StopSignal(stop)
        finally:
            bar.close()
    return state


def _diverged(name: str, step: int, what: str, checkpoint: Path | None, saved_step: int) -> TrainingDivergedError:
    kept = f"{checkpoint} holds step {saved_step}" if checkpoint is not None and saved_step else "nothing was saved"
    return TrainingDivergedError(
        f"{name}: {what} at step {step}: training diverged; {kept}. A lower learning rate for this loop "
        "(train.lr; train.translator_lr or train.guide_lr for the translator stages) or a smaller adversarial "
        "weight (loss.w_adv) usually helps"
    )


@contextlib.contextmanager
def _stop_after_step() -> Iterator[Callable[[], int]]:
    """SIGINT (Ctrl-C) or SIGTERM asks the loop to stop after the step in progress, so the checkpoint it
    then writes is consistent (never half an update); a second signal stops at once. Yields a function
    returning the first signal's number, 0 before one. Outside the main thread, where no handler can be
    installed, the signals keep their own handling (the last checkpoint stands). A stop received before the
    loop whose exception was lost (:func:`innreg.errors.stop_received`) counts as the first signal."""
    requested: list[int] = [stop_received()] if stop_received() else []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return

    def handler(signum, frame) -> None:
        if requested:
            raise StopSignal(requested[0])
        requested.append(signum)

    with stop_signals_handled_by(handler):
        yield lambda: requested[0] if requested else 0
