#!/bin/bash
# RL pilot (issue 17): the memorization-check policy (tiny, task 0, trained on init states 0..9),
# GRPO on 10 sampled-layout demo start states vs SFT on those 10 demos, 15 min each; evaluation on
# init states 0..19 of task 0 (10..19: never a demo's start state for any arm).
cd "$(dirname "$0")/../../.."  # the repository root
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set -e
mkdir -p runs
# the starting policy (resumable; already there if runs/memorize holds a finished run)
.venv/bin/python examples/memorize_libero.py --out runs/memorize
echo "collect $(date)" >> runs/rlpilot.log
.venv/bin/lara collect --suite libero_object --tasks 0 --episodes_per_task 10 --init sampled --perturb_xy 0.0 \
  --camera_size 128 --workers 2 --out runs/rlpilot/data
echo "annotate $(date)" >> runs/rlpilot.log
.venv/bin/lara annotate --dataset runs/rlpilot/data --backend sim --name sim-v1 --workers 2
echo "benchmark $(date)" >> runs/rlpilot.log
.venv/bin/python benchmarks/rl/rl_vs_sft.py --policy runs/memorize/train/stage3/final \
  --dataset runs/rlpilot/data --train-preset tiny --tasks 0 --eval-episodes 20 --minutes 15 \
  --out runs/rlpilot/bench --camera_size 128
echo "done $(date)" >> runs/rlpilot.log
