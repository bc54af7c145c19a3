"""`lara eval` throughput: per-worker policies vs the batched driver, 1 and 2 workers.

The same episodes (`--policy`, by default an untrained tiny checkpoint, on libero_object, the
protocol's 256 px cameras rendered only for the frames the policy reads) run several ways in one
process, each into a fresh folder: `--policy_in workers` (every worker loads its own copy and acts
at batch 1, the behaviour before issue 27) and `--policy_in driver` (one copy here, one forward per
batch of the episodes in flight; the default for a checkpoint), each with 1 and 2 workers. `--ways`
picks others: `workers:1:every` also renders every frame (`--render true`), as `lara eval` did before
issue 27 on both counts, so `--ways workers:1:every,workers:2:every,driver:1,driver:2` is the
before/after table.
Environment and policy construction are included: they are part of what a user waits for. The
episodes' records must agree across the ways (same successes, steps and actions): the script checks
it.

    .venv/bin/python benchmarks/eval_batched.py --tasks 0,1 --episodes 2 --max_steps 64 \
        --out benchmarks/eval_batched_results
    # a trained checkpoint, the standard protocol's K = 10 (issue 27's throughput figure):
    .venv/bin/python benchmarks/eval_batched.py --policy RUN/train/stage3/final --tasks all \
        --episodes 10 --max_steps 0 --ways workers:1:every,workers:2:every,driver:1,driver:2 --out OUT
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from eval_arms import add_policy_args, checkpoint_for, seconds_per_step, timed_eval
from results_table import markdown_table, publish

from envs.evaluator import EvalConfig

WAYS = "workers:1,workers:2,driver:1,driver:2"


def parse_ways(spec: str) -> list[tuple[str, int, bool]]:
    """'driver:2,workers:1:every' -> [(policy_in, workers, render every frame)]."""
    ways = []
    for item in spec.split(","):
        policy_in, workers, *every = item.strip().split(":")
        if policy_in not in ("workers", "driver") or every not in ([], ["every"]):
            raise SystemExit(f"--ways: {item!r} is not policy_in:workers[:every] (workers or driver)")
        ways.append((policy_in, int(workers), bool(every)))
    return ways


def measure(
    policy_in: str, workers: int, every_frame: bool, args: argparse.Namespace, checkpoint: Path, root: Path
) -> dict:
    cfg = EvalConfig(
        policy=str(checkpoint),
        suite=args.suite,
        tasks=args.tasks,
        episodes=args.episodes,
        workers=workers,
        max_steps=args.max_steps or None,
        camera_size=args.camera_size,
        policy_in=policy_in,
        render=True if every_frame else None,
        out=root / f"{policy_in}_{workers}{'_every' if every_frame else ''}",
    )
    records, hours = timed_eval(cfg)
    return {
        "policy_in": policy_in,
        "workers": workers,
        "frames rendered": "every" if every_frame else "read by the policy",
        "episodes": len(records),
        "successes": sum(r["success"] for r in records),
        "steps": sum(r["steps"] for r in records),
        "minutes": 60.0 * hours,
        "episodes_per_hour": len(records) / hours,
        "s_per_step": seconds_per_step(records),
        "outcomes": sorted(
            (r["task"], r["episode"], r["success"], r["steps"], r["extra"]["actions_sha1"]) for r in records
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_policy_args(parser, preset="tiny")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0,1")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max_steps", type=int, default=64, help="0: the protocol's step limit")
    parser.add_argument("--camera_size", type=int, default=256)
    parser.add_argument("--ways", default=WAYS, help="policy_in:workers[:every], comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="write results.md and results.json here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = checkpoint_for(args, Path(tmp))
        rows = [measure(*way, args, checkpoint, Path(tmp)) for way in parse_ways(args.ways)]
    same = all(r["outcomes"] == rows[0]["outcomes"] for r in rows)
    # success and steps per episode; the actions' hashes can also differ by float rounding between
    # ways that run the policy with other torch thread counts or batch sizes (results.md: <= 1.2e-7)
    same_outcomes = all([o[:4] for o in r["outcomes"]] == [o[:4] for o in rows[0]["outcomes"]] for r in rows)
    header = ["policy in", "workers", "frames rendered", "episodes", "successes", "steps", "minutes"]
    header += ["episodes/hour"]
    header += ["render s/step", "physics s/step", "policy s/step"]
    table = markdown_table(
        header,
        [
            [r["policy_in"], str(r["workers"]), r["frames rendered"], str(r["episodes"])]
            + [str(r["successes"]), str(r["steps"])]
            + [f"{r['minutes']:.2f}", f"{r['episodes_per_hour']:.0f}"]
            + [f"{r['s_per_step'][part]:.3f}" for part in ("render", "sim", "policy")]
            for r in rows
        ],
    )
    table += f"\n\nthe {len(rows)} runs recorded the same success and steps per episode: {same_outcomes}; "
    table += f"the same actions (SHA-1) too: {same}"
    extra = {"same_outcomes": same_outcomes, "same_episodes": same}
    publish(table, args.out, {"args": vars(args), "rows": rows, **extra})


if __name__ == "__main__":
    main()
