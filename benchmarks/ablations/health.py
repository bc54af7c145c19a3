"""Latent health of a checkpoint: do its latent slots still vary with the frame, and do its
`<img_next>` slots foresee the next frame better than "the next frame looks like this one"?

Reuses `lara probe`'s read-out (curriculum/offline/probe_features.py: the final hidden states of the
latent and `<img_next>` slots in the stage-III / latent-inference sequence, and the foresight
agreement per frame; probe_run.foresight: its episode-bootstrap summary) on frames of the run's
demos. What is new here is only the spread of those states across frames:
- `mean_std`: the per-dimension standard deviation across frames, averaged over dimensions (and over
  the slots): collapse (every frame the same thought) shows as a value near 0;
- `relative_std`: the same divided by the root mean square of the states (scale-free: a final
  norm layer fixes the scale, a collapsed slot still has a norm);
- `effective_rank`: exp of the entropy of the normalized singular values of the centered (frames x D)
  matrix (Roy & Vetterli 2007): 1 when every frame moves along one direction, up to min(frames, D).
Only the slots of the tags the checkpoint acts with as latent count (lara.inference_plan: none in
stage I, the latent tags mid stage II, all in stage III); a row without any has no latent spread.
The foresight target is the checkpoint's own: the EMA tower, or the online tower when it trained
without one (`foresight.use_ema_target: false`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def spread(x: np.ndarray) -> dict:
    """Spread across frames of states x (N, D)."""
    x = x.astype(np.float64)
    std = x.std(axis=0)  # (D,)
    rms = float(np.sqrt((x**2).mean())) or 1.0
    centered = x - x.mean(axis=0, keepdims=True)  # (N, D)
    sv = np.linalg.svd(centered, compute_uv=False)  # (min(N, D),)
    total = sv.sum()
    if total <= 0:
        rank = 0.0
    else:
        q = sv[sv > 0] / total
        rank = float(np.exp(-(q * np.log(q)).sum()))
    return {"mean_std": float(std.mean()), "relative_std": float(std.mean() / rms), "effective_rank": rank}


def latent_spread(latent: np.ndarray, layout: dict[str, slice], tags: list[str]) -> dict | None:
    """Per tag and averaged over the given tags' slots: the spread of latent states (N, S, D)."""
    if not tags:
        return None
    per_slot, per_tag = [], {}
    for tag in tags:
        cols = layout[tag]
        slots = [spread(latent[:, c]) for c in range(cols.start, cols.stop)]
        per_tag[tag] = {k: float(np.mean([s[k] for s in slots])) for k in slots[0]}
        per_slot += slots
    mean = {k: float(np.mean([s[k] for s in per_slot])) for k in per_slot[0]}
    return {**mean, "tags": list(tags), "per_tag": per_tag}


def health_frames(low: dict, episodes: int, stride: int) -> list[tuple[int, int]]:
    """(episode, frame) pairs: every `stride`-th frame of the first `episodes` episodes of each
    task (spread over the tasks so every task's scenes count)."""
    ep_col, fr_col = low["episode_index"].astype(int), low["frame_index"].astype(int)
    task_col = low["task_index"].astype(int) if "task_index" in low else np.zeros_like(ep_col)
    chosen: list[int] = []
    for task in sorted(set(task_col.tolist())):
        eps = sorted(set(ep_col[task_col == task].tolist()))
        chosen += eps[:episodes]
    keep = np.isin(ep_col, chosen) & (fr_col % stride == 0)
    return [(int(e), int(f)) for e, f in zip(ep_col[keep], fr_col[keep])]


def latent_health(
    checkpoint: Path,
    dataset: Path,
    annotation: str,
    episodes_per_task: int,
    stride: int,
    bootstrap: int = 200,
) -> dict:
    """Latent spread and foresight agreement of one checkpoint on frames of `dataset`."""
    import torch

    from curriculum.offline.evaluate import _probe_samples, resolve_mapping
    from curriculum.offline.probe_config import ProbeConfig
    from curriculum.offline.probe_features import Features, collect, slot_layout
    from curriculum.offline.probe_run import foresight
    from data_pipeline.stats import read_low_dim
    from lara.checkpoint import resolve_checkpoint_dir
    from lara.inference_plan import describe, token_latent_tags
    from lara.modeling_lara import LaraPolicy

    torch.manual_seed(0)
    cfg = ProbeConfig(
        policy=str(checkpoint), dataset=str(dataset), annotation=annotation, split="all", bootstrap=bootstrap
    )
    policy = LaraPolicy.from_pretrained(resolve_checkpoint_dir(checkpoint)).eval()
    mapping = resolve_mapping(cfg, list(policy.cfg.vision.cameras))
    low = read_low_dim(dataset, mapping)
    frames = health_frames(low, episodes_per_task, stride)
    samples = _probe_samples(dataset, mapping, policy, annotation)
    feats, pads = Features(), []
    for b0 in range(0, len(frames), cfg.batch_size):
        batch = samples(frames[b0 : b0 + cfg.batch_size])
        pads.append(np.asarray(batch["next_image_is_pad"], bool))
        collect(policy, batch, feats, foresight=True)
    stacked = feats.stacked()
    episodes = np.array([e for e, _ in frames])  # (N,)
    frames_idx = np.array([f for _, f in frames])  # (N,)
    ep_col = low["episode_index"].astype(int)
    lengths = np.array([int((ep_col == e).sum()) for e in episodes])  # (N,)
    acting = token_latent_tags(policy.cfg)  # the tags this checkpoint acts with as latent
    img_next = stacked["img_next"]  # (N, D) mean over the slots, or (N, 0) without them
    return {
        "checkpoint": str(checkpoint),
        "inference": describe(policy.cfg),
        "use_ema_target": policy.cfg.foresight.use_ema_target,
        "frames": len(frames),
        "episodes": sorted(set(episodes.tolist())),
        "stride": stride,
        "latent": latent_spread(stacked["latent"], slot_layout(policy.cfg), acting),
        "img_next": spread(img_next) if img_next.shape[1] else None,
        "foresight": foresight(cfg, stacked, np.concatenate(pads), episodes, frames_idx, lengths),
    }
