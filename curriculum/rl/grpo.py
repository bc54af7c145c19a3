"""GRPO's arithmetic, pure torch: group advantages, the clipped surrogate and the KL penalty.

Nothing here knows about simulators or models: rewards come in as a (groups, G) tensor and
log-probabilities as flat tensors, one entry per action unit (a chunk of the flow expert, or a
chunk's FAST tokens). Kept apart from the loop so each formula is tested on hand-made numbers.

- Advantage (GRPO, Shao et al. 2024): A_i = (r_i - mean_g r) / (std_g r + eps) inside each group of
  G rollouts from one layout. A group whose rewards are all equal (all succeed or all fail) has
  A = 0 for every member, so it contributes no gradient; it is counted (`informative`), since the
  fraction of informative groups tells whether the task is too easy or too hard for learning.
  The std is the population std (divide by G), as in the GRPO paper's implementation.
- Clipped surrogate (PPO): L = -mean(w * min(rho A, clip(rho, 1 - e, 1 + e) A)), rho = exp(logp -
  logp_old); w weighs each unit (1 / (units of its rollout x rollouts), so each rollout counts once).
- KL to the frozen reference policy: the k3 estimator exp(d) - d - 1 with d = logp_ref - logp
  (Schulman's unbiased, always >= 0 estimator that GRPO uses), on samples of the current policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# exp() of a log-ratio beyond this overflows float32 and means the step went far outside the
# trust region anyway; the clipped objective ignores such ratios, the KL term must not be inf.
MAX_LOG_RATIO = 20.0


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """rewards (N_groups, G) -> advantages (N_groups, G), informative (N_groups,) bool.

    A group is informative when its rewards are not all equal; its members then get zero-mean,
    unit-std advantages (up to eps). Uninformative groups get exactly 0."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (groups, G) with G >= 2, got shape {tuple(rewards.shape)}")
    r = rewards.float()
    mean = r.mean(dim=1, keepdim=True)  # (N, 1)
    std = r.std(dim=1, unbiased=False, keepdim=True)  # (N, 1)
    informative = (r.max(dim=1).values - r.min(dim=1).values) > 0  # (N,)
    adv = (r - mean) / (std + eps)
    return torch.where(informative[:, None], adv, torch.zeros_like(adv)), informative


@dataclass
class SurrogateTerms:
    loss: torch.Tensor  # scalar to minimize: -clipped objective + kl_weight * kl
    objective: torch.Tensor  # weighted clipped surrogate (to maximize)
    kl: torch.Tensor  # weighted k3 KL estimate
    clip_fraction: torch.Tensor  # weighted share of units whose ratio was clipped
    ratio_mean: torch.Tensor


def clipped_surrogate(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    clip_eps: float,
    logp_ref: torch.Tensor | None = None,
    kl_weight: float = 0.0,
) -> SurrogateTerms:
    """All inputs are (U,) over action units. `weights` sum to the share of the batch these units
    carry (1 for a whole batch; minibatches pass their slice of one set of batch weights)."""
    if not (logp.shape == logp_old.shape == advantages.shape == weights.shape):
        raise ValueError("logp, logp_old, advantages and weights must have the same shape")
    if clip_eps <= 0:
        raise ValueError(f"clip_eps must be > 0, got {clip_eps}")
    log_ratio = (logp - logp_old).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    objective = (weights * torch.minimum(unclipped, clipped)).sum()
    was_clipped = ((ratio - 1.0).abs() > clip_eps).float()
    kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if logp_ref is not None:
        kl = (weights * k3_kl(logp, logp_ref)).sum()
    loss = -objective + kl_weight * kl
    total_w = weights.sum().clamp_min(1e-12)
    return SurrogateTerms(
        loss,
        objective.detach(),
        kl.detach(),
        ((weights * was_clipped).sum() / total_w).detach(),
        ((weights * ratio).sum() / total_w).detach(),
    )


def k3_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-unit k3 estimate of KL(pi || pi_ref) from samples of pi: exp(d) - d - 1, d = logp_ref - logp."""
    d = (logp_ref - logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return d.exp() - d - 1.0


def unit_weights(units_per_rollout: list[int]) -> torch.Tensor:
    """(U,) weights: each rollout's units share 1 / n_rollouts equally (GRPO's per-sequence mean)."""
    if not units_per_rollout or min(units_per_rollout) < 1:
        raise ValueError("every rollout needs at least one action unit")
    n = len(units_per_rollout)
    return torch.cat([torch.full((k,), 1.0 / (k * n)) for k in units_per_rollout])
