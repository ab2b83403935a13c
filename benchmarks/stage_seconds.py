"""Seconds per step of each training stage of a run folder, read from its checkpoints (run by hand).

Usage:
    python benchmarks/stage_seconds.py RUN_DIR

Each loop's checkpoint (the joint steps' checkpoint.pt, translator_round*_checkpoint.pt,
distillation_checkpoint.pt) keeps its step count and the summed wall seconds of its steps (data loading
included, checkpoint writing not). Prints one Markdown row per stage and the total.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    files = [args.run_dir / "checkpoint.pt", *sorted(args.run_dir.glob("translator_round*_checkpoint.pt")),
             args.run_dir / "distillation_checkpoint.pt"]  # fmt: skip
    print("| stage | steps | seconds | s/step |\n| --- | --- | --- | --- |")
    total = 0.0
    for path in files:
        if not path.is_file():
            continue
        saved = torch.load(path, map_location="cpu", weights_only=False)
        steps, seconds = saved["step"], saved["seconds"]
        total += seconds
        stage = "joint" if path.name == "checkpoint.pt" else path.name.removesuffix("_checkpoint.pt")
        print(f"| {stage} | {steps} | {seconds:.1f} | "
              f"{seconds / max(steps, 1):.3f} |")
    print(f"| total | | {total:.1f} | |")


if __name__ == "__main__":
    main()
