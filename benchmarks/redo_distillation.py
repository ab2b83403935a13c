"""Redo a finished run's distillation with changed settings from its joint steps (run by hand).

Usage:
    python benchmarks/redo_distillation.py RUN_DIR OUT_DIR TRAIN.csv '{"distil_steps": 400, "distil_target": "affine"}'

Starts from ``RUN_DIR/checkpoint.pt`` (the end of the joint training), sets the JSON's keys in the
``train`` section of its config and runs ``innreg train --resume`` in ``OUT_DIR``: the translator stages
(if the run has them; they repeat the run's own, the same settings giving its translator back) and then
the distillation with the new settings, ending in ``OUT_DIR/model.pt`` (whose config records them), ready
for ``innreg evaluate``. RESULTS.md section 12.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from redo_translator_stages import resume_joint_checkpoint  # the resume both scripts share

if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(resume_joint_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])))
