"""GPU check of training at scale (issue 26), run by benchmarks/gpu_check.sh on a CUDA machine.

On one GPU, the Qwen3-VL-2B widths at 2 text layers / 2 vision blocks / 2 expert layers, synthetic
samples, stage I:
  precision  3 steps with bf16 autocast over fp32 master weights (the default) against all-fp32:
             losses, CUDA peak memory against `lara bench memory`'s formula (ddp, 1 GPU, the run's
             batch and sequence), and the fraction of trainable entries one optimizer step moves;
  fsdp       `accelerate launch` with configs/accelerate/fsdp.yaml on 1 process: 4 steps, then a
             resume from the sharded step-2 state; final weights compared bit for bit, model/ loaded
             with LaraPolicy.from_pretrained;
  zero2      the same launch with configs/accelerate/deepspeed.yaml, 3 steps, when deepspeed imports
             (else recorded as skipped).
Writes one JSON (--out). Never run in the session that wrote it (no GPU there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _overrides(out: Path, steps: int, batch: int, *extra: str) -> list[str]:
    from curriculum.presets import REDUCED_DEPTH_OVERRIDES

    return [
        *REDUCED_DEPTH_OVERRIDES,
        "--output_dir",
        str(out),
        "--steps",
        str(steps),
        "--batch_size",
        str(batch),
        "--data.type",
        "synthetic",
        "--data.root",
        "64",
        "--data.num_workers",
        "0",
        "--progress",
        "false",
        "--log_every",
        "1",
        "--optim.warmup_steps",
        "0",
        *extra,
    ]


def precision(work: Path, batch: int) -> dict:
    import torch

    from curriculum.memory_model import activation_bytes, count_model, per_gpu
    from curriculum.presets import load_train_config
    from curriculum.trainer import build_optimizer, train
    from lara.modeling_lara import LaraPolicy

    runs = {}
    for name, mp in (("fp32", '"no"'), ("bf16", "bf16")):  # quoted: YAML reads a bare no as false
        flags = _overrides(work / name, 3, batch, "--mixed_precision", mp, "--save_state", "false")
        cfg = load_train_config([], flags, preset="qwen3vl-2b", stage=1)
        r = train(cfg)
        runs[name] = {"losses": [h["loss"] for h in r.history], "peak_gib": r.peak_memory_bytes / 2**30}
    counts = count_model(cfg)
    seq = 128 + 16 + 128  # image tokens + <img_next> + the bench's default text; the run's may differ
    act = activation_bytes(counts, batch, seq, 96, checkpointing=True, bf16=True)
    formula = per_gpu(counts, "ddp", 1, act, bf16=True)
    torch.manual_seed(0)
    policy = LaraPolicy(cfg.model).cuda()
    optimizer, _ = build_optimizer(policy, cfg)
    for group in optimizer.param_groups:
        group["lr"] = cfg.optim.backbone_lr if group["name"] == "backbone" else cfg.optim.head_lr
    params = [p for g in optimizer.param_groups for p in g["params"]]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()
    moved = sum((p.detach() != b).sum().item() for p, b in zip(params, before, strict=True))
    return {
        **runs,
        "max_rel_loss_diff": max(
            abs(a - b) / abs(a) for a, b in zip(runs["fp32"]["losses"], runs["bf16"]["losses"], strict=True)
        ),
        "formula_gib_ddp_1gpu_seq272": formula["total"] / 2**30,
        "moved_fraction_one_step": moved / sum(p.numel() for p in params),
    }


def _launch(config: str, out: Path, steps: int, batch: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / config)]
    cmd += [
        "--num_processes",
        "1",
        "-m",
        "lara.scripts.cli",
        "train",
        "--preset",
        "qwen3vl-2b",
        "--stage",
        "1",
    ]
    cmd += _overrides(out, steps, batch, *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=420, cwd=ROOT)


def fsdp(work: Path, batch: int) -> dict:
    import torch
    from safetensors.torch import load_file

    from lara.modeling_lara import LaraPolicy

    run = _launch("configs/accelerate/fsdp.yaml", work / "fsdp", 4, batch, "--save_every", "2")
    if run.returncode:
        return {"ok": False, "stderr": run.stderr[-3000:]}
    resumed = work / "fsdp_resumed"
    shutil.copytree(work / "fsdp", resumed)
    shutil.rmtree(resumed / "final")
    again = _launch(
        "configs/accelerate/fsdp.yaml", resumed, 4, batch, "--save_every", "2", "--resume", "true"
    )
    if again.returncode:
        return {"ok": False, "resume_stderr": again.stderr[-3000:]}
    a = load_file(str(work / "fsdp" / "final" / "model" / "model.safetensors"))
    b = load_file(str(resumed / "final" / "model" / "model.safetensors"))
    policy = LaraPolicy.from_pretrained(str(work / "fsdp" / "final"))
    loaded = all(torch.equal(policy.state_dict()[k].cpu(), v) for k, v in a.items())
    return {
        "ok": True,
        "resume_bit_exact": a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a),
        "from_pretrained_equal": loaded,
        "sharded_state_files": sorted(p.name for p in (work / "fsdp" / "final" / "state").iterdir()),
    }


def zero2(work: Path, batch: int) -> dict:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return {
            "skipped": "deepspeed is not installed (bring its wheel; see configs/accelerate/deepspeed.yaml)"
        }
    run = _launch("configs/accelerate/deepspeed.yaml", work / "zero2", 3, batch, "--save_every", "100")
    return {"ok": run.returncode == 0, "stderr": run.stderr[-3000:] if run.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="lara-gpu-scale-") as tmp:
        for name, check in (("precision", precision), ("fsdp", fsdp), ("zero2", zero2)):
            start = time.perf_counter()
            try:
                results[name] = check(Path(tmp), args.batch)
            except Exception as err:  # record and go on: one failing engine must not hide the others
                results[name] = {"error": f"{type(err).__name__}: {err}"}
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(name, json.dumps(results[name])[:2000], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
