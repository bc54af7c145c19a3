"""DiT action expert trained with flow matching (stage III).

Tokens: [state token] + F learned future tokens + H noisy action tokens (linear in, learned
positions), as the reference's GR00T head (F = 32 there); the output reads the last H. Blocks alternate
self-attention over these tokens (even blocks) and cross-attention to the backbone's hidden
states (odd blocks; context = image, instruction, latent and `<img_next>` positions, projected to
the expert width, padding masked). Every block is AdaLN-Zero conditioned on the timestep
(diffusers `Timesteps` + `TimestepEmbedding` -> `AdaLayerNormZero`), attention is diffusers'
`Attention` (SDPA processor), the MLP diffusers' `FeedForward`.

Flow matching (pi0 convention, t=1 is noise): x_t = t * eps + (1 - t) * a, target velocity
u = eps - a, t ~ Beta(alpha, beta) (1.5, 1 by default) scaled into [0.001, 1]; each sample's loss
is the mean over `flow_repeats` (noise, time) draws (4 in the reference), which costs that many
expert passes per sample but no extra backbone pass. Dropout (`expert.dropout`) in attention and
MLP. Inference: Euler from t=1 to t=0 in `num_inference_steps` uniform steps, x <- x - v / N. The
Euler loop is written out (fixed shapes, no Python-side scheduler state) so that it can be captured
by CUDA graphs / torch.compile; it matches diffusers' `FlowMatchEulerDiscreteScheduler.step` on a
uniform grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.normalization import AdaLayerNormZero
from einops import rearrange
from torch import nn

from lara.configuration_lara import ExpertConfig


def token_count(cfg: ExpertConfig, chunk_size: int) -> int:
    """Tokens the expert's self-attention sees: [state] + F future + H action tokens (`order_tokens`)."""
    return int(cfg.use_state) + cfg.num_future_tokens + chunk_size


def order_tokens(
    state: torch.Tensor | None, future: torch.Tensor | None, actions: torch.Tensor
) -> torch.Tensor:
    """The expert's token order, written once (the module, lara.expert_runtime and the latency
    benchmark's FLOP count follow it): [state (B, 1, D)] + future (B, F, D) + actions (B, H, D),
    as the reference's GR00T head; the output reads the last H. Absent parts are None."""
    return torch.cat([t for t in (state, future, actions) if t is not None], dim=1)  # (B, T, D)


