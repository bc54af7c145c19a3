"""DiT action expert trained with flow matching (stage III).

Tokens: [state token] + H noisy action tokens (linear in, learned positions). Blocks alternate
self-attention over these tokens (even blocks) and cross-attention to the backbone's hidden
states (odd blocks; context = image, instruction, latent and `<img_next>` positions, projected to
the expert width, padding masked). Every block is AdaLN-Zero conditioned on the timestep
(diffusers `Timesteps` + `TimestepEmbedding` -> `AdaLayerNormZero`), attention is diffusers'
`Attention` (SDPA processor), the MLP diffusers' `FeedForward`.

Flow matching (pi0 convention, t=1 is noise): x_t = t * eps + (1 - t) * a, target velocity
u = eps - a, t ~ Beta(alpha, beta) (1.5, 1 by default) scaled into [0.001, 1]. Inference: Euler
from t=1 to t=0 in `num_inference_steps` uniform steps, x <- x - v / N. The Euler loop is written
out (fixed shapes, no Python-side scheduler state) so that it can be captured by CUDA graphs /
torch.compile; it matches diffusers' `FlowMatchEulerDiscreteScheduler.step` on a uniform grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.normalization import AdaLayerNormZero
from torch import nn

from lara.configuration_lara import ExpertConfig


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, cross: bool) -> None:
        super().__init__()
        self.cross = cross
        self.norm1 = AdaLayerNormZero(dim)
        nn.init.zeros_(self.norm1.linear.weight)  # adaLN-Zero: each block starts as the identity
        nn.init.zeros_(self.norm1.linear.bias)
        self.attn = Attention(query_dim=dim, cross_attention_dim=dim if cross else None, heads=heads,
                              dim_head=dim // heads, bias=True, out_bias=True)  # fmt: skip
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=ff_mult, activation_fn="gelu-approximate")

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, emb=temb)  # h (B, T, D), others (B, D)
        if self.cross:
            a = self.attn(h, encoder_hidden_states=context, attention_mask=context_mask)
        else:
            a = self.attn(h)
        x = x + gate_msa[:, None] * a
        h = self.norm2(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.ff(h)


class ActionExpert(nn.Module):
    def __init__(self, cfg: ExpertConfig, context_dim: int, action_dim: int, chunk_size: int, state_dim: int) -> None:
        super().__init__()
        self.cfg, self.action_dim, self.chunk_size = cfg, action_dim, chunk_size
        d = cfg.hidden_size
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, d)
        self.action_in = nn.Linear(action_dim, d)
        self.pos = nn.Parameter(torch.randn(chunk_size + 1, d) * 0.02)
        self.state_in = nn.Linear(state_dim, d) if cfg.use_state else None
        self.context_proj = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, d))
        self.blocks = nn.ModuleList(
            [DiTBlock(d, cfg.num_heads, cfg.ff_mult, cross=(i % 2 == 1)) for i in range(cfg.num_layers)]
        )
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.out_mod = nn.Linear(d, 2 * d)
        self.action_out = nn.Linear(d, action_dim)
        self.beta = torch.distributions.Beta(cfg.time_beta_alpha, cfg.time_beta_beta)

    def project_context(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone hidden states (B, L, Dc) -> expert width (B, L, D); done once per chunk."""
        return self.context_proj(hidden.to(self.action_in.weight.dtype))

    def velocity(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        state: torch.Tensor | None,
    ) -> torch.Tensor:
        """x (B, H, A) noisy chunk, t (B,) in [0, 1], projected context (B, L, D), mask (B, L) bool -> (B, H, A)."""
        dtype = self.action_in.weight.dtype
        temb = self.time_embed(self.time_proj(t * 1000.0).to(dtype))  # (B, D)
        tokens = self.action_in(x.to(dtype))  # (B, H, D)
        if self.state_in is not None:
            if state is None:
                raise ValueError("the expert is configured with a state token (expert.use_state) but got no state")
            tokens = torch.cat([self.state_in(state.to(dtype))[:, None], tokens], dim=1)  # (B, 1 + H, D)
        tokens = tokens + self.pos[-tokens.shape[1] :]
        attn_mask = context_mask[:, None, :]  # (B, 1, L) bool, True = attend
        for block in self.blocks:
            tokens = block(tokens, temb, context, attn_mask)
        shift, scale = self.out_mod(F.silu(temb)).chunk(2, dim=-1)  # (B, D) each
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
        """Flow-matching MSE on normalized actions (B, H, A); padded steps (B, H) carry no loss."""
        b = actions.shape[0]
        t = self.beta.sample((b,)).to(actions.device) * 0.999 + 0.001  # (B,)
        eps = torch.randn_like(actions)
        x_t = t[:, None, None] * eps + (1 - t[:, None, None]) * actions
        v = self.velocity(x_t, t, context, context_mask, state)
        err = (v - (eps - actions)).pow(2).mean(-1)  # (B, H)
        if is_pad is not None:
            keep = (~is_pad).float()
            return (err * keep).sum() / keep.sum().clamp(min=1.0)
        return err.mean()

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
        x = noise if noise is not None else torch.randn(b, self.chunk_size, self.action_dim, device=context.device)
        x = x.float()
        for i in range(n):
            t = torch.full((b,), 1.0 - i / n, device=context.device)
            x = x - self.velocity(x, t, context, context_mask, state) / n
        return x
