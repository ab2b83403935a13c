"""``innreg benchmark --convergence``: test Dice against training step for learned methods."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from innreg.atomic import check_output_dir, write_text
from innreg.benchmark.inputs import FIT_KEYS, changed, method_inputs, read_inputs, renew
from innreg.benchmark.settings import CONVERGENCE_METHODS, FIT_DIR
from innreg.errors import InnregInputError


def steps_to_fraction(
    steps: Sequence[int], dice: Sequence[float], fraction: float = 0.95, start: float = 0.0
) -> int | None:
    """First evaluated step whose Dice reaches ``start + fraction * (final - start)``.

    With ``start = 0`` this is "steps to reach 95% of the final Dice"; with ``start`` the identity
    Dice it is "steps to reach 95% of the final gain". ``None`` for an empty curve.
    """
    if not steps:
        return None
    order = np.argsort(steps)
    xs, ys = np.asarray(steps)[order], np.asarray(dice, dtype=np.float64)[order]
    target = start + fraction * (ys[-1] - start)
    return int(xs[np.argmax(ys >= target)])


def _read_curve(path: Path) -> dict[int, float]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {int(row["step"]): float(row["dice_mean"]) for row in csv.DictReader(fh)}


def _write_curve(path: Path, curve: dict[int, float]) -> None:
    write_text(path, "step,dice_mean\n" + "".join(f"{s},{d:.6f}\n" for s, d in sorted(curve.items())))


def convergence_study(
    train: str | Path,
    test: str | Path,
    out: str | Path,
    steps: int,
    eval_every: int,
    methods: Sequence[str] = CONVERGENCE_METHODS,
    n_pairs: int = 10,
    device: str = "auto",
    dim: int = 2,
    config: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Test Dice against training step for learned methods (default: NMI barrier vs plain NMI).

    Every ``eval_every`` steps (and at the last) the model in training registers the first
    ``n_pairs`` test pairs; Dice is computed by the evaluation code. The training run of method ``m``
    is ``out/m/fit`` (so a later benchmark in the same ``out`` reuses it; its inputs are recorded as the
    benchmark records them); when that already holds a model trained without a curve, or from other
    inputs, the study trains again in ``out/m/convergence_run``. Curves are kept in ``out/m/convergence.csv``
    and a rerun continues where it stopped.

    Returns:
        ``out/convergence.md`` (also written: ``convergence.csv`` with all curves, ``convergence.png``).
    """
    from innreg.baselines import make_method
    from innreg.baselines.configured import ConfiguredMethod
    from innreg.config import Config
    from innreg.data import load_pair, read_manifest, voxel_spacing
    from innreg.evaluation import labelled_records, overlap_metrics
    from innreg.inference import RegistrationModel
    from innreg.reports import line_plot, markdown_table

    if eval_every < 1:
        raise InnregInputError(f"--eval-every: must be a positive integer, got {eval_every}")
    out = Path(out)
    base = Config.from_yaml(config) if config else None
    read_manifest(train)
    pairs = [load_pair(r) for r in labelled_records(test)[:n_pairs]]
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)

    def mean_dice(segs: Sequence[np.ndarray]) -> float:
        return float(np.mean([
            overlap_metrics(seg, fixed_seg.array, voxel_spacing(fixed)).dice_mean
            for seg, (_, fixed, _, fixed_seg) in zip(segs, pairs)
        ]))  # fmt: skip

    identity_dice = mean_dice([moving_seg.array for _, _, moving_seg, _ in pairs])
    curves: dict[str, dict[int, float]] = {}
    for name in methods:
        method = make_method(name, dim=dim, config=base)
        if not isinstance(method, ConfiguredMethod):
            raise InnregInputError(f"--methods {name}: the convergence study needs a method trained by innreg train")
        curve_path = out / name / "convergence.csv"
        curve = _read_curve(curve_path)
        shared_dir, own_dir = out / name / FIT_DIR, out / name / "convergence_run"
        # The benchmark's training run carries the curve, unless it finished before any curve existed or
        # was trained from other inputs (or from unrecorded ones) than these.
        finished_without_curve = (shared_dir / "model.pt").exists() and not curve_path.exists()
        inputs = method_inputs(name, Path(train), Path(test), steps, dim, config and Path(config))
        shared_differs = shared_dir.exists() and bool(set(FIT_KEYS) & set(changed(read_inputs(out / name), inputs)))
        run_dir = own_dir if own_dir.exists() or finished_without_curve or shared_differs else shared_dir
        if not shared_dir.exists() and run_dir == shared_dir:
            renew(out / name, inputs)  # so a benchmark in ``out`` knows what the training run is from
        # The curves follow the network's training, so they register without per-pair refinement.
        run_config = method.run_config(steps, device).updated(refine={"enabled": False})

        def on_step(state, logs, curve=curve, curve_path=curve_path, run_config=run_config) -> None:
            if state.step % eval_every and state.step != steps:
                return
            registrar = RegistrationModel(state.model, run_config, next(state.model.parameters()).device)
            curve[state.step] = mean_dice(
                [registrar.register(m.array, f.array, ms.array).warped_seg for m, f, ms, _ in pairs]
            )
            _write_curve(curve_path, curve)

        print(f"convergence: {name}: training {steps} steps, Dice on {len(pairs)} test pairs every {eval_every}",
              flush=True)
        method.fit(train, run_dir, steps, device, progress, on_step=on_step)
        curves[name] = {s: d for s, d in curve.items() if s <= steps}

    rows, summary = [], []
    for name, curve in curves.items():
        xs, ys = sorted(curve), [curve[s] for s in sorted(curve)]
        rows += [{"method": name, "step": s, "dice_mean": d} for s, d in zip(xs, ys)]
        summary.append({
            "method": name,
            "final Dice": ys[-1] if ys else None,
            "best Dice": max(ys) if ys else None,
            "steps to 95% of final Dice": steps_to_fraction(xs, ys),
            "steps to 95% of final gain over identity": steps_to_fraction(xs, ys, start=identity_dice),
        })  # fmt: skip
    write_text(out / "convergence.csv", "method,step,dice_mean\n" + "".join(
        f"{r['method']},{r['step']},{r['dice_mean']:.6f}\n" for r in rows))  # fmt: skip
    series = {name: (sorted(c), [c[s] for s in sorted(c)]) for name, c in curves.items()}
    series["identity"] = ([0, steps], [identity_dice, identity_dice])
    line_plot(out / "convergence.png", series, "training step", f"mean Dice ({len(pairs)} test pairs)", "Convergence")
    text = "\n".join([
        "# Convergence",
        "",
        f"Mean Dice on the first {len(pairs)} pairs of `{test}` during training on `{train}` "
        f"(evaluated every {eval_every} steps; identity Dice {identity_dice:.3f}).",
        "",
        markdown_table(summary, list(summary[0]) if summary else ["method"]),
        "![Dice against training step](convergence.png)",
        "",
    ])  # fmt: skip
    md_path = out / "convergence.md"
    write_text(md_path, text)
    return md_path
