"""LaraPolicy: Qwen3-VL + `<img_next>` visual foresight + latent CoT + FAST tokens + DiT expert.

Public API (the trainer in curriculum/ and the evaluator in envs/ build against these names):

    policy = LaraPolicy(cfg)                               # random init, or real weights via cfg.backbone.pretrained_path
    policy = LaraPolicy.from_pretrained(dir, device=None)  # safetensors + JSON, never pickle
    policy.save_pretrained(dir)
    policy.train_fast_tokenizer(chunks) -> dict            # (N, H, A) normalized chunks, before stage I; returns round-trip error
    policy.seed_output_vocab(cots) -> int                  # `observed` output vocab: every CoT label id, before training
    policy.set_normalization(stats)                        # lara.normalization.NormalizationStats (stored in checkpoints)
    policy.set_latent_probability(p)                       # stage II curriculum; forward(..., latent_probability=p) overrides
    loss, metrics = policy.forward(batch, stage)           # stage 1, 2 or 3; batch = collate_samples(...) (docs/interfaces.md)
    batch, items = policy.prepare_batch(batch, stage)      # sequences built, latents drawn, loss items counted
    policy.forward(batch, stage, loss_norm={"cot_ce": ...})  # term sums / step-wide counts (lara.losses)
    policy.ema_update()                                    # after each optimizer step
    policy.parameter_groups(backbone_lr, head_lr)          # AdamW groups: backbone lower LR than heads/expert
    policy.predict_action_chunk(obs, stage=None)           # (H, A) un-normalized (or (B, H, A) for a batched dict)
    policy.select_action(obs) -> (A,) ; policy.reset()     # chunk queue of inference.n_action_steps actions
    x = policy.latent_inputs(obs)                          # stage III in parts (benchmarks): one host-to-device copy,
    ctx, mask = policy.latent_prefill(x)                   # prefill over the cached prompt (lara.latent_inference),
    norm = policy.latent_actions(ctx, mask, x, num_steps)  # the Euler steps (lara.expert_runtime),
    policy.finish_actions(norm, batched)                   # un-normalized numpy chunk(s)

    policy.set_loss_weights({"cot_ce": 1, "action_ce": 1, "visual_l1": 0.1})  # the trainer's; unset: all 1
    policy.backbone ; policy.gradient_checkpointing_enable()   # the Qwen3-VL module (LoRA target)

Metrics: "loss/cot_ce", "loss/action_ce" (stages 1-2; 0.0 when no token of that kind), "loss/flow"
(stage 3), "loss/visual_l1" (when its weight > 0), "loss/total", "tokens/cot", "tokens/action",
"tokens/seq_len", "latent/fraction", "latent/probability".
Losses per stage (metrics carry each term; a configured loss is always computed and logged):
- stage 1: CoT CE (all segments explicit) + action CE (FAST tokens) + visual L1
- stage 2: as stage 1, each CoT segment latent with probability p (no text loss on latent ones)
- stage 3: flow-matching MSE (expert, context = hidden states at image/prompt/latent/`<img_next>`
  positions of a fully latent sequence without action tokens) + visual L1; each term times its weight
Longer than ~400 lines because the model's one concept (sequence in, losses or actions out) spans
training and three inference paths over the same private helpers; the stage-III hot path's cache
and the expert's captured loop live in lara/latent_inference.py and lara/expert_runtime.py.
Inference: stage 1 generates CoT text then (after the forced `<img_next>` slots) FAST tokens with
a KV cache; stage 2 prefills latent slots and generates FAST tokens; stage 3 is one prefill and
the expert's Euler steps (no token generation; `num_generated_tokens` counts generated tokens).
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import DynamicCache

from lara.action_expert import ActionExpert
from lara.backbone import (block_causal_mask, build_backbone, enable_checkpointing, encode_images, rope_positions,
                           run_text)
from lara.configuration_lara import LaraConfig
from lara.utils.errors import LaraUserError
from lara.fast_tokenizer import FastActionTokenizer
from lara.foresight import Foresight
from lara.expert_runtime import ExpertRuntime
from lara.latent_cot import LatentSlots, recurrent_forward, select_latent
from lara.latent_inference import ObsOnDevice, PromptCache, transfer
from lara.losses import TOKEN_TERMS, count_loss_items, normalized, visual_items
from lara.normalization import NormalizationStats
from lara.output_vocab import OutputVocab
from lara.pixels import patchify, to_float_images
from lara.sequence import IMAGE, IMG_NEXT, LATENT, PROMPT, SequenceBuilder
from lara.tokenizer import QWEN_SPECIAL_START, LaraTokenizer, build_tokenizer

log = logging.getLogger(__name__)
CONTEXT_PARTS = (IMAGE, PROMPT, LATENT, IMG_NEXT)
LOSS_TERMS = ("cot_ce", "action_ce", "visual_l1", "flow")
PREPARED = "lara.prepared"  # batch key of prepare_batch's sequences and loss-item counts


class LaraPolicy(nn.Module):
    def __init__(
        self,
        cfg: LaraConfig,
        tokenizer: LaraTokenizer | None = None,
        fast: FastActionTokenizer | None = None,
        stats: NormalizationStats | None = None,
        qwen_cfg=None,
        output_vocab: OutputVocab | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer or build_tokenizer(cfg.fast.vocab_size, cfg.backbone.pretrained_path)
        if self.tokenizer.num_action_tokens != cfg.fast.vocab_size:
            raise ValueError("tokenizer action tokens differ from fast.vocab_size")
        self.vlm = build_backbone(cfg, len(self.tokenizer), qwen_cfg)
        self.builder = SequenceBuilder(cfg, self.tokenizer)
        dtype = self.vlm.dtype
        self.foresight = Foresight(cfg, self.vlm.model.visual).to(dtype)
        self.latent = LatentSlots(cfg).to(dtype)
        self.expert = ActionExpert(cfg.expert, cfg.backbone.hidden_size, cfg.action_dim, cfg.chunk_size,
                                   cfg.state_dim).to(dtype)  # fmt: skip
        self.fast = fast
        self.stats = stats
        tok = self.tokenizer
        base_ids = [tok.img_next_id, tok.act_end_id] + list(
            range(tok.action_token_offset, tok.action_token_offset + tok.num_action_tokens))
        self.output_vocab = output_vocab or OutputVocab(cfg.backbone.output_vocab, self.vlm.lm_head.out_features, base_ids)
        self.latent_probability = 0.0
        self.loss_weights = dict.fromkeys(LOSS_TERMS, 1.0)  # the training config's: the trainer sets them
        self.num_generated_tokens = 0
        self.last_cot_text = ""
        self._queue: deque[np.ndarray] = deque()
        self.prompt_cache = PromptCache()  # stage-III inference (lara.latent_inference)
        self._runtime: ExpertRuntime | None = None

    # ------------------------------------------------------------------ setup / trainer hooks
    @property
    def device(self) -> torch.device:
        return self.expert.action_in.weight.device

    def set_latent_probability(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"latent probability must be in [0, 1], got {p}")
        self.latent_probability = float(p)

    def set_loss_weights(self, weights: dict[str, float]) -> None:
        """Loss weights from the curriculum schedule; keys among cot_ce, action_ce, visual_l1, flow."""
        unknown = set(weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {LOSS_TERMS}")
        self.loss_weights.update({k: float(v) for k, v in weights.items()})

    @property
    def backbone(self) -> nn.Module:
        """The Qwen3-VL model (LoRA adapters go here)."""
        return self.vlm

    def gradient_checkpointing_enable(self) -> None:
        enable_checkpointing(self.vlm)

    def set_normalization(self, stats: NormalizationStats) -> None:
        if "action" in stats.features and stats.features["action"].dim != self.cfg.action_dim:
            raise LaraUserError(f"action statistics have {stats.features['action'].dim} dims, model has {self.cfg.action_dim}")
        self.stats = stats
        self.prompt_cache.clear()

    def train_fast_tokenizer(self, chunks: np.ndarray) -> dict[str, float]:
        """Train the FAST BPE on normalized chunks (N, H, A); returns its round-trip error on them."""
        self.fast = FastActionTokenizer.train(chunks, self.cfg.chunk_size, self.cfg.action_dim, self.cfg.fast)
        sample = np.asarray(chunks)[: min(len(chunks), 512)]
        report = self.fast.round_trip_error(sample)
        log.info("FAST tokenizer: %s", report)
        return report

    def seed_output_vocab(self, cots) -> int:
        """Add the label ids of every CoT segment in `cots` (iterable of [(tag, text)] or None) to an
        `observed` output vocabulary before training (all ranks alike); returns how many were new.
        Each segment is tokenized by the sequence builder itself, exactly as training will."""
        if self.output_vocab.full:
            return 0
        segments = sorted({(str(tag), str(text)) for cot in cots if cot for tag, text in cot})
        ids: set[int] = set()
        for seg in segments:  # a segment's tokens do not depend on its neighbours
            ids.update(i for i in self.builder.build("", [seg], None, None).labels if i >= 0)
        added = self.output_vocab.seed(ids)
        log.info("output vocabulary seeded from %d CoT segments: %d new ids, %d in all",
                 len(segments), added, len(self.output_vocab.ids))  # fmt: skip
        return added

    def parameter_groups(self, backbone_lr: float, head_lr: float) -> list[dict]:
        """AdamW groups: the Qwen3-VL backbone at backbone_lr, everything LaRA adds at head_lr.
        The EMA tower is never included (it is updated by `ema_update` only)."""
        backbone = [p for p in self.vlm.parameters() if p.requires_grad]
        heads = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("vlm.")]
        return [
            {"params": backbone, "lr": backbone_lr, "name": "backbone"},
            {"params": heads, "lr": head_lr, "name": "heads"},
        ]

    @torch.no_grad()
    def ema_update(self) -> None:
        self.foresight.ema_update(self.vlm.model.visual)

    # ------------------------------------------------------------------ shared encoder
    def _pixels(self, images: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.cfg.vision
        pv, grid = patchify(images, size, v.patch_size, v.spatial_merge_size, v.temporal_patch_size,
                            v.image_mean, v.image_std)  # fmt: skip
        return pv.to(self.device), grid.to(self.device)

    def _text_embeds(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings (B, L, D) of everything but the image features: token embeddings,
        `<img_next>` slot offsets, learned latents (fixed per prompt: cached at inference)."""
        embeds = self.vlm.get_input_embeddings()(t["input_ids"])  # (B, L, D)
        nxt = t["part"] == IMG_NEXT
        slot = (nxt.long().cumsum(1) - 1).clamp(min=0) % self.cfg.foresight.num_slots  # (B, L) slot number
        offsets = self.foresight.offsets(slot, embeds.dtype)  # (B, L, D) or None (foresight.slot_offsets false)
        if offsets is not None:
            embeds = embeds + nxt[..., None].to(embeds.dtype) * offsets
        if self.cfg.latent.slot_input == "learned":
            embeds = self.latent.fill(embeds, t["latent_index"])
        return embeds

    def _positions(self, t: dict[str, torch.Tensor], grid: torch.Tensor) -> torch.Tensor:
        """M-RoPE positions (3, B, L) of a collated batch whose images have grid (B*n_cam, 3)."""
        return rope_positions(self.vlm, t["input_ids"], t["mm_token_type_ids"], grid, t["attention_mask"])

    def _embed(self, t: dict[str, torch.Tensor], images: torch.Tensor):
        """Input embeddings with image features, `<img_next>` slot offsets and learned latents.
        images (B * n_cam, 3, H, W). Returns embeds (B, L, D), positions (3, B, L), image mask, deepstack.
        The image features are scattered in last (image rows hold no offset or latent), so the
        result equals the prompt cache's `text_embeds` with the features scattered in."""
        pv, grid = self._pixels(images, self.cfg.vision.image_size)  # (N_patch, C*tp*p*p), (B*n_cam, 3)
        img_mask = t["part"] == IMAGE  # (B, L)
        img_tokens, deepstack = encode_images(self.vlm.model.visual, pv, grid)  # (B*n_cam*n_tok, D)
        embeds = self._text_embeds(t)
        embeds = embeds.masked_scatter(img_mask[..., None], img_tokens.to(embeds.dtype))
        return embeds, self._positions(t, grid), img_mask, deepstack

    def _attention_mask(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) padding mask (causal `<img_next>` block), or the (B, 1, L, L) block-causal mask
        where the `<img_next>` slots see each other both ways (`foresight.attention`)."""
        if self.cfg.foresight.attention == "causal":
            return t["attention_mask"]
        return block_causal_mask(t["attention_mask"].bool(), t["part"] == IMG_NEXT, 0,
                                 self.cfg.backbone.attn_implementation, self.vlm.dtype)  # fmt: skip

    def _hidden(self, t: dict[str, torch.Tensor], images: torch.Tensor, cache=None) -> torch.Tensor:
        """Last hidden states (B, L, D) of the backbone over a collated batch (its M-RoPE positions kept in self._last_pos)."""
        embeds, pos, img_mask, deepstack = self._embed(t, images)
        self._last_pos = pos  # (3, B, L)
        return self._backbone(embeds, pos, self._attention_mask(t), img_mask, deepstack, t["part"] == LATENT, cache)

    def _backbone(self, embeds, pos, mask, img_mask, deepstack, is_latent, cache=None) -> torch.Tensor:
        """Decoder over embeds (B, L, D): one pass, or pass by pass through the latent slots (recurrent)."""
        if self.cfg.latent.slot_input == "learned" or not bool(is_latent.any()):
            return run_text(self.vlm, embeds, pos, mask, cache, img_mask, deepstack)
        # recurrent (Coconut): pass by pass over the whole batch with one KV cache
        cache = cache if cache is not None else DynamicCache(config=self.vlm.config.text_config)
        vis_cols = torch.nonzero(img_mask)[:, 1]  # (n_vis,) column of each visual token, in feature order

        def step(x: torch.Tensor, start: int, end: int) -> torch.Tensor:
            sel = (vis_cols >= start) & (vis_cols < end)  # this pass's visual tokens, row-major like the features
            vis = bool(sel.any())
            m = mask[:, :, start:end, :end] if mask.dim() == 4 else mask[:, :end]
            return run_text(self.vlm, x, pos[:, :, start:end], m, cache, img_mask[:, start:end] if vis else None,
                            [f[sel] for f in deepstack] if vis else None)  # fmt: skip

        return recurrent_forward(step, embeds, is_latent)

    @staticmethod
    def _camera_images(batch: dict, cameras: list[str], prefix: str = "image.") -> torch.Tensor:
        missing = [c for c in cameras if prefix + c not in batch]
        if missing:
            raise LaraUserError(f"batch lacks {[prefix + c for c in missing]}; the model is configured for {cameras}")
        imgs = torch.stack([torch.as_tensor(batch[prefix + c]) for c in cameras], dim=1)  # (B, n_cam, 3, H, W)
        return rearrange(imgs, "b n c h w -> (b n) c h w").float()

    # ------------------------------------------------------------------ training
    def prepare_batch(
        self, batch: dict, stage: int, latent_probability: float | None = None
    ) -> tuple[dict, dict[str, int]]:
        """The batch with its token sequences built (FAST-encoded actions, latent segments drawn:
        the only random draws of stages 1-2) under `PREPARED`, and the number of loss items of
        each normalized term (lara.losses). The trainer prepares all micro-batches of an optimizer
        step in order before their forwards, so the draws follow the order of one big batch and
        the step-wide counts are known (`forward(..., loss_norm=...)`)."""
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        b = len(batch["instruction"])
        p = 0.0 if stage == 1 else (1.0 if stage == 3 else (
            self.latent_probability if latent_probability is None else latent_probability))  # fmt: skip
        if stage in (1, 2) and self.fast is None:
            raise LaraUserError("stages 1-2 need the FAST tokenizer: call policy.train_fast_tokenizer(chunks)")
        if stage == 3 and "action" not in batch:
            raise LaraUserError("stage 3 needs batch['action'] (normalized chunks)")
        seqs, n_latent, n_segments = [], 0, 0
        for i in range(b):
            if stage == 3:
                seqs.append(self.builder.build(batch["instruction"][i], None, None, None, canonical_latent=True))
                continue
            cot = batch.get("cot", [None] * b)[i] or []
            chunk = torch.as_tensor(batch["action"][i]).float().cpu().numpy()
            action_ids = self.tokenizer.action_token_ids(self.fast.encode(chunk))
            mask = select_latent([tag for tag, _ in cot], p, self.cfg.latent)
            n_latent, n_segments = n_latent + sum(mask), n_segments + len(mask)
            seqs.append(self.builder.build(batch["instruction"][i], cot, mask, action_ids))
        # stage III: left padding lines up the rows' (identical) latent and <img_next> suffixes, so the
        # recurrent latent passes are shared by the whole batch (2 x tags + 1 decoder calls)
        tensors = self.builder.collate(seqs, "left" if stage == 3 else "right")
        items = count_loss_items(tensors, batch, stage)
        prepared = {"stage": stage, "tensors": tensors, "latent_probability": p, "n_latent": n_latent,
                    "n_segments": n_segments, "loss_items": items}  # fmt: skip
        return {**batch, PREPARED: prepared}, items

    def forward(
        self,
        batch: dict,
        stage: int,
        latent_probability: float | None = None,
        loss_norm: dict[str, float] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics for one collated (or `prepare_batch`-ed) batch at curriculum stage 1, 2
        or 3. `loss_norm[term]` divides the term's item sum instead of this batch's own count
        (lara.losses: the step-wide normalization of gradient accumulation and DDP)."""
        if PREPARED not in batch:
            batch, _ = self.prepare_batch(batch, stage, latent_probability)
        prep = batch[PREPARED]
        if prep["stage"] != stage:
            raise ValueError(f"batch was prepared for stage {prep['stage']}, forward asked for stage {stage}")
        cfg, dev, norm = self.cfg, self.device, loss_norm or {}
        t = {k: v.to(dev) for k, v in prep["tensors"].items()}
        hidden = self._hidden(t, self._camera_images(batch, cfg.vision.cameras).to(dev))  # (B, L, D)

        metrics: dict[str, float] = {}
        weights = self.loss_weights
        if stage in (1, 2):
            terms = self._token_losses(t, hidden, norm, metrics)
            metrics["latent/fraction"] = prep["n_latent"] / max(prep["n_segments"], 1)
            metrics["latent/probability"] = prep["latent_probability"]
        else:
            terms = self._flow_loss(batch, t, hidden, norm)
        if weights["visual_l1"] > 0:
            terms["visual_l1"] = normalized(self._visual_loss(batch, t, hidden), prep["loss_items"]["visual_l1"],
                                            norm.get("visual_l1"))
        total = torch.zeros((), device=dev)
        for name, term in terms.items():
            total = total + weights[name] * term
            metrics[f"loss/{name}"] = float(term.detach())
        metrics["loss/total"] = float(total.detach())
        metrics["tokens/seq_len"] = float(t["input_ids"].shape[1])
        return total, metrics

    def _token_losses(self, t, hidden, norm, metrics) -> dict[str, torch.Tensor]:
        """Stages 1-2: CoT and action-token CE, each its token sum / (norm or its token count)."""
        labels = t["labels"][:, 1:]  # (B, L-1): token predicted at position i is labels[i + 1]
        sel = labels != -100
        if self.training:
            self.output_vocab.update(labels[sel])
        logits = self.output_vocab.logits(hidden[:, :-1][sel], self.vlm.lm_head)  # (n_sel, V_out)
        ce = F.cross_entropy(logits, self.output_vocab.targets(labels[sel]), reduction="none")  # (n_sel,)
        part = t["loss_part"][:, 1:][sel]
        terms = {}
        for name, pid in TOKEN_TERMS.items():
            m = part == pid
            metrics[f"tokens/{name[:-3]}"] = float(m.sum())
            terms[name] = normalized(ce[m].sum(), int(m.sum()), norm.get(name))  # 0 when all segments latent
        return terms

    def _flow_loss(self, batch, t, hidden, norm) -> dict[str, torch.Tensor]:
        """Stage 3: flow matching of the expert on the hidden states of the context positions."""
        cfg, dev = self.cfg, self.device
        actions = torch.as_tensor(batch["action"]).float().to(dev)  # (B, H, A)
        if actions.shape[1:] != (cfg.chunk_size, cfg.action_dim):
            raise LaraUserError(f"actions have shape {tuple(actions.shape[1:])}, model wants ({cfg.chunk_size}, {cfg.action_dim})")
        ctx_mask = self._context_mask(t)
        hidden_ctx = hidden.masked_fill(~ctx_mask[..., None], 0.0)  # padded rows may hold NaN/garbage
        is_pad = torch.as_tensor(batch["action_is_pad"]).to(dev).bool() if "action_is_pad" in batch else None
        state = torch.as_tensor(batch["state"]).float().to(dev) if cfg.expert.use_state else None
        flow_sum = self.expert.loss(actions, self.expert.project_context(hidden_ctx), ctx_mask, state, is_pad)
        return {"flow": normalized(flow_sum, batch[PREPARED]["loss_items"]["flow"], norm.get("flow"))}

    def _visual_loss(self, batch, t, hidden) -> torch.Tensor:
        cfg = self.cfg
        key = "next_image." + cfg.foresight.camera
        if key not in batch:
            raise LaraUserError(f"visual foresight is on (loss weight > 0) but the batch has no {key!r}")
        b = hidden.shape[0]
        slot_hidden = hidden[t["part"] == IMG_NEXT].view(b, cfg.foresight.num_slots, -1)  # (B, N_v, D)
        images = torch.as_tensor(batch[key]).float().to(self.device)  # (B, 3, H, W)
        target = self.foresight.targets(images, self.vlm.model.visual)
        return self.foresight.loss(slot_hidden, target, visual_items(batch))  # samples without a future frame: 0

    @staticmethod
    def _context_mask(t: dict[str, torch.Tensor]) -> torch.Tensor:
        part = t["part"]
        keep = torch.zeros_like(part, dtype=torch.bool)
        for pid in CONTEXT_PARTS:
            keep |= part == pid
        return keep & t["attention_mask"].bool()  # (B, L)

    # ------------------------------------------------------------------ inference
    def _parse_obs(self, obs) -> tuple[torch.Tensor, np.ndarray | None, list[str], bool]:
        """Observation (or batched dict) -> images (B*n_cam, 3, H, W), raw state (B, S), instructions, batched."""
        if isinstance(obs, dict):
            images, state, instr = obs["images"], obs.get("state"), obs["instruction"]
        else:
            images, state, instr = obs.images, getattr(obs, "state", None), obs.instruction
        batched = isinstance(instr, (list, tuple))
        instructions = list(instr) if batched else [instr]
        per_cam = []
        for cam in self.cfg.vision.cameras:
            if cam not in images:
                raise LaraUserError(f"observation lacks camera {cam!r}; has {sorted(images)}")
            arr = np.asarray(images[cam])
            per_cam.append(to_float_images(arr if batched else arr[None], self.cfg.vision.image_size))  # (B, 3, S, S)
        imgs = rearrange(torch.stack(per_cam, 1), "b n c h w -> (b n) c h w")
        st = None if state is None else np.asarray(state, dtype=np.float32).reshape(len(instructions), -1)
        return imgs, st, instructions, batched

    def _check_state(self, state) -> bool:
        """Whether the expert reads the state; raises if it does and `state` (B, S) is missing or mis-sized."""
        if not self.cfg.expert.use_state:
            return False
        if state is None:
            raise LaraUserError("this model reads the robot state (expert.use_state) but the observation has none")
        if state.shape[-1] != self.cfg.state_dim:
            raise LaraUserError(f"state has {state.shape[-1]} dims, the model expects {self.cfg.state_dim}")
        return True

    def _norm_state(self, state: np.ndarray | None, b: int) -> torch.Tensor | None:
        if not self._check_state(state):
            return None
        if self.stats is not None and "state" in self.stats.features:
            state = self.stats.normalize("state", state)
        return torch.as_tensor(state, dtype=torch.float32, device=self.device).view(b, -1)

    def _unnormalize(self, actions: np.ndarray) -> np.ndarray:
        if self.stats is None or "action" not in self.stats.features:
            raise LaraUserError("no action normalization statistics in the policy; call set_normalization(stats)")
        # predictions outside [-1, 1] (flow integration, FAST decoding) are clipped first: as the reference
        out = self.stats.unnormalize("action", self.stats.clip(actions.astype(np.float32)))
        for d in self.stats.features["action"].passthrough_dims:  # gripper: env convention -1 open / +1 close
            out[..., d] = np.where(out[..., d] >= 0, 1.0, -1.0)
        return out.astype(np.float32)

    @torch.no_grad()
    def predict_action_chunk(
        self,
        obs,
        stage: int | None = None,
        num_steps: int | None = None,
        fixed_lengths: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Un-normalized action chunk (H, A) for one Observation, (B, H, A) for a batched dict.
        `stage` picks the inference path (default `inference.stage`), `num_steps` the expert's Euler
        steps; `fixed_lengths=(cot_tokens, action_tokens)` forces the generated lengths of stages 1-2
        (latency benchmarks with random weights). Stage 3 with `inference.cache` (default) is
        `finish_actions(latent_actions(*latent_prefill(x), x), x.batched)` for `x = latent_inputs(obs)`."""
        stage = stage or self.cfg.inference.stage
        if stage == 3 and self.cfg.inference.cache:
            with torch.inference_mode():
                x = self.latent_inputs(obs)
                context, mask = self.latent_prefill(x)
                return self.finish_actions(self.latent_actions(context, mask, x, num_steps), x.batched)
        imgs, state, instructions, batched = self._parse_obs(obs)
        imgs = imgs.to(self.device)
        if stage == 3:
            norm = self._predict_latent(imgs, self._norm_state(state, len(instructions)), instructions, num_steps)
        else:
            if self.fast is None:
                raise LaraUserError("token-based inference (stages 1-2) needs the FAST tokenizer in the checkpoint")
            n_cam = len(self.cfg.vision.cameras)
            norm = np.stack([
                self._predict_tokens(imgs[i * n_cam : (i + 1) * n_cam], instr, stage, fixed_lengths)
                for i, instr in enumerate(instructions)])  # fmt: skip
        actions = self._unnormalize(norm)  # (B, H, A)
        return actions if batched else actions[0]

    def _predict_latent(self, imgs, state, instructions, num_steps) -> np.ndarray:
        """Stage 3 without the prompt cache (`inference.cache false`): the reference of the fast path."""
        seqs = [self.builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in instructions]
        t = {k: v.to(self.device) for k, v in self.builder.collate(seqs, "left").items()}
        hidden = self._hidden(t, imgs)  # (B, L, D)
        mask = self._context_mask(t)
        ctx = self.expert.project_context(hidden.masked_fill(~mask[..., None], 0.0))  # left padding zeroed
        return self._sample(ctx, mask, state, num_steps).float().cpu().numpy()

    # ------------------------------------------------------------------ stage-III fast path, public parts
    def latent_inputs(self, obs) -> ObsOnDevice:
        """Pre-processing: the observation's images (as floats) and raw state on the device, one copy."""
        return transfer(obs, self.cfg.vision.cameras, self.device, self.cfg.vision.image_size)

    def latent_prefill(self, x: ObsOnDevice) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels + vision tower + backbone over the cached stage-III prompt (image, instruction,
        latent slots, `<img_next>` slots) -> projected expert context (B, L, D_e), context mask (B, L)."""
        pv, grid = self._pixels(x.images, self.cfg.vision.image_size)  # (N_patch, C*tp*p*p), (B*n_cam, 3)
        e = self.prompt_cache.get(self, x.instructions, grid)
        img_tokens, deepstack = encode_images(self.vlm.model.visual, pv, grid)  # (B*n_cam*n_tok, D)
        embeds = e.text_embeds.masked_scatter(e.image_mask[..., None], img_tokens.to(e.text_embeds.dtype))
        hidden = self._backbone(embeds, e.positions, e.attention_mask, e.image_mask, deepstack, e.is_latent)
        ctx = self.expert.project_context(hidden.masked_fill(~e.context_mask[..., None], 0.0))  # left padding zeroed
        return ctx, e.context_mask

    def latent_actions(self, context, context_mask, x: ObsOnDevice, num_steps: int | None = None) -> torch.Tensor:
        """The expert's Euler steps on `latent_prefill`'s context -> normalized chunk (B, H, A) on the device."""
        state = x.state if self._check_state(x.state) else None
        affine = self.prompt_cache.entry.affine if self.prompt_cache.entry is not None else {}
        if state is not None and "state" in affine:
            offset, scale = affine["state"]
            state = self.stats.clip((state - offset) / scale)  # as NormalizationStats.normalize
        return self._sample(context, context_mask, state, num_steps)

    def finish_actions(self, norm: torch.Tensor, batched: bool = True) -> np.ndarray:
        """Normalized (B, H, A) on the device -> un-normalized numpy chunk(s), one device-to-host copy
        (as `_unnormalize`: clipped first, gripper dims to the env's -1 / +1)."""
        affine = self.prompt_cache.entry.affine if self.prompt_cache.entry is not None else {}
        if "action" not in affine:
            raise LaraUserError("no action normalization statistics in the policy; call set_normalization(stats)")
        offset, scale = affine["action"]
        out = self.stats.clip(norm.float()) * scale + offset  # (B, H, A)
        for d in self.stats.features["action"].passthrough_dims:
            out[..., d] = torch.where(out[..., d] >= 0, 1.0, -1.0)
        out = out.cpu().numpy()
        return out if batched else out[0]

    def _sample(self, context, context_mask, state, num_steps) -> torch.Tensor:
        """Euler integration: the captured runtime at inference, the module's own loop in training mode."""
        if self.expert.training:
            return self.expert.sample(context, context_mask, state, num_steps)
        inf = self.cfg.inference
        if self._runtime is None or (self._runtime.compile, self._runtime.cuda_graph) != (inf.compile, inf.cuda_graph):
            self._runtime = ExpertRuntime(self.expert, compile=inf.compile, cuda_graph=inf.cuda_graph)
        return self._runtime.sample(context, context_mask, state, num_steps)

    def _step(self, cache, embeds: torch.Tensor, next_pos: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Feed (1, n, D) embeddings at text positions next_pos.. through the cached decoder -> (1, n, D)."""
        n = embeds.shape[1]
        pos = torch.arange(next_pos, next_pos + n, device=self.device).view(1, 1, n).expand(3, 1, n)  # (3, 1, n)
        return run_text(self.vlm, embeds, pos, mask, cache)

    def _feed_img_next(self, cache, next_pos: int) -> torch.Tensor:
        """After a generated CoT: the N_v `<img_next>` slots and `<|act_start|>` in one piece, the slots
        seeing each other as in training (`foresight.attention`) -> hidden states (1, N_v + 1, D)."""
        tok, n_v = self.tokenizer, self.cfg.foresight.num_slots
        ids = torch.tensor([[tok.img_next_id] * n_v + [tok.act_start_id]], device=self.device)  # (1, N_v + 1)
        emb = self.vlm.get_input_embeddings()(ids)
        offsets = self.foresight.offsets(torch.arange(n_v, device=self.device), emb.dtype)  # (N_v, D) or None
        if offsets is not None:
            emb[:, :n_v] += offsets
        mask = None
        if self.cfg.foresight.attention == "bidirectional":
            past = cache.get_seq_length()
            block = torch.zeros(1, past + n_v + 1, dtype=torch.bool, device=self.device)  # (1, K)
            block[:, past : past + n_v] = True
            mask = block_causal_mask(torch.ones_like(block), block, past, self.cfg.backbone.attn_implementation,
                                     self.vlm.dtype)  # fmt: skip
        return self._step(cache, emb, next_pos, mask)

    def _greedy(self, cache, h_last, next_pos, allowed, stop_ids, max_new, exact=False) -> tuple[list[int], int]:
        """Greedy decoding; `allowed` (V_out,) bool over the output vocabulary's columns. With `exact`
        the stop tokens are disallowed and exactly max_new tokens are generated (benchmarks)."""
        emb = self.vlm.get_input_embeddings()
        cols = self.output_vocab.global_ids(self.device)  # (V_out,) global id of each column
        if exact:
            allowed = allowed & ~torch.isin(cols, torch.tensor(sorted(stop_ids), device=cols.device))
        if not bool(allowed.any()):  # argmax over all -inf would emit column 0, a token nobody chose
            raise LaraUserError("the output vocabulary allows no token to generate here; an `observed` vocabulary "
                                "must be seeded with the CoT ids first (seed_output_vocab, done by training)")
        out: list[int] = []
        for i in range(max_new):
            logits = self.output_vocab.logits(h_last, self.vlm.lm_head).masked_fill(~allowed, float("-inf"))
            tok = int(cols[logits.argmax(-1)])  # (1, V_out) -> global id
            out.append(tok)
            self.num_generated_tokens += 1
            if tok in stop_ids or (exact and i == max_new - 1):
                break
            h_last = self._step(cache, emb(torch.tensor([[tok]], device=self.device)), next_pos)[:, -1]
            next_pos += 1
        return out, next_pos

    def _predict_tokens(self, imgs: torch.Tensor, instruction: str, stage: int, fixed=None) -> np.ndarray:
        """Stages 1-2, one sample: (explicit CoT generation | latent prefill), `<img_next>` slots, FAST tokens."""
        tok, cfg = self.tokenizer, self.cfg
        cols = self.output_vocab.global_ids(self.device)  # (V_out,)
        cache = DynamicCache(config=self.vlm.config.text_config)
        latent = stage == 2
        seq = self.builder.build_prompt(instruction, latent=latent, img_next=latent, act_start=latent)
        t = {k: v.to(self.device) for k, v in self.builder.collate([seq]).items()}
        hidden = self._hidden(t, imgs, cache)  # (1, L, D)
        next_pos = int(self._last_pos.max()) + 1  # text positions continue after the prompt's largest M-RoPE index
        h_last = hidden[:, -1]
        self.last_cot_text = ""
        if not latent:
            allowed = (cols < QWEN_SPECIAL_START) | (cols == tok.img_next_id)
            n_cot = fixed[0] if fixed else cfg.inference.max_cot_tokens
            cot, next_pos = self._greedy(cache, h_last, next_pos, allowed, {tok.img_next_id}, n_cot, exact=bool(fixed))
            self.last_cot_text = tok.decode([i for i in cot if i != tok.img_next_id])
            h_last = self._feed_img_next(cache, next_pos)[:, -1]
            next_pos += cfg.foresight.num_slots + 1
        off = tok.action_token_offset
        allowed = ((cols >= off) & (cols < off + tok.num_action_tokens)) | (cols == tok.act_end_id)
        n_act = fixed[1] if fixed else cfg.inference.max_action_tokens
        acts, _ = self._greedy(cache, h_last, next_pos, allowed, {tok.act_end_id}, n_act, exact=bool(fixed))
        fast_ids = [i - tok.action_token_offset for i in acts if tok.is_action_token(i)]
        return self.fast.decode(fast_ids)  # (H, A) normalized

    def select_action(self, obs) -> np.ndarray:
        """Next action (A,) from the queue, refilled with the first n_action_steps of a new chunk."""
        if not self._queue:
            chunk = self.predict_action_chunk(obs)
            if chunk.ndim != 2:
                raise LaraUserError("select_action takes one Observation, not a batch")
            self._queue.extend(chunk[: self.cfg.inference.n_action_steps])
        return self._queue.popleft()

    def reset(self) -> None:
        self._queue.clear()
        self.prompt_cache.clear()  # a new episode may bring a new instruction

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> None:
        from lara.checkpoint import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> "LaraPolicy":
        from lara.checkpoint import load_pretrained

        return load_pretrained(directory, device)
