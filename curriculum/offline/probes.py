"""Checkpoint-vs-dataset checks and the model-side probes of offline evaluation.

Why separate from the action metrics (`curriculum/offline/evaluate.py`): these functions look inside a
`LaraPolicy` (its config, normalization statistics, sequence builder, foresight head), so they are
the part that follows the model's evolution; the action metrics only need `predict_action_chunk`.

- `check_compatible` turns every checkpoint/dataset mismatch into one `LaraUserError` naming what
  differs: action or state dimension, a camera the model reads that the dataset lacks, and
  normalization statistics that are missing or were computed on another dataset.
- `foresight_l1` is the visual-foresight L1 of the checkpoint on held-out frames (the same loss the
  curriculum trains, computed by `policy.forward(batch, stage=3)`), next to a copy-current-frame
  reference: the L1 between the target latents of frame t and frame t+k.
- `cot_token_accuracy` is teacher-forced next-token accuracy on the annotated CoT, per CoT tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from data_pipeline.key_mapping import KeyMapping
from lara.normalization import NormalizationStats
from lara.utils.errors import LaraUserError

STATS_TOLERANCE = 0.25  # |offset difference| <= tol * scale and scale ratio within [1/(1+4 tol), 1+4 tol]


def _affine(stats: NormalizationStats, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) of the normalization of `key`, as `NormalizationStats` applies it."""
    f = stats.features[key]
    if stats.mode == "quantile":
        lo, hi = np.asarray(f.q01), np.asarray(f.q99)
        offset, scale = (hi + lo) / 2.0, np.maximum((hi - lo) / 2.0, 1e-6)
    else:
        offset, scale = np.asarray(f.mean), np.maximum(np.asarray(f.std), 1e-6)
    for d in f.passthrough_dims:
        offset[d], scale[d] = 0.0, 1.0
    return offset, scale


def stats_differences(
    ckpt: NormalizationStats, data: NormalizationStats, tol: float = STATS_TOLERANCE
) -> list[str]:
    """Human-readable per-dimension differences between the checkpoint's and the dataset's statistics."""
    out: list[str] = []
    for key in ("action", "state"):
        if key not in ckpt.features or key not in data.features:
            continue
        o1, s1 = _affine(ckpt, key)
        o2, s2 = _affine(data, key)
        if o1.shape != o2.shape:
            out.append(f"{key}: checkpoint statistics have {o1.size} dims, the dataset {o2.size}")
            continue
        ratio = s1 / s2
        bad = (np.abs(o1 - o2) > tol * s2) | (ratio > 1 + 4 * tol) | (ratio < 1 / (1 + 4 * tol))
        for d in np.flatnonzero(bad):
            out.append(
                f"{key}[{d}]: checkpoint normalizes with center {o1[d]:.4g} / half-range {s1[d]:.4g}, "
                f"the dataset has {o2[d]:.4g} / {s2[d]:.4g}"
            )
    return out


@dataclass
class Compatibility:
    """What `check_compatible` found that is not an error (recorded in the report)."""

    warnings: list[str] = field(default_factory=list)
    stats_match: bool = True


def check_compatible(
    policy,
    mapping: KeyMapping,
    dataset_features: dict,
    dataset_stats: NormalizationStats,
    checkpoint: str,
    root: str,
    allow_stats_mismatch: bool = False,
) -> Compatibility:
    """Raise `LaraUserError` naming the first thing that differs between checkpoint and dataset."""
    cfg = policy.cfg
    have_action = (
        int(np.prod(dataset_features[mapping.action]["shape"]))
        if mapping.action in dataset_features
        else None
    )
    if have_action != cfg.action_dim:
        raise LaraUserError(
            f"{root}: the dataset's action ({mapping.action!r}) has {have_action} dims, checkpoint "
            f"{checkpoint} was trained for {cfg.action_dim}; evaluate a checkpoint trained on this "
            "dataset (or fix the key mapping's action key)"
        )
    have_state = (
        int(np.prod(dataset_features[mapping.state]["shape"])) if mapping.state in dataset_features else None
    )
    if cfg.expert.use_state and have_state != cfg.state_dim:
        raise LaraUserError(
            f"{root}: the dataset's state ({mapping.state!r}) has {have_state} dims, checkpoint "
            f"{checkpoint} reads {cfg.state_dim}; use a matching mapping (e.g. bridge_state7)"
        )
    unmapped = [c for c in cfg.vision.cameras if c not in mapping.cameras]
    if unmapped:
        raise LaraUserError(
            f"checkpoint {checkpoint} reads cameras {cfg.vision.cameras}, the key mapping "
            f"{mapping.name!r} maps only {sorted(mapping.cameras)} (missing {unmapped}); "
            "pass --mapping/--cameras that provide them"
        )
    missing = [mapping.cameras[c] for c in cfg.vision.cameras if mapping.cameras[c] not in dataset_features]
    if missing:
        have = sorted(k for k in dataset_features if k.startswith("observation.images."))
        raise LaraUserError(
            f"{root}: camera key(s) {missing} missing (checkpoint {checkpoint} reads cameras "
            f"{cfg.vision.cameras}); the dataset has {have}"
        )
    if policy.stats is None or "action" not in policy.stats.features:
        raise LaraUserError(
            f"checkpoint {checkpoint} has no action normalization statistics (normalization.json): "
            "it was saved without the dataset's statistics, so its outputs cannot be un-normalized; "
            "re-save it after policy.set_normalization(load_or_compute_stats(dataset))"
        )
    result = Compatibility()
    diffs = stats_differences(policy.stats, dataset_stats)
    if policy.stats.mode != dataset_stats.mode:
        diffs.insert(0, f"mode: checkpoint {policy.stats.mode!r}, dataset {dataset_stats.mode!r}")
    if diffs:
        result.stats_match = False
        head = (
            f"checkpoint {checkpoint} was trained with normalization statistics that differ from {root}'s "
            f"({len(diffs)} dims; first: {diffs[0]})"
        )
        if not allow_stats_mismatch:
            raise LaraUserError(
                head + "; it was trained on another dataset. Pass --allow-stats-mismatch to evaluate anyway"
            )
        result.warnings.append(head)
    return result


