"""Continuous-thought slots under gradient checkpointing (the Qwen3-VL presets train with it):
transformers drops the KV cache of checkpointed decoder layers, so the recurrence runs over whole
prefixes instead (`lara.latent_cot.recurrent_forward_uncached`); it must be the same function, with
the same gradients, as the cached passes."""

from __future__ import annotations

import torch

from lara.sequence import LATENT


def _hidden_and_grads(policy, t, images):
    policy.zero_grad(set_to_none=True)
    hidden = policy.hidden_states(t, images)  # (B, L, D)
    valid = t["attention_mask"].bool()
    hidden[valid].square().mean().backward()
    grads = {
        n: p.grad.clone() for n, p in policy.vlm.model.language_model.named_parameters() if p.grad is not None
    }
    return hidden.detach(), grads


def test_checkpointed_recurrence_equals_the_cached_one(cot, make_batch, tiny_policy):
    policy = tiny_policy("--latent.slot_input=recurrent").train()
    batch = make_batch(b=2)
    masks = [[True, False, True, False], [False, True, False, True]]  # latent columns differ per row
    seqs = [policy.builder.build(batch["instruction"][i], list(cot), masks[i], None) for i in range(2)]
    t = policy.builder.collate(seqs, "right")
    images = policy.camera_images(batch, policy.cfg.vision.cameras)
    assert (t["part"] == LATENT).any()
    cached, cached_grads = _hidden_and_grads(policy, t, images)
    policy.gradient_checkpointing_enable()
    assert policy.vlm.model.language_model.gradient_checkpointing
    checkpointed, checkpointed_grads = _hidden_and_grads(policy, t, images)
    valid = t["attention_mask"].bool()
    torch.testing.assert_close(checkpointed[valid], cached[valid], atol=1e-5, rtol=1e-5)
    assert cached_grads.keys() == checkpointed_grads.keys() and cached_grads
    for name, grad in cached_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
