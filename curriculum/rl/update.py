"""One GRPO update from a batch of finished rollout groups (pure torch; no simulator).

Input: per rollout its reward and its action units (chunks), grouped G rollouts per layout.
1. advantages per group (curriculum.rl.grpo); groups whose rewards are all equal are dropped,
   since their advantages are 0 (they would only add KL gradient and cost), and counted;
2. the old and the reference log-probabilities of every kept unit, once, without gradients. The
   old ones are re-scored here rather than taken from the rollout workers so that the first
   ratio is exactly 1 whatever the workers' arithmetic; the workers' values are compared (a
   mismatch means the sampler and the scorer disagree, which would bias every ratio);
3. `epochs` passes over the units in shuffled minibatches (a private generator: resumable), each
   one AdamW step on the clipped surrogate + kl_weight * KL.

A scorer is anything with `log_prob(units) -> (U,)` (differentiable, current weights),
`ref_log_prob(units) -> (U,)` (frozen starting policy) and `parameters()` (what is trained);
`units` anything with `len()` and `select(index_tensor)`. curriculum.rl.scorers has the two LaRA
scorers (flow expert, FAST tokens); the tests drive a toy one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from curriculum.rl.grpo import clipped_surrogate, group_advantages, unit_weights


@dataclass
class UpdateSettings:
    clip_eps: float = 0.2
    kl_weight: float = 0.0
    epochs: int = 2
    minibatch_units: int = 64
    grad_clip_norm: float = 1.0  # 0 disables clipping
    adv_eps: float = 1e-6


def grpo_update(
    scorer,
    units,
    rewards: torch.Tensor,
    units_per_rollout: list[int],
    optimizer: torch.optim.Optimizer,
    settings: UpdateSettings,
    generator: torch.Generator,
    rollout_log_probs: torch.Tensor | None = None,
) -> dict[str, float]:
    """rewards (N_groups, G), rollouts ordered group-major; units ordered rollout by rollout with
    `units_per_rollout[i]` units for rollout i. Returns the update's metrics."""
    n_groups, g = rewards.shape
    if len(units_per_rollout) != n_groups * g or sum(units_per_rollout) != len(units):
        raise ValueError("units_per_rollout must give one count per rollout and add up to len(units)")
    adv, informative = group_advantages(rewards, settings.adv_eps)
    metrics = {
        "groups": float(n_groups),
        "informative_fraction": float(informative.float().mean()),
        "updated": 0.0,
    }
    starts = torch.tensor([0, *units_per_rollout]).cumsum(0)  # (R + 1,)
    keep_rollouts = [r for r in range(n_groups * g) if informative[r // g]]
    if not keep_rollouts:
        return metrics
    index = torch.cat([torch.arange(starts[r], starts[r + 1]) for r in keep_rollouts])  # (U_kept,)
    kept = units.select(index)
    unit_adv = torch.cat([adv.flatten()[r].repeat(units_per_rollout[r]) for r in keep_rollouts])  # (U_kept,)
    weights = unit_weights([units_per_rollout[r] for r in keep_rollouts])  # (U_kept,), sums to 1

    with torch.no_grad():
        logp_old = _batched(scorer.log_prob, kept, settings.minibatch_units)
        logp_ref = (
            _batched(scorer.ref_log_prob, kept, settings.minibatch_units) if settings.kl_weight > 0 else None
        )
    unit_adv, weights = unit_adv.to(logp_old.device), weights.to(logp_old.device)
    if rollout_log_probs is not None:
        metrics["rollout_logp_gap"] = float(
            (rollout_log_probs[index.to(rollout_log_probs.device)].to(logp_old.device) - logp_old).abs().max()
        )

    params = [p for p in scorer.parameters() if p.requires_grad]
    u = len(kept)
    sums: dict[str, float] = {}
    steps = 0
    for _ in range(settings.epochs):
        order = torch.randperm(u, generator=generator)
        for lo in range(0, u, settings.minibatch_units):
            mb = order[lo : lo + settings.minibatch_units]
            scale = u / len(mb)  # a minibatch's weights sum to ~1, whatever its size
            logp = scorer.log_prob(kept.select(mb))
            terms = clipped_surrogate(
                logp,
                logp_old[mb],
                unit_adv[mb],
                weights[mb] * scale,
                settings.clip_eps,
                None if logp_ref is None else logp_ref[mb],
                settings.kl_weight,
            )
            if not torch.isfinite(terms.loss):
                raise FloatingPointError(
                    f"GRPO loss is {float(terms.loss)}; lower the learning rate or noise"
                )
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(
                params, settings.grad_clip_norm if settings.grad_clip_norm > 0 else math.inf
            )
            optimizer.step()
            steps += 1
            for k, v in (
                ("loss", terms.loss.detach()),
                ("objective", terms.objective),
                ("kl", terms.kl),
                ("clip_fraction", terms.clip_fraction),
                ("ratio_mean", terms.ratio_mean),
                ("grad_norm", norm),
            ):
                sums[k] = sums.get(k, 0.0) + float(v)
    optimizer.zero_grad(set_to_none=True)
    metrics.update({k: v / steps for k, v in sums.items()})
    metrics.update(updated=1.0, optimizer_steps=float(steps), units=float(u))
    return metrics


def _batched(fn, units, size: int) -> torch.Tensor:
    return torch.cat(
        [fn(units.select(torch.arange(lo, min(lo + size, len(units))))) for lo in range(0, len(units), size)]
    )
