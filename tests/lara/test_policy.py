"""LaraPolicy training on the tiny preset: forward per stage, loss normalization, EMA, latent slots
(inference: test_policy_inference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lara.model import PREPARED
from lara.utils.errors import LaraUserError


# ---------------------------------------------------------------- forward
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_forward_shapes_and_loss_terms(loaded, stage, make_batch):
    loaded.train()
    loss, m = loaded(make_batch(2), stage, latent_probability=0.5)
    assert loss.shape == () and torch.isfinite(loss)
    assert m["loss/visual_l1"] > 0  # a configured loss is computed and visibly nonzero
    if stage in (1, 2):
        assert m["loss/cot_ce"] > 0 and m["loss/action_ce"] > 0 and "loss/flow" not in m
        assert m["tokens/action"] > 0
    else:
        assert m["loss/flow"] > 0 and "loss/cot_ce" not in m and "loss/action_ce" not in m
    assert m["loss/total"] == pytest.approx(float(loss.detach()), rel=1e-5)


def test_latent_probability_extremes(loaded, make_batch):
    loaded.train()
    _, m0 = loaded(make_batch(2), 2, latent_probability=0.0)
    _, m1 = loaded(make_batch(2), 2, latent_probability=1.0)
    assert m0["latent/fraction"] == 0.0 and m0["tokens/cot"] > 20
    assert m1["latent/fraction"] == 1.0 and m1["tokens/cot"] == 0 and m1["loss/cot_ce"] == 0.0
    loaded.set_latent_probability(1.0)  # the curriculum's setter is what forward uses by default
    _, m = loaded(make_batch(2), 2)
    assert m["latent/probability"] == 1.0
    loaded.set_latent_probability(0.0)


def test_missing_foresight_target_and_fast_raise(loaded, make_batch):
    batch = make_batch(2)
    del batch["next_image.agentview"]
    with pytest.raises(LaraUserError, match="next_image"):
        loaded(batch, 1)
    fast, loaded.fast = loaded.fast, None
    try:
        with pytest.raises(LaraUserError, match="FAST"):
            loaded(make_batch(2), 1)
    finally:
        loaded.fast = fast


def _rows(batch: dict, rows: slice) -> dict:
    return {k: v[rows] for k, v in batch.items()}


def test_step_normalized_halves_add_up_to_the_whole_batch(loaded, cot, make_batch):
    """Two micro-batches with different CoT token counts, each dividing its token sums by the step's
    mean count per micro-batch (`loss_norm`), average to the loss of the whole batch; their own
    micro-batch means do not."""
    loaded.eval()
    batch = make_batch(4, seed=3)
    batch["cot"] = [list(cot[: 1 + (i % 2) * 3]) for i in range(4)]  # 1 or 4 segments
    halves = (_rows(batch, slice(0, 1)), _rows(batch, slice(1, 4)))
    with torch.no_grad():
        _, whole = loaded(batch, 1)
        prepared, items = zip(*(loaded.prepare_batch(h, 1) for h in halves))
        norm = {k: (items[0][k] + items[1][k]) / 2 for k in items[0]}
        parts = [loaded(b, 1, loss_norm=norm)[1] for b in prepared]
        means = [loaded(b, 1)[1] for b in prepared]  # each micro-batch's own mean
    assert items[0]["cot_ce"] != items[1]["cot_ce"]
    for term in ("loss/cot_ce", "loss/action_ce"):
        assert (parts[0][term] + parts[1][term]) / 2 == pytest.approx(whole[term], rel=1e-5)
    mean_of_means = (means[0]["loss/cot_ce"] + means[1]["loss/cot_ce"]) / 2
    assert mean_of_means != pytest.approx(whole["loss/cot_ce"], rel=1e-3)


def test_prepare_draws_latents_in_the_order_of_one_big_batch(loaded, make_batch):
    """Stage II latent draws happen in prepare_batch: two halves prepared in order draw what the
    whole batch draws, so accumulation keeps the draws of one big batch."""
    batch = make_batch(4, seed=4)
    torch.manual_seed(0)
    whole, _ = loaded.prepare_batch(batch, 2, latent_probability=0.5)
    torch.manual_seed(0)
    halves = [
        loaded.prepare_batch(_rows(batch, r), 2, latent_probability=0.5)[0]
        for r in (slice(0, 2), slice(2, 4))
    ]
    # (B,) latent slots per row
    latent = [(b[PREPARED]["tensors"]["latent_index"] >= 0).sum(1) for b in (whole, *halves)]
    assert torch.equal(latent[0], torch.cat(latent[1:])) and 0 < int(latent[0].sum()) < 4 * 4


def test_flow_loss_normalization_keeps_the_masked_mean(loaded, make_batch):
    """Stage 3: with padded action steps, flow = its sum over unpadded steps / loss_norm['flow']."""
    loaded.train()
    batch = make_batch(2, seed=6)
    batch["action_is_pad"][0, 5:] = True
    prepared, items = loaded.prepare_batch(batch, 3)
    assert items == {"flow": 2 * 8 - 3, "visual_l1": 2}
    torch.manual_seed(0)
    _, own = loaded(prepared, 3)
    torch.manual_seed(0)
    _, half = loaded(prepared, 3, loss_norm={"flow": 2.0 * items["flow"]})
    assert half["loss/flow"] == pytest.approx(own["loss/flow"] / 2, rel=1e-5)


# ---------------------------------------------------------------- EMA
def test_ema_gets_no_gradient_and_follows_the_momentum_rule(make_batch, tiny_policy):
    policy = tiny_policy()
    loss, _ = policy(make_batch(2), 1)
    loss.backward()
    ema = list(policy.foresight.ema_vision.parameters())
    online = list(policy.vlm.model.visual.parameters())
    assert all(p.grad is None and not p.requires_grad for p in ema)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in online)
    opt = torch.optim.SGD([p for g in policy.parameter_groups(1e-2, 1e-2) for p in g["params"]], lr=1e-2)
    opt.step()
    before = [p.detach().clone() for p in ema]
    tau = policy.cfg.foresight.ema_momentum
    policy.ema_update()
    moved = False
    for e_new, e_old, o in zip(ema, before, online):
        torch.testing.assert_close(e_new, tau * e_old + (1 - tau) * o.detach())
        moved |= not torch.equal(e_new, e_old)
    assert moved
    ids = {id(p) for g in policy.parameter_groups(1e-5, 1e-4) for p in g["params"]}
    assert not ids & {id(p) for p in ema}


def test_ablation_without_ema_uses_the_online_tower(make_batch, tiny_policy):
    policy = tiny_policy("--foresight.use_ema_target=false")
    assert policy.foresight.ema_vision is None
    batch = make_batch(2)
    target = policy.foresight.targets(batch["next_image.agentview"], policy.vlm.model.visual)
    assert target.shape == (2, policy.cfg.foresight.num_slots, policy.cfg.backbone.hidden_size)
    assert not target.requires_grad
    _, m = policy(batch, 1)
    assert m["loss/visual_l1"] > 0
    policy.ema_update()  # a no-op, not an error


def test_parameter_groups_cover_trainable_params(loaded):
    groups = loaded.parameter_groups(1e-5, 1e-4)
    assert [g["lr"] for g in groups] == [1e-5, 1e-4]
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    trainable = {id(p) for p in loaded.parameters() if p.requires_grad}
    assert set(seen) == trainable
    assert {id(p) for p in loaded.expert.parameters()} <= {id(p) for p in groups[1]["params"]}


# ---------------------------------------------------------------- latent slot inputs
@pytest.mark.parametrize("mode", ["learned", "recurrent"])
def test_latent_slot_modes_run_and_train(mode, make_batch, make_obs, tiny_policy):
    policy = tiny_policy(f"--latent.slot_input={mode}")
    loss, m = policy(make_batch(2), 2, latent_probability=1.0)
    loss.backward()
    assert torch.isfinite(loss) and m["latent/fraction"] == 1.0
    if mode == "learned":
        assert policy.latent.table.grad is not None and policy.latent.table.grad.abs().sum() > 0
    policy.eval()
    assert policy.predict_action_chunk(make_obs(), stage=3).shape == (8, 7)
    assert policy.predict_action_chunk(make_obs(), stage=2).shape == (8, 7)


def test_recurrent_slots_read_the_previous_hidden_state(make_obs, tiny_policy):
    """The backbone's hidden states depend on the learned slot table in learned mode only; in
    recurrent mode the slot inputs are the previous positions' hidden states."""
    from lara.pixels import to_float_images

    obs = make_obs()
    imgs = torch.cat([to_float_images(obs.images[c]) for c in ("agentview", "wrist")])  # (2, 3, H, W)
    diffs = {}
    for mode in ("learned", "recurrent"):
        policy = tiny_policy(f"--latent.slot_input={mode}").eval()
        seq = policy.builder.build_prompt(obs.instruction, latent=True, img_next=True, act_start=False)
        t = policy.builder.collate([seq])
        with torch.no_grad():
            a = policy.hidden_states(t, imgs)
            policy.latent.table.add_(1.0)
            b = policy.hidden_states(t, imgs)
        diffs[mode] = float((a - b).abs().max())
    assert diffs["learned"] > 1e-3 and diffs["recurrent"] == 0.0