def _metric(metrics: dict, *names: str) -> float | None:
    for n in names:
        if n in metrics:
            return float(metrics[n])
    return None


@torch.no_grad()
def foresight_l1(policy, batch: dict) -> dict[str, float | None]:
    """Visual-foresight L1 on a collated sample batch, and the copy-current-frame reference.

    The loss comes from `policy.forward(batch, stage=3)` (the curriculum's own loss code) with the
    visual weight forced on; the reference is L1(target(frame t), target(frame t+k)), the error of
    a predictor that assumes nothing moves. None for a model without foresight (num_slots 0).
    """
    cfg = policy.cfg
    if cfg.foresight.num_slots == 0:
        return {"foresight_l1": None, "copy_current_frame_l1": None}
    if callable(getattr(policy, "set_loss_weights", None)):
        policy.set_loss_weights({"visual_l1": 1.0})  # a copy loaded for evaluation: the term is computed
    _, metrics = policy.forward(batch, stage=3)
    value = _metric(metrics, "loss/visual_l1", "visual_l1")
    cam = cfg.foresight.camera
    now = torch.as_tensor(batch[f"image.{cam}"]).float().to(policy.device)
    nxt = torch.as_tensor(batch[f"next_image.{cam}"]).float().to(policy.device)
    online = policy.vlm.model.visual
    ref = (policy.foresight.targets(now, online) - policy.foresight.targets(nxt, online)).abs().mean()
    return {"foresight_l1": value, "copy_current_frame_l1": float(ref)}


@torch.no_grad()
def cot_token_accuracy(policy, batch: dict) -> dict[str, dict[str, float]]:
    """Teacher-forced next-token accuracy of the explicit CoT, per tag: {tag: {correct, total}}.

    Every segment is explicit (stage-I layout); the closing `<img_next>` (where the model must stop
    writing) is counted under "END". Predictions are the argmax over the checkpoint's output vocabulary.
    """
    from lara.sequence import LOSS_COT

    tok, builder = policy.tokenizer, policy.builder
    cots = batch["cot"]
    rows = [i for i, c in enumerate(cots) if c]
    if not rows:
        return {}
    seqs, tags_per_row = [], []
    for i in rows:
        cot = [(str(tag), str(text)) for tag, text in cots[i]]
        seqs.append(builder.build(batch["instruction"][i], cot, [False] * len(cot), None))
        tags: list[str] = []
        for tag, text in cot:  # the builder encodes each explicit segment on its own: same token counts
            tags += [tag] * len(tok.encode(f"{tag}: {text.strip()}\n"))
        tags_per_row.append(tags + ["END"])
    t = {k: v.to(policy.device) for k, v in builder.collate(seqs, "right").items()}
    sub = {
        k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in batch.items() if k.startswith("image.")
    }
    images = policy.camera_images(sub, policy.cfg.vision.cameras).to(policy.device)
    hidden = policy.hidden_states(t, images)  # (B, L, D)
    labels = t["labels"][:, 1:]  # (B, L-1): the token at i + 1 is predicted from position i
    cols = policy.output_vocab.global_ids(policy.device)  # (V_out,)
    out: dict[str, dict[str, float]] = {}
    for b, tags in enumerate(tags_per_row):
        sel = (t["loss_part"][b, 1:] == LOSS_COT).nonzero().flatten()  # (n,)
        if sel.numel() != len(tags):
            raise RuntimeError(f"CoT token count {sel.numel()} != {len(tags)}: the sequence layout changed")
        logits = policy.output_vocab.logits(hidden[b, sel], policy.vlm.lm_head)  # (n, V_out)
        correct = (cols[logits.argmax(-1)] == labels[b, sel]).cpu().numpy()  # (n,)
        for tag, ok in zip(tags, correct):
            acc = out.setdefault(tag, {"correct": 0.0, "total": 0.0})
            acc["correct"] += float(ok)
            acc["total"] += 1.0
    return out
