"""Evaluator throughput: episodes per minute with 1 and with 2 worker processes, one run.

Runs the same episodes (the scripted expert on libero_object, cameras rendered at 256 px as for a
learned policy) once with each worker count into fresh output folders and prints the ratio.
Environment construction is included: it is part of what a user waits for.

    .venv/bin/python benchmarks/eval_throughput.py --tasks 0,1 --episodes 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from envs.evaluator import EvalConfig, evaluate
from lara.scripts.eval_policies import policy_builder


def measure(workers: int, args: argparse.Namespace, root: Path) -> dict:
    cfg = EvalConfig(
        policy=args.policy,
        suite=args.suite,
        tasks=args.tasks,
        episodes=args.episodes,
        workers=workers,
        out=root / f"w{workers}",
        camera_size=args.camera_size,
        render=True,
    )
    start = time.perf_counter()
    results = evaluate(cfg, policy_builder=policy_builder(cfg))
    minutes = (time.perf_counter() - start) / 60.0
    n = results["suites"][0]["episodes"]
    return {
        "workers": workers,
        "episodes": n,
        "minutes": minutes,
        "episodes_per_minute": n / minutes,
        "successes": results["suites"][0]["successes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="scripted")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0,1")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--camera_size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(w, args, Path(tmp)) for w in (1, 2)]
    ratio = rows[1]["episodes_per_minute"] / rows[0]["episodes_per_minute"]
    print("| workers | episodes | minutes | episodes/min | successes |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['episodes']} | {r['minutes']:.2f} | {r['episodes_per_minute']:.2f} | "
            f"{r['successes']} |"
        )
    print(f"speed-up with 2 workers: {ratio:.2f}x")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval_throughput.json").write_text(
            json.dumps({"rows": rows, "speedup_2_workers": ratio}, indent=2)
        )


if __name__ == "__main__":
    main()
