#!/usr/bin/env bash
# The final check on whole-head phantom sets generated after the defaults were fixed (never used for
# tuning): `innreg train` with its defaults on 30 pairs, then innreg (default), --no-translate (the
# ablation: identical pipeline, untranslated moving image), MIND alone (--no-translate without the intensity
# channels, the stronger ablation), --no-refine (the network alone) and the
# peers ANTs SyN (Mattes MI, and the antsRegistrationSyN.sh recipe), Greedy and elastix on the 10 test pairs, one harness and one metrics code path.
# Usage: bash benchmarks/run_wholehead.sh WORK_DIR MOVING HEIGHTxWIDTH AXIS SEED [SPACING_MM]
# (SPACING_MM, e.g. 0.88 for the private real set's voxels; default: the head fitted into the size)
# (about 1.5-2 hours per set on one shared CPU core, most of it `innreg train`); then
#   python benchmarks/wholehead_table.py WORK_DIR/*/ > table.md
set -euo pipefail
work=$1; moving=$2; size=$3; axis=$4; seed=$5
spacing=(); if [ $# -ge 6 ]; then spacing=(--spacing "$6"); fi
set_dir="$work/$moving-$axis-$seed"
data="$set_dir/data"
innreg phantom --out "$data" --moving "$moving" --fixed t1 --n 40 --size "$size" --axis "$axis" \
  --seed "$seed" --test-fraction 0.25 "${spacing[@]}"
start=$(date +%s)
innreg train --pairs "$data/train.csv" --out "$set_dir/run" --quiet
echo "$(( $(date +%s) - start ))" > "$set_dir/train_seconds.txt"
innreg evaluate --model "$set_dir/run/model.pt" --pairs "$data/test.csv" --out "$set_dir/innreg" --quiet
innreg evaluate --model "$set_dir/run/model.pt" --pairs "$data/test.csv" --out "$set_dir/innreg-no-translate" \
  --quiet --no-translate
printf 'refine: {translation_weight: 0.0, inverse_weight: 0.0}\n' > "$set_dir/mind_only.yaml"
innreg evaluate --model "$set_dir/run/model.pt" --pairs "$data/test.csv" --out "$set_dir/innreg-mind-only" \
  --quiet --no-translate --refine-config "$set_dir/mind_only.yaml"
innreg evaluate --model "$set_dir/run/model.pt" --pairs "$data/test.csv" --out "$set_dir/innreg-no-refine" \
  --quiet --no-refine
innreg benchmark --train "$data/train.csv" --test "$data/test.csv" --methods identity,ants-syn,ants-syn-cc,greedy,elastix \
  --out "$set_dir/peers" --device cpu --quiet
