"""Latent chain of thought: which CoT segments become latent, and what the latent slots read.

- `select_latent(tags, p, cfg)`: which CoT segments are latent at latent probability p (the
  curriculum sets p with `LaraPolicy.set_latent_probability`; p=0 -> all explicit, p=1 -> all
  latent). `latent.selection` tag_order (default, the reference): the first round(p * len(order))
  tags of `latent.order` in every sample; random (`sample_latent_mask`): each segment latent with
  probability p. A latent segment becomes `<|latent_start|> <|latent|> x k <|latent_end|>` (k =
  `latent.slots_per_segment`), with no text loss.
- Slot inputs, `latent.slot_input`:
  - `learned`: a learnable table (max_segments * k, D); slot j of the segment with tag index i
    reads row i * k + j. One forward pass.
  - `recurrent` (Coconut, the default): a slot's input embedding is the last hidden state of the
    previous position. `recurrent_forward` runs the decoder pass by pass with a KV cache: the span
    up to a slot, then the slot fed with the previous hidden state, and so on, the whole batch in
    each pass (2 x (latent columns) + 1 decoder calls; stage III left-pads so that the rows' slots
    share columns). Gradients flow through the whole chain (the cache is not detached).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lara.configuration_lara import LaraConfig, LatentConfig


def sample_latent_mask(num_segments: int, p: float, generator: torch.Generator | None = None) -> list[bool]:
    """Per-segment Bernoulli(p); exactly all-False at p=0 and all-True at p=1."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"latent probability must be in [0, 1], got {p}")
    if p <= 0.0:
        return [False] * num_segments
    if p >= 1.0:
        return [True] * num_segments
    return (torch.rand(num_segments, generator=generator) < p).tolist()


def select_latent(
    tags: list[str], p: float, cfg: LatentConfig, generator: torch.Generator | None = None
) -> list[bool]:
    """Latent mask of one sample's CoT segments (their tags, in sequence order) at probability p."""
    if cfg.selection == "random":
        return sample_latent_mask(len(tags), p, generator)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"latent probability must be in [0, 1], got {p}")
    if p >= 1.0:
        return [True] * len(tags)
    chosen = set(cfg.order[: round(p * len(cfg.order))])
    return [tag in chosen for tag in tags]


class LatentSlots(nn.Module):
    """The `learned` slot inputs' table. Which inputs the slots read is `cfg.latent.slot_input`, read
    where it decides (lara.model); the table exists either way, so checkpoints load alike."""

    def __init__(self, cfg: LaraConfig) -> None:
        super().__init__()
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


# step(embeds (B, n, D), start, end) -> hidden (B, n, D) of columns start..end-1; owns the KV cache,
# the positions, the attention mask and the visual features of those columns.
StepFn = Callable[[torch.Tensor, int, int], torch.Tensor]


def latent_spans(is_latent: torch.Tensor) -> list[tuple[int, int, bool]]:
    """Columns of a (B, L) batch cut into passes: (start, end, recurrent). Every column that is a
    latent slot in any row is a one-column recurrent pass; the columns between are one pass each."""
    length = is_latent.shape[1]
    spans: list[tuple[int, int, bool]] = []
    cursor = 0
    for s in torch.nonzero(is_latent.any(0)).flatten().tolist():
        if s > cursor:
            spans.append((cursor, s, False))
        spans.append((s, s + 1, True))
        cursor = s + 1
    if cursor < length:
        spans.append((cursor, length, False))
    return spans


def recurrent_forward(step: StepFn, embeds: torch.Tensor, is_latent: torch.Tensor) -> torch.Tensor:
    """Coconut over a batch: embeds (B, L, D), is_latent (B, L). In a recurrent pass a row whose
    column is a latent slot reads the previous column's last hidden state, the other rows their
    own embedding (so rows with latents at different columns share the passes). Gradients flow
    through the whole chain (the cache is not detached). Returns the last hidden states (B, L, D)."""
    parts: list[torch.Tensor] = []
    for start, end, recurrent in latent_spans(is_latent):
        chunk = embeds[:, start:end]  # (B, n, D)
        if recurrent:
            if not parts:
                raise ValueError("a latent slot cannot be the first position of a sequence")
            prev = parts[-1][:, -1:].to(embeds.dtype)  # (B, 1, D): previous column's last hidden state
            chunk = torch.where(is_latent[:, start:end, None], prev, chunk)
        parts.append(step(chunk, start, end))
    return torch.cat(parts, dim=1)  # (B, L, D)


# prefix(embeds (B, n, D)) -> hidden (B, n, D) of positions 0..n-1, without a KV cache.
PrefixFn = Callable[[torch.Tensor], torch.Tensor]


def recurrent_forward_uncached(
    prefix: PrefixFn, embeds: torch.Tensor, is_latent: torch.Tensor
) -> torch.Tensor:
    """The same function as `recurrent_forward` with no KV cache, for training with gradient
    checkpointing (transformers drops the cache of checkpointed decoder layers, so the cached passes
    would attend to nothing before them): for each latent column s the prefix [0, s) is run with
    the slots filled so far and s reads its last hidden state; one last pass runs the whole
    sequence. Causal attention makes each prefix's hidden states those of the cached passes; it
    costs (latent columns + 1) passes over growing prefixes. Returns the last hidden states (B, L, D)."""
    x = embeds
    for s in torch.nonzero(is_latent.any(0)).flatten().tolist():
        if s == 0:
            raise ValueError("a latent slot cannot be the first position of a sequence")
        prev = prefix(x[:, :s])[:, -1:].to(x.dtype)  # (B, 1, D): column s-1's last hidden state
        column = torch.where(is_latent[:, s : s + 1, None], prev, x[:, s : s + 1])  # (B, 1, D)
        x = torch.cat([x[:, :s], column, x[:, s + 1 :]], dim=1)  # (B, L, D), slot s filled
    return prefix(x)
