"""The real policy and dataset behind model.type "lara" and data.type "lerobot".

Maps the trainer's config onto `lara.configuration_lara.LaraConfig` and
`data_pipeline.samples.SampleConfig`, fits what a fresh stage-I model learns from the data
(normalization statistics, the FAST action tokenizer), and seeds an `observed` output
vocabulary with every CoT label id the dataset serves (every stage, every rank alike). The
scheduled loss weights reach the policy through its own `set_loss_weights`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


def lara_model_config(cfg):
    """LaraConfig from the model preset + `model.overrides` + the trainer's explicit fields."""
    import draccus

    from lara.configuration_lara import LaraConfig, preset_path

    m = cfg.model
    path = Path(m.preset) if Path(m.preset).suffix else preset_path(m.preset)
    args = list(m.overrides)
    explicit = {
        "backbone.pretrained_path": m.pretrained_path,
        "backbone.gradient_checkpointing": m.gradient_checkpointing,
        "chunk_size": m.chunk_size,
        "foresight.num_slots": m.num_visual_slots,
        "foresight.use_ema_target": m.use_ema_target,
        "foresight.ema_momentum": m.ema_momentum,
        "latent.slots_per_segment": m.latent_slots_per_segment,
        "latent.slot_input": m.slot_mode,
        "latent.include_plan": cfg.data.include_plan,  # the CoT starts with PLAN: so does the latent sequence
    }
    args += [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in explicit.items() if v is not None]
    try:
        return draccus.parse(config_class=LaraConfig, config_path=str(path), args=args, exit_on_error=False)
    except (draccus.utils.DraccusException, ValueError) as err:
        raise LaraUserError(f"model config ({path} with {args}): {err}; fix model.* in the training config") from err


def resolve_annotation(cfg) -> str | None:
    """The CoT run to read: None in stage III (no CoT text), the newest complete run for "latest"."""
    if cfg.stage == 3:
        return None
    from data_pipeline.annotation.sidecar import list_annotations

    name = cfg.data.annotation
    if name is None:
        raise LaraUserError(
            f"stage {cfg.stage} trains the chain of thought but data.annotation is null; annotate the dataset "
            f"(`lara annotate {cfg.data.root} --name v1`) and set --data.annotation v1"
        )
    if name != "latest":
        return name
    runs = [r for r in list_annotations(cfg.data.root) if r["complete"]]
    if not runs:
        raise LaraUserError(
            f"{cfg.data.root} has no complete CoT annotation run, which stage {cfg.stage} needs; run "
            f"`lara annotate {cfg.data.root} --name v1` first"
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
    what = f"{len(missing)} of {len(episodes)} episodes have no annotation ({missing[:10]}{' ...' if len(missing) > 10 else ''})"
    if cfg.data.allow_incomplete_annotation:
        log.warning("annotation run %r of %s is incomplete: %s; training anyway "
                    "(data.allow_incomplete_annotation)", name, cfg.data.root, what)
        return
    backend = f" --backend {meta['backend']}" if meta.get("backend") else ""
    raise LaraUserError(
        f"annotation run {name!r} of {cfg.data.root} is incomplete (interrupted): {what}; finish it with "
        f"`lara annotate {cfg.data.root} --name {name}{backend}`, or pass --data.allow_incomplete_annotation true"
    )


def build_lerobot_dataset(cfg):
    from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples

    if not cfg.data.root:
        raise LaraUserError("no dataset: set --data.root <LeRobot dataset folder> (or a data overlay config)")
    mc = lara_model_config(cfg)
    annotation = resolve_annotation(cfg)
    sample_cfg = SampleConfig(
        mapping=cfg.data.mapping,
        chunk_size=mc.chunk_size,
        foresight_offset=cfg.data.foresight_offset,
        image_size=cfg.data.image_size or mc.vision.image_size,
        foresight_image_size=cfg.data.foresight_image_size or mc.foresight.image_size,
        norm_mode=cfg.data.norm_mode,
        annotation=annotation,
        include_plan=cfg.data.include_plan,
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
    policy = _build_lara_policy(cfg, dataset, init_from)
    apply_latent_schedule(policy, cfg)
    check_plan(policy, cfg)
    seed_output_vocab(policy, dataset)  # after loading: the checkpoint's ids are kept
    return policy


def apply_latent_schedule(policy, cfg) -> None:
    """The stage's `latent.kind` / `latent.order` decide how the policy turns p into latent segments
    (tag_order: the first tags of the order; the other kinds: random draws). Set on the policy's
    own config, so the checkpoint records what the stage trained with."""
    lat = policy.cfg.latent
    lat.selection = "tag_order" if cfg.latent.kind == "tag_order" else "random"
    lat.order = list(cfg.latent.order)
    lat.__post_init__()


def check_plan(policy, cfg) -> None:
    """Stage II reads the CoT again: with or without PLAN, as the stage-I model was built."""
    if cfg.stage == 2 and policy.cfg.latent.include_plan != cfg.data.include_plan:
        raise LaraUserError(
            f"data.include_plan is {cfg.data.include_plan} but the stage-I model was trained with "
            f"include_plan {policy.cfg.latent.include_plan}; use the same data.include_plan in every stage"
        )


def _build_lara_policy(cfg, dataset, init_from: Path | None):
    from lara.modeling_lara import LaraPolicy

    if init_from is not None:
        policy = LaraPolicy.from_pretrained(init_from)
        chunk = getattr(getattr(dataset, "config", None), "chunk_size", policy.cfg.chunk_size)
        if policy.cfg.chunk_size != chunk:
            raise LaraUserError(
                f"{init_from} predicts chunks of {policy.cfg.chunk_size} actions, the dataset yields {chunk}; "
                "use the same model.chunk_size in every stage"
            )
        if cfg.model.gradient_checkpointing:
            policy.vlm.gradient_checkpointing_enable()
        elif policy.cfg.backbone.gradient_checkpointing:  # the checkpoint had it on
            policy.vlm.gradient_checkpointing_disable()
        policy.cfg.backbone.gradient_checkpointing = cfg.model.gradient_checkpointing
        return policy.train()
    policy = LaraPolicy(lara_model_config(cfg))
    stats = getattr(dataset, "stats", None)
    if stats is None:
        raise LaraUserError("the dataset has no normalization statistics (dataset.stats); stage I needs them")
    policy.set_normalization(stats)
    report = policy.train_fast_tokenizer(action_chunks(dataset, cfg.data.fast_fit_chunks))
    log.info("FAST tokenizer fit on the dataset's action chunks: %s", report)
    return policy.train()

