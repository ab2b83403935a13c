"""Markdown table of the `run_wholehead.sh` sets: one row per method, from each evaluation's summary.json,
then the issue's paired comparisons (`innreg.paired`: mean difference, bootstrap CI, Wilcoxon test).

Usage: python benchmarks/wholehead_table.py SET_DIR [SET_DIR ...]

Rows, where their evaluation is found: ``SET_DIR/innreg``, ``innreg-no-translate`` (the issue's ablation),
``innreg-mind-only`` (``--no-translate`` with ``refine: {translation_weight: 0, inverse_weight: 0}``: MIND alone,
no intensity channel, the stronger ablation where the raw image's cross-modal intensity channel costs the
ablation more than the translation adds), ``innreg-no-refine`` and ``SET_DIR/peers/METHOD/eval``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

INNREG_RUNS = ("innreg", "innreg-no-translate", "innreg-mind-only", "innreg-no-refine")
PEERS = ("identity", "ants-syn", "ants-syn-cc", "greedy", "elastix", "convexadam")  # ConvexAdam: 3D sets
# The issue's comparisons: the translation's share (and over MIND alone), the lead over ANTs, the network alone.
PAIRED = (("innreg", "innreg-no-translate"), ("innreg", "innreg-mind-only"), ("innreg", "ants-syn"),
          ("innreg", "ants-syn-cc"), ("innreg", "convexadam"),
          ("innreg-no-refine", "ants-syn"), ("innreg-no-refine", "ants-syn-cc"))  # fmt: skip


def _eval_dir(set_dir: Path, name: str) -> Path:
    return set_dir / name if name in INNREG_RUNS else set_dir / "peers" / name / "eval"


def _summaries(set_dir: Path) -> dict[str, dict]:
    found = {name: _eval_dir(set_dir, name) / "summary.json" for name in INNREG_RUNS + PEERS}
    return {name: json.loads(path.read_text()) for name, path in found.items() if path.exists()}


def _paired_lines(set_dir: Path) -> list[str]:
    from innreg.paired import paired_by_key
    from innreg.results import PER_PAIR_FILE, read_per_pair

    lines = []
    for a_name, b_name in PAIRED:
        a_dir, b_dir = _eval_dir(set_dir, a_name), _eval_dir(set_dir, b_name)
        if (a_dir / PER_PAIR_FILE).exists() and (b_dir / PER_PAIR_FILE).exists():
            d = paired_by_key(read_per_pair(a_dir), read_per_pair(b_dir))
            lines.append(f"- Dice {a_name} - {b_name}: {d.describe()}")
    return lines


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def set_table(set_dir: Path) -> str:
    """The Markdown table of one set (Dice mean ± std, HD95, folding, s/pair, translation NCC)."""
    rows = ["| method | Dice | HD95 (mm) | Jac <= 0 (%) | s/pair | NCC translated vs moving_as_fixed |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, s in _summaries(set_dir).items():
        # Only the rows whose pipeline translates: --no-translate's "translated" image is the raw one.
        ncc = s.get("translation_ncc") if name in ("innreg", "innreg-no-refine") else None
        rows.append(
            f"| {name} | {s['dice_mean']:.3f} ± {s['dice_std']:.3f} | {s['hd95_mean']:.2f} "
            f"| {100 * s['neg_jacobian_fraction']:.3f} | {_cell(s.get('seconds_per_pair'), '.3f')} | {_cell(ncc, '.3f')} |"
        )
    first = next(iter(_summaries(set_dir).values()), {})
    floor = first.get("identity", {}).get("translation_ncc")
    train = set_dir / "train_seconds.txt"
    notes = [f"untranslated floor NCC {floor:.3f}" if floor is not None else "",
             f"training {int(train.read_text()) / 60:.1f} min" if train.exists() else ""]
    paired = "\n".join(_paired_lines(set_dir))
    return f"### {set_dir.name}\n\n" + "\n".join(rows) + "\n\n" + "; ".join(n for n in notes if n) + "\n\n" + paired + "\n"


if __name__ == "__main__":
    print("\n".join(set_table(Path(arg)) for arg in sys.argv[1:]))
