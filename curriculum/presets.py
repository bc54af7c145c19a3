"""The named training presets, size x stage, in one place (openpi's registry of `TrainConfig`s).

    train_preset("tiny", 1) -> TrainConfig        lara train --preset tiny --stage 1
    train_preset("tiny", "baseline")              lara train --preset tiny --stage baseline
    SIZES: tiny (CPU default: tests, the demo), small (CPU learning), qwen3vl-2b, qwen3vl-4b (GPU,
           the reference's recipe with our budget), qwen3vl-2b-reference, qwen3vl-4b-reference
           (the same with the reference's stage lengths and batches)

A size is a function stage -> TrainConfig: its shared settings (the model, lara.presets; batch,
learning rates, steps) passed through `stage_objective`, which sets what the stage trains:
- "1": CoT CE + FAST action-token CE + visual-foresight L1 (weight 0.1), from random init;
- "2": the same while the CoT tags turn latent in a fixed order (SUBTASK for the first third of the
  ramp, + OBJECTS, + MOVE; the ramp is the first 80% of the steps), then all latent for the last
  20% (as the reference's stage runs); visual L1 0.2 (the Qwen3-VL sizes: 0.1 while SUBTASK alone
  is latent, then 0.2, as the reference); from stage I's final/;
- "3": the DiT action expert (flow matching) + visual L1 0.2 (Qwen3-VL: 0.1), no action tokens, no
  CoT text (every segment latent); from stage II's final/;
- "baseline": stage III alone from random init without reasoning: no CoT, no latent segments
  (`latent.tags: []`), no `<img_next>` slots (`foresight.num_slots: 0`), flow matching only;
- "no_curriculum": stage III alone from random init WITH the latent CoT slots and the `<img_next>`
  slots (flow + visual L1): straight to latents, never an explicit CoT (the paper's ablation
  "without the curriculum"; benchmarks/ablations).
Stage k trains into `<size output_dir>/stage<k>`. YAML files (`--config`, e.g. a dataset overlay)
and `--a.b value` flags apply on top (`load_train_config`, below). Tests register more
sizes with `register_size`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import draccus
import yaml

from curriculum.config import DataConfig, LatentScheduleConfig, LossConfig, OptimConfig, TrainConfig
from lara.configuration_lara import LaraConfigError
from lara.presets import model_preset
from lara.utils.config_parsing import parse_over
from lara.utils.errors import LaraUserError

STAGES = ("1", "2", "3", "baseline", "no_curriculum")
FROM_SCRATCH_STAGES = ("baseline", "no_curriculum")  # stage III from random init
# The visual-foresight L1 weight of each stage of the CPU sizes (their published runs used these);
# the Qwen3-VL sizes use the reference's (REFERENCE_VISUAL_L1, below).
VISUAL_L1 = {1: 0.1, 2: 0.2, 3: 0.2}


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
    if stage == "no_curriculum":  # the stage-III objective and sequence, the model untouched
        return replace(
            stage_objective(base, "3"), output_dir=f"{root}/no_curriculum", init_from=None, from_scratch=True
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


# The reference's LIBERO recipe (github husterPWC/LaRA-VLA at 93b5c03: laravla/config/training/
# libero.yaml, scripts/run_libero_multistage.sh, run_laravla_libero.sh, laravla/training/train.py).
# Its scheduler is transformers' cosine_with_min_lr with min_lr 5e-7, which divides by the optimizer's
# default lr (3e-5): every group decays to 1/60 of its own lr.
REFERENCE_OPTIM = OptimConfig(
    backbone_lr=1e-5,
    head_lr=1e-4,
    weight_decay=1e-8,
    beta1=0.9,
    beta2=0.95,
    eps=1e-8,
    grad_clip_norm=1.0,
    warmup_steps=None,
    warmup_fraction=0.1,
    min_lr_ratio=5e-7 / 3e-5,
)
REFERENCE_VISUAL_L1 = {1: 0.1, 2: 0.2, 3: 0.1}  # stage II's first level: 0.1 (loss.visual_l1_first_level)


@dataclass(frozen=True)
class Budget:
    """Steps and batch per process of each stage ("3" also sizes the baseline)."""

    steps: dict[str, int]
    batch_size: dict[str, int]
    grad_accum_steps: dict[str, int]


def budget_of(size: str, name: str) -> Budget:
    """`lara`: ours, 20k/20k/30k steps at 32 samples per process. `reference`: the reference's
    stage lengths and batches: stage I 5k steps at 96 (12 on each of 8 GPUs), stage II its three
    latent levels of 2k at 96-128 (here one 6k stage at 12 per process: a stage has one batch size),
    stage III 60k at 8 (one GPU). Batches are per process: on another GPU count, scale them."""
    if name == "reference":
        return Budget(
            steps={"1": 5000, "2": 6000, "3": 60000},
            batch_size={"1": 12, "2": 12, "3": 8},
            grad_accum_steps={"1": 1, "2": 1, "3": 1},
        )
    per_step = {"qwen3vl-2b": (16, 2), "qwen3vl-4b": (8, 4)}[size]  # 32 samples per process
    return Budget(
        steps={"1": 20000, "2": 20000, "3": 30000},
        batch_size=dict.fromkeys("123", per_step[0]),
        grad_accum_steps=dict.fromkeys("123", per_step[1]),
    )


def qwen3vl(name: str, budget: str = "lara") -> Callable[[str], TrainConfig]:
    """A Qwen3-VL size with the reference's recipe: fp32 master weights with bf16 compute on CUDA,
    gradient checkpointing, AdamW (betas 0.9/0.95, weight decay 1e-8) with 10% warmup and cosine to
    1/60 of each lr, the EMA target updated every 2 optimizer steps, visual L1 0.1 / 0.1 then 0.2 /
    0.1 (stage I / stage II's first latent level, then the rest / stage III), no visual loss where the
    next frame equals the current one, the target frame at 112 px through the 256 px tower input,
    the four latent levels of stage II equally long (ramp to 75%). `budget`: see `budget_of`. Real
    backbone weights: --model.backbone.pretrained_path <local Qwen3-VL folder>; data: an overlay such
    as --config configs/train/data/libero_four.yaml. LoRA: --lora.enabled true. Deviations from the
    reference that remain are switches (docs/method.md). Not run end to end in the session that
    wrote it (no GPU)."""

    def size(stage: str) -> TrainConfig:
        model = model_preset(name)
        # fp32 master weights (the model preset's bf16 is its inference dtype): bf16 compute comes from
        # autocast / the engine's mixed-precision policy; --model.backbone.dtype bfloat16 is the
        # memory-saving switch (stochastic rounding, curriculum/precision.py)
        model = replace(model, backbone=replace(model.backbone, gradient_checkpointing=True, dtype="float32"))
        plan = budget_of(name, budget)
        k = "3" if stage in FROM_SCRATCH_STAGES else stage
        base = TrainConfig(
            output_dir=f"outputs/train/{name}" + ("" if budget == "lara" else f"-{budget}"),
            seed=7,
            steps=plan.steps[k],
            batch_size=plan.batch_size[k],
            grad_accum_steps=plan.grad_accum_steps[k],
            save_every=1000,
            keep_last=2,
            log_every=20,
            ema_every=2,
            optim=replace(REFERENCE_OPTIM),  # a copy: configs are mutable
            latent=LatentScheduleConfig(end_fraction=0.75),
            model=model,
            data=DataConfig(num_workers=8, foresight_image_size=112, mask_unchanged_future=True),
        )
        cfg = stage_objective(base, stage)
        if stage == "baseline":
            return cfg
        loss = replace(
            cfg.loss,
            visual_l1=REFERENCE_VISUAL_L1[int(k)],
            visual_l1_first_level=0.1 if stage == "2" else None,
        )
        return replace(cfg, loss=loss)

    return size


# The Qwen3-VL presets' widths at 2 text layers, 2 vision blocks (one deepstack tap) and 2 expert
# layers: how the CPU checks of a real size (master weights, the memory model) and the GPU scale
# check build a model that fits in minutes. Command-line overrides for load_train_config.
REDUCED_DEPTH_OVERRIDES: tuple[str, ...] = (
    "--model.backbone.num_hidden_layers",
    "2",
    "--model.vision.depth",
    "2",
    "--model.vision.deepstack_visual_indexes",
    "[0]",
    "--model.expert.num_layers",
    "2",
)

SIZES: dict[str, Callable[[str], TrainConfig]] = {
    "tiny": cpu_size("tiny"),
    "small": cpu_size("small"),
    "qwen3vl-2b": qwen3vl("qwen3vl-2b"),  # 32 samples per step and process
    "qwen3vl-4b": qwen3vl("qwen3vl-4b"),
    "qwen3vl-2b-reference": qwen3vl("qwen3vl-2b", budget="reference"),  # its stage lengths and batches
    "qwen3vl-4b-reference": qwen3vl("qwen3vl-4b", budget="reference"),
}


def register_size(name: str, build: Callable[[str], TrainConfig]) -> None:
    SIZES[name] = build


def train_preset(size: str, stage: str | int) -> TrainConfig:
    """The preset of `size` (SIZES) at `stage` (1, 2, 3, "baseline" or "no_curriculum")."""
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
