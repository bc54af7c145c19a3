"""What the generation engine (lara.generation) asks of the model, as methods of `LaraModel`.

The engine composes these and the model's own prompt methods (`encode`, `run_backbone`,
`text_embeds`, ...); it does not reach into the backbone (`vlm`), the output vocabulary or the
foresight head itself, so either side can change inside without the other. A mixin of `LaraModel`
(lara/model.py, which holds the training forward), kept in its own module so that the list of what
inference needs stays in one place.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache

from lara.backbone import block_causal_mask, encode_images, run_text


class GenerationMethods:
    """Needs of `lara.generation.GenerationEngine`; `LaraModel` provides `vlm`, `cfg`, `tokenizer`,
    `foresight`, `latent`, `output_vocab`, `fast` and `device`."""

    def embedding_params(self) -> list[torch.Tensor | None]:
        """The parameters text embeddings are made of (the prompt cache rebuilds when one changes)."""
        return [self.vlm.get_input_embeddings().weight, self.foresight.slot_embed, self.latent.table]

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, n) -> input embeddings (B, n, D)."""
        return self.vlm.get_input_embeddings()(ids)

    def new_text_cache(self) -> DynamicCache:
        """An empty KV cache for the backbone's text decoder."""
        return DynamicCache(config=self.vlm.config.text_config)

    def encode_pixels(self, pixel_values: torch.Tensor, grid: torch.Tensor):
        """Patchified pixels and their grid (`pixel_inputs`) through the vision tower -> (image tokens
        (N_tok, D), deepstack features)."""
        return encode_images(self.vlm.model.visual, pixel_values, grid)

    def decode_text(self, embeds: torch.Tensor, positions: torch.Tensor, mask, cache) -> torch.Tensor:
        """(1, n, D) embeddings at M-RoPE positions (3, 1, n) through the cached decoder -> (1, n, D)."""
        return run_text(self.vlm, embeds, positions, mask, cache)

    def output_columns(self) -> torch.Tensor:
        """(V_out,) the global token id of each column of the output vocabulary."""
        return self.output_vocab.global_ids(self.device)

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, D) -> logits over the output vocabulary's columns (B, V_out)."""
        return self.output_vocab.logits(hidden, self.vlm.lm_head)

    def img_next_block(self, past: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The N_v `<img_next>` slots and `<|act_start|>` fed after `past` cached positions: their
        embeddings (1, N_v + 1, D) with the slots' offsets, and the attention mask that lets the
        slots see each other as in training (`foresight.attention` bidirectional; else None)."""
        tok, n_v, dev = self.tokenizer, self.cfg.foresight.num_slots, self.device
        ids = torch.tensor([[tok.img_next_id] * n_v + [tok.act_start_id]], device=dev)  # (1, N_v + 1)
        emb = self.embed_ids(ids)
        offsets = self.foresight.offsets(torch.arange(n_v, device=dev), emb.dtype)  # (N_v, D) or None
        if offsets is not None:
            emb[:, :n_v] += offsets
        mask = None
        if self.cfg.foresight.attention == "bidirectional":
            block = torch.zeros(1, past + n_v + 1, dtype=torch.bool, device=dev)  # (1, K)
            block[:, past : past + n_v] = True
            mask = block_causal_mask(
                torch.ones_like(block), block, past, self.cfg.backbone.attn_implementation, self.vlm.dtype
            )
        return emb, mask

    def decode_action_tokens(self, tokens: list[int]) -> np.ndarray:
        """Generated ids (FAST action tokens; others ignored) -> the normalized chunk (H, A)."""
        tok = self.tokenizer
        return self.fast.decode([i - tok.action_token_offset for i in tokens if tok.is_action_token(i)])
