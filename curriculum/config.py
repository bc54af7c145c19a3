"""Typed configuration of one curriculum stage (draccus dataclasses).

A stage is fully described by one `TrainConfig`, which nests the model's own `LaraConfig` as
`model` (as openpi's `TrainConfig(model=Pi0Config(...))`). `curriculum.presets.load_train_config`
starts from a named preset (size x stage) or the dataclass defaults, merges YAML files on it in
order (a dataset overlay, a run's saved config.yaml), then `--a.b value` overrides from the command
line. Validation lives in `__post_init__` and raises; nothing is silently adjusted. Unknown keys
and wrong types are errors (draccus), reported as one `LaraUserError` line.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import draccus
import yaml

from curriculum.schedules import LATENT_SCHEDULES
from lara.configuration_lara import LaraConfig
from lara.normalization import MODES as NORM_MODES
from lara.utils.errors import LaraUserError

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise LaraUserError(message)


@dataclass
class OptimConfig:
    """AdamW with two learning rates (backbone lower than heads/expert), linear warmup + cosine to
    `min_lr_ratio` x the group's lr. The warmup is `warmup_steps` when set, else `warmup_fraction`
    of the stage's steps (the reference: 10%), so an explicit `--optim.warmup_steps N` always wins."""

    backbone_lr: float = 1e-5
    head_lr: float = 1e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = 1.0  # 0 disables clipping
    warmup_steps: int | None = 10  # null: warmup_fraction of the stage's steps
    warmup_fraction: float = 0.0  # used when warmup_steps is null (the reference's warmup_ratio: 0.1)
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        _check(self.backbone_lr >= 0 and self.head_lr > 0, "optim: learning rates must be >= 0 (head_lr > 0)")
        _check(self.warmup_steps is None or self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(0.0 <= self.warmup_fraction < 1.0, "optim.warmup_fraction must be in [0, 1)")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "optim.min_lr_ratio must be in [0, 1]")
        _check(self.grad_clip_norm >= 0, "optim.grad_clip_norm must be >= 0 (0 disables clipping)")

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps of a stage of `total_steps` (a fraction rounds down, as the reference's int())."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(total_steps * self.warmup_fraction)


@dataclass
class LatentScheduleConfig:
    """Stage II: which CoT segments are latent, rising to all of them on the ramp
    [start_fraction, end_fraction] of the stage's steps; after end_fraction all segments are
    latent (the final all-latent stretch).

    tag_order (default, as the reference): tags turn latent in `model.latent.order`, one more per
    level (SUBTASK first), the same tags in every sample; `num_segments` levels = len(order); the
    model's `latent.selection` is tag_order.
    linear | cosine | stepwise: every segment is drawn latent at random with the scheduled p (the
    model's `latent.selection` is random)."""

    kind: str = "tag_order"  # tag_order | linear | cosine | stepwise
    start_fraction: float = 0.0
    end_fraction: float = 0.8
    num_segments: int = 4  # levels: tag_order = len(model.latent.order); stepwise: steps of the staircase

    def __post_init__(self) -> None:
        _check(self.kind in LATENT_SCHEDULES, f"latent.kind={self.kind!r}: choose one of {LATENT_SCHEDULES}")
        _check(
            0.0 <= self.start_fraction <= self.end_fraction < 1.0,
            "latent: need 0 <= start_fraction <= end_fraction < 1 (the stretch after end_fraction is "
            "all-latent)",
        )
        _check(self.num_segments >= 1, "latent.num_segments must be >= 1")

    def check_model(self, model: LaraConfig) -> None:
        """The schedule and the model's way of turning p into latent segments must agree."""
        order = model.latent.order
        _check(
            self.kind != "tag_order" or self.num_segments == len(order),
            f"latent.kind tag_order has one level per tag: set latent.num_segments to "
            f"len(model.latent.order) = {len(order)} (got {self.num_segments})",
        )
        selection = "tag_order" if self.kind == "tag_order" else "random"
        how = (
            "turns the first tags of model.latent.order latent"
            if selection == "tag_order"
            else "draws each segment latent at random"
        )
        _check(
            model.latent.selection == selection,
            f"latent.kind {self.kind} {how}: set --model.latent.selection {selection} "
            f"(got {model.latent.selection})",
        )


@dataclass
class LossConfig:
    """Loss weights of the stage: the only place they are set (the trainer hands them to the policy
    every step, `loss_weights_at`; the model config has none). A term whose weight is > 0 must be
    reported by the policy and be nonzero (the trainer checks it on the first step: a configured
    loss is never silently off)."""

    cot_ce: float = 1.0
    action_ce: float = 1.0
    visual_l1: float = 0.1
    flow: float = 1.0
    visual_l1_warmup_steps: int = 0
    # stage II: the visual L1 weight while at most the first latent level is latent (the reference:
    # 0.1 with SUBTASK latent, then visual_l1 = 0.2); null: visual_l1 throughout the stage
    visual_l1_first_level: float | None = None

    def __post_init__(self) -> None:
        for name in ("cot_ce", "action_ce", "visual_l1", "flow"):
            _check(getattr(self, name) >= 0, f"loss.{name} must be >= 0")
        _check(
            self.visual_l1_first_level is None or self.visual_l1_first_level >= 0,
            "loss.visual_l1_first_level must be >= 0 (or null)",
        )


@dataclass
class LoraSettings:
    """Optional LoRA adapters on the backbone (peft); the rest of the backbone is frozen, except
    the token embeddings and LM head when `train_embeddings` (LaRA's added tokens must learn)."""

    enabled: bool = False
    module: str = (
        "backbone"  # attribute of the policy holding the backbone (LaraPolicy.backbone is its Qwen3-VL)
    )
    train_embeddings: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        _check(self.r >= 1 and self.alpha >= 1, "lora: r and alpha must be >= 1")


@dataclass
class MixtureEntry:
    """One dataset of a mixture (`data.mixture`): its folder, sampling weight and own CoT run."""

    root: str = ""
    weight: float = 1.0  # an epoch holds round(weight x its samples) of it: 1 = every frame once
    annotation: str | None = None  # its CoT run name or "latest"; null: data.annotation
    mapping: str | None = None  # its key mapping; null: data.mapping

    def __post_init__(self) -> None:
        _check(bool(self.root), "data.mixture: every entry needs a root (a LeRobot dataset folder)")
        _check(self.weight > 0, f"data.mixture: weight of {self.root} must be > 0, got {self.weight}")


@dataclass
class DataConfig:
    """The training dataset. `type` picks a registered builder (curriculum.builders).

    Several datasets train one run (one model on all four LIBERO suites): `root` as a comma list
    (weight 1 each, data.annotation and data.mapping for all), or `mixture` entries with their own
    weight, annotation run and mapping; joint normalization statistics and one FAST tokenizer over
    all of them (curriculum.mixture, docs/method.md)."""

    type: str = "lerobot"
    root: str = ""  # dataset folder (LeRobot v3 layout); several: comma-separated
    mixture: list[MixtureEntry] = field(default_factory=list)  # several datasets with weights (or root)
    mapping: str = "auto"  # key mapping: a configs/data/ preset, a YAML path, or auto (the one that fits)
    annotation: str | None = "latest"  # CoT run name, "latest" (newest complete run); stages I-II need one
    allow_incomplete_annotation: bool = False  # train on an interrupted annotation run's episodes only
    foresight_offset: int = 1  # k: the foresight target is frame t + k
    image_size: int | None = None  # None: model.vision.image_size
    foresight_image_size: int | None = None  # None: model.foresight.image_size
    mask_unchanged_future: bool = False  # no visual loss where frame t+k equals frame t (the reference)
    norm_mode: str = "quantile"  # quantile (q01/q99) | min_max (the reference's LIBERO setting) | mean_std
    num_workers: int = 0
    split: str = (
        "train"  # train: the recorded split's train episodes (data_pipeline.splits); all: every frame
    )
    fast_fit_chunks: int = 20000  # action chunks the FAST tokenizer is fit on before stage I

    def __post_init__(self) -> None:
        _check(self.foresight_offset >= 0, "data.foresight_offset must be >= 0")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")
        _check(self.split in ("train", "all"), f"data.split={self.split!r}: choose train or all")
        _check(self.norm_mode in NORM_MODES, f"data.norm_mode={self.norm_mode!r}: choose one of {NORM_MODES}")
        _check(
            not (self.mixture and self.root),
            "data.root and data.mixture both name the datasets: give one (root may be a comma list)",
        )
        roots = [e.root for e in self.datasets()]
        _check(len(set(roots)) == len(roots), f"data: a dataset is named twice ({roots}); name each once")

    def datasets(self) -> list[MixtureEntry]:
        """The datasets of the run, annotation and mapping resolved (one entry for a plain root)."""
        if self.mixture:
            return [
                MixtureEntry(
                    e.root,
                    e.weight,
                    self.annotation if e.annotation is None else e.annotation,
                    self.mapping if e.mapping is None else e.mapping,
                )
                for e in self.mixture
            ]
        return [MixtureEntry(r, 1.0, self.annotation, self.mapping) for r in self.root.split(",") if r]


@dataclass
class TrainConfig:
    """One curriculum stage. `batch_size` is per process and per micro-batch: one optimizer
    step sees batch_size * grad_accum_steps * num_processes samples.

    `model` is the LaRA model's config. A fresh model (stage I, or `from_scratch`) is built from it;
    stages II-III continue `init_from`'s model, whose saved config wins except for the switches the
    stage trains with (backbone.gradient_checkpointing, latent.selection, latent.order; and
    latent.include_plan must agree). The dataset follows model.* (chunk size, cameras, image sizes,
    a PLAN segment first in the CoT when latent.include_plan). `policy_type` / `data.type` pick
    registered builders (curriculum.builders)."""

    stage: int = 1
    output_dir: str = "outputs/train/stage1"
    init_from: str | None = None  # previous stage's final checkpoint (required for stages 2, 3)
    from_scratch: bool = False  # stages 2-3 from random init, no init_from (the no-reasoning baseline)
    resume: bool = False  # continue from the newest checkpoint in output_dir
    seed: int = 7
    steps: int = 100  # optimizer steps
    batch_size: int = 8
    grad_accum_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    ema_every: int = 1  # update the EMA foresight target after every k-th optimizer step (reference: 2)
    save_every: int = 50
    keep_last: int = 2  # periodic checkpoints kept (the final one is always kept)
    # also save a checkpoint after these optimizer steps and never prune it (a mid-stage-II policy:
    # benchmarks/ablations keeps the step where half of the tags are latent); weights do not change
    keep_steps: list[int] = field(default_factory=list)
    save_state: bool = (
        True  # false: checkpoints hold the model only (no optimizer/RNG: no resume); benchmarks
    )
    log_every: int = 10
    progress: bool = True
    ddp_find_unused_parameters: bool = True  # stage III leaves the token heads unused
    policy_type: str = "lara"  # registered policy builder (curriculum.builders)
    optim: OptimConfig = field(default_factory=OptimConfig)
    latent: LatentScheduleConfig = field(default_factory=LatentScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    model: LaraConfig = field(default_factory=LaraConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        _check(self.stage in (1, 2, 3), f"stage={self.stage}: must be 1, 2 or 3")
        _check(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be >= 1")
        _check(self.grad_accum_steps >= 1, "grad_accum_steps must be >= 1")
        _check(self.save_every >= 1 and self.log_every >= 1, "save_every and log_every must be >= 1")
        _check(self.keep_last >= 1, "keep_last must be >= 1")
        _check(
            all(0 < k < self.steps for k in self.keep_steps),
            f"keep_steps {self.keep_steps}: each must be in 1..{self.steps - 1} (steps - 1; the last "
            "step is final/)",
        )
        _check(self.ema_every >= 1, "ema_every must be >= 1")
        if self.mixed_precision in (False, "False"):  # `--mixed_precision no`: YAML reads a bare no as false
            self.mixed_precision = "no"
        _check(self.mixed_precision in MIXED_PRECISION, f"mixed_precision: choose one of {MIXED_PRECISION}")
        _check(
            self.stage == 1 or bool(self.init_from) or self.from_scratch,
            f"stage {self.stage} starts from the previous stage's checkpoint: set --init_from "
            f"<stage {self.stage - 1} output_dir>/final (or run `lara train --curriculum <size>`), or pass "
            "--from_scratch true to train it from random init",
        )
        _check(
            not (self.from_scratch and self.init_from),
            f"from_scratch and init_from ({self.init_from}) exclude each other: drop one",
        )
        self.latent.check_model(self.model)
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
            return {
                "cot_ce": self.loss.cot_ce,
                "action_ce": self.loss.action_ce,
                "visual_l1": self.loss.visual_l1,
            }
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
_OPERATIONAL = {
    "resume",
    "output_dir",
    "save_every",
    "keep_last",
    "keep_steps",
    "save_state",
    "log_every",
    "progress",
    "data.num_workers",
}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


DATA_EPISODES = "data.episodes"  # identity key: {dataset folder: the episodes training reads from it}


def training_identity(cfg: TrainConfig) -> dict:
    """The flattened config minus operational fields (see `_OPERATIONAL`), plus the episodes the run
    reads from each LeRobot dataset (`DATA_EPISODES`, data_pipeline.splits.episodes_read_by_training):
    the same config over other episodes (a split recorded after a checkpoint) is another run."""
    import os

    flat = flatten(yaml.safe_load(cfg.to_yaml()))
    unused = "lora." if not cfg.lora.enabled else None  # LoRA settings matter only when on
    identity = {
        k: v
        for k, v in flat.items()
        if k not in _OPERATIONAL and not (unused and k.startswith(unused) and k != "lora.enabled")
    }
    roots = [e.root for e in cfg.data.datasets()] if hasattr(cfg.data, "datasets") else [cfg.data.root]
    roots = [r for root in roots for r in str(root).split(",") if r]
    if cfg.data.type == "lerobot" and roots and all(os.path.isdir(r) for r in roots):
        from data_pipeline.splits import episodes_read_by_training  # data below curriculum: lazy, on use

        try:
            identity[DATA_EPISODES] = {r: episodes_read_by_training(r, cfg.data.split) for r in roots}
        except LaraUserError:
            raise
        except Exception:  # an unreadable dataset: the dataset builder names the problem in one line
            pass
    return identity


def config_diff(a: dict, b: dict) -> list[str]:
    """Human-readable differences between two `training_identity` dicts."""
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
