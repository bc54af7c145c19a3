"""One GPU check of a LaRA preset with random weights (run by benchmarks/gpu_check.sh), one JSON out.

Measures, in one process, on one device, each section under a wall-clock budget:
1. latency: ms per action chunk of `predict_action_chunk`, median of `--reps` after `--warmup`:
   the stage-III path (one prefill + `--steps` Euler steps, no generation) and the explicit-CoT
   path (`--cot-tokens` CoT tokens generated, the `<img_next>` slots, the FAST tokens);
2. training memory: peak device memory of one stage-I and one stage-III optimizer step (forward,
   backward, AdamW step, EMA update) at `--batch` with gradient checkpointing, full fine-tuning as
   the stage presets configure it (bf16 weights on CUDA), on synthetic samples at the preset's sizes.
On CPU (`--device cpu`, the dry run with the tiny preset) memory figures are the process's peak RSS.
Targets (issue 15): stage III <= 20 ms per 8-action chunk on an H100-class GPU; a stage-III
training step fits in 40 GB at batch 16 (`--batch 16`).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def _peak(device: torch.device) -> dict:
    if device.type == "cuda":
        return {
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2**30, 2),
        }
    return {"peak_rss_gib_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def _batch(cfg, n: int, stage: int) -> dict:
    """n synthetic samples at the preset's sizes, stacked (tensors) or listed (text, CoT). Not through
    data_pipeline.samples: that imports the LeRobot stack, which a GPU box need not have."""
    from curriculum.synthetic import SyntheticSamples

    ds = SyntheticSamples(
        n,
        cfg.chunk_size,
        cfg.vision.image_size,
        cfg.foresight.image_size,
        list(cfg.vision.cameras),
        cfg.action_dim,
        cfg.state_dim,
        with_cot=stage < 3,
    )
    items = [ds[i] for i in range(n)]
    return {
        k: torch.stack([it[k] for it in items]) if torch.is_tensor(v) else [it[k] for it in items]
        for k, v in items[0].items()
    }


def latency(policy, args, device) -> dict:
    from lara.scripts.bench_latency import _obs, _time

    obs = _obs(policy.cfg)
    out = {}
    with torch.inference_mode():
        ms = _time(
            lambda: policy.predict_action_chunk(obs, stage=3, num_steps=args.steps),
            args.reps,
            args.warmup,
            device,
        )
        out["stage3_ms"] = round(statistics.median(ms), 2)
        out["stage3_ms_all"] = [round(x, 2) for x in ms]
        n_act = max(1, round(args.fast_report["mean_tokens"]))
        before = policy.engine.num_generated_tokens
        ms = _time(
            lambda: policy.predict_action_chunk(obs, stage=1, fixed_lengths=(args.cot_tokens, n_act)),
            args.reps,
            args.warmup,
            device,
        )
        out["explicit_ms"] = round(statistics.median(ms), 2)
        out["explicit_tokens_per_chunk"] = (policy.engine.num_generated_tokens - before) / (
            args.reps + args.warmup
        )
        out["explicit_cot_tokens"], out["explicit_action_tokens"] = args.cot_tokens, n_act
    out["ratio"] = round(out["stage3_ms"] / out["explicit_ms"], 4)
    return out


def train_step(policy, stage: int, args, device) -> dict:
    """One optimizer step of `stage` at args.batch (fresh AdamW); peak memory and time."""
    batch = _batch(policy.cfg, args.batch, stage)
    policy.train()
    policy.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(policy.parameter_groups(1e-5, 1e-4), weight_decay=0.01)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    loss, metrics = policy(batch, stage)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    policy.ema_update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = {
        "stage": stage,
        "batch": args.batch,
        "step_s": round(time.perf_counter() - t0, 2),
        "loss": round(float(loss.detach()), 4),
        "seq_len": int(metrics["tokens/seq_len"]),
        **_peak(device),
    }
    del opt, loss
    policy.zero_grad(set_to_none=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="qwen3vl-2b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--cot-tokens", type=int, default=100)
    p.add_argument(
        "--steps", type=int, default=4, help="expert Euler steps per chunk (the preset's default is 4)"
    )
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = p.parse_args(argv)

    from lara.presets import load_config
    from lara.scripts.bench_latency import random_policy

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    cfg = load_config(args.preset, [f"--backbone.dtype={dtype}"])
    t0 = time.perf_counter()
    policy, args.fast_report = random_policy(cfg)
    from curriculum.synthetic import COT

    policy.seed_output_vocab(
        [COT]
    )  # the training steps' CoT (matters for `observed` output vocabularies only)
    policy.to(device)
    result = {
        "preset": args.preset,
        "device": str(device),
        "dtype": dtype,
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "params_m": round(sum(q.numel() for q in policy.parameters()) / 1e6, 1),
        "build_s": round(time.perf_counter() - t0, 1),
        "image_size": cfg.vision.image_size,
        "cameras": list(cfg.vision.cameras),
        "chunk_size": cfg.chunk_size,
        "expert_steps": args.steps,
        "reps": args.reps,
        "warmup": args.warmup,
        "command": " ".join(
            ["python", "benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    t = time.perf_counter()
    result["latency"] = latency(policy, args, device)
    result["latency"]["section_s"] = round(time.perf_counter() - t, 1)
    for stage in (1, 3):
        t = time.perf_counter()
        try:
            result[f"train_stage{stage}"] = train_step(policy, stage, args, device)
        except torch.OutOfMemoryError as err:  # a figure too: this batch does not fit
            result[f"train_stage{stage}"] = {
                "stage": stage,
                "batch": args.batch,
                "oom": str(err).splitlines()[0],
            }
            policy.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        result[f"train_stage{stage}"]["section_s"] = round(time.perf_counter() - t, 1)
    result["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
