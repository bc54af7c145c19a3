"""The named training presets, size x stage, in one place (openpi's registry of `TrainConfig`s).

    train_preset("tiny", 1) -> TrainConfig        lara train --preset tiny --stage 1
    train_preset("tiny", "baseline")              lara train --preset tiny --stage baseline
    SIZES: tiny (CPU default: tests, the demo), small (CPU learning), qwen3vl-2b, qwen3vl-4b (GPU)

A size is a function stage -> TrainConfig: its shared settings (the model, lara.presets; batch,
learning rates, steps) passed through `stage_objective`, which sets what the stage trains:
- "1": CoT CE + FAST action-token CE + visual-foresight L1 (weight 0.1), from random init;
- "2": the same while the CoT tags turn latent in a fixed order (SUBTASK for the first third of the
  ramp, + OBJECTS, + MOVE; the ramp is the first 80% of the steps), then all latent for the last
  20% (as the reference's stage runs); visual L1 0.2; from stage I's final/;
- "3": the DiT action expert (flow matching) + visual L1 0.2, no action tokens, no CoT text (every
  segment latent); from stage II's final/;
- "baseline": stage III alone from random init without reasoning: no CoT, no latent segments
  (`latent.tags: []`), no `<img_next>` slots (`foresight.num_slots: 0`), flow matching only.
Stage k trains into `<size output_dir>/stage<k>`. YAML files (`--config`, e.g. a dataset overlay)
and `--a.b value` flags apply on top (`load_train_config`, below). Tests register more
sizes with `register_size`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import draccus
import yaml

from curriculum.config import DataConfig, LossConfig, OptimConfig, TrainConfig
from lara.configuration_lara import LaraConfigError
from lara.presets import model_preset
from lara.utils.config_parsing import parse_over
from lara.utils.errors import LaraUserError

STAGES = ("1", "2", "3", "baseline")
VISUAL_L1 = {1: 0.1, 2: 0.2, 3: 0.2}  # the visual-foresight L1 weight of each stage (the reference's)


def stage_objective(base: TrainConfig, stage: str) -> TrainConfig:
    """A size's shared settings (`base`, its output_dir the size's folder) as the given stage."""
    root = base.output_dir
    if stage == "baseline":
        m = base.model
        model = replace(m, foresight=replace(m.foresight, num_slots=0), latent=replace(m.latent, tags=[]))
        return replace(
            stage_objective(base, "3"),
            output_dir=f"{root}/baseline",
            init_from=None,
            from_scratch=True,
            loss=LossConfig(visual_l1=0.0),
            model=model,
        )
    if stage not in STAGES:
        raise LaraUserError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
    k = int(stage)
    data = replace(base.data, annotation=None) if k == 3 else base.data  # stage III reads no CoT text
    return replace(
        base,
        stage=k,
        output_dir=f"{root}/stage{k}",
        loss=LossConfig(visual_l1=VISUAL_L1[k]),
        init_from=f"{root}/stage{k - 1}/final" if k > 1 else None,
        data=data,
    )


def cpu_size(name: str) -> Callable[[str], TrainConfig]:
    """A random-init size trained on CPU (tiny: tests and the demo; small: learning): 200 steps per
    stage at batch 8, the backbone's learning rate a tenth of the heads' as in the real sizes."""

    def size(stage: str) -> TrainConfig:
        optim = OptimConfig(backbone_lr=1e-4, head_lr=1e-3, warmup_steps=20 if stage == "1" else 10)
        base = TrainConfig(
            output_dir=f"outputs/train/{name}",
            seed=7,
            steps=200,
            batch_size=8,
            save_every=100,
            log_every=10,
            optim=optim,
            model=model_preset(name),
        )
        return stage_objective(base, stage)

    return size


def qwen3vl(name: str, batch_size: int, grad_accum_steps: int) -> Callable[[str], TrainConfig]:
    """A Qwen3-VL size: bf16 on CUDA, gradient checkpointing, 20k/20k/30k steps, warmup 500. Real
    backbone weights: --model.backbone.pretrained_path <local Qwen3-VL folder>; data: an overlay such
    as --config configs/train/data/libero_spatial.yaml. fp32 master weights with bf16 compute on
    CUDA; --model.backbone.dtype bfloat16 stores them in bf16 (less memory, stochastic rounding:
    curriculum/precision.py). LoRA: --lora.enabled true.
    Not run end to end in the session that wrote it."""

    def size(stage: str) -> TrainConfig:
        model = model_preset(name)
        # fp32 master weights (the model preset's bf16 is its inference dtype): bf16 compute comes from
        # autocast / the engine's mixed-precision policy; --model.backbone.dtype bfloat16 is the
        # memory-saving switch (stochastic rounding, curriculum/precision.py)
        model = replace(model, backbone=replace(model.backbone, gradient_checkpointing=True, dtype="float32"))
        optim = OptimConfig(
            backbone_lr=1e-5,
            head_lr=1e-4,
            weight_decay=0.01,
            warmup_steps=500,
            min_lr_ratio=0.1,
            grad_clip_norm=1.0,
        )
        base = TrainConfig(
            output_dir=f"outputs/train/{name}",
            seed=7,
            steps=30000 if stage in ("3", "baseline") else 20000,
            batch_size=batch_size,
            grad_accum_steps=grad_accum_steps,
            save_every=1000,
            keep_last=2,
            log_every=20,
            optim=optim,
            model=model,
            data=DataConfig(num_workers=8),
        )
        return stage_objective(base, stage)

    return size


SIZES: dict[str, Callable[[str], TrainConfig]] = {
    "tiny": cpu_size("tiny"),
    "small": cpu_size("small"),
    "qwen3vl-2b": qwen3vl("qwen3vl-2b", batch_size=16, grad_accum_steps=2),  # effective batch 32 x processes
    "qwen3vl-4b": qwen3vl("qwen3vl-4b", batch_size=8, grad_accum_steps=4),
}


def register_size(name: str, build: Callable[[str], TrainConfig]) -> None:
    SIZES[name] = build


def train_preset(size: str, stage: str | int) -> TrainConfig:
    """The preset of `size` (SIZES) at `stage` (1, 2, 3 or "baseline")."""
    if size not in SIZES:
        raise LaraUserError(f"no training preset {size!r}; sizes: {sorted(SIZES)} (curriculum/presets.py)")
    if str(stage) not in STAGES:
        raise LaraUserError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
    return SIZES[size](str(stage))


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_train_config(
    config_paths: list[str | Path] = (),
    overrides: list[str] | None = None,
    preset: str | None = None,
    stage: str | int | None = None,
) -> TrainConfig:
    """A named preset (`preset` size x `stage`, above) or the dataclass defaults, then
    YAML files merged in order (e.g. a dataset overlay), then CLI overrides (`--optim.head_lr 2e-4`).
    Every problem becomes one `LaraUserError` line naming the fix."""
    merged: dict = {}
    if preset is not None:
        merged = draccus.encode(train_preset(preset, stage))
    elif stage is not None:
        raise LaraUserError(
            f"stage {stage!r} names a stage preset: give the size too (--preset tiny --stage {stage})"
        )
    for path in config_paths:
        merged = _deep_merge(merged, _read_yaml(Path(path)))
    try:
        return parse_over(TrainConfig, merged, list(overrides or []))
    except draccus.utils.DraccusException as err:
        cause = err
        while cause is not None and not isinstance(cause, (LaraUserError, LaraConfigError)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, LaraUserError):  # a nested __post_init__ check: its own message is the clear one
            raise LaraUserError(str(cause)) from err
        if cause is not None:  # LaraConfig's own validation
            raise LaraUserError(
                f"invalid model setting: {cause}; model.* are LaraConfig fields (lara/configuration_lara.py)"
            ) from err
        where = ", ".join(str(p) for p in config_paths) or (f"preset {preset}" if preset else "command line")
        message = " ".join(str(err).split())  # one line
        raise LaraUserError(
            f"bad training config ({where}): {message}; see curriculum/config.py for the valid keys and types"
        ) from err


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise LaraUserError(
            f"config file {path} not found; presets are named (`--preset tiny --stage 1`, "
            "curriculum/presets.py), YAML files are overlays on them"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise LaraUserError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the file") from err
    if not isinstance(data, dict):
        raise LaraUserError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    return data
