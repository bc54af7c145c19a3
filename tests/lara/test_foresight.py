"""Visual foresight: the float32 EMA target (finding 1 of issue 12)."""

import pytest
import torch


def test_ema_tower_moves_in_bfloat16_as_in_float32(tiny_policy):
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


def test_ema_targets_are_float32_for_a_bf16_model(tiny_policy):
    policy = tiny_policy("--backbone.dtype=bfloat16")
    images = torch.rand(2, 3, 64, 64)
    target = policy.foresight.targets(images, policy.vlm.model.visual)  # (B, N_v, D)
    assert target.dtype == torch.float32 and torch.isfinite(target).all()
    assert target.shape == (2, policy.cfg.foresight.num_slots, policy.cfg.backbone.hidden_size)


def test_visual_loss_ignores_samples_without_a_future_frame(make_batch, tiny_policy):
    """A sample whose next frame was clamped to the current one (`next_image_is_pad`) adds nothing
    to the visual L1: changing its next image leaves the loss unchanged; the others' mean is kept."""
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


def _hidden_with_last_slot(policy, t, images, shift: float) -> torch.Tensor:
    with torch.no_grad():
        policy.foresight.slot_embed[-1] += shift
        try:
            return policy.hidden_states(t, images)
        finally:
            policy.foresight.slot_embed[-1] -= shift


@pytest.mark.parametrize("slot_input", ["learned", "recurrent"])
def test_img_next_block_attention_both_ways_and_nothing_before_sees_it(
    slot_input, cot, make_batch, tiny_policy
):
    from lara.sequence import IMG_NEXT

    hidden = {}
    for attention in ("bidirectional", "causal"):
        policy = tiny_policy(f"--foresight.attention={attention}", f"--latent.slot_input={slot_input}").eval()
        batch = make_batch(b=2)
        seqs = [
            policy.builder.build(batch["instruction"][i], list(cot), [True, False, True, False], None)
            for i in range(2)
        ]
        t = policy.builder.collate(seqs, "right")  # rows of different lengths: padding in row 1
        images = policy.camera_images(batch, policy.cfg.vision.cameras)
        base, moved = (_hidden_with_last_slot(policy, t, images, s) for s in (0.0, 1.0))
        block = t["part"] == IMG_NEXT  # (B, L)
        first = block.int().argmax(1)  # (B,) first slot column per row
        for b in range(2):
            before = torch.arange(t["part"].shape[1]) < first[b]
            torch.testing.assert_close(moved[b, before], base[b, before])  # no earlier token sees the block
        rows = torch.arange(2)
        hidden[attention] = (base[rows, first] - moved[rows, first]).abs().max()
    assert hidden["bidirectional"] > 1e-4  # slot 0 sees slot N_v - 1
    assert hidden["causal"] == 0  # slot 0 never sees a later slot


def test_kv_cache_inference_writes_the_block_like_training(cot, make_batch, tiny_policy):
    """Stage-I inference feeds the `<img_next>` block after the generated CoT in one cached piece:
    its hidden states equal those of the training-time forward over the whole sequence."""
    from transformers import DynamicCache

    policy = tiny_policy().eval()
    batch = make_batch(b=1)
    seq = policy.builder.build(
        batch["instruction"][0], list(cot), None, None
    )  # prompt, CoT, <img_next> x N_v
    t = policy.builder.collate([seq], "right")
    images = policy.camera_images(batch, policy.cfg.vision.cameras)
    n_v = policy.cfg.foresight.num_slots
    with torch.no_grad():
        full = policy.hidden_states(t, images)  # (1, L, D)
        cache = DynamicCache(config=policy.vlm.config.text_config)
        prefix = {k: v[:, :-n_v] for k, v in t.items()}
        _, positions = policy.encode(prefix, images, cache)  # (3, 1, L - N_v)
        next_pos = int(positions.max()) + 1
        block = policy.engine.feed_img_next(cache, next_pos)[:, :n_v]  # (1, N_v, D)
    torch.testing.assert_close(block, full[:, -n_v:], atol=1e-4, rtol=1e-4)


