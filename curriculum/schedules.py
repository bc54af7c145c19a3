"""Schedules of the curriculum: pure functions of the global optimizer step.

Every quantity that changes during training (learning-rate multiplier, probability that a CoT
segment is latent, loss weights) is computed here from the step alone, never from mutable
trainer state. That is what makes resume exact (the step is all a checkpoint needs to restore
them) and what makes them unit-testable without a model.
"""

from __future__ import annotations

import math

LATENT_SCHEDULES = ("tag_order", "linear", "cosine", "stepwise")


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_lr_ratio` at `total_steps`.

    The multiplier for optimizer step `step` (0-based): warmup reaches 1 at `warmup_steps - 1`
    (so the first update is not wasted at lr 0), cosine reaches `min_lr_ratio` at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ramp_progress(step: int, *, total_steps: int, start_fraction: float, end_fraction: float) -> float:
    """Where `step` is inside the ramp [start_fraction, end_fraction] of the stage, in [0, 1]."""
    start = start_fraction * total_steps
    end = end_fraction * total_steps
    if end <= start:
        return 1.0 if step >= start else 0.0
    return min(1.0, max(0.0, (step - start) / (end - start)))


def latent_probability(
    step: int,
    *,
    total_steps: int,
    kind: str,
    start_fraction: float,
    end_fraction: float,
    num_segments: int,
) -> float:
    """Probability that a CoT segment is replaced by latent slots at `step` (stage II).

    0 before the ramp, rising monotonically to exactly 1 at `end_fraction * total_steps`, and 1
    for the rest of the stage (the final all-latent stretch, which is what stage III starts
    from). Shapes:
      tag_order: p = (1 + floor(x * (n - 1))) / n, n = tags: the fraction of the tag order that is
                 latent (the policy turns the first round(p * n) tags of its order latent, every
                 sample alike): SUBTASK from the ramp's first step, one more tag per level, all
                 n after the ramp, as the reference's stage runs do
      linear:   p = x                               (each segment drawn latent with probability p)
      cosine:   p = (1 - cos(pi x)) / 2              (slow start, slow finish)
      stepwise: p = floor(x * n) / n, n = segments  (random draws, p one level higher per step)
    """
    if kind not in LATENT_SCHEDULES:
        raise ValueError(f"unknown latent schedule {kind!r}; choose one of {LATENT_SCHEDULES}")
    x = ramp_progress(step, total_steps=total_steps, start_fraction=start_fraction, end_fraction=end_fraction)
    if x >= 1.0:
        return 1.0
    if kind == "tag_order":
        if step < start_fraction * total_steps:
            return 0.0
        return (1 + math.floor(x * (num_segments - 1))) / num_segments
    if kind == "linear":
        return x
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * x))
    return math.floor(x * num_segments) / num_segments


def stage_latent_probability(stage: int, step: int, **schedule) -> float:
    """Latent probability for any stage: 0 in stage I (all explicit), the schedule in stage II,
    1 in stage III (CoT text is dropped, only latent slots remain)."""
    if stage == 1:
        return 0.0
    if stage == 3:
        return 1.0
    return latent_probability(step, **schedule)


def loss_weight(step: int, *, weight: float, warmup_steps: int) -> float:
    """A loss weight that ramps linearly from 0 to `weight` over `warmup_steps` (0: constant).

    Used for the visual-foresight L1, whose target (the EMA encoder) is meaningless for the
    first few updates. Never 0 after the first step when `weight > 0`, so the loss stays visible.
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return weight
    return weight * (step + 1) / warmup_steps


def stage_visual_l1(
    stage: int, latent_probability: float, *, weight: float, first_level_weight: float | None, num_levels: int
) -> float:
    """The visual-foresight L1 weight of a stage-II step from how latent the CoT is: while at most
    the first level is latent (p <= 1 / num_levels; in tag order, SUBTASK alone) `first_level_weight`,
    afterwards `weight`. The reference trains its first latent level at 0.1 and the later ones at
    0.2 (scripts/run_libero_multistage.sh). Other stages, or `first_level_weight` None: `weight`."""
    if stage != 2 or first_level_weight is None:
        return weight
    return first_level_weight if latent_probability <= 1.0 / num_levels else weight


def ema_update_due(optimizer_steps: int, every: int) -> bool:
    """Whether the EMA target updates after the `optimizer_steps`-th optimizer step (1-based):
    after every `every`-th one. The reference updates it every 2 steps (training/train.py), so
    its target moves at half the speed that tau alone says."""
    return optimizer_steps % every == 0
