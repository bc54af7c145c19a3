"""The stochastic flow sampler: its path log-probability against a direct density computation, its
noise-free limit against the expert's own sampler, and the policy-level chunk sampler."""

import math

import numpy as np
import pytest
import torch

from lara.configuration_lara import ExpertConfig
from lara.flow_sampling import FlowSample, path_log_prob, sample_flow_chunk, sample_with_noise, step_times


def _expert(seed=0):
    from lara.action_expert import ActionExpert

    torch.manual_seed(seed)
    cfg = ExpertConfig(hidden_size=32, num_layers=2, num_heads=2, use_state=True)
    expert = ActionExpert(cfg, context_dim=24, action_dim=3, chunk_size=4, state_dim=5)
    with torch.no_grad():  # adaLN-Zero starts as the identity (zero velocity): give it a real field
        for p in expert.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return (
        expert.eval()
    )  # no dropout (expert.dropout 0.2 by default): the velocity field must be deterministic


def _inputs(b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(b, 6, 32, generator=g)
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[0, :2] = False  # left padding on one row
    return ctx, mask, torch.randn(b, 5, generator=g)


def test_path_log_prob_equals_a_direct_gaussian_density():
    expert, (ctx, mask, state) = _expert(), _inputs()
    n, sigma = 3, 0.2
    s = sample_with_noise(expert, ctx, mask, state, n, sigma, torch.Generator().manual_seed(5))
    assert s.path.shape == (3, n + 1, 4, 3) and torch.equal(s.actions, s.path[:, -1])
    # the density written out step by step with torch.distributions, one velocity call per step
    direct = torch.zeros(3)
    with torch.no_grad():
        for k, t in enumerate(step_times(n)):
            x = s.path[:, k]
            mean = x - expert.velocity(x, t.expand(3), ctx, mask, state) / n
            direct += torch.distributions.Normal(mean, sigma).log_prob(s.path[:, k + 1]).sum((1, 2))
    assert torch.allclose(s.log_prob, direct, atol=1e-4)
    rescored = path_log_prob(expert, ctx, mask, state, s.path, sigma)  # batched over steps, with gradients
    assert torch.allclose(rescored, direct, atol=1e-4)
    assert rescored.requires_grad
    rescored.sum().backward()
    assert expert.action_out.weight.grad.abs().sum() > 0
    # a different path is less likely than its own sample would say: log-probs depend on the path
    other = s.path.clone()
    other[:, 1:] += 0.3
    assert not torch.allclose(path_log_prob(expert, ctx, mask, state, other, sigma), direct, atol=1e-2)


def test_one_step_sampler_matches_its_closed_form_marginal():
    # N = 1: x_1 = x_0 - v(x_0, 1) + sigma eps, so given x_0 the density is N(x_0 - v, sigma^2) per dim.
    expert, (ctx, mask, state) = _expert(), _inputs(b=1)
    sigma = 0.5
    s = sample_with_noise(expert, ctx, mask, state, 1, sigma, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu = s.path[:, 0] - expert.velocity(s.path[:, 0], torch.ones(1), ctx, mask, state)
    z = ((s.path[:, 1] - mu) / sigma).flatten()
    closed = float(-0.5 * (z**2).sum() - z.numel() * (math.log(sigma) + 0.5 * math.log(2 * math.pi)))
    assert float(s.log_prob[0]) == pytest.approx(closed, rel=1e-5)


def test_small_noise_reproduces_the_deterministic_sampler():
    expert, (ctx, mask, state) = _expert(), _inputs()
    g = torch.Generator().manual_seed(3)
    s = sample_with_noise(expert, ctx, mask, state, 4, 1e-6, g)
    x0 = torch.randn((5, 3, 4, 3), generator=torch.Generator().manual_seed(3))[0]
    det = expert.sample(ctx, mask, state, num_steps=4, noise=x0)
    assert torch.allclose(s.actions, det, atol=1e-4)
    with pytest.raises(ValueError, match="noise_scale"):
        sample_with_noise(expert, ctx, mask, state, 4, 0.0)


def test_policy_chunk_sampler_is_seeded_and_rescored_exactly(policy, make_obs):
    from lara.flow_sampling import backbone_context

    o = make_obs(0)
    obs = {
        "images": {k: v[None] for k, v in o.images.items()},
        "state": o.state[None],
        "instruction": [o.instruction],
    }
    a1, s1 = sample_flow_chunk(policy, obs, 0.1, generator=torch.Generator().manual_seed(1))
    a2, s2 = sample_flow_chunk(policy, obs, 0.1, generator=torch.Generator().manual_seed(1))
    a3, _ = sample_flow_chunk(policy, obs, 0.1, generator=torch.Generator().manual_seed(2))
    assert isinstance(s1, FlowSample) and a1.shape == (1, policy.cfg.chunk_size, 7)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, a3)
    assert set(np.unique(a1[..., -1])) <= {-1.0, 1.0}  # the gripper stays binary
    hidden, mask, state = backbone_context(policy, obs)
    ctx = policy.expert.project_context(hidden)
    rescored = path_log_prob(policy.expert, ctx, mask, state, s1.path, 0.1)
    assert torch.allclose(rescored, s1.log_prob, atol=1e-3)