def test_reference_foresight_switches_raw_hidden_and_identical_slots(make_batch, tiny_policy):
    """foresight.head none + slot_offsets false: the reference's raw last hidden state against the
    target and N_v identical `<img_next>` inputs; the visual loss is still computed and trains."""
    policy = tiny_policy("--foresight.head=none", "--foresight.slot_offsets=false")
    assert policy.foresight.slot_embed is None and not list(policy.foresight.head.parameters())
    batch = make_batch(b=2)
    prepared, _ = policy.prepare_batch(batch, stage=1)
    t = prepared["lara.prepared"]["tensors"]
    embeds, *_ = policy.embed(t, policy.camera_images(batch, policy.cfg.vision.cameras))
    from lara.sequence import IMG_NEXT

    slots = embeds[0][t["part"][0] == IMG_NEXT]  # (N_v, D)
    assert torch.equal(slots, slots[:1].expand_as(slots))
    policy.set_loss_weights({"cot_ce": 0.0, "action_ce": 0.0, "visual_l1": 1.0})
    loss, metrics = policy(prepared, stage=1)
    loss.backward()
    assert metrics["loss/visual_l1"] > 0
    grad = policy.vlm.model.language_model.norm.weight.grad  # only the L1 on the raw hidden states reaches it
    assert grad is not None and grad.abs().sum() > 0


def test_no_foresight_slots_train_and_infer(tmp_path, cot, make_batch, make_obs, tiny_policy):
    """`--foresight.num_slots 0` (a LaRA without `<img_next>`: issue 16's baseline): no slot in any
    sequence, no foresight head or EMA tower, no visual L1 (no future frame needed); stages I and
    III train, a CoT is closed (and generated up to) `<|act_start|>`, every inference path runs."""
    import numpy as np

    from lara.model import PREPARED
    from lara.modeling_lara import LaraPolicy
    from lara.sequence import IMG_NEXT, LOSS_COT

    policy = tiny_policy("--foresight.num_slots", "0")
    assert policy.foresight.slot_embed is None and policy.foresight.ema_vision is None
    assert not list(policy.foresight.parameters())
    batch = make_batch(2)
    del batch["next_image.agentview"]
    for stage in (1, 3):
        prepared, _ = policy.prepare_batch(batch, stage)
        assert not (prepared[PREPARED]["tensors"]["part"] == IMG_NEXT).any()
        loss, m = policy(prepared, stage)
        loss.backward()
        assert torch.isfinite(loss) and "loss/visual_l1" not in m
        assert m["loss/flow" if stage == 3 else "loss/cot_ce"] > 0
    assert policy.expert.action_in.weight.grad.abs().sum() > 0
    policy.ema_update()  # nothing to update, nothing fails
    seq = policy.builder.build(batch["instruction"][0], list(cot), None, None)
    assert seq.input_ids[-1] == policy.tokenizer.act_start_id and seq.loss_part[-1] == LOSS_COT
    policy.eval()
    cot_ends = policy.output_vocab.global_ids(policy.device)[policy.engine.cot_columns()].tolist()
    assert policy.tokenizer.act_start_id in cot_ends and policy.tokenizer.img_next_id not in cot_ends
    obs = make_obs()
    for stage in (1, 2, 3):
        assert policy.predict_action_chunk(obs, stage=stage).shape == (8, 7)
    policy.save_pretrained(tmp_path / "ck")
    again = LaraPolicy.from_pretrained(tmp_path / "ck")
    again.cfg.inference.cache = False  # the reference prefill, against the cached one
    torch.manual_seed(0)
    cached = policy.predict_action_chunk(obs, stage=3)
    torch.manual_seed(0)
    np.testing.assert_array_equal(again.predict_action_chunk(obs, stage=3), cached)
