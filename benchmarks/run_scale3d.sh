#!/usr/bin/env bash
# benchmarks/scale3d.md: `innreg train --dim 3` with its CPU defaults (networks at half resolution,
# 400 steps) on whole-head PD -> T1 phantom volumes of 96x128x64 at 1.76 mm (12 training / 6 test
# pairs), against a 6-step model trained at full resolution (the old defaults) and ANTs SyN.
# Needs the whole-head phantom (`innreg phantom` with --spacing). Usage: bash benchmarks/run_scale3d.sh [WORK_DIR]
set -euo pipefail
work=${1:-scale3d-work}
export OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
innreg phantom --out "$work/head3d" --moving pd --fixed t1 --n 18 --dim 3 --size 96x128x64 --spacing 1.76 \
  --test-fraction 0.3334 --seed 5
/usr/bin/time -v innreg train --pairs "$work/head3d/train.csv" --out "$work/run3d" --dim 3 --device cpu
innreg evaluate --model "$work/run3d/model.pt" --pairs "$work/head3d/test.csv" --out "$work/eval3d" --device cpu --quiet
printf 'model: {input_factor: 1}\n' > "$work/full.yaml"
innreg train --pairs "$work/head3d/train.csv" --out "$work/run6" --dim 3 --device cpu --steps 6 --config "$work/full.yaml" --quiet
innreg evaluate --model "$work/run6/model.pt" --pairs "$work/head3d/test.csv" --out "$work/eval6" --device cpu --quiet
innreg benchmark --train "$work/head3d/train.csv" --test "$work/head3d/test.csv" --methods identity,ants-syn,convexadam \
  --dim 3 --out "$work/bench_peers" --device cpu --quiet
