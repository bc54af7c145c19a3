"""The real policy and dataset behind policy_type "lara" and data.type "lerobot".

Builds the policy from the training config's `model` (a LaraConfig) or continues `init_from`'s,
maps the config onto `data_pipeline.samples.SampleConfig`, fits what a fresh model learns from
the data (normalization statistics, the FAST action tokenizer), and seeds an `observed` output
vocabulary with every CoT label id the dataset serves (every stage, every rank alike). The
scheduled loss weights reach the policy through its own `set_loss_weights` (curriculum.trainer).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from curriculum.config import config_diff, flatten
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


def resolve_annotation(cfg) -> str | None:
    """The CoT run to read: None in stage III (no CoT text), the newest complete run for "latest"."""
    if cfg.stage == 3:
        return None
    from data_pipeline.annotation.sidecar import list_annotations

    name = cfg.data.annotation
    if name is None:
        raise LaraUserError(
            f"stage {cfg.stage} trains the chain of thought but data.annotation is null; annotate the "
            f"dataset (`lara annotate --dataset {cfg.data.root} --backend sim --name v1`) and set "
            "--data.annotation v1"
        )
    if name != "latest":
        return name
    runs = [r for r in list_annotations(cfg.data.root) if r["complete"]]
    if not runs:
        raise LaraUserError(
            f"{cfg.data.root} has no complete CoT annotation run, which stage {cfg.stage} needs; run "
            f"`lara annotate --dataset {cfg.data.root} --backend sim --name v1` first"
        )
    return max(runs, key=lambda r: (Path(r["path"]) / "meta.json").stat().st_mtime)["name"]


def check_annotation_complete(cfg, name: str, episodes: list[int]) -> None:
    """Refuse an annotation run that lacks some of the episodes trained on (an interrupted run: the
    CoT vocabulary and the CoT loss would silently cover only the episodes it reached) unless
    data.allow_incomplete_annotation says so."""
    from data_pipeline.annotation.sidecar import annotation_dir, missing_episodes, read_meta

    missing = missing_episodes(cfg.data.root, name, episodes)
    if not missing:  # every episode trained on has its file (a run limited to them is fine)
        return
    meta = read_meta(annotation_dir(cfg.data.root, name)) or {}
    what = (
        f"{len(missing)} of {len(episodes)} episodes have no annotation "
        f"({missing[:10]}{' ...' if len(missing) > 10 else ''})"
    )
    if cfg.data.allow_incomplete_annotation:
        log.warning(
            "annotation run %r of %s is incomplete: %s; training anyway (data.allow_incomplete_annotation)",
            name,
            cfg.data.root,
            what,
        )
        return
    # the same run resumes only with the backend (and config) it was started with; its meta.json
    # records them (a run without one predates that field: the LIBERO pipeline's sim backend)
    backend = meta.get("backend") or "sim"
    raise LaraUserError(
        f"annotation run {name!r} of {cfg.data.root} is incomplete (interrupted): {what}; finish it with "
        f"`lara annotate --dataset {cfg.data.root} --backend {backend} --name {name}`, or pass "
        "--data.allow_incomplete_annotation true"
    )


def build_lerobot_dataset(cfg):
    from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples

    if not cfg.data.root:
        raise LaraUserError("no dataset: set --data.root <LeRobot dataset folder> (or a data overlay config)")
    mc = cfg.model
    annotation = resolve_annotation(cfg)
    sample_cfg = SampleConfig(
        mapping=cfg.data.mapping,
        chunk_size=mc.chunk_size,
        foresight_offset=cfg.data.foresight_offset,
        image_size=cfg.data.image_size or mc.vision.image_size,
        foresight_image_size=cfg.data.foresight_image_size or mc.foresight.image_size,
        mask_unchanged_future=cfg.data.mask_unchanged_future,
        norm_mode=cfg.data.norm_mode,
        annotation=annotation,
        include_plan=mc.latent.include_plan,  # the CoT starts with PLAN: so does the latent sequence
    )
    from data_pipeline.splits import training_episodes

    episodes = training_episodes(cfg.data.root) if cfg.data.split == "train" else None
    dataset = LaraSampleDataset(cfg.data.root, sample_cfg, episodes=episodes)
    if annotation is not None:
        check_annotation_complete(cfg, annotation, np.unique(dataset.episode_index).tolist())
    if annotation is not None and not dataset.cot:
        raise LaraUserError(
            f"annotation run {annotation!r} of {cfg.data.root} annotates no frame (all episodes skipped?); "
            "inspect its meta.json and re-run `lara annotate`"
        )
    return dataset, collate_samples


def action_chunks(dataset, max_chunks: int) -> np.ndarray:
    """Normalized action chunks (N, H, A) as the samples hold them, without decoding images."""
    n = len(dataset)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_chunks)).round().astype(int))  # evenly spread frames
    if hasattr(dataset, "action") and hasattr(dataset, "episode_end"):
        h = dataset.config.chunk_size
        start = dataset.rows[idx]  # (N,) item -> dataset row
        rows = np.minimum(start[:, None] + np.arange(h)[None], dataset.episode_end[start, None] - 1)  # (N, H)
        raw = torch.from_numpy(np.asarray(dataset.action)[rows])  # (N, H, A)
        return dataset.stats.normalize("action", raw).float().numpy()
    return np.stack([np.asarray(dataset[int(i)]["action"]) for i in idx])


def served_cots(dataset) -> list:
    """The CoT ([(tag, text)] or None) of every item the dataset serves, in item order: read from
    the annotation without decoding images for a LaraSampleDataset, item by item otherwise."""
    if hasattr(dataset, "cot") and hasattr(dataset, "rows"):
        if dataset.cot is None:  # no annotation (stage III)
            return []
        rows = dataset.rows  # (N',) item -> dataset row
        keys = zip(dataset.episode_index[rows].tolist(), dataset.frame_index[rows].tolist())
        return [dataset.cot.get((int(e), int(f))) for e, f in keys]
    return [dataset[i].get("cot") for i in range(len(dataset))]


def seed_output_vocab(policy, dataset) -> None:
    """Every rank builds the same id set from the whole dataset (not its shard), so the softmax
    columns agree across DDP ranks and rank 0's checkpoint holds all of them."""
    if policy.output_vocab.full:
        return
    policy.seed_output_vocab(served_cots(dataset))


