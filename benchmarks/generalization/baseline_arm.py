"""What the baseline arm runs (its folder, settings, and its typed training and evaluation configs):
benchmarks/generalization/baseline.py runs them, report.py writes them as `lara` commands.
Their own module so that the runner and the report both import it and neither imports the other."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
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


def train_config(cfg: BaselineConfig, settings: dict):  # -> curriculum.config.TrainConfig
    """The baseline's typed training config: the size's `baseline` preset on the LaRA arm's demos,
    for as many steps as the LaRA arm's three stages together (or `cfg.steps`)."""
    from curriculum.presets import train_preset

    base = train_preset(size_of(settings), "baseline")
    return replace(
        base,
        output_dir=str(cfg.out / BASELINE_DIR / "train"),
        data=replace(base.data, root=str(cfg.out / "data")),
        steps=cfg.steps or sum(settings["stage_steps"]),
        resume=True,
    )


def train_args(cfg: BaselineConfig, settings: dict) -> list[str]:
    """`train_config` as the `lara train` flags a user would type (the report's command)."""
    from curriculum.presets import train_preset
    from lara.utils.config_parsing import flags_of

    size = size_of(settings)
    preset = ["--preset", size, "--stage", "baseline"]
    return preset + flags_of(train_config(cfg, settings), train_preset(size, "baseline"))


def _eval_preset():  # -> envs.evaluator.EvalConfig
    from envs.evaluator import EvalConfig
    from lara.utils.config_parsing import parse_config

    return parse_config(EvalConfig, ["--config_path", str(EVAL_PRESET)], prog="lara eval")


def eval_config(cfg: BaselineConfig, settings: dict):  # -> envs.evaluator.EvalConfig
    """The baseline's typed evaluation: the standard protocol's preset on the LaRA arm's episodes."""
    base = _eval_preset()
    return replace(
        base,
        policy=str(cfg.out / BASELINE_DIR / "train" / "final"),
        suite=settings["suite"],
        tasks=settings["tasks"],
        episodes=settings["eval_episodes"],
        workers=cfg.workers,
        out=cfg.out / BASELINE_DIR / "eval",
        video=True,
        max_steps=settings.get("eval_max_steps") or base.max_steps,
    )


def eval_args(cfg: BaselineConfig, settings: dict) -> list[str]:
    """`eval_config` as the `lara eval` flags a user would type (the report's command)."""
    from lara.utils.config_parsing import flags_of

    return ["--config_path", str(EVAL_PRESET), *flags_of(eval_config(cfg, settings), _eval_preset())]
