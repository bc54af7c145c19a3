"""Full-size dry run on CPU: the Qwen3-VL-2B path LaRA users take, with random bf16 weights.

Not a test (too heavy for CI); run by hand:

    OMP_NUM_THREADS=2 python benchmarks/full_size_dry_run.py --out runs/full_size_dry_run

Steps, each in its own process (wall time and peak RSS measured with `os.wait4`'s rusage):
1. `make_checkpoint`: a Hugging Face-layout folder with the published Qwen3-VL-2B-Instruct
   `config.json`, `preprocessor_config.json`, `video_preprocessor_config.json`, `chat_template.json`
   (benchmarks/qwen3vl-2b-instruct/), a `tokenizer.json` (the offline Qwen BPE: the hub's file cannot
   be downloaded here) and random bf16 weights (`model.safetensors`).
2. `lara train` stage I: 2 optimizer steps at batch 1, `--model.backbone.pretrained_path` that folder, LoRA on
   the backbone (embeddings / LM head and LaRA's heads trained in full), synthetic samples at the
   preset's 256 px, then the final save.
3. `lara train` stage III from stage I's final checkpoint: 2 steps at batch 1, save.
4. `LaraPolicy.from_pretrained(stage3/final)` and one `predict_action_chunk` (256 px uint8 frames).
Writes `<out>/dry_run.json` and prints a Markdown table (copied into benchmarks/full_size_dry_run.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "benchmarks" / "qwen3vl-2b-instruct"
HF_FILES = ("config.json", "preprocessor_config.json", "video_preprocessor_config.json", "chat_template.json")
log = logging.getLogger("full_size_dry_run")


def make_checkpoint(folder: Path, smoke: bool = False) -> dict:
    """The HF-layout folder with random bf16 weights (run inside a child process). `smoke`: the tiny
    preset's architecture instead of the published config (a quick check of the script itself)."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from lara.tokenizer import _base_qwen_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    for name in HF_FILES:
        shutil.copy(PUBLISHED / name, folder / name)
    if smoke:
        from lara.backbone import qwen_config
        from lara.presets import load_config

        qwen_config(load_config("tiny")).save_pretrained(folder)  # overwrites config.json
    cfg = Qwen3VLConfig.from_pretrained(folder)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # build in bf16 directly: a float32 2B model is 8.5 GB
    model = Qwen3VLForConditionalGeneration(cfg)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(folder)  # safetensors
    # the offline Qwen BPE with Qwen's specials at their ids (151,669 tokens, no LaRA tokens)
    _base_qwen_tokenizer().save(str(folder / "tokenizer.json"))
    n = sum(p.numel() for p in model.parameters())
    return {
        "parameters": n,
        "dtype": str(next(model.parameters()).dtype),
        "weights_bytes": sum(f.stat().st_size for f in folder.glob("*.safetensors")),
    }


def predict(checkpoint: Path) -> dict:
    """from_pretrained + one stage-III predict_action_chunk (run inside a child process)."""
    import numpy as np
    import torch

    from envs.policies import resolve_checkpoint
    from lara.modeling_lara import LaraPolicy

    t0 = time.perf_counter()
    policy = LaraPolicy.from_pretrained(resolve_checkpoint(str(checkpoint)))  # a run's final/ -> final/model
    t_load = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    size = policy.cfg.vision.image_size
    obs = {
        "images": {
            c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in policy.cfg.vision.cameras
        },
        "state": rng.normal(size=policy.cfg.state_dim).astype(np.float32),
        "instruction": "pick up the black bowl",
    }
    t0 = time.perf_counter()
    with torch.no_grad():
        chunk = policy.predict_action_chunk(obs, stage=3)
    return {
        "load_s": round(t_load, 1),
        "predict_s": round(time.perf_counter() - t0, 1),
        "chunk_shape": list(chunk.shape),
        "finite": bool(np.isfinite(chunk).all()),
        "dtype": str(policy.vlm.dtype),
    }


def run_step(name: str, cmd: list[str], log_dir: Path) -> dict:
    """Run `cmd` as a child process; wall time, peak RSS (ru_maxrss of that child) and exit status."""
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log.info("%s: %s", name, " ".join(cmd))
    t0 = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    result = {
        "step": name,
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
        "rc": rc,
        "log": str(log_path),
    }
    log.info("%s: rc %d, %.1f s, peak RSS %.2f GiB", name, rc, wall, result["peak_rss_gib"])
    if rc != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(f"{name} failed (rc {rc}); last lines of {log_path}:\n" + "\n".join(tail))
    return result


def train_cmd(stage: int, out: Path, ckpt: Path, init_from: Path | None, smoke: bool = False) -> list[str]:
    size = "tiny" if smoke else "qwen3vl-2b"  # smoke: the tiny architecture, with the 2B's checkpointing
    cmd = [
        sys.executable,
        "-m",
        "lara.scripts.cli",
        "train",
        "--preset",
        size,
        "--stage",
        str(stage),
        "--model.backbone.pretrained_path",
        str(ckpt),
        "--model.backbone.gradient_checkpointing",
        "true",
        "--lora.enabled",
        "true",
        "--data.type",
        "synthetic",
        "--data.root",
        "8",
        "--data.num_workers",
        "0",
        "--data.annotation",
        "null",
        "--steps",
        "2",
        "--batch_size",
        "1",
        "--grad_accum_steps",
        "1",
        "--save_every",
        "2",
        "--log_every",
        "1",
        "--optim.warmup_steps",
        "0",
        "--save_state",
        "false",
        "--progress",
        "false",
        "--output_dir",
        str(out / f"stage{stage}"),
    ]
    if init_from is not None:
        cmd += ["--init_from", str(init_from)]
    return cmd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/full_size_dry_run")
    p.add_argument("--child", choices=("make_checkpoint", "predict"), help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true", help="tiny architecture: checks this script in a minute")
    args = p.parse_args()
    if args.child:  # inside a measured child process
        result = (
            make_checkpoint(Path(args.path), args.smoke)
            if args.child == "make_checkpoint"
            else predict(Path(args.path))
        )
        print(json.dumps({args.child: result}))
        return
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "Qwen3-VL-2B-Instruct-random"
    for old in (ckpt, out / "stage1", out / "stage3"):  # this script's own outputs of an earlier run
        shutil.rmtree(old, ignore_errors=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    smoke = ["--smoke"] if args.smoke else []
    steps = [
        run_step("make_checkpoint", me + ["--child", "make_checkpoint", "--path", str(ckpt)] + smoke, out),
        run_step("train_stage1", train_cmd(1, out, ckpt, None, args.smoke), out),
        run_step("train_stage3", train_cmd(3, out, ckpt, out / "stage1" / "final", args.smoke), out),
        run_step(
            "from_pretrained_predict",
            me + ["--child", "predict", "--path", str(out / "stage3" / "final")],
            out,
        ),
    ]
    details = {}
    for s in steps:
        for line in Path(s["log"]).read_text().splitlines():
            if line.startswith("{") and line.endswith("}"):
                try:
                    details.update(json.loads(line))
                except ValueError:
                    pass
    report = {
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "steps": steps,
        "details": details,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    (out / "dry_run.json").write_text(json.dumps(report, indent=2))
    print("| step | wall s | peak RSS GiB |\n|---|---|---|")
    for s in steps:
        print(f"| {s['step']} | {s['wall_s']} | {s['peak_rss_gib']} |")
    print(json.dumps(details, indent=2))


if __name__ == "__main__":
    main()
