"""The FAST-token scorer inside one GRPO update: the re-scored old log-probabilities equal the
sampled ones, and the update moves the backbone while the reference copy stays put."""

import torch

from curriculum.rl.scorers import TokenScorer, TokenUnits
from curriculum.rl.update import UpdateSettings, grpo_update
from lara.token_logprobs import sample_tokens


def test_token_scorer_grpo_update_moves_the_policy_not_the_reference():
    from lara_testing import make_obs, tiny_policy

    policy = tiny_policy()
    scorer = TokenScorer(policy, temperature=1.0)
    chunks, logps = [], []
    g = torch.Generator().manual_seed(0)
    for i in range(4):  # 2 groups x 2 rollouts, one chunk each
        o = make_obs(i // 2, size=64)
        imgs, _, _, _ = policy._parse_obs(o)
        s = sample_tokens(policy, imgs, o.instruction, 1.0, g, max_tokens=3)
        chunks.append({"images": dict(o.images), "state": o.state, "instruction": o.instruction, "tokens": s.tokens})
        logps.append(s.log_prob)
    params = [p for p in policy.vlm.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    ref_before = scorer.ref_log_prob(TokenUnits(chunks)).detach()
    opt = torch.optim.AdamW(params, lr=1e-3)
    m = grpo_update(scorer, TokenUnits(chunks), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [1, 1, 1, 1], opt,
                    UpdateSettings(epochs=1, minibatch_units=4, kl_weight=0.1), torch.Generator().manual_seed(1),
                    torch.tensor(logps))  # fmt: skip
    assert m["updated"] == 1.0 and m["informative_fraction"] == 1.0
    assert m["rollout_logp_gap"] < 1e-4  # sampled (cached decoding) vs re-scored (teacher forcing)
    assert abs(m["ratio_mean"] - 1.0) < 1e-5  # first pass: old policy = current
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    assert torch.equal(scorer.ref_log_prob(TokenUnits(chunks)).detach(), ref_before)
