"""Generalization benchmark: LaRA trained on demos from sampled layouts, scored on LIBERO's standard protocol.

    python benchmarks/generalization/run.py --out runs/generalization
    python benchmarks/generalization/run.py --out runs/generalization --publish benchmarks/generalization/results

1. collect N scripted demos per libero_object task with `lara collect --init sampled`: start layouts
   from LIBERO's placement sampler, none within 1 cm of an evaluation init state;
2. annotate them (`sim` backend);
3. train the curriculum's stages I, II and III;
4. evaluate the stage-III policy with the standard protocol (`lara eval --config_path
   configs/eval/libero_object.yaml`: init states 0..K-1 of every task, 256 px cameras, seed 7,
   the suite's step limit), with videos;
5. write `<out>/report.md`: success per task with 95% Wilson intervals, the overall rate, loss
   curves, a few failure videos, the commands, the wall time of every step.

Every step is skipped when its output exists (lara/scripts/pipeline.py), so after a kill the same command
continues; a changed setting on the same `--out` is refused. `--publish DIR` copies the report and
the small result files (JSON lines, plots, at most `--videos` failure videos) into DIR.
"""  # noqa: E501

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(REPO))

from lara.scripts.pipeline import STEPS, PipelineConfig, run_pipeline  # noqa: E402

# The budget for one run on a 2-core CPU (~2.5 h): 20 demos per task (~3.3 demos/min with 2
# workers), K = 10 evaluation init states per task (100 episodes), and the training the published
# result used (results/report.md: the `small` preset, stages 600 / 300 / 1600 steps, ~60 min), so
# that the command without flags reproduces it.
DEFAULTS = {
    "tasks": "all",
    "demos_per_task": 20,
    "eval_episodes": 10,
    "stage_steps": (600, 300, 1600),
    "workers": 2,
    "curriculum": "small",
}
EVAL_PRESET = REPO / "configs" / "eval" / "libero_object.yaml"


def build_config(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        out=args.out,
        suite="libero_object",
        tasks=args.tasks,
        episodes_per_task=args.demos_per_task,
        init="sampled",
        perturb_xy=0.0,
        curriculum=args.curriculum,
        stage_steps=tuple(args.stage_steps),
        eval_episodes=args.eval_episodes,
        eval_max_steps=args.eval_max_steps,
        workers=args.workers,
        video=True,
        eval_config=EVAL_PRESET,
        stop_after=args.stop_after,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    # Flags are spelled as lara's (underscores); the dashed spellings stay as aliases for commands
    # recorded in older reports.
    p = argparse.ArgumentParser(prog="benchmarks/generalization/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/generalization"))
    p.add_argument("--fresh", action="store_true", help="delete --out first and start over")
    p.add_argument("--tasks", default=DEFAULTS["tasks"], help="libero_object task ids ('all' or e.g. 0,3)")
    p.add_argument("--demos_per_task", "--demos-per-task", type=int, default=DEFAULTS["demos_per_task"])
    p.add_argument(
        "--eval_episodes",
        "--eval-episodes",
        type=int,
        default=DEFAULTS["eval_episodes"],
        help="K: evaluation episodes per task, from the protocol's init states 0..K-1 (50 = all)",
    )
    p.add_argument(
        "--stage_steps",
        "--stage-steps",
        type=int,
        nargs=3,
        default=DEFAULTS["stage_steps"],
        metavar=("I", "II", "III"),
    )
    p.add_argument(
        "--curriculum",
        default=DEFAULTS["curriculum"],
        help="training preset size (curriculum/presets.py: tiny, small, ...)",
    )
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"], help="simulator processes")
    p.add_argument(
        "--eval_max_steps",
        "--eval-max-steps",
        type=int,
        default=None,
        help="cap policy steps per episode (smoke runs only: not the protocol; the report says so)",
    )
    p.add_argument(
        "--stop_after",
        "--stop-after",
        choices=STEPS,
        default=None,
        help="last step to run (e.g. annotate: only the demos, which the baseline arm needs); "
        "the same command without it continues",
    )
    p.add_argument("--publish", type=Path, default=None, help="copy the report and small results here")
    p.add_argument("--videos", type=int, default=3, help="failure videos to link and publish")
    return p.parse_args(argv)


def publish(cfg: PipelineConfig, dest: Path, max_videos: int) -> list[Path]:
    """Copy the report and what it links (small files only, same relative paths) into `dest`."""
    from benchmarks.generalization.report import published_files

    copied = []
    for rel in published_files(cfg, max_videos):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cfg.out / rel, target)
        copied.append(target)
    return copied


def main(argv: list[str]) -> int:
    from benchmarks.generalization.report import write_report

    args = parse_args(argv)
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    cfg = build_config(args)
    results = run_pipeline(cfg, preview=1)
    if not results:
        print(f"\nstopped after {args.stop_after}; run again without --stop_after to continue")
        return 0
    command = "python benchmarks/generalization/run.py " + shlex.join(argv)
    report = write_report(cfg, command.strip(), max_videos=args.videos)
    row = results["suites"][0]
    print(
        f"\nstage-III policy, {cfg.suite} standard protocol (init states 0..{cfg.eval_episodes - 1}): "
        f"{row['successes']}/{row['episodes']} = {100 * row['success_rate']:.1f}% "
        f"(95% CI {100 * row['ci95_low']:.1f}-{100 * row['ci95_high']:.1f})"
    )
    print(f"report: {report}")
    if args.publish:
        print(f"published {len(publish(cfg, args.publish, args.videos))} files to {args.publish}")
    return 0


if __name__ == "__main__":
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    from lara.utils.errors import run_main

    sys.exit(run_main(main, sys.argv[1:]))
