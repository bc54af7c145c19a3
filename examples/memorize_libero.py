"""Closed-loop learning check: memorize one LIBERO task, then solve it in simulation.

Collects scripted demos of one libero_object task from the shipped init states 0..N-1 (no
perturbation), annotates them with the `sim` backend, trains the tiny preset through stages I, II
and III on CPU, and evaluates the stage-III policy closed loop from the same init states. If the
whole spine is right (action alignment, normalization, gripper sign, image flip, chunk execution),
the policy succeeds on >= 80% of them. Resumable: re-run the same command after an interruption.

    .venv/bin/python examples/memorize_libero.py --out runs/memorize
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from lara.scripts.cli import configure_logging
from lara.scripts.pipeline import PipelineConfig, run_pipeline
from lara.utils.config_parsing import parse_config
from lara.utils.errors import run_main

TARGET = 0.8


@dataclass
class Settings:
    out: Path = Path("runs/memorize")
    task: int = 0  # libero_object task id
    episodes: int = 10  # demos collected = episodes evaluated
    stage_steps: tuple[int, int, int] = (200, 200, 3000)  # training steps of stages I, II, III
    workers: int = 2


def main(argv: list[str] | None = None) -> int:
    args = parse_config(Settings, argv, prog="examples/memorize_libero.py")
    configure_logging()

    cfg = PipelineConfig(
        out=args.out,
        suite="libero_object",
        tasks=str(args.task),
        episodes_per_task=args.episodes,
        eval_episodes=args.episodes,
        stage_steps=tuple(args.stage_steps),
        workers=args.workers,
    )
    start = time.perf_counter()
    results = run_pipeline(cfg)
    minutes = (time.perf_counter() - start) / 60
    row = results["suites"][0]
    verdict = "PASS" if row["success_rate"] >= TARGET else "FAIL"
    summary = {
        "success": row["successes"],
        "episodes": row["episodes"],
        "success_rate": row["success_rate"],
        "minutes_this_run": round(minutes, 1),
        "step_seconds": {k: round(v, 1) for k, v in cfg.timings.items()},
        "target": TARGET,
        "verdict": verdict,
    }
    (cfg.out / "memorize.json").write_text(json.dumps(summary, indent=2))
    print(
        f"{verdict}: {row['successes']}/{row['episodes']} closed-loop successes "
        f"({100 * row['success_rate']:.0f}%, target {100 * TARGET:.0f}%) in {minutes:.1f} min; "
        f"report: {cfg.eval_dir / 'report.md'}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(run_main(main))
