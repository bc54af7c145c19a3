"""What the baseline arm runs (its folder, settings and the `lara train` / `lara eval` arguments):
benchmarks/generalization/baseline.py runs them, report.py writes them into the report's commands.
Their own module so that the runner and the report both import it and neither imports the other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lara.utils.errors import LaraUserError

REPO = Path(__file__).resolve().parents[2]
BASELINE_DIR = "baseline"
EVAL_PRESET = REPO / "configs" / "eval" / "libero_object.yaml"


@dataclass
class BaselineConfig:
    out: Path = Path("runs/generalization")  # the LaRA arm's run folder (its data/ and pipeline.json)
    steps: int | None = None  # optimizer steps; None: the LaRA arm's three stages together
    workers: int = 2  # simulator processes of the evaluation
    # a folder the LaRA arm's report was published to (run.py --publish): the baseline's results
    # are added to it (section 5 of its report.md, baseline/ files, commands)
    publish: Path | None = None
    # with publish: run no step, publish what the run holds now (an unfinished evaluation is scored on
    # its recorded episodes, both arms on the same ones, and marked partial)
    publish_only: bool = False


def lara_settings(out: Path) -> dict:
    """The LaRA arm's pipeline settings (`<out>/pipeline.json`), refused when its data is missing."""
    settings_file = out / "pipeline.json"
    if not settings_file.is_file() or not (out / "data" / "meta" / "info.json").is_file():
        raise LaraUserError(
            f"{out} holds no LaRA run with collected demos: run "
            f"`python benchmarks/generalization/run.py --out {out}` first (the baseline trains on its data)"
        )
    return json.loads(settings_file.read_text())


def size_of(settings: dict) -> str:
    """The size preset: a name, or (runs made before the named presets) a `configs/train/<size>` folder."""
    return Path(str(settings["curriculum"])).name


def train_args(cfg: BaselineConfig, settings: dict) -> list[str]:
    steps = cfg.steps or sum(settings["stage_steps"])
    return [
        "--preset",
        size_of(settings),
        "--stage",
        "baseline",
        "--output_dir",
        str(cfg.out / BASELINE_DIR / "train"),
        "--data.root",
        str(cfg.out / "data"),
        "--steps",
        str(steps),
        "--resume",
        "true",
    ]


def eval_args(cfg: BaselineConfig, settings: dict) -> list[str]:
    args = [
        "--config_path",
        str(EVAL_PRESET),
        "--policy",
        str(cfg.out / BASELINE_DIR / "train" / "final"),
        "--suite",
        settings["suite"],
        "--tasks",
        settings["tasks"],
        "--episodes",
        str(settings["eval_episodes"]),
        "--workers",
        str(cfg.workers),
        "--out",
        str(cfg.out / BASELINE_DIR / "eval"),
        "--video",
        "true",
    ]
    return args + (["--max_steps", str(settings["eval_max_steps"])] if settings.get("eval_max_steps") else [])
