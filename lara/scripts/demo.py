"""`lara demo`: the whole pipeline on the tiny default, with a report (`make demo`).

1. collect scripted demonstrations of two libero_object tasks,
2. annotate them (`sim` backend) and render a preview strip,
3. train the tiny preset through stages I, II and III on CPU,
4. evaluate the stage-III policy closed loop in LIBERO (2 workers, videos),
5. time explicit-CoT (stage I) vs latent (stage III) inference on the trained checkpoints,
6. probe the stage-III policy's latent and `<img_next>` slots (`lara probe`, into `<out>/probe/`),
7. write `<out>/report.md` (tables, loss curves, success intervals, latency ratio, probes, video links).

Every step is skipped when its output exists, so re-running after an interruption continues
where it stopped; `--fresh` deletes `--out` first. About 33 minutes on a quiet 2-core CPU (README).
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from lara.scripts.pipeline import PipelineConfig, run_pipeline, timed_step
from lara.utils.atomic import atomic_write_text
from lara.utils.config_parsing import parse_config


@dataclass
class DemoConfig:
    """The embedded tiny default; every field is a flag of `lara demo`."""

    out: Path = Path("runs/demo")
    fresh: bool = False  # delete --out first and start over
    tasks: str = "0,1"  # libero_object task ids
    episodes_per_task: int = 6  # demos collected per task (from init states 0..N-1)
    eval_episodes: int = 3  # closed-loop episodes per task (from init states 0..N-1)
    # training steps of stages I, II, III. Stage I runs 1600 steps so that the explicit-CoT side of the
    # latency comparison writes its CoT: on 10 libero_object demos, stage I at 200 steps wrote 0/16 CoTs in
    # the annotation's format (teacher-forced token accuracy 0.70), at 800 steps 11/16 (0.93), at 1600
    # steps 13/16 (0.96; 2/16 exactly the annotation).
    stage_steps: tuple[int, int, int] = (1600, 200, 4000)
    workers: int = 2  # simulator processes for collection and evaluation
    eval_max_steps: int | None = None  # cap on policy steps per evaluation episode (smoke runs; reported)


def latency_step(cfg: PipelineConfig, reps: int = 5) -> bool:
    """Explicit vs latent ms per chunk on the trained checkpoints, on the first frame of demo 0."""
    path = cfg.out / "latency.json"
    if path.exists():
        return False
    from data_pipeline.lerobot_io import read_lerobot_dataset
    from lara.scripts.bench_latency import checkpoint_latency

    episode = next(read_lerobot_dataset(cfg.data_dir, episodes=[0]))
    obs = {
        "images": {cam: frames[0] for cam, frames in episode.images.items()},
        "state": episode.state[0],
        "instruction": episode.instruction,
    }
    result = checkpoint_latency(cfg.stage_dir(1) / "final", cfg.stage_dir(3) / "final", obs, reps=reps)
    atomic_write_text(path, json.dumps(result, indent=2))
    return True


def probe_step(cfg: PipelineConfig) -> bool:
    """`lara probe` on the stage-III policy and the demo's dataset, every 8th frame (seconds, not
    minutes). `--split all`: the demo trains on every demo, so no episode is held out; the probes are
    still fit and scored on different episodes, and probe.md says the episodes were trained on."""
    if (cfg.out / "probe" / "probe.json").exists():
        return False
    from curriculum.offline.probe_config import ProbeConfig
    from curriculum.offline.probe_run import run_probe

    run_probe(
        ProbeConfig(
            policy=str(cfg.stage_dir(3) / "final"),
            dataset=str(cfg.data_dir),
            annotation=cfg.annotation,
            out=str(cfg.out / "probe"),
            split="all",
            stride=8,
            bootstrap=200,
        )
    )
    return True


def main(argv: list[str]) -> int:
    demo = parse_config(DemoConfig, argv, prog="lara demo")
    if demo.fresh and demo.out.exists():
        shutil.rmtree(demo.out)
    cfg = PipelineConfig(
        out=demo.out,
        suite="libero_object",
        tasks=demo.tasks,
        episodes_per_task=demo.episodes_per_task,
        eval_episodes=demo.eval_episodes,
        stage_steps=tuple(demo.stage_steps),
        workers=demo.workers,
        video=True,
        eval_max_steps=demo.eval_max_steps,
    )
    results = run_pipeline(cfg, preview=1)
    timed_step(cfg, "latency", lambda: latency_step(cfg))
    timed_step(cfg, "probe", lambda: probe_step(cfg))

    from lara.scripts.demo_report import write_report

    report = write_report(cfg, "lara demo " + shlex.join(argv) if argv else "lara demo")
    latency = json.loads((cfg.out / "latency.json").read_text())
    row = results["suites"][0]
    print(
        f"\nstage-III policy on {cfg.suite} tasks {cfg.tasks}: {row['successes']}/{row['episodes']} "
        "closed-loop "
        f"successes; latency latent/explicit {latency['latent_ms']:.0f}/{latency['explicit_ms']:.0f} ms "
        f"= {latency['ratio']:.3f}; {sum(cfg.timings.values()) / 60:.1f} min of steps"
    )
    print(f"report: {report}")
    return 0
