"""Training-loss normalization: token CE (and masked flow) terms over a whole optimizer step.

A micro-batch's term is a sum over its loss items (CoT tokens, action tokens, unpadded action
steps) divided by a denominator. Without one it is the micro-batch mean (sum / its own count).
Under gradient accumulation and DDP a mean of micro-batch means is not the step's mean when
the counts differ, so the trainer passes `loss_norm[term]` = the step's average count per
micro-batch (all micro-batches of all ranks; see `curriculum.batches.step_loss_norm` for the
algebra), and sum / loss_norm gives exactly the update of one big batch. With equal counts
both are the same number.

Terms normalized this way: `NORMALIZED_TERMS`. The visual L1 is one per-sample mean (over N_v x D)
per sample with a real future frame (`next_image_is_pad` False; the last frames of an episode
have none), so its item count varies like the others'.
"""

from __future__ import annotations

import torch

from lara.sequence import LOSS_ACTION, LOSS_COT

TOKEN_TERMS = {"cot_ce": LOSS_COT, "action_ce": LOSS_ACTION}  # term -> loss_part id (stages 1-2)
NORMALIZED_TERMS = (*TOKEN_TERMS, "flow", "visual_l1")


def visual_items(batch: dict) -> torch.Tensor:
    """(B,) bool: which samples have a real future frame (all of them without `next_image_is_pad`)."""
    b = len(batch["instruction"])
    if "next_image_is_pad" not in batch:
        return torch.ones(b, dtype=torch.bool)
    return ~torch.as_tensor(batch["next_image_is_pad"]).bool().reshape(b)


def count_loss_items(tensors: dict[str, torch.Tensor], batch: dict, stage: int) -> dict[str, int]:
    """How many items each normalized term of this micro-batch sums over: CE tokens in stages 1-2
    (`tensors` = the collated sequences), unpadded action steps in stage 3, and samples with a
    real future frame (visual L1) in every stage."""
    visual = {"visual_l1": int(visual_items(batch).sum())}
    if stage in (1, 2):
        part = tensors["loss_part"][:, 1:]  # (B, L-1), aligned with the shifted labels
        return {**{name: int((part == pid).sum()) for name, pid in TOKEN_TERMS.items()}, **visual}
    if "action_is_pad" in batch:
        return {"flow": int((~torch.as_tensor(batch["action_is_pad"]).bool()).sum()), **visual}
    b, h = torch.as_tensor(batch["action"]).shape[:2]
    return {"flow": int(b * h), **visual}


def normalized(total: torch.Tensor, count: int, norm: float | None) -> torch.Tensor:
    """`total` (a sum over `count` items) / the step-wide norm, or / count (the micro-batch mean)."""
    if norm is None:
        return total / max(count, 1)
    if norm <= 0:
        raise ValueError(f"loss normalizer must be positive, got {norm}")
    return total / norm
