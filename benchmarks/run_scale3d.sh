#!/usr/bin/env bash
# benchmarks/scale3d.md: `innreg train --dim 3` with its CPU defaults (networks at half resolution,
# 400 steps) on whole-head phantom volumes of 96x128x64 at 1.76 mm (12 training / 6 test pairs) ->
# T1, then innreg evaluate (default, --no-translate, --no-refine), a 6-step model trained at full
# resolution (the old defaults) and the peers ConvexAdam and ANTs SyN (Mattes MI, and the
# antsRegistrationSyN.sh recipe `ants-syn-cc`: about 4.5 minutes a pair, half an hour a set) in the one harness.
# Needs the whole-head phantom (`innreg phantom` with --spacing).
# Usage: bash benchmarks/run_scale3d.sh [WORK_DIR] [MOVING] [SEED]
#   scale3d set (settings chosen on it): the defaults, pd 5; held-out checks: t2 43, flair 44.
set -euo pipefail
work=${1:-scale3d-work}; moving=${2:-pd}; seed=${3:-5}
export OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
data="$work/head3d"
innreg phantom --out "$data" --moving "$moving" --fixed t1 --n 18 --dim 3 --size 96x128x64 --spacing 1.76 \
  --test-fraction 0.3334 --seed "$seed"
/usr/bin/time -v innreg train --pairs "$data/train.csv" --out "$work/run3d" --dim 3 --device cpu --quiet
for variant in "" --no-translate --no-refine; do
  innreg evaluate --model "$work/run3d/model.pt" --pairs "$data/test.csv" --out "$work/eval3d${variant:+-${variant#--}}" \
    --device cpu --quiet $variant
done
printf 'model: {input_factor: 1}\n' > "$work/full.yaml"
innreg train --pairs "$data/train.csv" --out "$work/run6" --dim 3 --device cpu --steps 6 --config "$work/full.yaml" --quiet
innreg evaluate --model "$work/run6/model.pt" --pairs "$data/test.csv" --out "$work/eval6" --device cpu --quiet
innreg benchmark --train "$data/train.csv" --test "$data/test.csv" --methods identity,convexadam,ants-syn,ants-syn-cc \
  --dim 3 --out "$work/bench_peers" --device cpu --quiet
