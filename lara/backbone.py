"""The Qwen3-VL backbone: construction and the three calls LaRA makes into it.

- `build_backbone(cfg, num_tokens)`: `Qwen3VLForConditionalGeneration` from a local
  `from_pretrained` directory (`cfg.backbone.pretrained_path`) or random init from the preset's
  architecture; embeddings resized (to a multiple of 64) when the LaRA tokens do not fit.
- `encode_images(vlm, pixel_values, grid)`: merged visual tokens (N_tok, D) + deepstack features.
- `rope_positions(vlm, ...)`: Qwen3-VL's 3-D (t, h, w) M-RoPE positions (3, B, L) for a padded batch.
- `run_text(vlm, embeds, ...)`: the decoder over input embeddings (our own embeddings: latent
  slots, `<img_next>` slot offsets, image features already scattered) -> last hidden states.
- `block_causal_mask(valid, block, q_start, ...)`: causal attention except inside one block of
  positions that see each other both ways (the `<img_next>` slots), as a 4-D mask for `run_text`.
The vision tower is called by LaRA directly (not through `Qwen3VLModel.forward`) so that latent
slots can be injected as embeddings and a KV cache reused across passes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from lara.configuration_lara import LaraConfig
from lara.pixels import check_preprocessor
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def qwen_config(cfg: LaraConfig) -> Qwen3VLConfig:
    """The Qwen3VLConfig of a preset's architecture (random-init path)."""
    b, v = cfg.backbone, cfg.vision
    text = dict(
        vocab_size=b.vocab_size,
        hidden_size=b.hidden_size,
        intermediate_size=b.intermediate_size,
        num_hidden_layers=b.num_hidden_layers,
        num_attention_heads=b.num_attention_heads,
        num_key_value_heads=b.num_key_value_heads,
        head_dim=b.head_dim,
        max_position_embeddings=b.max_position_embeddings,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": b.rope_theta,
            "mrope_section": list(b.mrope_section),
            "mrope_interleaved": True,
        },
    )
    vision = dict(
        depth=v.depth,
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_heads=v.num_heads,
        patch_size=v.patch_size,
        spatial_merge_size=v.spatial_merge_size,
        temporal_patch_size=v.temporal_patch_size,
        out_hidden_size=b.hidden_size,
        num_position_embeddings=v.num_position_embeddings,
        deepstack_visual_indexes=list(v.deepstack_visual_indexes),
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=b.tie_word_embeddings)


def build_backbone(
    cfg: LaraConfig, num_tokens: int, qwen_cfg: Qwen3VLConfig | None = None
) -> Qwen3VLForConditionalGeneration:
    """Real weights from `cfg.backbone.pretrained_path`, else random init from `qwen_cfg` or the preset."""
    dtype = DTYPES[cfg.backbone.dtype]
    path = cfg.backbone.pretrained_path
    if path and qwen_cfg is None:
        if not (Path(path) / "config.json").exists():
            raise LaraUserError(
                f"backbone.pretrained_path {path} has no config.json (a local Qwen3-VL directory)"
            )
        _check_preprocessor(cfg, Path(path))  # before the (large) weights load
        vlm = Qwen3VLForConditionalGeneration.from_pretrained(
            path, dtype=dtype, attn_implementation=cfg.backbone.attn_implementation
        )
        got = (vlm.config.text_config.hidden_size, vlm.config.vision_config.patch_size)
        if got != (cfg.backbone.hidden_size, cfg.vision.patch_size):
            raise LaraUserError(
                f"{path}: hidden/patch {got} differ from the preset's ({cfg.backbone.hidden_size}, "
                f"{cfg.vision.patch_size}); use the preset that matches the checkpoint"
            )
    else:
        qc = qwen_cfg or qwen_config(cfg)
        qc._attn_implementation = cfg.backbone.attn_implementation
        qc.text_config._attn_implementation = cfg.backbone.attn_implementation
        qc.vision_config._attn_implementation = cfg.backbone.attn_implementation
        vlm = Qwen3VLForConditionalGeneration(qc).to(dtype)
    if num_tokens > vlm.get_input_embeddings().num_embeddings:
        # real weights: new rows from the old rows' mean/covariance; random init: plain init (fast)
        vlm.resize_token_embeddings(
            num_tokens, pad_to_multiple_of=64, mean_resizing=bool(path and qwen_cfg is None)
        )
        log.info("resized embeddings to %d rows for LaRA's tokens", vlm.get_input_embeddings().num_embeddings)
    if cfg.backbone.freeze_embeddings:
        if not path or qwen_cfg is not None:
            # A frozen random table tied to the LM head bounds the logits by |h| * |row|: with Qwen's
            # init (std 0.02) rows have norm ~0.02 * sqrt(D) and the softmax can never become sharp
            # (CE plateaus near 2 on a memorized sequence). Unit-norm rows (std D^-1/2) remove that cap.
            with torch.no_grad():
                vlm.get_input_embeddings().weight.normal_(0.0, cfg.backbone.hidden_size**-0.5)
        vlm.get_input_embeddings().weight.requires_grad_(False)
        vlm.get_output_embeddings().weight.requires_grad_(False)
    if cfg.backbone.gradient_checkpointing:
        enable_checkpointing(vlm)
    return vlm


