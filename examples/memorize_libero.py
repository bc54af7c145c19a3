"""Closed-loop learning check: memorize one LIBERO task, then solve it in simulation.

Collects scripted demos of one libero_object task from the shipped init states 0..N-1 (no
perturbation), annotates them with the `sim` backend, trains the tiny preset through stages I, II
and III on CPU, and evaluates the stage-III policy closed loop from the same init states. If the
whole spine is right (action alignment, normalization, gripper sign, image flip, chunk execution),
the policy succeeds on >= 80% of them. Resumable: re-run the same command after an interruption.

    .venv/bin/python examples/memorize_libero.py --out runs/memorize
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from lara.scripts.pipeline import PipelineConfig, run_pipeline
from lara.utils.errors import run_main

TARGET = 0.8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/memorize"))
    parser.add_argument("--task", type=int, default=0, help="libero_object task id")
    parser.add_argument("--episodes", type=int, default=10, help="demos collected = episodes evaluated")
    parser.add_argument("--stage-steps", type=int, nargs=3, default=(200, 200, 3000), metavar=("I", "II", "III"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    cfg = PipelineConfig(out=args.out, suite="libero_object", tasks=str(args.task), episodes_per_task=args.episodes,
                         eval_episodes=args.episodes, stage_steps=tuple(args.stage_steps), workers=args.workers)
    start = time.perf_counter()
    results = run_pipeline(cfg)
    minutes = (time.perf_counter() - start) / 60
    row = results["suites"][0]
    verdict = "PASS" if row["success_rate"] >= TARGET else "FAIL"
    summary = {"success": row["successes"], "episodes": row["episodes"], "success_rate": row["success_rate"],
               "minutes_this_run": round(minutes, 1), "step_seconds": {k: round(v, 1) for k, v in cfg.timings.items()},
               "target": TARGET, "verdict": verdict}
    (cfg.out / "memorize.json").write_text(json.dumps(summary, indent=2))
    print(f"{verdict}: {row['successes']}/{row['episodes']} closed-loop successes "
          f"({100 * row['success_rate']:.0f}%, target {100 * TARGET:.0f}%) in {minutes:.1f} min; "
          f"report: {cfg.eval_dir / 'report.md'}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(run_main(main))
