"""`lara eval` episodes per hour of a chunked LaRA policy, every frame rendered vs only the frames the
policy reads (`LiberoEnv.step(render=...)`), with 1 and 2 worker processes, in one run.

The policy is `--policy`, by default an untrained `small`-preset checkpoint (random weights, the
small preset's compute: what a CPU-trained policy costs per chunk); that one fails every episode, so
each episode runs the suite's full step limit (libero_object: 280), the slowest case for a given
policy. Both arms run the same episodes of the same checkpoint; "every frame" is `--render true`
(both cameras at every step), which is what `lara eval` did for a learned policy before commit
2116da7.

    .venv/bin/python benchmarks/eval_render_savings.py --episodes 2 \
        --out benchmarks/eval_render_savings_results
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from eval_arms import add_policy_args, checkpoint_for, seconds_per_step, timed_eval
from results_table import markdown_table, publish

from envs.evaluator import EvalConfig


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
    records, hours = timed_eval(cfg)
    per_step = seconds_per_step(records)
    return {
        "arm": name,
        "frames rendered": "every" if every_frame else "read by the policy",
        "workers": workers,
        "episodes": len(records),
        "steps": sum(r["steps"] for r in records),
        "episodes_per_hour": len(records) / hours,
        **{f"{part}_s_per_step": seconds for part, seconds in per_step.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_policy_args(parser, preset="small")
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
        policy = checkpoint_for(args, root)
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