def _check_preprocessor(cfg: LaraConfig, path: Path) -> None:
    """The checkpoint's preprocessor_config.json (when present) against vision.*: other normalization or
    patching is an error (pretrained weights would see foreign inputs); a size Qwen would resize is logged."""
    pre = path / "preprocessor_config.json"
    if not pre.is_file():
        log.warning(
            "%s has no preprocessor_config.json: pixel normalization not checked against the checkpoint", path
        )
        return
    v = cfg.vision
    try:
        note = check_preprocessor(
            pre, v.image_size, v.image_mean, v.image_std, v.patch_size, v.spatial_merge_size
        )
    except ValueError as err:
        raise LaraUserError(f"{err}; set vision.* to the checkpoint's values") from err
    if note:
        log.warning(note)


def enable_checkpointing(vlm: Qwen3VLForConditionalGeneration) -> None:
    """Activation (gradient) checkpointing of the decoder and vision blocks (transformers 5.x name)."""
    fn = getattr(vlm, "activation_checkpointing_enable", None) or vlm.gradient_checkpointing_enable
    fn()


def encode_images(vision: torch.nn.Module, pixel_values: torch.Tensor, grid: torch.Tensor):
    """Merged visual tokens (N_tok, D) in sequence order, and the deepstack features (list of (N_tok, D))."""
    dtype = next(vision.parameters()).dtype
    out = vision(pixel_values.to(dtype), grid_thw=grid, return_dict=True)
    return out.pooler_output, list(out.deepstack_features)


def rope_positions(
    vlm: Qwen3VLForConditionalGeneration,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    grid: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """M-RoPE positions (3, B, L); padded positions get 0."""
    pos, _ = vlm.model.get_rope_index(
        input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid, attention_mask=attention_mask
    )
    return pos


def block_causal_mask(
    valid: torch.Tensor, block: torch.Tensor, q_start: int, attn_implementation: str, dtype: torch.dtype
) -> torch.Tensor:
    """4-D mask (B, 1, K - q_start, K) for queries q_start..K-1 over keys 0..K-1: causal, padding
    (`valid` (B, K) False) hidden, and full attention among the `block` (B, K) positions (one block
    per row). Every query also sees itself, so a left-padding row is never fully masked (SDPA would
    return NaN). sdpa takes the boolean mask (True = attend); eager an additive float mask."""
    k = valid.shape[1]
    q = torch.arange(q_start, k, device=valid.device)  # (Q,) absolute query positions
    keys = torch.arange(k, device=valid.device)  # (K,)
    causal = keys[None, :] <= q[:, None]  # (Q, K)
    both = block[:, q_start:, None] & block[:, None, :]  # (B, Q, K): query and key in the block
    allowed = (causal[None] | both) & valid[:, None, :]  # (B, Q, K)
    allowed = allowed | (keys[None, :] == q[:, None])[None]  # the diagonal
    if attn_implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=valid.device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )[:, None]
    return allowed[:, None]  # (B, 1, Q, K)


def run_text(
    vlm: Qwen3VLForConditionalGeneration,
    embeds: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    past_key_values=None,
    visual_pos_masks: torch.Tensor | None = None,
    deepstack: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Decoder over (B, L, D) embeddings with (3, B, L) positions -> last hidden states (B, L, D)."""
    out = vlm.model.language_model(
        inputs_embeds=embeds,
        position_ids=position_ids,
        attention_mask=attention_mask,
        past_key_values=past_key_values,
        use_cache=past_key_values is not None,
        visual_pos_masks=visual_pos_masks,
        deepstack_visual_embeds=deepstack,
    )
    return out.last_hidden_state
