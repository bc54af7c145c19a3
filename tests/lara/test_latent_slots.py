"""Latent slots: continuous thoughts by default (finding 3 of issue 12), PLAN's own slot row (6)."""

import pytest
import torch

from lara_testing import COT, make_batch, tiny_policy
from lara.configuration_lara import load_config
from lara.sequence import LATENT


@pytest.mark.parametrize("preset", ["tiny", "qwen3vl-2b", "qwen3vl-4b"])
def test_every_preset_defaults_to_continuous_thoughts(preset):
    assert load_config(preset).latent.slot_input == "recurrent"


@pytest.mark.parametrize("padding", ["right", "left"])
def test_batched_recurrent_slots_read_the_previous_hidden_state(padding):
    """Rows with latent slots at different columns (and padding) share the passes; the result is
    the fixed point that defines continuous thoughts: feeding every slot the previous position's
    final hidden state in one plain forward gives the same hidden states."""
    policy = tiny_policy("--latent.slot_input=recurrent").eval()
    batch = make_batch(b=2)
    masks = [[True, False, True, False], [False, True, False, True]]
    seqs = [policy.builder.build(batch["instruction"][i], list(COT), masks[i], None) for i in range(2)]
    t = policy.builder.collate(seqs, padding)
    images = policy._camera_images(batch, policy.cfg.vision.cameras)
    is_latent = t["part"] == LATENT  # (B, L)
    assert not torch.equal(is_latent[0], is_latent[1])
    with torch.no_grad():
        hidden = policy._hidden(t, images)  # (B, L, D)
        embeds, pos, img_mask, deepstack = policy._embed(t, images)
        prev = torch.roll(hidden, 1, dims=1)  # (B, L, D): position i reads hidden[i - 1]
        fed = torch.where(is_latent[..., None], prev, embeds)
        from lara.backbone import run_text

        again = run_text(policy.vlm, fed, pos, policy._attention_mask(t), None, img_mask, deepstack)
    valid = t["attention_mask"].bool()
    torch.testing.assert_close(again[valid], hidden[valid], atol=1e-4, rtol=1e-4)
    # and the slots really are recurrent: their input is not the <|latent|> token's embedding
    plain = run_text(policy.vlm, embeds, pos, policy._attention_mask(t), None, img_mask, deepstack)
    assert (plain[valid] - hidden[valid]).abs().max() > 1e-3


def test_recurrent_training_step_has_gradients_through_the_chain():
    policy = tiny_policy("--latent.slot_input=recurrent")
    loss, metrics = policy(make_batch(2), 3)
    loss.backward()
    assert torch.isfinite(loss) and metrics["loss/flow"] > 0
    grads = [p.grad for p in policy.vlm.model.language_model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
