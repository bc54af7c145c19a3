"""Latent chain of thought: which CoT segments become latent, and what the latent slots read.

- `sample_latent_mask(n, p, generator)`: each of the n CoT segments is latent with probability p
  (the curriculum sets p with `LaraPolicy.set_latent_probability`; p=0 -> all explicit, p=1 -> all
  latent). A latent segment becomes `<|latent_start|> <|latent|> x k <|latent_end|>` (k =
  `latent.slots_per_segment`), with no text loss.
- Slot inputs, `latent.slot_input`:
  - `learned`: a learnable table (max_segments * k, D); slot j of the segment with tag index i
    reads row i * k + j. One forward pass.
  - `recurrent` (Coconut): a slot's input embedding is the last hidden state of the previous
    position. `recurrent_forward` runs the decoder pass by pass with a KV cache: the span up to
    a slot, then the slot fed with the previous hidden state, and so on. Gradients flow through
    the whole chain (the cache is not detached). One sample at a time.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lara.configuration_lara import LaraConfig


def sample_latent_mask(num_segments: int, p: float, generator: torch.Generator | None = None) -> list[bool]:
    """Per-segment Bernoulli(p); exactly all-False at p=0 and all-True at p=1."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"latent probability must be in [0, 1], got {p}")
    if p <= 0.0:
        return [False] * num_segments
    if p >= 1.0:
        return [True] * num_segments
    return (torch.rand(num_segments, generator=generator) < p).tolist()


class LatentSlots(nn.Module):
    def __init__(self, cfg: LaraConfig) -> None:
        super().__init__()
        self.mode = cfg.latent.slot_input
        rows = cfg.latent.max_segments * cfg.latent.slots_per_segment
        self.table = nn.Parameter(torch.randn(rows, cfg.backbone.hidden_size) * 0.02)

    def fill(self, embeds: torch.Tensor, latent_index: torch.Tensor) -> torch.Tensor:
        """Write learned slot embeddings at positions with latent_index >= 0. (B, L, D) -> (B, L, D)."""
        mask = latent_index >= 0  # (B, L)
        if not mask.any():
            return embeds
        out = embeds.clone()
        out[mask] = self.table[latent_index[mask]].to(embeds.dtype)  # (n_slots, D)
        return out


# step(embeds (1, n, D), positions (3, 1, n), visual_mask (1, n) | None, deepstack list | None) -> hidden (1, n, D)
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, list[torch.Tensor] | None], torch.Tensor]


def recurrent_forward(
    step: StepFn,
    embeds: torch.Tensor,
    positions: torch.Tensor,
    is_latent: torch.Tensor,
    visual_mask: torch.Tensor,
    deepstack: list[torch.Tensor] | None,
) -> torch.Tensor:
    """One sample, Coconut-style. embeds (L, D), positions (3, L), is_latent (L,), visual_mask (L,),
    deepstack features of this sample's visual positions (n_vis, D) each. `step` owns the KV cache.
    Returns the last hidden states (L, D)."""
    length = embeds.shape[0]
    latent_pos = torch.nonzero(is_latent).flatten().tolist()
    spans: list[tuple[int, int, bool]] = []  # (start, end, fed_by_previous_hidden)
    cursor = 0
    for s in latent_pos:
        if s > cursor:
            spans.append((cursor, s, False))
        spans.append((s, s + 1, True))
        cursor = s + 1
    if cursor < length:
        spans.append((cursor, length, False))
    hidden_parts: list[torch.Tensor] = []
    vis_offset = 0
    for start, end, recurrent in spans:
        if recurrent:
            if not hidden_parts:
                raise ValueError("a latent slot cannot be the first position of a sequence")
            chunk = hidden_parts[-1][-1:].to(embeds.dtype)  # (1, D): previous position's last hidden state
        else:
            chunk = embeds[start:end]  # (n, D)
        vmask = visual_mask[start:end]
        n_vis = int(vmask.sum())
        ds = None
        if n_vis and deepstack:
            ds = [f[vis_offset : vis_offset + n_vis] for f in deepstack]
        vis_offset += n_vis
        h = step(chunk[None], positions[:, None, start:end], vmask[None] if n_vis else None, ds)  # (1, n, D)
        hidden_parts.append(h[0])
    return torch.cat(hidden_parts, dim=0)  # (L, D)