def build_lara_policy(cfg, dataset, init_from: Path | None):
    if init_from is not None:
        policy = _continued_policy(cfg, dataset, init_from)
    else:
        policy = _fresh_policy(cfg, dataset)
    seed_output_vocab(policy, dataset)  # after loading: the checkpoint's ids are kept
    return policy.train()


def _fresh_policy(cfg, dataset):
    """Stage I (or `from_scratch`): random init from `model`, normalization and FAST fit on the data."""
    from lara.modeling_lara import LaraPolicy

    policy = LaraPolicy(copy.deepcopy(cfg.model))  # the policy's config may change; the run's must not
    stats = getattr(dataset, "stats", None)
    if stats is None:
        raise LaraUserError("the dataset has no normalization statistics (dataset.stats); stage I needs them")
    policy.set_normalization(stats)
    report = policy.train_fast_tokenizer(action_chunks(dataset, cfg.data.fast_fit_chunks))
    log.info("FAST tokenizer fit on the dataset's action chunks: %s", report)
    return policy


# The model switches a stage sets on the model it continues (the rest of its saved config wins).
STAGE_SWITCHES = ("backbone.gradient_checkpointing", "latent.selection", "latent.order")
# What the trainer writes into a saved config (curriculum.checkpointing.record_training): the stage
# that trained it differs from a run's model.* by design, not a setting to warn about.
TRAINER_RECORDED = ("inference.stage", "inference.latent_tags")


def _continued_policy(cfg, dataset, init_from: Path):
    """Stages II-III (and resumes): `init_from`'s model with this stage's switches applied."""
    from lara.modeling_lara import LaraPolicy

    policy = LaraPolicy.from_pretrained(init_from)
    chunk = getattr(getattr(dataset, "config", None), "chunk_size", policy.cfg.chunk_size)
    if policy.cfg.chunk_size != chunk:
        raise LaraUserError(
            f"{init_from} predicts chunks of {policy.cfg.chunk_size} actions, the dataset yields {chunk}; "
            "use the same model.chunk_size in every stage"
        )
    if cfg.stage == 2 and policy.cfg.latent.include_plan != cfg.model.latent.include_plan:  # reads the CoT
        raise LaraUserError(
            f"model.latent.include_plan is {cfg.model.latent.include_plan} but {init_from} was trained with "
            f"{policy.cfg.latent.include_plan}; use the same model.latent.include_plan in every stage"
        )
    # what the latent slots read is the model's architecture from stage I on (model.py decides by it):
    # a run that asks for other slot inputs than its checkpoint trained is refused, not warned about
    if policy.cfg.latent.slot_input != cfg.model.latent.slot_input:
        raise LaraUserError(
            f"model.latent.slot_input is {cfg.model.latent.slot_input} but {init_from} was trained with "
            f"{policy.cfg.latent.slot_input}; the latent slots' inputs are fixed at stage I: use the same "
            "model.latent.slot_input in every stage"
        )
    ignored = [
        d
        for d in config_diff(flatten(cfg.model.to_dict()), flatten(policy.cfg.to_dict()))
        if d.split(":")[0] not in STAGE_SWITCHES + TRAINER_RECORDED
    ]
    if ignored:
        log.warning("model.* differs from %s's saved config, which wins: %s", init_from, "; ".join(ignored))
    checkpointing = cfg.model.backbone.gradient_checkpointing
    if checkpointing:
        policy.vlm.gradient_checkpointing_enable()
    elif policy.cfg.backbone.gradient_checkpointing:  # the checkpoint had it on
        policy.vlm.gradient_checkpointing_disable()
    policy.cfg.backbone.gradient_checkpointing = checkpointing
    apply_latent_schedule(policy, cfg)
    return policy


def apply_latent_schedule(policy, cfg) -> None:
    """How the policy turns p into latent segments (`model.latent.selection`, `order`, checked against
    the stage's `latent.kind`) is the stage's: set on the continued policy's own config, so the
    checkpoint records what the stage trained with."""
    lat = policy.cfg.latent
    lat.selection = cfg.model.latent.selection
    lat.order = list(cfg.model.latent.order)
    lat.__post_init__()
