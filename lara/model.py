"""LaraModel: Qwen3-VL + `<img_next>` visual foresight + latent CoT + FAST tokens + DiT expert, trained.

The core model: its parts, the trainer's hooks, the backbone plumbing every path shares (pixels,
embeddings, M-RoPE positions, attention masks, the recurrent latent passes), the losses of the
three curriculum stages, and checkpoints. Inference lives elsewhere: `lara.generation` (KV-cache
decoding, the latent prefill, the expert's Euler steps), `lara.processor` (observation in, actions
out) and `lara.modeling_lara.LaraPolicy` (this model plus those two and the action queue).
Over 400 lines on purpose: this is the one nn.Module the trainer, the checkpoints and the
generation engine share, and its batch preparation, forward and three stage losses all read the
same parts (sequence builder, output vocabulary, foresight EMA); split further, those parts would
be passed around by hand. A third of the file is this header and the losses' docstrings.

    model = LaraModel(cfg)                                 # random init, or real weights via
                                                           # cfg.backbone.pretrained_path
    model.train_fast_tokenizer(chunks) -> dict             # (N, H, A) normalized chunks, before stage I;
                                                           # returns round-trip error
    model.seed_output_vocab(cots) -> int                   # `observed` output vocab: every CoT label id,
                                                           # before training
    model.set_normalization(stats)                         # lara.normalization.NormalizationStats (stored in
                                                           # checkpoints)
    model.set_latent_probability(p)                        # stage II curriculum; forward(...,
                                                           # latent_probability=p) overrides
    loss, metrics = model.forward(batch, stage)            # stage 1, 2 or 3; batch = collate_samples(...)
                                                           # (docs/interfaces.md)
    batch, items = model.prepare_batch(batch, stage)       # sequences built, latents drawn, loss items
                                                           # counted
    model.forward(batch, stage, loss_norm={"cot_ce": ...})   # term sums / step-wide counts (lara.losses)
    model.ema_update()                                     # after each optimizer step
    model.parameter_groups(backbone_lr, head_lr)           # AdamW groups: backbone lower LR than heads/expert
    model.set_loss_weights({"cot_ce": 1, "action_ce": 1, "visual_l1": 0.1})  # the trainer's; unset: all 1
    model.backbone ; model.gradient_checkpointing_enable()   # the Qwen3-VL module (LoRA target)
    hidden = model.hidden_states(tensors, images)          # (B, L, D) over a collated sequence batch (probes,
                                                           # RL)
    model.save_pretrained(dir) ; Cls.from_pretrained(dir, device=None)   # safetensors + JSON
                                                                         # (lara.checkpoint)

Metrics: "loss/cot_ce", "loss/action_ce" (stages 1-2; 0.0 when no token of that kind), "loss/flow"
(stage 3), "loss/visual_l1" (when its weight > 0), "loss/total", "tokens/cot", "tokens/action",
"tokens/seq_len", "latent/fraction", "latent/probability".
Losses per stage (metrics carry each term; a configured loss is always computed and logged):
- stage 1: CoT CE (all segments explicit) + action CE (FAST tokens) + visual L1
- stage 2: as stage 1, each CoT segment latent with probability p (no text loss on latent ones)
- stage 3: flow-matching MSE (expert, context = hidden states at image/prompt/latent/`<img_next>`
  positions of a fully latent sequence without action tokens) + visual L1; each term times its weight
With `foresight.num_slots: 0` there are no `<img_next>` slots and no visual L1 in any stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import DynamicCache

from lara.action_expert import ActionExpert
from lara.backbone import (
    block_causal_mask,
    build_backbone,
    enable_checkpointing,
    encode_images,
    rope_positions,
    run_text,
)
from lara.configuration_lara import LaraConfig
from lara.fast_tokenizer import FastActionTokenizer
from lara.foresight import Foresight
from lara.generation_interface import GenerationMethods
from lara.latent_cot import LatentSlots, recurrent_forward, recurrent_forward_uncached, select_latent
from lara.losses import TOKEN_TERMS, count_loss_items, normalized, visual_items
from lara.normalization import NormalizationStats
from lara.output_vocab import OutputVocab
from lara.pixels import patchify
from lara.sequence import IMAGE, IMG_NEXT, LATENT, PROMPT, SequenceBuilder
from lara.tokenizer import LaraTokenizer, build_tokenizer
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
CONTEXT_PARTS = (IMAGE, PROMPT, LATENT, IMG_NEXT)
LOSS_TERMS = ("cot_ce", "action_ce", "visual_l1", "flow")
PREPARED = "lara.prepared"  # batch key of prepare_batch's sequences and loss-item counts


class LaraModel(GenerationMethods, nn.Module):
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
        self.expert = ActionExpert(
            cfg.expert, cfg.backbone.hidden_size, cfg.action_dim, cfg.chunk_size, cfg.state_dim
        ).to(dtype)
        self.fast = fast
        self.stats = stats
        tok = self.tokenizer
        base_ids = [tok.img_next_id, tok.act_end_id] + list(
            range(tok.action_token_offset, tok.action_token_offset + tok.num_action_tokens)
        )
        self.output_vocab = output_vocab or OutputVocab(
            cfg.backbone.output_vocab, self.vlm.lm_head.out_features, base_ids
        )
        self.latent_probability = 0.0
        self.loss_weights = dict.fromkeys(LOSS_TERMS, 1.0)  # the training config's: the trainer sets them

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
            raise LaraUserError(
                f"action statistics have {stats.features['action'].dim} dims, model has {self.cfg.action_dim}"
            )
        self.stats = stats

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
        log.info(
            "output vocabulary seeded from %d CoT segments: %d new ids, %d in all",
            len(segments),
            added,
            len(self.output_vocab.ids),
        )
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

    # ---------------------------------------------------------- backbone plumbing (training and inference)
    def pixel_inputs(self, images: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images (N, 3, H, W) -> Qwen pixel values (N_patch, C*tp*p*p) and grid (N, 3) on the
        device."""
        v = self.cfg.vision
        pv, grid = patchify(
            images, size, v.patch_size, v.spatial_merge_size, v.temporal_patch_size, v.image_mean, v.image_std
        )
        return pv.to(self.device), grid.to(self.device)

    def text_embeds(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings (B, L, D) of everything but the image features: token embeddings,
        `<img_next>` slot offsets, learned latents (fixed per prompt: cached at inference)."""
        embeds = self.vlm.get_input_embeddings()(t["input_ids"])  # (B, L, D)
        if self.foresight.slot_embed is not None:  # None: foresight.slot_offsets false, or no slots
            nxt = t["part"] == IMG_NEXT
            slot = (nxt.long().cumsum(1) - 1).clamp(
                min=0
            ) % self.cfg.foresight.num_slots  # (B, L) slot number
            offsets = self.foresight.offsets(slot, embeds.dtype)  # (B, L, D)
            embeds = embeds + nxt[..., None].to(embeds.dtype) * offsets
        if self.cfg.latent.slot_input == "learned":
            embeds = self.latent.fill(embeds, t["latent_index"])
        return embeds

    def positions(self, t: dict[str, torch.Tensor], grid: torch.Tensor) -> torch.Tensor:
        """M-RoPE positions (3, B, L) of a collated batch whose images have grid (B*n_cam, 3)."""
        return rope_positions(self.vlm, t["input_ids"], t["mm_token_type_ids"], grid, t["attention_mask"])

    def embed(self, t: dict[str, torch.Tensor], images: torch.Tensor):
        """Input embeddings with image features, `<img_next>` slot offsets and learned latents.
        images (B * n_cam, 3, H, W). Returns embeds (B, L, D), positions (3, B, L), image mask, deepstack.
        The image features are scattered in last (image rows hold no offset or latent), so the
        result equals the prompt cache's `text_embeds` with the features scattered in."""
        pv, grid = self.pixel_inputs(images, self.cfg.vision.image_size)  # (N_patch, C*tp*p*p), (B*n_cam, 3)
        img_mask = t["part"] == IMAGE  # (B, L)
        img_tokens, deepstack = encode_images(self.vlm.model.visual, pv, grid)  # (B*n_cam*n_tok, D)
        embeds = self.text_embeds(t)
        embeds = embeds.masked_scatter(img_mask[..., None], img_tokens.to(embeds.dtype))
        return embeds, self.positions(t, grid), img_mask, deepstack

    def attention_mask(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) padding mask (causal `<img_next>` block), or the (B, 1, L, L) block-causal mask
        where the `<img_next>` slots see each other both ways (`foresight.attention`)."""
        if self.cfg.foresight.attention == "causal":
            return t["attention_mask"]
        return block_causal_mask(
            t["attention_mask"].bool(),
            t["part"] == IMG_NEXT,
            0,
            self.cfg.backbone.attn_implementation,
            self.vlm.dtype,
        )

    def encode(
        self, t: dict[str, torch.Tensor], images: torch.Tensor, cache=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (B, L, D) of the backbone over a collated batch and its M-RoPE
        positions (3, B, L) (generation continues after the largest one)."""
        embeds, pos, img_mask, deepstack = self.embed(t, images)
        mask = self.attention_mask(t)
        return self.run_backbone(embeds, pos, mask, img_mask, deepstack, t["part"] == LATENT, cache), pos

    def hidden_states(self, t: dict[str, torch.Tensor], images: torch.Tensor, cache=None) -> torch.Tensor:
        """Last hidden states (B, L, D) of the backbone over a collated batch; images (B * n_cam, 3, H, W)."""
        return self.encode(t, images, cache)[0]

    def run_backbone(self, embeds, pos, mask, img_mask, deepstack, is_latent, cache=None) -> torch.Tensor:
        """Decoder over embeds (B, L, D): one pass, or pass by pass through the latent slots (recurrent)."""
        if self.cfg.latent.slot_input == "learned" or not bool(is_latent.any()):
            return run_text(self.vlm, embeds, pos, mask, cache, img_mask, deepstack)
        vis_cols = torch.nonzero(img_mask)[:, 1]  # (n_vis,) column of each visual token, in feature order
        if cache is None and self.training and self.vlm.model.language_model.gradient_checkpointing:
            # checkpointed decoder layers drop a KV cache: the same recurrence over whole prefixes
            def prefix(x: torch.Tensor) -> torch.Tensor:
                n = x.shape[1]
                sel = vis_cols < n
                vis = bool(sel.any())
                m = mask[:, :, :n, :n] if mask.dim() == 4 else mask[:, :n]
                visual = img_mask[:, :n] if vis else None
                return run_text(
                    self.vlm, x, pos[:, :, :n], m, None, visual, [f[sel] for f in deepstack] if vis else None
                )

            return recurrent_forward_uncached(prefix, embeds, is_latent)
        # recurrent (Coconut): pass by pass over the whole batch with one KV cache
        cache = cache if cache is not None else DynamicCache(config=self.vlm.config.text_config)

        def step(x: torch.Tensor, start: int, end: int) -> torch.Tensor:
            sel = (vis_cols >= start) & (
                vis_cols < end
            )  # this pass's visual tokens, row-major like the features
            vis = bool(sel.any())
            m = mask[:, :, start:end, :end] if mask.dim() == 4 else mask[:, :end]
            return run_text(
                self.vlm,
                x,
                pos[:, :, start:end],
                m,
                cache,
                img_mask[:, start:end] if vis else None,
                [f[sel] for f in deepstack] if vis else None,
            )

        return recurrent_forward(step, embeds, is_latent)

    @staticmethod
    def camera_images(batch: dict, cameras: list[str], prefix: str = "image.") -> torch.Tensor:
        """A training batch's camera tensors -> (B * n_cam, 3, H, W) float, cameras in `cameras` order."""
        missing = [c for c in cameras if prefix + c not in batch]
        if missing:
            raise LaraUserError(
                f"batch lacks {[prefix + c for c in missing]}; the model is configured for {cameras}"
            )
        imgs = torch.stack(
            [torch.as_tensor(batch[prefix + c]) for c in cameras], dim=1
        )  # (B, n_cam, 3, H, W)
        return rearrange(imgs, "b n c h w -> (b n) c h w").float()

    @staticmethod
    def context_mask(t: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) positions the expert attends to: image, prompt, latent and `<img_next>` (not padding)."""
        part = t["part"]
        keep = torch.zeros_like(part, dtype=torch.bool)
        for pid in CONTEXT_PARTS:
            keep |= part == pid
        return keep & t["attention_mask"].bool()  # (B, L)

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
        p = (
            0.0
            if stage == 1
            else (
                1.0
                if stage == 3
                else (self.latent_probability if latent_probability is None else latent_probability)
            )
        )
        if stage in (1, 2) and self.fast is None:
            raise LaraUserError(
                "stages 1-2 need the FAST tokenizer: call policy.train_fast_tokenizer(chunks)"
            )
        if stage == 3 and "action" not in batch:
            raise LaraUserError("stage 3 needs batch['action'] (normalized chunks)")
        seqs, n_latent, n_segments = [], 0, 0
        for i in range(b):
            if stage == 3:
                seqs.append(
                    self.builder.build(batch["instruction"][i], None, None, None, canonical_latent=True)
                )
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
        prepared = {
            "stage": stage,
            "tensors": tensors,
            "latent_probability": p,
            "n_latent": n_latent,
            "n_segments": n_segments,
            "loss_items": items,
        }
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
        hidden = self.hidden_states(t, self.camera_images(batch, cfg.vision.cameras).to(dev))  # (B, L, D)

        metrics: dict[str, float] = {}
        weights = self.loss_weights
        if stage in (1, 2):
            terms = self._token_losses(t, hidden, norm, metrics)
            metrics["latent/fraction"] = prep["n_latent"] / max(prep["n_segments"], 1)
            metrics["latent/probability"] = prep["latent_probability"]
        else:
            terms = self._flow_loss(batch, t, hidden, norm)
        if weights["visual_l1"] > 0 and cfg.foresight.num_slots > 0:  # no slots (num_slots 0): no foresight
            terms["visual_l1"] = normalized(
                self._visual_loss(batch, t, hidden), prep["loss_items"]["visual_l1"], norm.get("visual_l1")
            )
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
            raise LaraUserError(
                f"actions have shape {tuple(actions.shape[1:])}, model wants ({cfg.chunk_size}, "
                f"{cfg.action_dim})"
            )
        ctx_mask = self.context_mask(t)
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
        return self.foresight.loss(
            slot_hidden, target, visual_items(batch)
        )  # samples without a future frame: 0

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> None:
        from lara.checkpoint import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None):
        """A checkpoint folder (or a training run's `final/`) loaded as this class, in eval mode."""
        from lara.checkpoint import load_pretrained

        return load_pretrained(directory, device, cls)
