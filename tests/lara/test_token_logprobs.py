"""Sampled FAST tokens: their recorded log-probabilities against the model's own logits, and the
teacher-forced re-scoring the GRPO update uses."""

import pytest
import torch

from lara.sequence import ACTION
from lara.token_logprobs import decode_actions, sample_tokens, token_log_probs


@pytest.fixture()
def images_of(policy, make_obs):
    """Seed -> the policy's parsed images of a random observation."""

    def images(seed: int = 0):
        return policy.processor.to_device(make_obs(seed)).images

    return images


def test_sampled_token_log_probs_match_the_models_logits(policy, images_of):
    imgs, instr = images_of(), "pick up the black bowl and place it on the plate"
    s = sample_tokens(
        policy, imgs, instr, temperature=1.5, generator=torch.Generator().manual_seed(0), max_tokens=6
    )
    assert 1 <= len(s.tokens) <= 6 and s.log_probs.shape == (len(s.tokens),)
    # step by step from the model's logits: full prefix through the backbone each time, no cache
    allowed = policy.engine.action_columns()
    cols = policy.output_vocab.global_ids(policy.device)
    with torch.no_grad():
        for i, tok in enumerate(s.tokens):
            seq = policy.builder.build_prompt(instr, latent=True, img_next=True, act_start=True)
            seq.add(s.tokens[:i], ACTION)
            t = policy.builder.collate([seq])
            hidden = policy.hidden_states(t, imgs)[:, -1]  # (1, D)
            logits = policy.output_vocab.logits(hidden, policy.vlm.lm_head)[0].float()
            logits = logits.masked_fill(~allowed, float("-inf")) / 1.5
            expected = torch.log_softmax(logits, -1)[int((cols == tok).nonzero())]
            assert float(s.log_probs[i]) == pytest.approx(float(expected), abs=1e-4)
            assert bool(allowed[int((cols == tok).nonzero())])  # only FAST tokens or <act_end>
    rescored = token_log_probs(policy, imgs, instr, s.tokens, 1.5)
    assert torch.allclose(rescored, s.log_probs, atol=1e-4)
    assert s.log_prob == pytest.approx(float(s.log_probs.sum()))


def test_teacher_forced_log_probs_carry_gradients_and_temperature(policy, images_of):
    imgs, instr = images_of(1), "open the top drawer of the cabinet"
    s = sample_tokens(
        policy, imgs, instr, temperature=1.0, generator=torch.Generator().manual_seed(1), max_tokens=4
    )
    lp = token_log_probs(policy, imgs, instr, s.tokens, 1.0)
    lp.sum().backward()
    # the tied embedding / LM head table is frozen by default: the decoder is what RL trains here
    grads = [p.grad for n, p in policy.vlm.named_parameters() if "layers.1." in n and p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    hot = token_log_probs(policy, imgs, instr, s.tokens, 5.0).detach()
    assert not torch.allclose(hot, lp.detach())  # a different temperature is a different policy
    assert decode_actions(policy, s.tokens).shape == (policy.cfg.chunk_size, 7)
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(policy, imgs, instr, temperature=0.0)
