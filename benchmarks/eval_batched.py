"""`lara eval` throughput with a tiny checkpoint: per-worker policies vs the batched driver, 1 and 2 workers.

The same episodes (a random tiny stage-III checkpoint on libero_object, the protocol's 256 px
cameras rendered only for the frames the policy reads) run four ways in one process, each into a
fresh folder: `--policy_in workers` (every worker loads its own copy and acts at batch 1, the
behaviour before issue 27) and `--policy_in driver` (one copy here, one forward per batch of the
episodes in flight; the default for a checkpoint), each with 1 and 2 workers. Environment and
policy construction are included: they are part of what a user waits for. The episodes' records
must agree across the four (same successes, steps and actions): the script checks it.

    .venv/bin/python benchmarks/eval_batched.py --tasks 0,1 --episodes 2 --max_steps 64 \
        --out benchmarks/eval_batched_results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder

WAYS = [("workers", 1), ("workers", 2), ("driver", 1), ("driver", 2)]


def tiny_checkpoint(path: Path) -> Path:
    """A random tiny-preset policy (stage III inference) with synthetic normalization statistics."""
    import torch

    from lara.modeling_lara import LaraPolicy
    from lara.normalization import NormalizationStats
    from lara.presets import load_config

    torch.manual_seed(0)
    policy = LaraPolicy(load_config("tiny", []))
    rng = np.random.default_rng(1)
    action = rng.normal(0, 0.3, (500, 7))  # (N, A); the gripper +-1
    action[:, -1] = np.where(rng.uniform(size=500) > 0.5, 1.0, -1.0)
    stats = {"action": action, "state": rng.normal(0, 1, (500, 8))}
    policy.set_normalization(NormalizationStats.from_arrays(stats, passthrough_dims={"action": [6]}))
    policy.save_pretrained(path)
    return path


def measure(policy_in: str, workers: int, args: argparse.Namespace, checkpoint: Path, root: Path) -> dict:
    cfg = EvalConfig(
        policy=str(checkpoint),
        suite=args.suite,
        tasks=args.tasks,
        episodes=args.episodes,
        workers=workers,
        max_steps=args.max_steps,
        camera_size=args.camera_size,
        policy_in=policy_in,
        out=root / f"{policy_in}_{workers}",
    )
    start = time.perf_counter()
    results = evaluate(cfg, policy_builder=policy_builder(cfg))
    hours = (time.perf_counter() - start) / 3600.0
    records = [json.loads(line) for line in (cfg.out / "episodes.jsonl").read_text().splitlines()]
    n = results["suites"][0]["episodes"]
    return {
        "policy_in": policy_in,
        "workers": workers,
        "episodes": n,
        "steps": sum(r["steps"] for r in records),
        "minutes": 60.0 * hours,
        "episodes_per_hour": n / hours,
        "policy_s": sum(r["policy_seconds"] for r in records),
        "physics_s": sum(r["sim_seconds"] for r in records),
        "render_s": sum(r["render_seconds"] for r in records),
        "outcomes": sorted(
            (r["task"], r["episode"], r["success"], r["steps"], r["extra"]["actions_sha1"]) for r in records
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0,1")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max_steps", type=int, default=64)
    parser.add_argument("--camera_size", type=int, default=256)
    parser.add_argument(
        "--out", type=Path, default=None, help="write the table (.md) and figures (.json) here"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = tiny_checkpoint(Path(tmp) / "tiny")
        rows = [measure(policy_in, w, args, checkpoint, Path(tmp)) for policy_in, w in WAYS]
    same = all(r["outcomes"] == rows[0]["outcomes"] for r in rows)
    lines = [
        "| policy in | workers | episodes | steps | minutes | episodes/hour | policy s | physics s "
        "| render s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy_in']} | {r['workers']} | {r['episodes']} | {r['steps']} | {r['minutes']:.2f} | "
            f"{r['episodes_per_hour']:.0f} | {r['policy_s']:.1f} | {r['physics_s']:.1f} | "
            f"{r['render_s']:.1f} |"
        )
    lines.append(f"\nthe four runs recorded the same episodes (success, steps, actions' SHA-1): {same}")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval_batched.json").write_text(
            json.dumps(
                {"args": vars(args) | {"out": str(args.out)}, "rows": rows, "same_episodes": same}, indent=2
            )
        )
        (args.out / "eval_batched.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
