#!/usr/bin/env bash
# The 3D table of benchmarks/RESULTS.md: phantom T2 -> T1 volumes (64^3 at 3.2 mm), 24 training /
# 6 test pairs, a short CPU training run. Usage: bash benchmarks/run_3d.sh [WORK_DIR] [STEPS]
set -euo pipefail
work=${1:-bench3d-work}
steps=${2:-300}
innreg phantom --out "$work/data" --moving t2 --fixed t1 --n 30 --dim 3 --seed 3
innreg benchmark --train "$work/data/train.csv" --test "$work/data/test.csv" --out "$work/bench" --dim 3 \
  --steps "$steps" --device cpu --quiet --methods identity,ants-syn,voxelmorph-nmi,innreg
# The network alone: the same trained model without the per-pair refinement.
innreg evaluate --model "$work/bench/innreg/fit/model.pt" --pairs "$work/data/test.csv" \
  --out "$work/innreg-network-only" --quiet --no-refine
