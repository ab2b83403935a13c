#!/usr/bin/env bash
# The GPU check (run by hand on a CUDA machine, from the repository root): the CUDA tests, a 2D model's
# Dice and seconds per pair on the GPU, the seconds per step of each training stage in 2D and 3D, and the
# 3D depthwise convolution by implementation.
# Usage: bash benchmarks/gpu_check.sh SET_DIR MODEL.pt OUT_DIR
#   SET_DIR: a 2D phantom set (train.csv, test.csv), MODEL.pt: a model trained on it (benchmarks/RESULTS.md
#   section 20 used PD 121 of section 19). Every step has a time limit and the script goes on after a
#   failure; OUT_DIR gets gpu_check.log and one Markdown file per measurement. PYTHON picks the interpreter.
set -u
set_dir=$1 model=$2 out=$3
py=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out"
log="$out/gpu_check.log"
step() { echo "== $1" | tee -a "$log"; }
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$log"
# The 3D phantom is CPU work: made in the background while the GPU runs the 2D checks.
$py -m innreg phantom --out "$work/d3" --dim 3 --size 96x128x64 --spacing 1.76 --moving pd --fixed t1 --n 6 \
  --test-fraction 0.34 --seed 124 > "$work/phantom3d.log" 2>&1 &
phantom=$!

step "CUDA tests"
timeout 240 $py -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -n 30 | tee -a "$log"

step "2D evaluate on the GPU: the default (inverse_factor 2), then inverse_factor 1"
printf 'refine: {inverse_factor: 2}\n' > "$work/f2.yaml"
printf 'refine: {inverse_factor: 1}\n' > "$work/f1.yaml"
for f in f2 f1; do
  timeout 120 $py -m innreg evaluate --model "$model" --pairs "$set_dir/test.csv" --out "$work/eval-$f" --device cuda \
    --refine-config "$work/$f.yaml" --quiet 2>&1 | tail -n 5 | tee -a "$log"
  cp "$work/eval-$f/summary.md" "$out/eval2d-$f.md" 2>/dev/null
done
step "2D seconds per pair on the GPU (1 and 8 CPU threads)"
for threads in 1 8; do
  timeout 90 $py benchmarks/speed_pair.py "$model" "$set_dir/test.csv" 10 '{"inverse_factor": 2}' --device cuda \
    --innreg-only --threads $threads 2>&1 | tail -n 2 | tee -a "$log"
done

step "2D training stages on the GPU (100 joint, 2 x 100 translator, 100 distillation steps)"
printf 'train: {translator_steps: 100, distil_steps: 100}\n' > "$work/short2d.yaml"
timeout 200 $py -m innreg train --pairs "$set_dir/train.csv" --out "$work/run2d" --device cuda --steps 100 \
  --config "$work/short2d.yaml" --quiet 2>&1 | tail -n 5 | tee -a "$log"
$py benchmarks/stage_seconds.py "$work/run2d" 2>&1 | tee "$out/stages2d.md" | tee -a "$log"

step "3D depthwise convolution by implementation (the DDC's hidden features of a 96x128x64 volume)"
timeout 90 $py benchmarks/depthwise3d.py 2>&1 | tee "$out/depthwise3d.md" | tee -a "$log"

step "3D (96x128x64) training stages on the GPU (GPU defaults: full resolution, 4 data workers; 20 joint, 2 x 10 translator steps)"
wait $phantom
tail -n 2 "$work/phantom3d.log" | tee -a "$log"
printf 'train: {translator_steps: 10}\n' > "$work/short3d.yaml"
timeout 240 $py -m innreg train --dim 3 --pairs "$work/d3/train.csv" --out "$work/run3d" --device cuda --steps 20 \
  --config "$work/short3d.yaml" --quiet 2>&1 | tail -n 5 | tee -a "$log"
$py benchmarks/stage_seconds.py "$work/run3d" 2>&1 | tee "$out/stages3d.md" | tee -a "$log"
step "3D evaluate on the GPU (2 test pairs, refinement at full resolution)"
timeout 150 $py -m innreg evaluate --model "$work/run3d/model.pt" --pairs "$work/d3/test.csv" --out "$work/eval3d" \
  --device cuda --quiet 2>&1 | tail -n 5 | tee -a "$log"
cp "$work/eval3d/summary.md" "$out/eval3d.md" 2>/dev/null
step "done"
