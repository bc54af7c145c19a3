"""Visual foresight: `<img_next>` hidden states predict the next frame's visual latents.

Target: the next frame (`next_image.<camera>`, resized to `foresight.image_size`) through the
vision tower of an EMA copy of the encoder (no gradients; `ema_update` after each optimizer step:
theta_ema = tau * theta_ema + (1 - tau) * theta), merged tokens (gh, gw, D) average-pooled to
sqrt(N_v) x sqrt(N_v) = N_v tokens. With `use_ema_target: false` (ablation) the target is the
online tower's output, detached. Prediction: a 2-layer MLP head on the hidden states at the N_v
`<img_next>` positions (`foresight.head: none` = the raw hidden states, as the reference). Loss: L1.
`slot_embed` (N_v, D) is added to the `<img_next>` token's input embedding so that each slot has its
own query from the first layer (`foresight.slot_offsets: false` = identical tokens, as the reference).

`foresight.num_slots: 0` is a LaRA without foresight: no `<img_next>` slots, no head, no EMA tower
(the visual loss is never computed).

The EMA tower stays float32 whatever the model dtype (`.to(bfloat16)` moves it between devices
but never changes its dtype): in bfloat16 the update step (1 - tau) * (theta - theta_ema) = 0.001 x a
small difference rounds to nothing (8 mantissa bits), so a bf16 EMA target never moves.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from lara.backbone import encode_images
from lara.configuration_lara import LaraConfig
from lara.pixels import patchify


class Foresight(nn.Module):
    def __init__(self, cfg: LaraConfig, online_vision: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        d, on = cfg.backbone.hidden_size, cfg.foresight.num_slots > 0
        self.slot_embed = (
            nn.Parameter(torch.randn(cfg.foresight.num_slots, d) * 0.02)
            if cfg.foresight.slot_offsets and on
            else None
        )
        self.head = (
            nn.Sequential(
                nn.LayerNorm(d),
                nn.Linear(d, cfg.foresight.head_hidden_mult * d),
                nn.GELU(),
                nn.Linear(cfg.foresight.head_hidden_mult * d, d),
            )
            if cfg.foresight.head == "mlp" and on
            else nn.Identity()
        )  # none: the raw hidden state, as the reference
        # The EMA tower: registered as a submodule (saved, moved with .to), never trained.
        self.ema_vision = (
            copy.deepcopy(online_vision).requires_grad_(False)
            if cfg.foresight.use_ema_target and on
            else None
        )
        if self.ema_vision is not None:
            self.ema_vision.float().eval()  # float32 always (see the module docstring)

    def offsets(self, slot: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """Per-slot input offsets for slot numbers `slot` (any shape -> shape + (D,)), None when off."""
        return None if self.slot_embed is None else self.slot_embed[slot].to(dtype)

    def _apply(self, fn, recurse: bool = True):
        """`.to()` / `.half()` / `.cuda()` on the policy: everything follows `fn` except the EMA
        tower's dtype, which stays float32 (its device still follows)."""
        ema = self.ema_vision
        if ema is None or not recurse:
            return super()._apply(fn, recurse)
        self.ema_vision = None  # hide it from the dtype cast
        try:
            super()._apply(fn, recurse)
        finally:
            self.ema_vision = ema

        def move(t: torch.Tensor) -> torch.Tensor:
            device = fn(torch.empty(0, dtype=torch.float32, device=t.device)).device  # where fn sends tensors
            return t.to(device=device, dtype=torch.float32 if t.is_floating_point() else t.dtype)

        ema._apply(move, recurse)
        return self

    def train(self, mode: bool = True) -> Foresight:
        super().train(mode)
        if self.ema_vision is not None:
            self.ema_vision.eval()
        return self

    @torch.no_grad()
    def targets(self, next_images: torch.Tensor, online_vision: nn.Module) -> torch.Tensor:
        """(B, 3, S, S) next frames -> pooled target latents (B, N_v, D), no gradient."""
        v, f = self.cfg.vision, self.cfg.foresight
        encoder = self.ema_vision if self.ema_vision is not None else online_vision
        pv, grid = patchify(
            next_images,
            f.image_size,
            v.patch_size,
            v.spatial_merge_size,
            v.temporal_patch_size,
            v.image_mean,
            v.image_std,
        )
        tokens, _ = encode_images(
            encoder, pv.to(next_images.device), grid.to(next_images.device)
        )  # (B*gh*gw, D)
        side = f.image_size // (v.patch_size * v.spatial_merge_size)
        grid_tokens = rearrange(tokens, "(b h w) d -> b d h w", b=next_images.shape[0], h=side, w=side)
        s = math.isqrt(f.num_slots)
        pooled = F.adaptive_avg_pool2d(grid_tokens.float(), (s, s))  # (B, D, s, s)
        return rearrange(pooled, "b d h w -> b (h w) d").detach()  # (B, N_v, D)

    def loss(self, slot_hidden: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """L1 between head(slot hidden states) (B, N_v, D) and targets (B, N_v, D): the sum over the
        samples where `keep` (B,) bool (a real future frame) of each one's mean absolute error."""
        head_dtype = next(self.head.parameters(), slot_hidden).dtype  # Identity has no parameters
        pred = self.head(slot_hidden.to(head_dtype))
        per_sample = (pred.float() - target.float()).abs().mean(dim=(1, 2))  # (B,)
        return (per_sample * keep.to(per_sample.device, per_sample.dtype)).sum()

    @torch.no_grad()
    def ema_update(self, online_vision: nn.Module) -> None:
        """theta_ema <- tau * theta_ema + (1 - tau) * theta (no-op when the EMA target is off)."""
        if self.ema_vision is None:
            return
        # match by name; LoRA-wrapped online layers (peft: `.base_layer.`, `lora_*`) map onto the plain copy
        online = {
            n.replace(".base_layer", ""): p for n, p in online_vision.named_parameters() if "lora_" not in n
        }
        ema, src = [], []
        for name, p in self.ema_vision.named_parameters():
            if name not in online:
                raise RuntimeError(f"EMA vision tower has {name!r}, the online tower does not")
            ema.append(p)
            src.append(online[name].detach().to(p.dtype))  # bf16 online weights upcast to the fp32 copy
        torch._foreach_lerp_(ema, src, 1.0 - self.cfg.foresight.ema_momentum)
