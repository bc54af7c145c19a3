"""The paper's ablation table at CPU scale: one resumable command trains every row, evaluates each on
the same libero_object episodes (standard protocol), measures latent health, and writes the table.

    python benchmarks/ablations/run.py --out runs/ablations [--preset small|tiny] [--rows lara,no_ema]

Rows and chains: benchmarks/ablations/rows.py. Steps, each skipped when its output exists (so after a
kill the same command continues; a changed setting on the same --out is refused):
1. data: the generalization benchmark's collection and annotation (lara.scripts.pipeline's steps with
   benchmarks/generalization/run.py's settings: the same demos and seeds), into `<out>/data`; or
   `--data DIR --annotation NAME`: an annotated LeRobot dataset already collected (e.g. a
   generalization run's `data/`);
2. per chain: train (`<out>/train/<chain>/`), then per row of the chain: evaluate with the standard
   protocol's `lara eval` preset (`<out>/eval/<row>/episodes.jsonl`, results.json; an interrupted
   evaluation resumes its records), and latent health (`<out>/health/<row>.json`);
3. the table (`<out>/report.md`, `table.json`, `success.png`), rebuilt from the records every run.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(REPO))

from benchmarks.ablations.rows import (  # noqa: E402
    CHAINS,
    ROW_NAMES,
    ROWS,
    chain_dir,
    checkpoint_of,
    single_stage_config,
    stage_edit,
)
from lara.utils.errors import LaraUserError  # noqa: E402

# small: the generalization benchmark's published setting (its run.py defaults), so that the full
# LaRA row is that benchmark's LaRA arm; tiny: a smoke run of every step (minutes, not a result).
PRESETS = {
    "small": {
        "size": "small",
        "tasks": "all",
        "demos_per_task": 20,
        "stage_steps": [600, 300, 1600],
        "eval_episodes": 10,
        "eval_max_steps": None,
        "workers": 2,
        "health_episodes": 4,
        "health_stride": 8,
    },
    "tiny": {
        "size": "tiny",
        "tasks": "0",
        "demos_per_task": 2,
        "stage_steps": [10, 10, 10],
        "eval_episodes": 1,
        "eval_max_steps": 24,
        "workers": 1,
        "health_episodes": 2,
        "health_stride": 8,
    },
}
RUN_ONLY = ("rows", "fresh")  # not settings of the run: a later call may change them


@dataclass
class AblationConfig:
    out: Path = Path("runs/ablations")
    preset: str = "small"  # small | tiny (PRESETS); the fields below left unset take the preset's value
    rows: list[str] = field(default_factory=lambda: list(ROW_NAMES))  # rows to run now (the table shows all)
    data: Path | None = None  # an annotated LeRobot dataset to use instead of collecting one
    annotation: str = "sim-v1"  # the CoT annotation run of the demos
    tasks: str | None = None  # libero_object task ids
    demos_per_task: int | None = None
    stage_steps: list[int] | None = None  # I, II, III; no_curriculum and baseline train their sum
    eval_episodes: int | None = None  # K: init states 0..K-1 of every task
    eval_max_steps: int | None = None  # smoke runs only: not the protocol (the report says so)
    workers: int | None = None  # simulator processes (collection and evaluation)
    video: bool = False  # episode videos of every evaluation
    health_episodes: int | None = None  # latent health: episodes per task
    health_stride: int | None = None  # latent health: every k-th frame
    fresh: bool = False  # delete --out first

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.preset not in PRESETS:
            raise LaraUserError(f"--preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        for name, value in PRESETS[self.preset].items():
            if name != "eval_max_steps" and getattr(self, name, None) is None:
                setattr(self, name, value)
        if self.eval_max_steps is None:
            self.eval_max_steps = PRESETS[self.preset]["eval_max_steps"]
        unknown = sorted(set(self.rows) - set(ROW_NAMES))
        if unknown:
            raise LaraUserError(f"--rows {unknown} unknown; rows: {', '.join(ROW_NAMES)}")
        if len(self.stage_steps) != 3 or min(self.stage_steps) < 1:
            raise LaraUserError(f"--stage_steps must be three positive step counts, got {self.stage_steps}")

    @property
    def size(self) -> str:
        return PRESETS[self.preset]["size"]

    @property
    def data_dir(self) -> Path:
        return Path(self.data) if self.data is not None else self.out / "data"

    def settings(self) -> dict:
        s = {k: v for k, v in asdict(self).items() if k not in RUN_ONLY}
        return json.loads(json.dumps({**s, "size": self.size}, default=str))


def pipeline_config(cfg: AblationConfig):  # -> lara.scripts.pipeline.PipelineConfig
    """The generalization benchmark's pipeline settings for these demos and this evaluation."""
    from benchmarks.generalization.run import build_config, parse_args

    argv = ["--out", str(cfg.out), "--curriculum", cfg.size, "--tasks", cfg.tasks]
    argv += ["--demos_per_task", str(cfg.demos_per_task), "--eval_episodes", str(cfg.eval_episodes)]
    argv += ["--stage_steps", *map(str, cfg.stage_steps), "--workers", str(cfg.workers)]
    argv += ["--eval_max_steps", str(cfg.eval_max_steps)] if cfg.eval_max_steps else []
    return replace(build_config(parse_args(argv)), stop_after="annotate", video=cfg.video)


