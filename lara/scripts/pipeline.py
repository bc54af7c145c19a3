"""The whole LaRA pipeline in one place: collect -> annotate -> train I/II/III -> evaluate.

Used by `examples/memorize_libero.py` (the closed-loop learning check), `lara demo` (both start
demos from the evaluation's own init states) and benchmarks/generalization/ (`init="sampled"` demos,
evaluated with the standard protocol's `lara eval` preset via `eval_config`). Every step
is resumable: a finished step is detected from its output (the dataset folder, a complete
annotation run, a stage's `final/`, the evaluation's JSON lines) and skipped, so re-running the
same command continues where a killed run stopped. Each step's wall time is recorded.

Layout under `out/`:
    data/                       LeRobot dataset of scripted demos (+ annotations/<name>/)
    train/stage{1,2,3}/         curriculum runs (final/model is the checkpoint)
    preview/                    annotation preview strips (PNG)
    eval/                       closed-loop evaluation (report.md, results.json, videos/)
    collect.json                collection figures (demos/min, failed attempts)
    timings.json                seconds per step, recorded by the run that did the step
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]  # lara/scripts/pipeline.py -> the repository


@dataclass
class PipelineConfig:
    out: Path = Path("runs/pipeline")
    suite: str = "libero_object"
    tasks: str = "0"
    episodes_per_task: int = 10  # demos collected per task (init "shipped": slot k starts from init state k)
    init: str = "shipped"  # demo start layouts: shipped init states, or "sampled" (never an evaluation state)
    perturb_xy: float = 0.0  # 0: demos start exactly from the shipped init states the evaluation uses
    camera_size: int = 128  # collection and evaluation cameras (the tiny model sees 64 px)
    annotation: str = "sim-v1"
    curriculum: str = "tiny"  # training preset size (curriculum/presets.py)
    stage_steps: tuple[int, int, int] = (200, 200, 3000)
    eval_episodes: int = (
        10  # per task, from init states 0..N-1 (init "shipped": the ones the demos started from)
    )
    eval_max_steps: int | None = (
        None  # cap on policy steps per episode (smoke runs only; None = the suite's limit)
    )
    # a `lara eval` preset (e.g. configs/eval/libero_object.yaml: the standard protocol's cameras and seed);
    # None: evaluate at `camera_size` with EvalConfig's defaults
    eval_config: Path | None = None
    workers: int = 2
    video: bool = True
    # last step to run (one of STEPS; None: all). A run split over sittings, or another arm that only
    # needs the demos (benchmarks/generalization/baseline.py), stops early; the same command without it
    # continues.
    stop_after: str | None = None
    timings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.eval_config = Path(self.eval_config) if self.eval_config is not None else None
        if len(self.stage_steps) != 3 or min(self.stage_steps) < 1:
            raise LaraUserError(f"stage_steps must be three positive step counts, got {self.stage_steps}")
        if self.stop_after is not None and self.stop_after not in STEPS:
            raise LaraUserError(f"stop_after must be one of {', '.join(STEPS)}, got {self.stop_after!r}")

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    def stage_dir(self, stage: int) -> Path:
        return self.out / "train" / f"stage{stage}"

    @property
    def eval_dir(self) -> Path:
        return self.out / "eval"

    @property
    def preview_dir(self) -> Path:
        return self.out / "preview"


def timed_step(cfg: PipelineConfig, name: str, fn) -> None:
    """Run one step; record its wall time in timings.json only when it did work (a skipped step
    keeps the figure of the run that did it, so every timing is a measured one)."""
    start = time.perf_counter()
    ran = fn()
    seconds = time.perf_counter() - start
    path = cfg.out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    if ran:
        timings[name] = round(seconds, 1)
        atomic_write_text(path, json.dumps(timings, indent=2))
        log.info("step %s: %.0f s", name, seconds)
    else:
        log.info("step %s: already done, skipped", name)
    if name in timings:
        cfg.timings[name] = timings[name]


def collect_config(cfg: PipelineConfig):  # -> data_pipeline.collect.CollectConfig (imported lazily)
    from data_pipeline.collect import CollectConfig

    return CollectConfig(
        suite=cfg.suite,
        tasks=cfg.tasks,
        episodes_per_task=cfg.episodes_per_task,
        out=str(cfg.data_dir),
        workers=cfg.workers,
        camera_size=cfg.camera_size,
        perturb_xy=cfg.perturb_xy,
        init=cfg.init,
    )


def collect_step(cfg: PipelineConfig) -> bool:
    if (cfg.data_dir / "meta" / "info.json").exists():
        return False
    from data_pipeline.collect import collect, summary

    result = collect(collect_config(cfg))
    print(summary(result))
    atomic_write_text(
        cfg.out / "collect.json",
        json.dumps(
            {
                "episodes": result.episodes,
                "frames": result.frames,
                "collected_now": result.collected_now,
                "seconds": round(result.seconds, 1),
                "demos_per_minute": round(result.demos_per_minute, 2),
                "not_collected": len(result.failed),
                "attempt_outcomes": result.status_counts,
            },
            indent=2,
        ),
    )
    return True


def annotate_step(cfg: PipelineConfig, preview: int = 0) -> bool:
    from data_pipeline.annotation.annotate import annotate_dataset
    from data_pipeline.annotation.config import AnnotationConfig
    from data_pipeline.annotation.sidecar import annotation_dir, read_meta
    from data_pipeline.annotation.source import LeRobotSource

    meta = read_meta(annotation_dir(cfg.data_dir, cfg.annotation))
    previews_done = not preview or any(cfg.preview_dir.glob("*.png"))
    if meta and meta.get("complete") and previews_done:
        return False
    result = annotate_dataset(
        LeRobotSource(cfg.data_dir), cfg.annotation, AnnotationConfig(backend="sim"), workers=cfg.workers
    )
    log.info("annotation %s: %s", cfg.annotation, result)
    if preview:
        from data_pipeline.annotation.preview import render_previews

        render_previews(LeRobotSource(cfg.data_dir), cfg.annotation, preview, cfg.preview_dir, fmt="png")
    return True


def train_stage_step(cfg: PipelineConfig, stage: int) -> bool:
    from curriculum.checkpointing import TRAINER_STATE, final_dir
    from curriculum.runner import run_curriculum

    if (final_dir(cfg.stage_dir(stage)) / TRAINER_STATE).is_file():
        return False

    def on_our_data(k: int, train_cfg):  # the preset's stage k on this run's demos and step budget
        data = replace(train_cfg.data, root=str(cfg.data_dir), annotation=cfg.annotation)
        return replace(train_cfg, steps=cfg.stage_steps[k - 1], data=data)

    run_curriculum(cfg.curriculum, [], [], str(cfg.out / "train"), [stage], edit=on_our_data)
    return True


def eval_base(cfg: PipelineConfig):  # -> envs.evaluator.EvalConfig (imported lazily)
    """The evaluation's starting point: the `lara eval` preset (`eval_config`), or the defaults."""
    from envs.evaluator import EvalConfig
    from lara.utils.config_parsing import parse_config

    if cfg.eval_config:
        return parse_config(EvalConfig, ["--config_path", str(cfg.eval_config)], prog="lara eval")
    return EvalConfig()


