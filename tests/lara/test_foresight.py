"""Visual foresight: the float32 EMA target (finding 1 of issue 12)."""

import torch

from lara_testing import tiny_policy


def test_ema_tower_moves_in_bfloat16_as_in_float32():
    """bf16 model, online tower 5% away from the EMA copy: after N updates the gap closes by
    1 - tau^N (a bf16 EMA rounds each 0.001 step to nothing and closes 0%)."""
    policy = tiny_policy("--backbone.dtype=bfloat16")
    ema = policy.foresight.ema_vision
    assert all(p.dtype == torch.float32 for p in ema.parameters())
    policy.to(torch.bfloat16)  # a later cast of the whole policy must not touch the EMA copy either
    assert all(p.dtype == torch.float32 for p in ema.parameters())
    online = policy.vlm.model.visual
    assert next(online.parameters()).dtype == torch.bfloat16
    start = {n: p.detach().clone() for n, p in ema.named_parameters()}
    with torch.no_grad():
        for p in online.parameters():
            p.mul_(1.05)
    target = {n: p.detach().float() for n, p in online.named_parameters()}
    n, tau = 300, policy.cfg.foresight.ema_momentum
    for _ in range(n):
        policy.ema_update()
    closed, expected = [], 1 - tau**n
    for name, p in ema.named_parameters():
        gap0 = (target[name] - start[name]).abs()
        sel = gap0 > 1e-3 * target[name].abs().clamp(min=1e-6)  # entries that really differ
        if sel.any():
            closed.append((1 - (target[name] - p)[sel].abs() / gap0[sel]).mean())
    frac = float(torch.stack(closed).mean())
    assert abs(frac - expected) < 0.03 * expected, (frac, expected)


def test_ema_targets_are_float32_for_a_bf16_model():
    policy = tiny_policy("--backbone.dtype=bfloat16")
    images = torch.rand(2, 3, 64, 64)
    target = policy.foresight.targets(images, policy.vlm.model.visual)  # (B, N_v, D)
    assert target.dtype == torch.float32 and torch.isfinite(target).all()
    assert target.shape == (2, policy.cfg.foresight.num_slots, policy.cfg.backbone.hidden_size)


def test_visual_loss_ignores_samples_without_a_future_frame():
    """A sample whose next frame was clamped to the current one (`next_image_is_pad`) adds nothing
    to the visual L1: changing its next image leaves the loss unchanged; the others' mean is kept."""
    from lara_testing import make_batch

    policy = tiny_policy().eval()
    batch = make_batch(b=3)
    batch["next_image_is_pad"] = torch.tensor([False, True, False])
    _, m1 = policy(batch, stage=1)
    changed = dict(batch, **{"next_image.agentview": batch["next_image.agentview"].clone()})
    changed["next_image.agentview"][1] = 1.0 - changed["next_image.agentview"][1]
    _, m2 = policy(changed, stage=1)
    assert m1["loss/visual_l1"] == m2["loss/visual_l1"] > 0
    changed["next_image.agentview"][0] = 1.0 - changed["next_image.agentview"][0]  # a kept sample does count
    _, m3 = policy(changed, stage=1)
    assert m3["loss/visual_l1"] != m1["loss/visual_l1"]
    _, items = policy.prepare_batch(batch, stage=3)
    assert items["visual_l1"] == 2
