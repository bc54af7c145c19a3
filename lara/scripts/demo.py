"""`lara demo`: the whole pipeline on the tiny default, with a report (`make demo`).

1. collect scripted demonstrations of two libero_object tasks,
2. annotate them (`sim` backend) and render a preview strip,
3. train the tiny preset through stages I, II and III on CPU,
4. evaluate the stage-III policy closed loop in LIBERO (2 workers, videos),
5. time explicit-CoT (stage I) vs latent (stage III) inference on the trained checkpoints,
6. write `<out>/report.md` (tables, loss curves, success intervals, latency ratio, video links).

Every step is skipped when its output exists, so re-running after an interruption continues
where it stopped; `--fresh` deletes `--out` first. About 15-20 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
from pathlib import Path

from lara.utils.atomic import atomic_write_text
from lara.scripts.pipeline import PipelineConfig, run_pipeline, timed_step

# The embedded tiny default (flags of `lara demo` override each). Stage I runs 1600 steps so that the
# explicit-CoT side of the latency comparison writes its CoT: on 10 libero_object demos, stage I at
# 200 steps wrote 0/16 CoTs in the annotation's format (teacher-forced token accuracy 0.70), at 800
# steps 11/16 (0.93), at 1600 steps 13/16 (0.96; 2/16 exactly the annotation).
DEMO_DEFAULTS = {
    "tasks": "0,1", "episodes_per_task": 6, "eval_episodes": 3, "stage_steps": (1600, 200, 4000), "workers": 2,
}  # fmt: skip


def latency_step(cfg: PipelineConfig, reps: int = 5) -> bool:
    """Explicit vs latent ms per chunk on the trained checkpoints, on the first frame of demo 0."""
    path = cfg.out / "latency.json"
    if path.exists():
        return False
    from data_pipeline.lerobot_io import read_lerobot_dataset
    from lara.scripts.bench_latency import checkpoint_latency

    episode = next(read_lerobot_dataset(cfg.data_dir, episodes=[0]))
    obs = {"images": {cam: frames[0] for cam, frames in episode.images.items()},
           "state": episode.state[0], "instruction": episode.instruction}  # fmt: skip
    result = checkpoint_latency(cfg.stage_dir(1) / "final", cfg.stage_dir(3) / "final", obs, reps=reps)
    atomic_write_text(path, json.dumps(result, indent=2))
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lara demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fresh", action="store_true", help="delete --out first and start over")
    parser.add_argument("--tasks", default=DEMO_DEFAULTS["tasks"], help="libero_object task ids")
    parser.add_argument("--episodes-per-task", type=int, default=DEMO_DEFAULTS["episodes_per_task"],
                        help="demos collected per task (from init states 0..N-1)")
    parser.add_argument("--eval-episodes", type=int, default=DEMO_DEFAULTS["eval_episodes"],
                        help="closed-loop episodes per task (from init states 0..N-1)")
    parser.add_argument("--stage-steps", type=int, nargs=3, default=DEMO_DEFAULTS["stage_steps"],
                        metavar=("I", "II", "III"), help="training steps per stage")
    parser.add_argument("--workers", type=int, default=DEMO_DEFAULTS["workers"],
                        help="simulator processes for collection and evaluation")
    parser.add_argument("--eval-max-steps", type=int, default=None,
                        help="cap policy steps per evaluation episode (smoke runs; the report says so)")
    args = parser.parse_args(argv)
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    cfg = PipelineConfig(
        out=args.out, suite="libero_object", tasks=args.tasks, episodes_per_task=args.episodes_per_task,
        eval_episodes=args.eval_episodes, stage_steps=tuple(args.stage_steps), workers=args.workers, video=True,
        eval_max_steps=args.eval_max_steps,
    )  # fmt: skip
    results = run_pipeline(cfg, preview=1)
    timed_step(cfg, "latency", lambda: latency_step(cfg))

    from lara.scripts.demo_report import write_report

    report = write_report(cfg, "lara demo " + shlex.join(argv) if argv else "lara demo")
    latency = json.loads((cfg.out / "latency.json").read_text())
    row = results["suites"][0]
    print(f"\nstage-III policy on {cfg.suite} tasks {cfg.tasks}: {row['successes']}/{row['episodes']} closed-loop "
          f"successes; latency latent/explicit {latency['latent_ms']:.0f}/{latency['explicit_ms']:.0f} ms "
          f"= {latency['ratio']:.3f}; {sum(cfg.timings.values()) / 60:.1f} min of steps")  # fmt: skip
    print(f"report: {report}")
    return 0