def eval_config(cfg: PipelineConfig):  # -> envs.evaluator.EvalConfig
    """The evaluation step's typed config: the stage-III checkpoint on the run's tasks."""
    base = eval_base(cfg)
    return replace(
        base,
        camera_size=base.camera_size if cfg.eval_config else cfg.camera_size,
        policy=str(cfg.stage_dir(3) / "final"),
        suite=cfg.suite,
        tasks=cfg.tasks,
        episodes=cfg.eval_episodes,
        workers=cfg.workers,
        out=cfg.eval_dir,
        video=cfg.video,
        max_steps=cfg.eval_max_steps or base.max_steps,
    )


def eval_args(cfg: PipelineConfig) -> list[str]:
    """The evaluation step as the `lara eval` flags a user would type (the report's command)."""
    from lara.utils.config_parsing import flags_of

    preset = ["--config_path", str(cfg.eval_config)] if cfg.eval_config else []
    return preset + flags_of(eval_config(cfg), eval_base(cfg))


def eval_step(cfg: PipelineConfig, results: dict) -> bool:
    """Evaluate the stage-III checkpoint; fills `results` (a finished evaluation is read back)."""
    from envs.evaluator import evaluate
    from lara.scripts.eval_policies import policy_builder

    done = cfg.eval_dir / "results.json"
    if done.exists():
        results.update(json.loads(done.read_text()))
        return False
    eval_cfg = eval_config(cfg)
    results.update(evaluate(eval_cfg, policy_builder=policy_builder(eval_cfg)))
    return True


# The steps in run order, each a function of (config, annotation preview count, results so far):
# the one place that names them (`stop_after` is checked against these names).
STEP_RUNNERS: dict[str, Callable[[PipelineConfig, int, dict], bool]] = {
    "collect": lambda cfg, preview, results: collect_step(cfg),
    "annotate": lambda cfg, preview, results: annotate_step(cfg, preview),
    **{f"train_stage{k}": (lambda cfg, preview, results, k=k: train_stage_step(cfg, k)) for k in (1, 2, 3)},
    "evaluate": lambda cfg, preview, results: eval_step(cfg, results),
}
STEPS = tuple(STEP_RUNNERS)


def run_pipeline(cfg: PipelineConfig, preview: int = 0) -> dict:
    """All steps in order (each skipped when already done) up to `cfg.stop_after`; returns the
    evaluation results ({} when stopped before the evaluation)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    run_only = ("timings", "stop_after")  # not settings of the run: a later call may change them
    settings = {k: v for k, v in asdict(cfg).items() if k not in run_only}
    settings = json.loads(json.dumps(settings, default=str))
    previous = cfg.out / "pipeline.json"
    old = json.loads(previous.read_text()) if previous.exists() else {}
    # keys new since then: not compared
    changed = sorted(k for k in settings if k in old and old[k] != settings[k])
    if changed:
        raise LaraUserError(
            f"{cfg.out} holds a run with other settings ({', '.join(changed)} differ); "
            "pass --fresh to start over or choose another --out"
        )
    atomic_write_text(previous, json.dumps(settings, indent=2))
    results: dict = {}
    for name, runner in STEP_RUNNERS.items():
        timed_step(cfg, name, functools.partial(runner, cfg, preview, results))
        if name == cfg.stop_after:
            log.info("stopped after step %s (run again without stop_after to continue)", name)
            break
    return results