def check_settings(cfg: AblationConfig) -> None:
    path = cfg.out / "ablations.json"
    now = cfg.settings()
    old = json.loads(path.read_text()) if path.is_file() else {}
    changed = sorted(k for k in now if k in old and old[k] != now[k])
    if changed:
        raise LaraUserError(
            f"{cfg.out} holds an ablation run with other settings ({', '.join(changed)} differ); "
            "pass --fresh true to start over or choose another --out"
        )
    cfg.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(now, indent=2))


def data_step(cfg: AblationConfig) -> bool:
    if cfg.data is not None:
        if not (cfg.data_dir / "meta" / "info.json").is_file():
            raise LaraUserError(f"--data {cfg.data} is not a LeRobot dataset (no meta/info.json)")
        return False
    from lara.scripts.pipeline import run_pipeline

    run_pipeline(pipeline_config(cfg))  # collect + annotate, each skipped when done
    return True


def train_step(cfg: AblationConfig, chain: str, rows: list) -> bool:
    """Train one chain up to the last stage `rows` need (each stage skipped when finished, resumed
    when interrupted): the stage-I row needs stage I only, mid stage II stages I-II."""
    from curriculum.checkpointing import TRAINER_STATE, final_dir
    from curriculum.runner import run_curriculum, train_lock
    from curriculum.trainer import train

    base = chain_dir(cfg.out, chain)
    if chain in ("no_curriculum", "baseline"):
        if (final_dir(base) / TRAINER_STATE).is_file():
            return False
        tc = single_stage_config(cfg.out, chain, cfg.size, cfg.data_dir, sum(cfg.stage_steps))
        with train_lock(tc.output_dir):
            train(tc)
        return True
    stages = list(range(1, 1 + max({"1": 1, "mid2": 2, "3": 3}[r.stage] for r in rows)))
    if all((final_dir(base / f"stage{k}") / TRAINER_STATE).is_file() for k in stages):
        return False
    edit = stage_edit(cfg.out, chain, cfg.data_dir, cfg.annotation, cfg.stage_steps)
    run_curriculum(cfg.size, [], [], str(base), stages, edit=edit)
    return True


def eval_config(cfg: AblationConfig, row_name: str):  # -> envs.evaluator.EvalConfig
    """The standard protocol's `lara eval` preset on this run's tasks and K: the generalization
    benchmark's evaluation (lara.scripts.pipeline.eval_config) with the row's checkpoint."""
    from benchmarks.ablations.rows import row
    from lara.scripts.pipeline import eval_config as pipeline_eval

    ckpt = checkpoint_of(cfg.out, row(row_name), cfg.stage_steps, cfg.size)
    return replace(pipeline_eval(pipeline_config(cfg)), policy=str(ckpt), out=cfg.out / "eval" / row_name)


def evaluate_row(cfg: AblationConfig, row_name: str) -> bool:
    from envs.evaluator import evaluate
    from lara.scripts.eval_policies import policy_builder

    if (cfg.out / "eval" / row_name / "results.json").is_file():
        return False
    eval_cfg = eval_config(cfg, row_name)
    evaluate(eval_cfg, policy_builder=policy_builder(eval_cfg))  # as `lara eval` and the pipeline do
    return True


def health_step(cfg: AblationConfig, row_name: str) -> bool:
    from benchmarks.ablations.health import latent_health
    from benchmarks.ablations.rows import row
    from lara.utils.atomic import atomic_write_text

    path = cfg.out / "health" / f"{row_name}.json"
    if path.is_file():
        return False
    ckpt = checkpoint_of(cfg.out, row(row_name), cfg.stage_steps, cfg.size)
    result = latent_health(ckpt, cfg.data_dir, cfg.annotation, cfg.health_episodes, cfg.health_stride)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1))
    return True


def main(argv: list[str]) -> int:
    from benchmarks.ablations.report import write_report
    from lara.scripts.pipeline import timed_step
    from lara.utils.config_parsing import parse_config

    cfg = parse_config(AblationConfig, argv, prog="benchmarks/ablations/run.py")
    if cfg.fresh and cfg.out.exists():
        shutil.rmtree(cfg.out)
    check_settings(cfg)
    run = SimpleNamespace(out=cfg.out, timings={})  # timed_step: <out>/timings.json
    command = "python benchmarks/ablations/run.py " + shlex.join(argv)
    timed_step(run, "data", lambda: data_step(cfg))
    wanted = [r for r in ROWS if r.name in cfg.rows]
    for chain in CHAINS:
        rows = [r for r in wanted if r.chain == chain]
        if not rows:
            continue
        timed_step(run, f"train_{chain}", lambda chain=chain, rows=rows: train_step(cfg, chain, rows))
        for r in rows:
            timed_step(run, f"evaluate_{r.name}", lambda r=r: evaluate_row(cfg, r.name))
            timed_step(run, f"health_{r.name}", lambda r=r: health_step(cfg, r.name))
            write_report(cfg.out, cfg.settings(), command, run.timings)  # partial tables as rows finish
    report = write_report(cfg.out, cfg.settings(), command, run.timings)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    from lara.scripts.cli import configure_logging

    configure_logging()  # third-party noise hidden, as in the lara command
    from lara.utils.errors import run_main

    sys.exit(run_main(main, sys.argv[1:]))
