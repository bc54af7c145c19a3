"""The generalization benchmark's baseline arm: the LaRA arm's data and model size, trained without reasoning.

    python benchmarks/generalization/baseline.py --out runs/generalization [--steps N] [--workers 2]
        [--publish benchmarks/generalization/results]

`lara train --preset SIZE --stage baseline`: stage III alone from random init, with no chain of
thought, no latent segments, no `<img_next>` slots and no visual L1; the flow-matching expert reads
the backbone's image + prompt context. It uses the LaRA arm's demos (`<out>/data`), its size preset,
and by default as many optimizer steps at the same batch size as LaRA's three stages together
(equal samples seen; the wall time of both arms is in the report). It is scored by the same
standard-protocol evaluation (the LaRA arm's tasks, K init states per task, seed and step limit).

Output under `<out>/baseline/`: `train/` (the stage's run), `eval/` (episodes.jsonl, results.json,
videos), `timings.json`. Every step is skipped when done, so a killed run continues with the same
command; `run.py` then puts both arms in one table (`report.md`).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(REPO))

from benchmarks.generalization.baseline_arm import (  # noqa: E402
    BASELINE_DIR,
    BaselineConfig,
    eval_config,
    lara_settings,
    train_config,
)
from lara.utils.errors import LaraUserError  # noqa: E402


def train_step(cfg: BaselineConfig, settings: dict) -> bool:
    from curriculum.checkpointing import TRAINER_STATE, final_dir
    from curriculum.runner import train_lock
    from curriculum.trainer import train

    if (final_dir(cfg.out / BASELINE_DIR / "train") / TRAINER_STATE).is_file():
        return False
    train_cfg = train_config(cfg, settings)
    with train_lock(train_cfg.output_dir):
        train(train_cfg)
    return True


def eval_step(cfg: BaselineConfig, settings: dict) -> bool:
    from envs.evaluator import evaluate
    from lara.scripts.eval_policies import policy_builder

    if (cfg.out / BASELINE_DIR / "eval" / "results.json").is_file():
        return False
    eval_cfg = eval_config(cfg, settings)
    evaluate(eval_cfg, policy_builder=policy_builder(eval_cfg))
    return True


def main(argv: list[str]) -> int:
    from lara.scripts.pipeline import timed_step
    from lara.utils.config_parsing import parse_config

    cfg = parse_config(BaselineConfig, argv, prog="benchmarks/generalization/baseline.py")
    settings = lara_settings(cfg.out)
    if cfg.publish_only:
        if cfg.publish is None:
            raise LaraUserError("--publish_only needs --publish DIR")
        return publish(cfg, argv)
    arm = SimpleNamespace(out=cfg.out / BASELINE_DIR, timings={})  # timed_step: <out>/baseline/timings.json
    arm.out.mkdir(parents=True, exist_ok=True)
    timed_step(arm, "train_baseline", lambda: train_step(cfg, settings))
    timed_step(arm, "evaluate", lambda: eval_step(cfg, settings))
    results = json.loads((arm.out / "eval" / "results.json").read_text())
    row = results["suites"][0]
    print(
        f"\nbaseline (stage III only, no reasoning), {settings['suite']} standard protocol: "
        f"{row['successes']}/{row['episodes']} = {100 * row['success_rate']:.1f}% "
        f"(95% CI {100 * row['ci95_low']:.1f}-{100 * row['ci95_high']:.1f})"
    )
    return publish(cfg, argv) if cfg.publish is not None else 0


def publish(cfg: BaselineConfig, argv: list[str]) -> int:
    from benchmarks.generalization.report import publish_baseline

    command = "python benchmarks/generalization/baseline.py " + shlex.join(argv)
    print(f"published {len(publish_baseline(cfg.out, cfg.publish, command))} files to {cfg.publish}")
    return 0


if __name__ == "__main__":
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    from lara.utils.errors import run_main

    sys.exit(run_main(main, sys.argv[1:]))
