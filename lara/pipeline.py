"""The whole LaRA pipeline in one place: collect -> annotate -> train I/II/III -> evaluate.

Used by `examples/memorize_libero.py` (the closed-loop learning check) and `lara demo`. Every step
is resumable: a finished step is detected from its output (the dataset folder, a complete
annotation run, a stage's `final/`, the evaluation's JSON lines) and skipped, so re-running the
same command continues where a killed run stopped. Each step's wall time is recorded.

Layout under `out/`:
    data/                       LeRobot dataset of scripted demos (+ annotations/<name>/)
    train/stage{1,2,3}/         curriculum runs (final/model is the checkpoint)
    eval/                       closed-loop evaluation (report.md, videos/)
    timings.json                seconds per step, this run and earlier ones
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lara.errors import LaraUserError

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


@dataclass
class PipelineConfig:
    out: Path = Path("runs/pipeline")
    suite: str = "libero_object"
    tasks: str = "0"
    episodes_per_task: int = 10  # demos collected per task (slot k starts from init state k)
    perturb_xy: float = 0.0  # 0: demos start exactly from the shipped init states the evaluation uses
    camera_size: int = 128  # collection and evaluation cameras (the tiny model sees 64 px)
    annotation: str = "sim-v1"
    curriculum: Path = REPO / "configs" / "train" / "tiny"
    stage_steps: tuple[int, int, int] = (200, 200, 3000)
    eval_episodes: int = 10  # per task, from init states 0..N-1 (the ones the demos started from)
    workers: int = 2
    video: bool = True
    timings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if len(self.stage_steps) != 3 or min(self.stage_steps) < 1:
            raise LaraUserError(f"stage_steps must be three positive step counts, got {self.stage_steps}")

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    def stage_dir(self, stage: int) -> Path:
        return self.out / "train" / f"stage{stage}"

    @property
    def eval_dir(self) -> Path:
        return self.out / "eval"


def _timed(cfg: PipelineConfig, name: str, fn) -> None:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    path = cfg.out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[name] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=2))
    cfg.timings[name] = seconds
    log.info("step %s: %.0f s", name, seconds)


def collect_step(cfg: PipelineConfig) -> None:
    if (cfg.data_dir / "meta" / "info.json").exists():
        log.info("collect: %s exists, skipping", cfg.data_dir)
        return
    from data_pipeline.collect import CollectConfig, collect, summary

    result = collect(CollectConfig(
        suite=cfg.suite, tasks=cfg.tasks, episodes_per_task=cfg.episodes_per_task, out=str(cfg.data_dir),
        workers=cfg.workers, camera_size=cfg.camera_size, perturb_xy=cfg.perturb_xy,
    ))
    print(summary(result))


def annotate_step(cfg: PipelineConfig, preview: int = 0) -> None:
    from data_pipeline.annotation.annotate import annotate_dataset
    from data_pipeline.annotation.config import AnnotationConfig
    from data_pipeline.annotation.source import LeRobotSource

    result = annotate_dataset(LeRobotSource(cfg.data_dir), cfg.annotation, AnnotationConfig(backend="sim"),
                              workers=cfg.workers)
    log.info("annotation %s: %s", cfg.annotation, result)
    if preview:
        from data_pipeline.annotation.preview import render_previews

        render_previews(LeRobotSource(cfg.data_dir), cfg.annotation, preview, cfg.out / "preview", fmt="png")


def train_step(cfg: PipelineConfig) -> None:
    from curriculum.cli import run_curriculum

    common = ["--data.root", str(cfg.data_dir), "--data.annotation", cfg.annotation]
    for stage, steps in zip((1, 2, 3), cfg.stage_steps):
        run_curriculum(cfg.curriculum, [], [*common, "--steps", str(steps)], str(cfg.out / "train"), [stage])


def eval_step(cfg: PipelineConfig) -> dict:
    from envs.evaluator import EvalConfig, evaluate

    return evaluate(EvalConfig(
        policy=str(cfg.stage_dir(3) / "final"), suite=cfg.suite, tasks=cfg.tasks, episodes=cfg.eval_episodes,
        workers=cfg.workers, out=cfg.eval_dir, video=cfg.video, camera_size=cfg.camera_size,
    ))


def run_pipeline(cfg: PipelineConfig, preview: int = 0) -> dict:
    """All steps in order (each skipped when already done); returns the evaluation results."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "pipeline.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    _timed(cfg, "collect", lambda: collect_step(cfg))
    _timed(cfg, "annotate", lambda: annotate_step(cfg, preview))
    _timed(cfg, "train", lambda: train_step(cfg))
    results: dict = {}
    _timed(cfg, "evaluate", lambda: results.update(eval_step(cfg)))
    return results
