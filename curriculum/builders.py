"""Where the trainer gets its policy and dataset: small registries keyed by `policy_type` and
`data.type`.

The trainer depends only on the contracts below, not on `lara.modeling_lara` or
`data_pipeline` directly; the defaults ("lara", "lerobot") import them lazily. Tests register a
toy policy and a synthetic dataset under other names.

Policy contract (what `curriculum.trainer` calls):
    forward(batch, stage=int) -> (loss: Tensor, metrics: dict[str, float])   metrics: "loss/<term>"
    parameter_groups(backbone_lr, head_lr) -> list[dict]                       AdamW param groups
    set_latent_probability(p: float)                                           stage II schedule
    set_loss_weights(weights: dict[str, float])                                every step: the stage's `loss`
    ema_update()                                                               after each optimizer step
    save_pretrained(dir)                                                       safetensors + JSON, EMA encoder
                                                                               included
Optional (the trainer uses it when present; a policy without it keeps its micro-batch means):
    prepare_batch(batch, stage) -> (batch, loss_items: dict[str, int])       sequences built, random
        draws made, loss items counted per term; forward then also gets loss_norm={term: float},
        the step's average item count per micro-batch (curriculum.batches.step_loss_norm), and
        divides each term's item sum by it: accumulation and DDP then give the update of one big
        batch.
Loss weights (keys cot_ce, action_ce, visual_l1, flow) are the stage's `loss` config at the step
(curriculum.trainer.loss_weights_at); the policy reports each term as `loss/<term>`.
A policy builder: (cfg, dataset, init_from: Path | None) -> policy; it also applies
`model.backbone.gradient_checkpointing`. `init_from` is a `save_pretrained` folder (previous
stage, or the checkpoint being resumed); None means a fresh model (stage I, or `from_scratch`),
for which the builder also fits what needs the data (the FAST action tokenizer).

A dataset builder: (cfg) -> (torch Dataset of interface sample dicts, collate_fn). It raises
`LaraUserError` when the dataset lacks what the stage needs (the CoT annotation for stages I-II).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
PolicyBuilder = Callable[[Any, Any, "Path | None"], Any]
DatasetBuilder = Callable[[Any], tuple[Any, Callable]]

POLICY_BUILDERS: dict[str, PolicyBuilder] = {}
DATASET_BUILDERS: dict[str, DatasetBuilder] = {}

REQUIRED_POLICY_METHODS = (
    "forward",
    "parameter_groups",
    "set_latent_probability",
    "set_loss_weights",
    "ema_update",
    "save_pretrained",
)


def normalize_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Policy metrics under the trainer's names: namespaced names (`loss/flow`, `latent/fraction`)
    as they are, bare names as `metrics/<name>`. The policy's own total (`loss`, `loss/total`) is
    dropped: the trainer logs `loss/total` itself."""
    return {
        key if "/" in key else f"metrics/{key}": float(value)
        for key, value in metrics.items()
        if key not in ("loss", "loss/total")
    }


def register_policy(name: str, builder: PolicyBuilder) -> None:
    POLICY_BUILDERS[name] = builder


def register_dataset(name: str, builder: DatasetBuilder) -> None:
    DATASET_BUILDERS[name] = builder


def _lookup(registry: dict, name: str, what: str):
    if name not in registry:
        raise LaraUserError(f"unknown {what} {name!r}; registered: {sorted(registry)}")
    return registry[name]


def build_dataset(cfg) -> tuple[Any, Callable]:
    """The run's dataset; several LeRobot datasets (`data.root A,B` or `data.mixture`) are one
    mixture with joint statistics (curriculum.mixture)."""
    if cfg.data.mixture or len(cfg.data.datasets()) > 1:
        if cfg.data.type != "lerobot":
            raise LaraUserError(
                f"data.type {cfg.data.type!r} reads one dataset; several datasets need data.type lerobot"
            )
        from curriculum.mixture import build_mixture_dataset

        return build_mixture_dataset(cfg)
    return _lookup(DATASET_BUILDERS, cfg.data.type, "data.type")(cfg)


def build_policy(cfg, dataset, init_from: Path | None):
    policy = _lookup(POLICY_BUILDERS, cfg.policy_type, "policy_type")(cfg, dataset, init_from)
    missing = [m for m in REQUIRED_POLICY_METHODS if not callable(getattr(policy, m, None))]
    if missing:
        raise TypeError(f"policy {type(policy).__name__} lacks the trainer contract methods {missing}")
    return policy


def resolve_init_from(path: str | Path, stage: int) -> Path:
    """Accept a run folder, its `final/`, or a `save_pretrained` folder; return the latter. A
    checkpoint that does not come from the previous stage (stage II skipped) gets a note."""
    from lara.checkpoint import resolve_checkpoint_dir, run_stage  # torch: not at import (CLI start-up)

    try:
        directory = resolve_checkpoint_dir(path)
    except LaraUserError:
        raise LaraUserError(
            f"stage {stage} needs the stage {stage - 1} checkpoint, and {path} holds none (no "
            "final/model/config.json); "
            f"train stage {stage - 1} first (`lara train --preset <size> --stage {stage - 1}`), or run "
            "`lara train --curriculum <size>`"
        ) from None
    trained = run_stage(directory)  # the stage that trained it (its trainer_state.json), any policy type
    if trained is not None and trained != stage - 1:
        log.warning(
            "note: stage %d starts from %s, which stage %d trained, not stage %d%s",
            stage,
            directory,
            trained,
            stage - 1,
            " (stage II skipped: the latent CoT never trained; the curriculum runs I -> II -> III)"
            if trained < stage - 1
            else "",
        )
    return directory


# -- the defaults: the real model and dataset, imported only when used ---------------------------
def _lara_policy(cfg, dataset, init_from):
    from curriculum.lara_adapter import build_lara_policy

    return build_lara_policy(cfg, dataset, init_from)


def _lerobot_dataset(cfg):
    from curriculum.lara_adapter import build_lerobot_dataset

    return build_lerobot_dataset(cfg)


def _synthetic_dataset(cfg):
    from curriculum.synthetic import build_synthetic_dataset

    return build_synthetic_dataset(cfg)


register_policy("lara", _lara_policy)
register_dataset("lerobot", _lerobot_dataset)
register_dataset("synthetic", _synthetic_dataset)
