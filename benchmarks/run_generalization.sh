#!/usr/bin/env bash
# The "unseen data" check of benchmarks/generalization.md: another contrast (PD), another size and
# orientation (coronal 224x208), stronger deformations, 30 training pairs and `innreg train` with its
# defaults, then innreg (with and without refinement) and ANTs SyN on the 10 test pairs.
# Usage: bash benchmarks/run_generalization.sh [WORK_DIR] [MOVING] [HEIGHTxWIDTH] [AXIS] [SEED]
# (defaults: gen-work pd 224x208 coronal 7; about 13 minutes on 2 CPU cores)
set -euo pipefail
work=${1:-gen-work}
moving=${2:-pd}
size=${3:-224x208}
axis=${4:-coronal}
seed=${5:-7}
python - "$work/$moving" "$moving" "$size" "$axis" "$seed" <<'PY'
import sys
from innreg.data import DeformationParams, generate_phantom_dataset
out, moving, size, axis, seed = sys.argv[1:]
generate_phantom_dataset(
    out, moving=moving, fixed="t1", n=40, size=tuple(int(v) for v in size.split("x")), seed=int(seed),
    test_fraction=0.25, axis=axis, progress=False, overwrite=True,
    deformation=DeformationParams(rotation_deg=15, scale=(0.85, 1.15), translation=0.08, elastic_magnitude_vox=4.0),
)
PY
data="$work/$moving"
innreg train --pairs "$data/train.csv" --out "$data-run" --quiet
innreg evaluate --model "$data-run/model.pt" --pairs "$data/test.csv" --out "$data-eval" --quiet
innreg evaluate --model "$data-run/model.pt" --pairs "$data/test.csv" --out "$data-eval-network-only" --quiet --no-refine
innreg benchmark --train "$data/train.csv" --test "$data/test.csv" --methods identity,ants-syn \
  --out "$data-bench" --device cpu --quiet
