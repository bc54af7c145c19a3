"""Inference over a `LaraModel`: token decoding with a KV cache, the latent prefill, the expert's steps.

The engine holds what inference keeps between calls (nanochat keeps its engine apart from the
model the same way): the per-episode prompt cache, the expert's captured Euler loop
(`lara.expert_runtime`), and counters. It works on what `lara.processor` made of an observation
(`ObsOnDevice`) and returns normalized actions; the processor un-normalizes them.

- Stages 1-2 (`predict_tokens`): one sample at a time, `prefill_tokens` runs the prompt through the
  backbone into a fresh KV cache; stage 1 then decodes the CoT greedily over the CoT columns of the
  output vocabulary until `<img_next>` (`<|act_start|>` without slots), feeds the N_v `<img_next>`
  slots and `<|act_start|>` in one piece (`feed_img_next`, the slots seeing each other as in
  training); stage 2 prefills the latent slots, `<img_next>` slots and `<|act_start|>` instead. Both
  then decode FAST action tokens until `<|act_end|>` (`decode_fast` turns them into a normalized
  chunk). A mid-stage-II checkpoint (`inference.latent_tags`, lara.inference_plan) prefills the
  latent segments of its latent tags and decodes the rest of the CoT as stage 1 does.
  `lara.token_logprobs` samples and re-scores the same positions for RL.
- Stage 3 (`predict_latent`): one prefill over image, instruction, latent slots and `<img_next>`
  slots, the expert's context projected from its hidden states, then the Euler steps
  (`sample_actions`; no token is generated). With `inference.cache` (default) the prefill is
  `latent_prefill`: between two calls of an episode only the camera images and the state change,
  so everything else is built once per instruction and kept on the device (`PromptCache`: the
  collated sequence, its M-RoPE positions, the attention mask, the context mask, the text
  embeddings with `<img_next>` offsets and learned latents written in; image features are
  scattered in per call). An entry is rebuilt when the instructions, the device or a parameter it
  was derived from changes (in-place updates bump a tensor's version). `latent_hidden` is the
  reference prefill without the cache (also differentiable: RL's flow scorer trains through it).
`num_generated_tokens` counts generated tokens; `last_cot_text` is the last CoT stage 1 wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lara.expert_runtime import ExpertRuntime
from lara.inference_plan import token_latent_tags
from lara.processor import ObsOnDevice
from lara.sequence import IMAGE, LATENT
from lara.tokenizer import QWEN_SPECIAL_START
from lara.utils.errors import LaraUserError


def _params_key(tensors: list[torch.Tensor]) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in tensors if t is not None)


@dataclass
class PromptEntry:
    key: tuple
    tensors: dict[str, torch.Tensor]  # collated sequence (B, L) each, on the device
    text_embeds: torch.Tensor  # (B, L, D) image positions still holding the placeholder embedding
    positions: torch.Tensor  # (3, B, L) M-RoPE
    attention_mask: torch.Tensor  # (B, L) or (B, 1, L, L)
    image_mask: torch.Tensor  # (B, L) bool
    context_mask: torch.Tensor  # (B, L) bool
    is_latent: torch.Tensor  # (B, L) bool


class PromptCache:
    """One entry: an episode asks for the same instruction(s) call after call."""

    def __init__(self) -> None:
        self.entry: PromptEntry | None = None
        self.builds = 0  # how many entries were built (tests, benchmarks)

    def clear(self) -> None:
        self.entry = None

    def get(self, model, instructions: tuple[str, ...], grid: torch.Tensor) -> PromptEntry:
        device = grid.device
        # what text_embeds is made of (attribute look-ups: iterating the modules costs ~0.4 ms a call)
        key = (instructions, str(device), tuple(grid.shape), _params_key(model.embedding_params()))
        if self.entry is None or self.entry.key != key:
            self.entry = self._build(model, instructions, grid, key)
            self.builds += 1
        return self.entry

    @staticmethod
    def _build(model, instructions, grid, key) -> PromptEntry:
        builder, device = model.builder, grid.device
        seqs = [builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in instructions]
        t = {k: v.to(device) for k, v in builder.collate(seqs, "left").items()}
        return PromptEntry(
            key=key,
            tensors=t,
            text_embeds=model.text_embeds(t),
            positions=model.positions(t, grid),
            attention_mask=model.attention_mask(t),
            image_mask=t["part"] == IMAGE,
            context_mask=model.context_mask(t),
            is_latent=t["part"] == LATENT,
        )


class GenerationEngine:
    def __init__(self, model) -> None:
        self.model = model
        self.prompt_cache = PromptCache()
        self.num_generated_tokens = 0
        self.last_cot_text = ""
        self._runtime: ExpertRuntime | None = None

    # ------------------------------------------------------------------ stage III
    def latent_hidden(self, images: torch.Tensor, instructions) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference prefill (no cache, differentiable): hidden states at the context positions
        (B, L, D) with left padding zeroed, and the context mask (B, L). images (B * n_cam, 3, H, W)."""
        model = self.model
        seqs = [
            model.builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in instructions
        ]
        t = {k: v.to(model.device) for k, v in model.builder.collate(seqs, "left").items()}
        hidden = model.hidden_states(t, images.to(model.device))  # (B, L, D)
        mask = model.context_mask(t)
        return hidden.masked_fill(~mask[..., None], 0.0), mask

    def latent_prefill(self, x: ObsOnDevice) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels + vision tower + backbone over the cached stage-III prompt (image, instruction,
        latent slots, `<img_next>` slots) -> projected expert context (B, L, D_e), context mask (B, L)."""
        model = self.model
        pv, grid = model.pixel_inputs(
            x.images, model.cfg.vision.image_size
        )  # (N_patch, C*tp*p*p), (B*n_cam, 3)
        e = self.prompt_cache.get(model, x.instructions, grid)
        img_tokens, deepstack = model.encode_pixels(pv, grid)  # (B*n_cam*n_tok, D)
        embeds = e.text_embeds.masked_scatter(e.image_mask[..., None], img_tokens.to(e.text_embeds.dtype))
        hidden = model.run_backbone(
            embeds, e.positions, e.attention_mask, e.image_mask, deepstack, e.is_latent
        )
        ctx = model.expert.project_context(
            hidden.masked_fill(~e.context_mask[..., None], 0.0)
        )  # left padding zeroed
        return ctx, e.context_mask

    def sample_actions(
        self, context, context_mask, state, num_steps: int | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The expert's Euler steps on a projected context (B, L, D_e), state (B, S) normalized or
        None -> normalized chunk (B, H, A) on the device: the captured runtime at inference, the
        module's own loop in training mode. `noise` (B, H, A): the starting draw (None: the global
        generator's), e.g. one per episode so a chunk does not depend on its batch."""
        expert, inf = self.model.expert, self.model.cfg.inference
        if expert.training:
            return expert.sample(context, context_mask, state, num_steps, noise)
        if self._runtime is None or (self._runtime.compile, self._runtime.cuda_graph) != (
            inf.compile,
            inf.cuda_graph,
        ):
            self._runtime = ExpertRuntime(expert, compile=inf.compile, cuda_graph=inf.cuda_graph)
        return self._runtime.sample(context, context_mask, state, num_steps, noise)

    def predict_latent(
        self, x: ObsOnDevice, state, num_steps: int | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Stage 3: prefill (cached with `inference.cache`) and Euler steps -> normalized (B, H, A);
        `noise` (B, H, A) as in `sample_actions`."""
        if self.model.cfg.inference.cache:
            context, mask = self.latent_prefill(x)
        else:
            hidden, mask = self.latent_hidden(x.images, x.instructions)
            context = self.model.expert.project_context(hidden)
        return self.sample_actions(context, mask, state, num_steps, noise)

    # ------------------------------------------------------------------ stages I-II: tokens
    def prefill_tokens(
        self, images: torch.Tensor, instruction: str, latent: bool, latent_tags: list[str] | None = None
    ):
        """One sample's prompt (explicit: the chat template only, or with latent segments for
        `latent_tags` (mid stage II); latent: + latent slots, `<img_next>` slots, `<|act_start|>`)
        through the backbone into a fresh KV cache -> (cache, last hidden state (1, D), the next
        text position). images (n_cam, 3, H, W)."""
        model = self.model
        cache = model.new_text_cache()
        seq = model.builder.build_prompt(
            instruction,
            latent=latent,
            img_next=latent,
            act_start=latent,
            latent_tags=None if latent else latent_tags,
        )
        t = {k: v.to(model.device) for k, v in model.builder.collate([seq]).items()}
        hidden, pos = model.encode(t, images.to(model.device), cache)  # (1, L, D), (3, 1, L)
        return (
            cache,
            hidden[:, -1],
            int(pos.max()) + 1,
        )  # text positions continue after the largest M-RoPE index

    def step(
        self, cache, embeds: torch.Tensor, next_pos: int, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Feed (1, n, D) embeddings at text positions next_pos.. through the cached decoder -> (1, n, D)."""
        n = embeds.shape[1]
        pos = (
            torch.arange(next_pos, next_pos + n, device=self.model.device).view(1, 1, n).expand(3, 1, n)
        )  # (3, 1, n)
        return self.model.decode_text(embeds, pos, mask, cache)

    def feed_img_next(self, cache, next_pos: int) -> torch.Tensor:
        """After a generated CoT: the N_v `<img_next>` slots and `<|act_start|>` in one piece, the slots
        seeing each other as in training (`foresight.attention`) -> hidden states (1, N_v + 1, D)."""
        emb, mask = self.model.img_next_block(cache.get_seq_length())  # (1, N_v + 1, D)
        return self.step(cache, emb, next_pos, mask)

    def cot_columns(self) -> torch.Tensor:
        """(V_out,) bool over the output vocabulary: what a CoT may hold (text) and its end (`<img_next>`,
        or `<|act_start|>` without slots: `SequenceBuilder.cot_end_id`)."""
        cols = self.model.output_columns()
        return (cols < QWEN_SPECIAL_START) | (cols == self.model.builder.cot_end_id)

    def action_columns(self) -> torch.Tensor:
        """(V_out,) bool over the output vocabulary: the FAST action tokens and `<|act_end|>`."""
        tok, cols = self.model.tokenizer, self.model.output_columns()
        off = tok.action_token_offset
        return ((cols >= off) & (cols < off + tok.num_action_tokens)) | (cols == tok.act_end_id)

    def greedy(
        self, cache, h_last, next_pos, allowed, stop_ids, max_new, exact=False
    ) -> tuple[list[int], int]:
        """Greedy decoding; `allowed` (V_out,) bool over the output vocabulary's columns. With `exact`
        the stop tokens are disallowed and exactly max_new tokens are generated (benchmarks)."""
        model, dev = self.model, self.model.device
        cols = model.output_columns()  # (V_out,) global id of each column
        if exact:
            allowed = allowed & ~torch.isin(cols, torch.tensor(sorted(stop_ids), device=cols.device))
        if not bool(allowed.any()):  # argmax over all -inf would emit column 0, a token nobody chose
            raise LaraUserError(
                "the output vocabulary allows no token to generate here; an `observed` vocabulary "
                "must be seeded with the CoT ids first (seed_output_vocab, done by training)"
            )
        out: list[int] = []
        for i in range(max_new):
            logits = model.output_logits(h_last).masked_fill(~allowed, float("-inf"))
            tok = int(cols[logits.argmax(-1)])  # (1, V_out) -> global id
            out.append(tok)
            self.num_generated_tokens += 1
            if tok in stop_ids or (exact and i == max_new - 1):
                break
            h_last = self.step(cache, model.embed_ids(torch.tensor([[tok]], device=dev)), next_pos)[:, -1]
            next_pos += 1
        return out, next_pos

    def decode_fast(self, tokens: list[int]) -> np.ndarray:
        """Generated ids (FAST action tokens, `<|act_end|>`) -> the normalized chunk (H, A)."""
        return self.model.decode_action_tokens(tokens)

    def predict_tokens(self, x: ObsOnDevice, stage: int, fixed: tuple[int, int] | None = None) -> np.ndarray:
        """Stages 1-2, sample by sample -> normalized chunks (B, H, A). `fixed=(cot_tokens,
        action_tokens)` forces the generated lengths (latency benchmarks with random weights)."""
        if self.model.fast is None:
            raise LaraUserError(
                "token-based inference (stages 1-2) needs the FAST tokenizer in the checkpoint"
            )
        return np.stack(
            [
                self._predict_one(x.sample_images(i), instr, stage, fixed)
                for i, instr in enumerate(x.instructions)
            ]
        )

    def _predict_one(self, images: torch.Tensor, instruction: str, stage: int, fixed) -> np.ndarray:
        """(explicit CoT generation | latent prefill), `<img_next>` slots, FAST tokens
        -> (H, A) normalized."""
        tok, cfg = self.model.tokenizer, self.model.cfg
        lead = token_latent_tags(cfg, stage)  # mid stage II: the latent tags, then the model writes the rest
        latent = len(lead) == len(cfg.latent.canonical_tags)
        cache, h_last, next_pos = self.prefill_tokens(images, instruction, latent, lead)
        self.last_cot_text = ""
        if not latent:
            n_cot = fixed[0] if fixed else cfg.inference.max_cot_tokens
            end = self.model.builder.cot_end_id
            cot, next_pos = self.greedy(
                cache, h_last, next_pos, self.cot_columns(), {end}, n_cot, exact=bool(fixed)
            )
            self.last_cot_text = tok.decode([i for i in cot if i != end])
            h_last = self.feed_img_next(cache, next_pos)[:, -1]
            next_pos += cfg.foresight.num_slots + 1
        n_act = fixed[1] if fixed else cfg.inference.max_action_tokens
        acts, _ = self.greedy(
            cache, h_last, next_pos, self.action_columns(), {tok.act_end_id}, n_act, exact=bool(fixed)
        )
        return self.decode_fast(acts)