def test_a_few_steps_on_a_fixed_batch_reduce_each_loss(make_batch, tiny_policy):
    policy = tiny_policy(seed=1)
    batch = make_batch(2, seed=5)
    opt = torch.optim.AdamW([p for g in policy.parameter_groups(3e-3, 3e-3) for p in g["params"]], lr=3e-3)
    for stage, terms in ((1, ("loss/cot_ce", "loss/action_ce", "loss/visual_l1")), (3, ("loss/flow",))):
        history = []
        for _ in range(10):
            torch.manual_seed(0)  # the same flow-matching times/noise each step: a fixed objective
            loss, m = policy(batch, stage)
            opt.zero_grad()
            loss.backward()
            opt.step()
            policy.ema_update()
            history.append(m)
        for term in terms:
            assert history[-1][term] < 0.85 * history[0][term], (
                stage,
                term,
                history[0][term],
                history[-1][term],
            )


def test_gradient_checkpointing_and_lora_keep_training_and_ema_working(make_batch, tiny_policy):
    from peft import LoraConfig, inject_adapter_in_model

    policy = tiny_policy()
    policy.gradient_checkpointing_enable()
    inject_adapter_in_model(LoraConfig(r=4, target_modules=["q_proj", "v_proj", "qkv"]), policy.backbone)
    for name, p in policy.backbone.named_parameters():
        p.requires_grad_("lora_" in name)
    policy.train()
    loss, m = policy(make_batch(2), 1)
    loss.backward()
    lora = [p for n, p in policy.backbone.named_parameters() if "lora_B" in n]
    assert lora and any(p.grad is not None for p in lora)
    policy.ema_update()  # LoRA-wrapped online tower still maps onto the EMA copy by name


