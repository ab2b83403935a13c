#!/usr/bin/env bash
# The "unseen data" check of benchmarks/generalization.md: another contrast (PD), another size and
# orientation (coronal 224x208), stronger deformations, 30 training pairs and `innreg train` with its
# defaults, then innreg (with and without refinement) and ANTs SyN on the 10 test pairs.
# Usage: bash benchmarks/run_generalization.sh [WORK_DIR]   (about 13 minutes on 2 CPU cores)
set -euo pipefail
work=${1:-gen-work}
python - "$work" <<'PY'
import sys
from innreg.data import DeformationParams, generate_phantom_dataset
generate_phantom_dataset(
    f"{sys.argv[1]}/pd", moving="pd", fixed="t1", n=40, size=(224, 208), seed=7, test_fraction=0.25,
    axis="coronal", progress=False, overwrite=True,
    deformation=DeformationParams(rotation_deg=15, scale=(0.85, 1.15), translation=0.08, elastic_magnitude_vox=4.0),
)
PY
innreg train --pairs "$work/pd/train.csv" --out "$work/run" --quiet
innreg evaluate --model "$work/run/model.pt" --pairs "$work/pd/test.csv" --out "$work/eval" --quiet
innreg evaluate --model "$work/run/model.pt" --pairs "$work/pd/test.csv" --out "$work/eval-network-only" --quiet --no-refine
innreg benchmark --train "$work/pd/train.csv" --test "$work/pd/test.csv" --methods identity,ants-syn \
  --out "$work/bench" --device cpu --quiet
