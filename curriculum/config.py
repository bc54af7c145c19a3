"""Typed configuration of one curriculum stage (draccus dataclasses, loaded from YAML).

A stage is fully described by one `TrainConfig`: YAML presets in configs/train/ (one per stage
and model size, plus per-dataset overlays) merged in order, then `--a.b value` overrides from the
command line. Validation lives in `__post_init__` and raises; nothing is silently adjusted.
Unknown keys and wrong types are errors (draccus), reported as one `LaraUserError` line.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import draccus
import yaml

from curriculum.schedules import LATENT_SCHEDULES
from lara.utils.errors import LaraUserError
from lara.normalization import MODES as NORM_MODES

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
SLOT_MODES = ("learned", "recurrent")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise LaraUserError(message)


@dataclass
class OptimConfig:
    """AdamW with two learning rates (backbone lower than heads/expert), warmup + cosine."""

    backbone_lr: float = 1e-5
    head_lr: float = 1e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = 1.0  # 0 disables clipping
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        _check(self.backbone_lr >= 0 and self.head_lr > 0, "optim: learning rates must be >= 0 (head_lr > 0)")
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "optim.min_lr_ratio must be in [0, 1]")
        _check(self.grad_clip_norm >= 0, "optim.grad_clip_norm must be >= 0 (0 disables clipping)")


@dataclass
class LatentScheduleConfig:
    """Stage II: which CoT segments are latent, rising to all of them on the ramp
    [start_fraction, end_fraction] of the stage's steps; after end_fraction all segments are
    latent (the final all-latent stretch).

    tag_order (default, as the reference): tags turn latent in `order`, one more per level
    (SUBTASK first), the same tags in every sample; `num_segments` levels = len(order).
    linear | cosine | stepwise: every segment is drawn latent at random with the scheduled p."""

    kind: str = "tag_order"  # tag_order | linear | cosine | stepwise
    start_fraction: float = 0.0
    end_fraction: float = 0.8
    num_segments: int = 4  # levels: tag_order = len(order); stepwise: steps of the staircase
    order: list[str] = field(default_factory=lambda: ["SUBTASK", "OBJECTS", "MOVE", "GRIPPER"])  # tag_order

    def __post_init__(self) -> None:
        _check(self.kind in LATENT_SCHEDULES, f"latent.kind={self.kind!r}: choose one of {LATENT_SCHEDULES}")
        _check(
            0.0 <= self.start_fraction <= self.end_fraction < 1.0,
            "latent: need 0 <= start_fraction <= end_fraction < 1 (the stretch after end_fraction is all-latent)",
        )
        _check(self.num_segments >= 1, "latent.num_segments must be >= 1")
        _check(len(set(self.order)) == len(self.order) >= 1, f"latent.order {self.order}: name each tag once")
        _check(self.kind != "tag_order" or self.num_segments == len(self.order),
               f"latent.kind tag_order has one level per tag: set latent.num_segments to len(latent.order) = "
               f"{len(self.order)} (got {self.num_segments})")


@dataclass
class LossConfig:
    """Loss weights. A term whose weight is > 0 must be reported by the policy and be nonzero
    (the trainer checks it on the first step: a configured loss is never silently off)."""

    cot_ce: float = 1.0
    action_ce: float = 1.0
    visual_l1: float = 0.1
    flow: float = 1.0
    visual_l1_warmup_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("cot_ce", "action_ce", "visual_l1", "flow"):
            _check(getattr(self, name) >= 0, f"loss.{name} must be >= 0")


@dataclass
class LoraSettings:
    """Optional LoRA adapters on the backbone (peft); the rest of the backbone is frozen, except
    the token embeddings and LM head when `train_embeddings` (LaRA's added tokens must learn)."""

    enabled: bool = False
    module: str = "backbone"  # attribute of the policy holding the backbone (LaraPolicy.backbone is its Qwen3-VL)
    train_embeddings: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        _check(self.r >= 1 and self.alpha >= 1, "lora: r and alpha must be >= 1")


@dataclass
class ModelConfig:
    """What the policy builder needs. `type` picks a registered builder (curriculum.builders).

    For the LaRA policy, `preset` names a model preset (configs/model/<preset>.yaml) or a YAML
    path, `overrides` are extra LaraConfig flags (`--expert.num_layers=16`), and the fields below
    that are not None replace the preset's value (so the training preset states what it relies on).
    """

    type: str = "lara"
    preset: str = "tiny"  # tiny | qwen3vl-2b | qwen3vl-4b, or a path to a LaraConfig YAML
    overrides: list[str] = field(default_factory=list)
    pretrained_path: str | None = None  # backbone weights (local Qwen3-VL folder); None: random init
    chunk_size: int | None = None  # H, actions per chunk (also the dataset's chunk size)
    num_visual_slots: int | None = None  # N_v <img_next> slots
    latent_slots_per_segment: int | None = None
    slot_mode: str | None = None  # learned (embedding table, one pass) | recurrent (Coconut, multi-pass)
    use_ema_target: bool | None = None
    ema_momentum: float | None = None
    gradient_checkpointing: bool = False  # applied by the policy builder
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        _check(self.chunk_size is None or self.chunk_size >= 1, "model.chunk_size must be >= 1")
        _check(self.latent_slots_per_segment is None or self.latent_slots_per_segment >= 1,
               "model.latent_slots_per_segment must be >= 1")
        _check(self.slot_mode is None or self.slot_mode in SLOT_MODES,
               f"model.slot_mode={self.slot_mode!r}: choose one of {SLOT_MODES}")
        _check(self.ema_momentum is None or 0.0 <= self.ema_momentum < 1.0, "model.ema_momentum must be in [0, 1)")


@dataclass
class DataConfig:
    """The training dataset. `type` picks a registered builder (curriculum.builders)."""

    type: str = "lerobot"
    root: str = ""  # dataset folder (LeRobot v3 layout)
    mapping: str = "libero"  # key mapping preset (configs/data/<mapping>.yaml) or YAML path
    annotation: str | None = "latest"  # CoT run name, "latest" (newest complete run); stages I-II need one
    include_plan: bool = False  # prepend the episode PLAN segment to each frame's CoT
    allow_incomplete_annotation: bool = False  # train on an interrupted annotation run's episodes only
    foresight_offset: int = 1  # k: the foresight target is frame t + k
    image_size: int | None = None  # None: the model's vision.image_size
    foresight_image_size: int | None = None  # None: the model's foresight.image_size
    norm_mode: str = "quantile"  # quantile (q01/q99) | min_max (the reference's LIBERO setting) | mean_std
    num_workers: int = 0
    split: str = "train"  # train: the recorded split's train episodes (data_pipeline.splits); all: every frame
    fast_fit_chunks: int = 20000  # action chunks the FAST tokenizer is fit on before stage I

    def __post_init__(self) -> None:
        _check(self.foresight_offset >= 0, "data.foresight_offset must be >= 0")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")
        _check(self.split in ("train", "all"), f"data.split={self.split!r}: choose train or all")
        _check(self.norm_mode in NORM_MODES, f"data.norm_mode={self.norm_mode!r}: choose one of {NORM_MODES}")


@dataclass
class TrainConfig:
    """One curriculum stage. `batch_size` is per process and per micro-batch: one optimizer
    step sees batch_size * grad_accum_steps * num_processes samples."""

    stage: int = 1
    output_dir: str = "outputs/train/stage1"
    init_from: str | None = None  # previous stage's final checkpoint (required for stages 2, 3)
    resume: bool = False  # continue from the newest checkpoint in output_dir
    seed: int = 7
    steps: int = 100  # optimizer steps
    batch_size: int = 8
    grad_accum_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    save_every: int = 50
    keep_last: int = 2  # periodic checkpoints kept (the final one is always kept)
    save_state: bool = True  # false: checkpoints hold the model only (no optimizer/RNG: no resume); benchmarks
    log_every: int = 10
    progress: bool = True
    ddp_find_unused_parameters: bool = True  # stage III leaves the token heads unused
    optim: OptimConfig = field(default_factory=OptimConfig)
    latent: LatentScheduleConfig = field(default_factory=LatentScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        _check(self.stage in (1, 2, 3), f"stage={self.stage}: must be 1, 2 or 3")
        _check(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be >= 1")
        _check(self.grad_accum_steps >= 1, "grad_accum_steps must be >= 1")
        _check(self.save_every >= 1 and self.log_every >= 1, "save_every and log_every must be >= 1")
        _check(self.keep_last >= 1, "keep_last must be >= 1")
        _check(self.mixed_precision in MIXED_PRECISION, f"mixed_precision: choose one of {MIXED_PRECISION}")
        _check(
            self.stage == 1 or bool(self.init_from),
            f"stage {self.stage} starts from the previous stage's checkpoint: set --init_from "
            f"<stage {self.stage - 1} output_dir>/final (or run `lara train --curriculum ...`)",
        )
        if self.stage in (1, 2):
            _check(
                self.loss.action_ce > 0,
                f"stage {self.stage} trains action tokens: loss.action_ce must be > 0",
            )
        else:
            _check(self.loss.flow > 0, "stage 3 trains the action expert: loss.flow must be > 0")

    # -- what the trainer asks of the config ------------------------------------------------------
    def active_losses(self) -> dict[str, float]:
        """The loss terms this stage optimizes and their (final) weights: stage I/II CoT CE +
        action CE + visual L1; stage III flow matching + visual L1 (no action tokens, no CoT).
        A term with weight 0 is passed as 0 (switched off on purpose, visibly, in the config)."""
        if self.stage in (1, 2):
            return {"cot_ce": self.loss.cot_ce, "action_ce": self.loss.action_ce, "visual_l1": self.loss.visual_l1}
        return {"flow": self.loss.flow, "visual_l1": self.loss.visual_l1}

    def to_yaml(self) -> str:
        stream = io.StringIO()
        draccus.dump(self, stream)
        return stream.getvalue()

    def fingerprint(self) -> str:
        """Hash of everything that determines the trained weights; a resume directory written
        under another fingerprint belongs to a different run."""
        return hashlib.sha256(json.dumps(training_identity(self), sort_keys=True).encode()).hexdigest()[:16]


# Fields that do not change the weights a run produces: free to differ on resume.
_OPERATIONAL = {"resume", "output_dir", "save_every", "keep_last", "save_state", "log_every", "progress",
                "data.num_workers"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def training_identity(cfg: TrainConfig) -> dict:
    """The flattened config minus operational fields (see `_OPERATIONAL`)."""
    flat = _flatten(yaml.safe_load(cfg.to_yaml()))
    unused = "model.lora." if not cfg.model.lora.enabled else None  # LoRA settings matter only when on
    return {k: v for k, v in flat.items()
            if k not in _OPERATIONAL and not (unused and k.startswith(unused) and k != "model.lora.enabled")}


def config_diff(a: dict, b: dict) -> list[str]:
    """Human-readable differences between two `training_identity` dicts."""
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_train_config(config_paths: list[str | Path], overrides: list[str] | None = None) -> TrainConfig:
    """YAML files merged in order (a stage preset, then e.g. a dataset overlay), then CLI overrides
    (`--optim.head_lr 2e-4`). Every problem becomes one `LaraUserError` line naming the fix."""
    merged: dict = {}
    for path in config_paths:
        path = Path(path)
        if not path.is_file():
            raise LaraUserError(f"config file {path} not found; presets live in configs/train/")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise LaraUserError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the file") from err
        if not isinstance(data, dict):
            raise LaraUserError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
        merged = _deep_merge(merged, data)
    with tempfile.TemporaryDirectory() as tmp:
        merged_path = Path(tmp) / "merged.yaml"
        merged_path.write_text(yaml.safe_dump(merged) if merged else "{}\n")
        try:
            return draccus.parse(
                config_class=TrainConfig, config_path=merged_path, args=list(overrides or []), exit_on_error=False
            )
        except draccus.utils.DraccusException as err:
            cause = err
            while cause is not None and not isinstance(cause, LaraUserError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:  # a nested __post_init__ check: its own message is the clear one
                raise LaraUserError(str(cause)) from err
            where = ", ".join(str(p) for p in config_paths) or "command line"
            message = " ".join(str(err).split())  # one line
            raise LaraUserError(
                f"bad training config ({where}): {message}; see curriculum/config.py for the valid keys and types"
            ) from err
