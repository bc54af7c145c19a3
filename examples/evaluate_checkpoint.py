"""Journey 3: evaluate a checkpoint closed loop in LIBERO simulation.

    .venv/bin/python examples/evaluate_checkpoint.py                    # journey 2's stage-III checkpoint
    .venv/bin/python examples/evaluate_checkpoint.py CHECKPOINT --suite libero_object --tasks 0,1 \
        --episodes 3 --workers 2 --out runs/examples/eval [--video] [--max-steps N]

CHECKPOINT is a `save_pretrained` folder or a training run's `final/` (or `scripted` / `noop`, the
built-in baselines). Episode i of each task starts from the suite's init state i, with the
standard protocol (shared/STANDARDS.md). `<out>` gets `episodes.jsonl` (one line per episode;
re-running resumes), `results.json`, `report.md`, `success.png` and, with --video, one mp4 per
episode. `--max-steps` shortens the suite's step limit (smoke tests; the report says so).
Cameras render at 128 px by default, as journey 1's demos were recorded (`--camera-size 256`: the
protocol's size; the tiny model resizes either to 64 px).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from envs.evaluator import EvalConfig, evaluate
from envs.report import wilson_interval
from lara.utils.errors import run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="runs/examples/train/stage3/final")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0,1", help="comma-separated task ids, or 'all'")
    parser.add_argument("--episodes", type=int, default=3, help="per task (init states 0..N-1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/eval"))
    parser.add_argument("--video", action="store_true", help="write one mp4 per episode (agentview | wrist)")
    parser.add_argument("--max-steps", type=int, help="policy steps per episode (default: the suite's limit)")
    parser.add_argument("--camera-size", type=int, default=128, help="camera side (protocol: 256)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    results = evaluate(EvalConfig(
        policy=str(args.checkpoint), suite=args.suite, tasks=args.tasks, episodes=args.episodes,
        workers=args.workers, out=args.out, video=args.video, max_steps=args.max_steps,
        camera_size=args.camera_size,
    ))

    print(f"\n{args.checkpoint} on {args.suite}, {args.episodes} episode(s) per task:")
    print(f"{'success':^9s}  {'95% Wilson':^15s}  task")
    for row in [*results["tasks"], *results["suites"]]:  # per task, then the whole suite
        low, high = wilson_interval(row["successes"], row["episodes"])
        errors = f"  ({row['errors']} episodes raised)" if row["errors"] else ""
        print(f"{row['successes']:>4d}/{row['episodes']:<4d}  [{100 * low:5.1f}, {100 * high:5.1f}]%  "
              f"{row['name']}{errors}")
    print(f"report: {args.out / 'report.md'}  (episodes: {args.out / 'episodes.jsonl'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