def test_stage1_memorizes_one_sample_and_generation_reproduces_it(cot, make_batch, make_obs, tiny_policy):
    """End to end: training sequence and inference prompt agree. After fitting one sample, greedy
    stage-1 inference writes its CoT, stops at `<img_next>` and decodes its action chunk."""
    from lara.pixels import to_float_images

    torch.manual_seed(0)
    policy = tiny_policy()
    obs = make_obs(size=64)
    batch = make_batch(1)
    batch["image.agentview"] = to_float_images(obs.images["agentview"])
    batch["image.wrist"] = to_float_images(obs.images["wrist"])
    batch["instruction"] = [obs.instruction]
    opt = torch.optim.AdamW([p for g in policy.parameter_groups(3e-3, 3e-3) for p in g["params"]], lr=3e-3)
    for _ in range(120):
        loss, m = policy(batch, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m["loss/cot_ce"] < 0.1 and m["loss/action_ce"] < 0.1, m
    policy.eval()
    chunk = policy.predict_action_chunk(obs, stage=1)
    assert policy.engine.last_cot_text == "".join(f"{tag}: {text}\n" for tag, text in cot)
    target = policy.stats.unnormalize("action", batch["action"][0].numpy())
    assert np.abs(chunk[:, :6] - target[:, :6]).max() < 0.15  # FAST quantization error only
    assert (chunk[:, 6] == np.sign(target[:, 6])).all()
