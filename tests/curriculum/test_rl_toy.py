"""GRPO end to end on a toy task without a simulator: a tiny flow expert, sampled with the
stochastic Euler sampler, must learn to push its chunk's mean above a threshold that depends on
the layout. Success starts below 40% and must end above 80% within a few seconds."""

import torch

from curriculum.rl.scorers import ExpertScorer, FlowUnits
from curriculum.rl.update import UpdateSettings, grpo_update
from lara.configuration_lara import ExpertConfig
from lara.flow_sampling import sample_with_noise

GROUPS, G, NOISE, STEPS = 8, 8, 0.3, 4


def _toy_expert():
    from lara.action_expert import ActionExpert

    torch.manual_seed(0)
    cfg = ExpertConfig(hidden_size=32, num_layers=2, num_heads=2, use_state=False)
    return ActionExpert(cfg, context_dim=8, action_dim=2, chunk_size=3, state_dim=1)


def _layouts(n, g):
    """n layouts: a context (1 token) whose first feature sets the target threshold."""
    ctx = torch.randn(n, 1, 8, generator=g)
    return ctx, 0.25 + 0.1 * ctx[:, 0, 0].clamp(-1, 1)  # (n, 1, 8), (n,) thresholds


def _rollouts(scorer, n_groups, g):
    ctx, thr = _layouts(n_groups, g)
    hidden = ctx.repeat_interleave(G, 0)  # (n*G, 1, 8): G rollouts per layout
    mask = torch.ones(len(hidden), 1, dtype=torch.bool)
    with torch.no_grad():
        s = sample_with_noise(
            scorer.expert, scorer.expert.project_context(hidden), mask, None, STEPS, NOISE, g
        )
    success = (s.actions.clamp(-1, 1).mean((1, 2)) > thr.repeat_interleave(G)).float()  # (n*G,)
    return FlowUnits(hidden, mask, None, s.path), success.view(n_groups, G), s.log_prob


def _success_rate(scorer, seed):
    _, success, _ = _rollouts(scorer, 64, torch.Generator().manual_seed(seed))
    return float(success.mean())


def test_grpo_raises_toy_success_from_below_40_to_above_80_percent():
    scorer = ExpertScorer(_toy_expert(), NOISE)
    before = _success_rate(scorer, 1000)
    assert before < 0.4
    opt = torch.optim.AdamW(scorer.parameters(), lr=3e-3)
    settings = UpdateSettings(clip_eps=0.2, kl_weight=0.0, epochs=2, minibatch_units=32)
    g, shuffle = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    informative = []
    for _ in range(40):
        units, rewards, logp = _rollouts(scorer, GROUPS, g)
        m = grpo_update(scorer, units, rewards, [1] * (GROUPS * G), opt, settings, shuffle, logp)
        informative.append(m["informative_fraction"])
        if m["updated"]:
            assert m["rollout_logp_gap"] < 1e-3  # sampler and scorer agree on every log-probability
        if _success_rate(scorer, 2000) > 0.85:
            break
    after = _success_rate(scorer, 3000)  # fresh layouts, not the ones trained on
    assert after > 0.8, (before, after)
    assert max(informative) > 0


def test_kl_term_holds_the_policy_near_the_reference():
    def run(kl_weight):
        scorer = ExpertScorer(_toy_expert(), NOISE)
        opt = torch.optim.AdamW(scorer.parameters(), lr=3e-3)
        settings = UpdateSettings(kl_weight=kl_weight, epochs=2, minibatch_units=32)
        g, shuffle = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        for _ in range(6):
            units, rewards, _ = _rollouts(scorer, GROUPS, g)
            m = grpo_update(scorer, units, rewards, [1] * (GROUPS * G), opt, settings, shuffle)
        units, _, _ = _rollouts(scorer, GROUPS, torch.Generator().manual_seed(9))
        with torch.no_grad():
            return float((scorer.log_prob(units) - scorer.ref_log_prob(units)).mean()), m

    free, m_free = run(0.0)
    held, m_held = run(5.0)
    assert m_held["kl"] >= 0 and "kl" in m_free
    assert held < free  # the penalty keeps the sampled chunks' log-ratio to the reference smaller
