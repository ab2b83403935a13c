#!/usr/bin/env bash
# Regenerates the tables of benchmarks/RESULTS.md (run by hand; about 70 minutes on 2 CPU cores).
# Usage: bash benchmarks/run_phantom_tables.sh [WORK_DIR] [STEPS]
set -euo pipefail
work=${1:-bench-work}
steps=${2:-800}
innreg phantom --out "$work/data/t2-t1" --moving t2 --fixed t1 --n 200 --size 192x160 --seed 0
innreg phantom --out "$work/data/ct-t1" --moving ct --fixed t1 --n 200 --size 192x160 --seed 1
# The convergence runs double as the benchmark's innreg and innreg-no-barrier fits.
innreg benchmark --convergence --train "$work/data/t2-t1/train.csv" --test "$work/data/t2-t1/test.csv" \
  --out "$work/t2-t1" --steps "$steps" --eval-every 100 --device cpu --quiet
innreg benchmark --train "$work/data/t2-t1/train.csv" --test "$work/data/t2-t1/test.csv" --out "$work/t2-t1" \
  --steps "$steps" --device cpu --quiet \
  --methods identity,ants-syn,voxelmorph-nmi,innreg-no-translation,innreg-no-ddc,innreg,innreg-no-refine,innreg-no-barrier,innreg-no-inn,reggan,cyclegan-voxelmorph
innreg benchmark --train "$work/data/ct-t1/train.csv" --test "$work/data/ct-t1/test.csv" --out "$work/ct-t1" \
  --steps "$steps" --device cpu --quiet --methods identity,ants-syn,voxelmorph-nmi,innreg,innreg-no-refine
