"""`lara eval` episodes per hour of a chunked LaRA policy, every frame rendered vs only the frames the
policy reads (`LiberoEnv.step(render=...)`), with 1 and 2 worker processes, in one run.

The policy is an untrained `small`-preset checkpoint (random weights, the small preset's compute:
what a CPU-trained policy costs per chunk); it fails every episode, so each episode runs the suite's
full step limit (libero_object: 280), the slowest case for a given policy. Both arms run the same
episodes of the same checkpoint; "every frame" is `--render true` (both cameras at every step), which
is what `lara eval` did for a learned policy before commit 2116da7.

    .venv/bin/python benchmarks/eval_render_savings.py --episodes 2 \
        --out benchmarks/eval_render_savings_results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from results_table import markdown_table, publish

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder


def random_small_checkpoint(path: Path) -> Path:
    """An untrained small-preset LaraPolicy with a FAST tokenizer and statistics, saved at `path`."""
    import torch

    from lara.modeling_lara import LaraPolicy
    from lara.normalization import NormalizationStats
    from lara.presets import load_config

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = LaraPolicy(load_config("small"))
    chunks = np.clip(rng.normal(0, 0.3, (400, policy.cfg.chunk_size, 7)), -1, 1).astype(np.float32)
    chunks[..., -1] = np.sign(chunks[..., -1] + 1e-6)
    policy.train_fast_tokenizer(chunks)
    action = rng.normal(0, 0.3, (500, 7))
    action[:, -1] = np.where(rng.uniform(size=500) > 0.5, 1.0, -1.0)
    stats = NormalizationStats.from_arrays(
        {"action": action, "state": rng.normal(0, 1, (500, 8))}, passthrough_dims={"action": [6]}
    )
    policy.set_normalization(stats)
    policy.save_pretrained(path)
    return path


def measure(policy: Path, workers: int, every_frame: bool, args: argparse.Namespace, root: Path) -> dict:
    name = f"{'every' if every_frame else 'read'}_w{workers}"
    cfg = EvalConfig(
        policy=str(policy),
        suite=args.suite,
        tasks=args.tasks,
        episodes=args.episodes,
        workers=workers,
        out=root / name,
        camera_size=args.camera_size,
        render=True if every_frame else None,
    )
    start = time.perf_counter()
    evaluate(cfg, policy_builder=policy_builder(cfg))
    hours = (time.perf_counter() - start) / 3600.0
    records = [json.loads(line) for line in (cfg.out / "episodes.jsonl").read_text().splitlines()]
    steps = sum(r["steps"] for r in records)
    return {
        "arm": name,
        "frames rendered": "every" if every_frame else "read by the policy",
        "workers": workers,
        "episodes": len(records),
        "steps": steps,
        "episodes_per_hour": len(records) / hours,
        "render_s_per_step": sum(r["render_seconds"] or 0.0 for r in records) / steps,
        "sim_s_per_step": sum(r["sim_seconds"] or 0.0 for r in records) / steps,
        "policy_s_per_step": sum(r["policy_seconds"] or 0.0 for r in records) / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--camera_size", type=int, default=256)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy = random_small_checkpoint(root / "small_random")
        for workers in map(int, args.workers.split(",")):
            rows += [measure(policy, workers, every, args, root) for every in (True, False)]
    base = rows[0]["episodes_per_hour"]
    header = ["frames rendered", "workers", "episodes", "steps", "episodes/hour", "x"]
    header += ["render s/step", "sim s/step", "policy s/step"]
    table = markdown_table(
        header,
        [
            [
                str(r["frames rendered"]),
                str(r["workers"]),
                str(r["episodes"]),
                str(r["steps"]),
                f"{r['episodes_per_hour']:.0f}",
                f"{r['episodes_per_hour'] / base:.2f}",
                f"{r['render_s_per_step']:.3f}",
                f"{r['sim_s_per_step']:.3f}",
                f"{r['policy_s_per_step']:.3f}",
            ]
            for r in rows
        ],
    )
    publish(table, args.out, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
