"""Journey 3: evaluate a checkpoint closed loop in LIBERO simulation.

    .venv/bin/python examples/evaluate_checkpoint.py                    # journey 2's stage-III checkpoint
    .venv/bin/python examples/evaluate_checkpoint.py --policy CHECKPOINT --suite libero_object --tasks 0,1 \
        --episodes 3 --workers 2 --out runs/examples/eval [--video] [--max_steps N]

The flags are `lara eval`'s (`envs.evaluator.EvalConfig`), with this journey's defaults (`DEFAULTS`)
in front. `--policy` is a `save_pretrained` folder or a training run's `final/` (or `scripted` /
`noop`, the built-in baselines). Episode i of each task starts from the suite's init state i, with
the standard protocol (docs/protocol.md). `<out>` gets `episodes.jsonl` (one line per episode;
re-running resumes), `results.json`, `report.md`, `success.png` and, with --video, one mp4 per
episode. `--max_steps` shortens the suite's step limit (smoke tests; the report says so).
Cameras render at 128 px here, as journey 1's demos were recorded (`--camera_size 256`: the
protocol's size; the tiny model resizes either to 64 px).
"""

from __future__ import annotations

import sys

from envs.evaluator import EvalConfig, evaluate
from envs.report import wilson_interval
from lara.scripts.cli import configure_logging
from lara.scripts.eval_policies import policy_builder
from lara.utils.config_parsing import parse_config
from lara.utils.errors import run_main

DEFAULTS = [
    "--policy",
    "runs/examples/train/stage3/final",
    "--tasks",
    "0,1",
    "--episodes",
    "3",
    "--workers",
    "2",
    "--out",
    "runs/examples/eval",
    "--camera_size",
    "128",
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # a flag given twice takes its last value: the user's flags override DEFAULTS
    cfg = parse_config(EvalConfig, [*DEFAULTS, *argv], prog="examples/evaluate_checkpoint.py")
    configure_logging()
    results = evaluate(cfg, policy_builder=policy_builder(cfg))

    print(f"\n{cfg.policy} on {cfg.suite}, {cfg.episodes} episode(s) per task:")
    print(f"{'success':^9s}  {'95% Wilson':^15s}  task")
    for row in [*results["tasks"], *results["suites"]]:  # per task, then the whole suite
        low, high = wilson_interval(row["successes"], row["episodes"])
        errors = f"  ({row['errors']} episodes raised)" if row["errors"] else ""
        print(
            f"{row['successes']:>4d}/{row['episodes']:<4d}  [{100 * low:5.1f}, {100 * high:5.1f}]%  "
            f"{row['name']}{errors}"
        )
    print(f"report: {cfg.out / 'report.md'}  (episodes: {cfg.out / 'episodes.jsonl'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
