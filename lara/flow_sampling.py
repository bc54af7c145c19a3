"""Stochastic flow sampling with exact log-probabilities (the stage-III policy as an RL policy).

The expert's sampler is a deterministic Euler integration from noise (t=1) to actions (t=0):
x_{k+1} = x_k - v(x_k, t_k) / N. As in Flow-GRPO and ReinFlow, RL makes each step a Gaussian
around that update, x_{k+1} ~ N(x_k - v(x_k, t_k) / N, sigma^2 I), with sigma = `noise_scale` (in
normalized action units, the same for every step and dimension). The chunk is then a Markov
chain whose density is a product of Gaussians, so its log-probability given the starting noise
x_0 is exact:
    log pi(x_1..x_N | x_0) = sum_k sum_{h,a} log N(x_{k+1}; mu_k, sigma^2),  mu_k = x_k - v(x_k, t_k) / N.
x_0 ~ N(0, I) does not depend on the weights, so it cancels in every ratio and is left out.
`noise_scale = 0` is the deterministic sampler (no density; `sample_with_noise` refuses it).

The velocity comes from `ActionExpert.velocity` (its public per-step API), so any change to the
expert's network is picked up here; only the stepping rule is this file's.
`path_log_prob` re-scores a recorded path under the current weights in one batched velocity call
(all N steps stacked), differentiably: the GRPO update needs exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class FlowSample:
    actions: torch.Tensor  # (B, H, A) x_N, normalized, not clipped
    path: torch.Tensor  # (B, N + 1, H, A) x_0 (noise) .. x_N
    log_prob: torch.Tensor  # (B,) log pi(x_1..x_N | x_0)


def step_times(num_steps: int, device=None) -> torch.Tensor:
    """(N,) integration times 1, 1 - 1/N, ..., 1/N (the expert's own uniform grid)."""
    return 1.0 - torch.arange(num_steps, device=device, dtype=torch.float32) / num_steps


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over every dimension but the first: (B, ...) -> (B,)."""
    z = (x - mean) / std
    per_dim = -0.5 * z.pow(2) - math.log(std) - 0.5 * LOG_2PI
    return per_dim.flatten(1).sum(1)


def _check_noise(noise_scale: float) -> None:
    if not noise_scale > 0:
        raise ValueError(
            f"noise_scale must be > 0 for a stochastic sampler with a density, got {noise_scale}"
        )


def sample_with_noise(
    expert,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    state: torch.Tensor | None,
    num_steps: int,
    noise_scale: float,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> FlowSample:
    """Euler steps with Gaussian noise; context (B, L, D) projected, mask (B, L). No gradients.
    `generator`: one for the whole batch, or one per row (B of them: each row's noise then comes
    from its own generator alone, so a rollout's chunk does not depend on the batch it is in)."""
    _check_noise(noise_scale)
    b, dev = context.shape[0], context.device
    draws = _draws(num_steps, b, expert.chunk_size, expert.action_dim, generator)  # (N + 1, B, H, A)
    x = draws[0].to(dev)
    path, logp = [x], torch.zeros(b, device=dev)
    times = step_times(num_steps, dev)
    with torch.no_grad():
        for k in range(num_steps):
            mean = x - expert.velocity(x, times[k].expand(b), context, context_mask, state) / num_steps
            x = mean + noise_scale * draws[k + 1].to(dev)
            logp = logp + gaussian_log_prob(x, mean, noise_scale)
            path.append(x)
    return FlowSample(actions=x, path=torch.stack(path, 1), log_prob=logp)  # path (B, N + 1, H, A)


def _draws(num_steps: int, b: int, horizon: int, action_dim: int, generator) -> torch.Tensor:
    """(N + 1, B, H, A) standard normal draws, on CPU for reproducibility. Per-row generators draw
    (N + 1, H, A) each, the same numbers a batch of one draws from that generator."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn((num_steps + 1, b, horizon, action_dim), generator=generator)
    if len(generator) != b:
        raise ValueError(f"{len(generator)} generators for a batch of {b}")
    rows = [torch.randn((num_steps + 1, horizon, action_dim), generator=g) for g in generator]
    return torch.stack(rows, dim=1)  # (N + 1, B, H, A)


def path_log_prob(
    expert,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    state: torch.Tensor | None,
    path: torch.Tensor,
    noise_scale: float,
) -> torch.Tensor:
    """log pi(path | x_0) (B,) under the expert's current weights, differentiable.
    path (B, N + 1, H, A) as recorded by `sample_with_noise`."""
    _check_noise(noise_scale)
    b, n = path.shape[0], path.shape[1] - 1
    times = step_times(n, path.device).repeat_interleave(b)  # (N * B,) step-major
    x = path[:, :-1].transpose(0, 1).reshape(n * b, *path.shape[2:])  # (N * B, H, A)
    ctx = context.repeat(n, 1, 1)  # (N * B, L, D)
    mask = context_mask.repeat(n, 1)  # (N * B, L)
    st = None if state is None else state.repeat(n, 1)  # (N * B, S)
    mean = x - expert.velocity(x, times, ctx, mask, st) / n  # (N * B, H, A)
    target = path[:, 1:].transpose(0, 1).reshape(n * b, *path.shape[2:])  # (N * B, H, A)
    return gaussian_log_prob(target, mean, noise_scale).view(n, b).sum(0)  # (B,)


# ----------------------------------------------------------------------------- LaraPolicy glue
def backbone_context(policy, obs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The stage-III inference prefill for a batched observation dict (or one Observation):
    hidden states at the context positions (B, L, Dc) with padding zeroed, the mask (B, L) and the
    normalized state (B, S) or None. The policy's own reference prefill (`engine.latent_hidden`);
    the expert's `project_context` is left to the caller, since RL trains it."""
    x = policy.processor.to_device(obs)
    hidden, mask = policy.engine.latent_hidden(x.images, x.instructions)  # (B, L, Dc), (B, L)
    return hidden, mask, policy.processor.expert_state(x.state)


@torch.no_grad()
def sample_flow_chunk(
    policy,
    obs,
    noise_scale: float,
    num_steps: int | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> tuple[np.ndarray, FlowSample]:
    """One stochastic stage-III chunk: un-normalized actions (B, H, A) for the environment, and the
    sample (normalized path and log-probability) for the update; `generator` as in
    `sample_with_noise`."""
    hidden, mask, state = backbone_context(policy, obs)
    ctx = policy.expert.project_context(hidden)
    n = num_steps or policy.cfg.expert.num_inference_steps
    sample = sample_with_noise(policy.expert, ctx, mask, state, n, noise_scale, generator)
    normalized = sample.actions.clamp(-1.0, 1.0).float().cpu().numpy()  # the env sees clipped actions
    return policy.processor.unnormalize(normalized), sample