class DiTBlock(nn.Module):
    """AdaLN-Zero block: (self- or cross-) attention + MLP, both gated by the timestep embedding.
    The timestep modulation (`modulation`) and the cross-attention keys/values (`context_kv`) are
    computed separately so that a whole Euler integration reuses them."""

    def __init__(self, dim: int, heads: int, ff_mult: int, cross: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross, self.heads = cross, heads
        self.norm1 = AdaLayerNormZero(dim)
        nn.init.zeros_(self.norm1.linear.weight)  # adaLN-Zero: each block starts as the identity
        nn.init.zeros_(self.norm1.linear.bias)
        self.attn = Attention(
            query_dim=dim,
            cross_attention_dim=dim if cross else None,
            heads=heads,
            dim_head=dim // heads,
            bias=True,
            out_bias=True,
            dropout=dropout,
        )
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(
            dim, mult=ff_mult, activation_fn="gelu-approximate", dropout=dropout, final_dropout=True
        )

    def modulation(self, temb: torch.Tensor) -> torch.Tensor:
        """(..., D) timestep embedding -> (..., 6, D): shift/scale/gate for attention and MLP."""
        mod = self.norm1.linear(self.norm1.silu(temb))  # (..., 6D)
        return mod.unflatten(-1, (6, -1))  # (..., 6, D)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Projected context (B, L, D) -> keys, values (B, heads, L, D/heads) (cross blocks only)."""
        if not self.cross:
            return None
        k = rearrange(self.attn.to_k(context), "b l (h d) -> b h l d", h=self.heads)
        v = rearrange(self.attn.to_v(context), "b l (h d) -> b h l d", h=self.heads)
        return k, v

    def forward(self, x: torch.Tensor, mod: torch.Tensor, kv, context_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), mod (B, 6, D), kv from `context_kv`, context_mask (B, L) bool (True = attend)."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unbind(1)  # (B, D) each
        h = self.norm1.norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        if self.cross:
            q = rearrange(self.attn.to_q(h), "b t (h d) -> b h t d", h=self.heads)
            o = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=context_mask[:, None, None, :])
            a = self.attn.to_out[1](
                self.attn.to_out[0](rearrange(o, "b h t d -> b t (h d)"))
            )  # (B, T, D), dropout
        else:
            a = self.attn(h)  # diffusers Attention, SDPA processor
        x = x + gate_msa[:, None] * a
        h = self.norm2(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.ff(h)


class ActionExpert(nn.Module):
    def __init__(
        self, cfg: ExpertConfig, context_dim: int, action_dim: int, chunk_size: int, state_dim: int
    ) -> None:
        super().__init__()
        self.cfg, self.action_dim, self.chunk_size = cfg, action_dim, chunk_size
        d = cfg.hidden_size
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, d)
        self.action_in = nn.Linear(action_dim, d)
        self.pos = nn.Parameter(torch.randn(chunk_size + 1, d) * 0.02)
        self.future = (
            nn.Parameter(torch.randn(cfg.num_future_tokens, d) * 0.02) if cfg.num_future_tokens else None
        )
        self.state_in = nn.Linear(state_dim, d) if cfg.use_state else None
        self.context_proj = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, d))
        self.blocks = nn.ModuleList(
            [
                DiTBlock(d, cfg.num_heads, cfg.ff_mult, cross=(i % 2 == 1), dropout=cfg.dropout)
                for i in range(cfg.num_layers)
            ]
        )
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.out_mod = nn.Linear(d, 2 * d)
        self.action_out = nn.Linear(d, action_dim)
        self.beta = torch.distributions.Beta(cfg.time_beta_alpha, cfg.time_beta_beta)

    def project_context(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone hidden states (B, L, Dc) -> expert width (B, L, D); done once per chunk."""
        return self.context_proj(hidden.to(self.action_in.weight.dtype))

    def prepare(
        self, context: torch.Tensor, t: torch.Tensor, repeats: int = 1
    ) -> tuple[list, list[torch.Tensor], torch.Tensor]:
        """Per-chunk constants: cross-attention K/V per block, AdaLN modulation per block for the
        times t (..., B * repeats), and the output modulation. context: projected (B, L, D); with
        `repeats` > 1 each sample's K/V are projected once and repeated for its draws (adjacent)."""
        dtype = self.action_in.weight.dtype
        temb = self.time_embed(self.time_proj(t.flatten() * 1000.0).to(dtype)).view(
            *t.shape, -1
        )  # (..., B, D)
        kvs = [blk.context_kv(context) for blk in self.blocks]
        if repeats > 1:  # (B, heads, L, d) -> (B * repeats, heads, L, d)
            kvs = [None if kv is None else tuple(x.repeat_interleave(repeats, 0) for x in kv) for kv in kvs]
        mods = [blk.modulation(temb) for blk in self.blocks]  # (..., B, 6, D) each
        out_mod = self.out_mod(F.silu(temb))  # (..., B, 2D)
        return kvs, mods, out_mod

    def velocity(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        state: torch.Tensor | None,
        prepared=None,
        step: int | None = None,
    ) -> torch.Tensor:
        """x (B, H, A) noisy chunk, t (B,) in [0, 1], projected context (B, L, D), mask (B, L) bool
        -> (B, H, A). `prepared` (from `prepare` over all steps' times) and `step` reuse per-chunk
        constants."""
        dtype = self.action_in.weight.dtype
        if prepared is None:
            kvs, mods, out_mod = self.prepare(context, t)
        elif step is None:  # prepared for these times (the training loss)
            kvs, mods, out_mod = prepared
        else:
            kvs, mods_all, out_all = prepared
            mods, out_mod = [m[step] for m in mods_all], out_all[step]
        actions = self.action_in(x.to(dtype)) + self.pos[-self.chunk_size :]  # (B, H, D)
        state_token = future = None
        if self.state_in is not None:
            if state is None:
                raise ValueError(
                    "the expert is configured with a state token (expert.use_state) but got no state"
                )
            # the position before the actions' (pos holds H + 1 rows)
            state_token = (self.state_in(state.to(dtype)) + self.pos[-self.chunk_size - 1])[
                :, None
            ]  # (B, 1, D)
        if self.future is not None:  # learned whole: no position added
            future = self.future.to(dtype).expand(actions.shape[0], -1, -1)  # (B, F, D)
        tokens = order_tokens(state_token, future, actions)  # (B, T, D)
        for block, kv, mod in zip(self.blocks, kvs, mods):
            tokens = block(tokens, mod, kv, context_mask)
        shift, scale = out_mod.chunk(2, dim=-1)  # (B, D) each
        tokens = self.norm_out(tokens) * (1 + scale[:, None]) + shift[:, None]
        return self.action_out(tokens[:, -self.chunk_size :]).float()  # (B, H, A)

    def loss(
        self,
        actions: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        state: torch.Tensor | None,
        is_pad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow-matching squared error on normalized actions (B, H, A), averaged over A and over the
        `flow_repeats` (noise, time) draws, summed over the unpadded steps (B, H); the caller
        divides by the step count (lara.losses)."""
        r = self.cfg.flow_repeats
        if r > 1:  # each sample r times in the batch: (B * r, ...), the repeats of a sample adjacent
            actions, context_mask = (x.repeat_interleave(r, 0) for x in (actions, context_mask))
            state = None if state is None else state.repeat_interleave(r, 0)
            is_pad = None if is_pad is None else is_pad.repeat_interleave(r, 0)
        b = actions.shape[0]
        t = self.beta.sample((b,)).to(actions.device) * 0.999 + 0.001  # (B * r,)
        eps = torch.randn_like(actions)
        x_t = t[:, None, None] * eps + (1 - t[:, None, None]) * actions
        # a sample's context K/V projected once for its r draws (the same rows r times otherwise)
        prepared = self.prepare(context, t, repeats=r)
        v = self.velocity(x_t, t, context, context_mask, state, prepared)
        err = (v - (eps - actions)).pow(2).mean(-1)  # (B, H)
        if is_pad is not None:
            err = err * (~is_pad).float()  # padded steps carry no loss
        return err.sum() / r

    @torch.no_grad()
    def sample(
        self,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        state: torch.Tensor | None,
        num_steps: int | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Euler integration from noise (t=1) to actions (t=0): (B, H, A) normalized actions."""
        n = num_steps or self.cfg.num_inference_steps
        b = context.shape[0]
        x = (
            noise
            if noise is not None
            else torch.randn(b, self.chunk_size, self.action_dim, device=context.device)
        )
        x = x.float()
        times = (1.0 - torch.arange(n, device=context.device, dtype=torch.float32) / n)[:, None].expand(
            n, b
        )  # (N, B)
        prepared = self.prepare(context, times)  # K/V and AdaLN modulation for all steps, once
        for i in range(n):
            x = x - self.velocity(x, times[i], context, context_mask, state, prepared, i) / n
        return x
