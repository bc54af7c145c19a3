"""Latent slots: continuous thoughts by default (finding 3 of issue 12), PLAN's own slot row (6)."""

import pytest
import torch

from lara.presets import load_config
from lara.sequence import LATENT


@pytest.mark.parametrize("preset", ["tiny", "qwen3vl-2b", "qwen3vl-4b"])
def test_every_preset_defaults_to_continuous_thoughts(preset):
    assert load_config(preset).latent.slot_input == "recurrent"


@pytest.mark.parametrize("padding", ["right", "left"])
def test_batched_recurrent_slots_read_the_previous_hidden_state(padding, cot, make_batch, tiny_policy):
    """Rows with latent slots at different columns (and padding) share the passes; the result is
    the fixed point that defines continuous thoughts: feeding every slot the previous position's
    final hidden state in one plain forward gives the same hidden states."""
    policy = tiny_policy("--latent.slot_input=recurrent").eval()
    batch = make_batch(b=2)
    masks = [[True, False, True, False], [False, True, False, True]]
    seqs = [policy.builder.build(batch["instruction"][i], list(cot), masks[i], None) for i in range(2)]
    t = policy.builder.collate(seqs, padding)
    images = policy.camera_images(batch, policy.cfg.vision.cameras)
    is_latent = t["part"] == LATENT  # (B, L)
    assert not torch.equal(is_latent[0], is_latent[1])
    with torch.no_grad():
        hidden = policy.hidden_states(t, images)  # (B, L, D)
        embeds, pos, img_mask, deepstack = policy.embed(t, images)
        prev = torch.roll(hidden, 1, dims=1)  # (B, L, D): position i reads hidden[i - 1]
        fed = torch.where(is_latent[..., None], prev, embeds)
        from lara.backbone import run_text

        again = run_text(policy.vlm, fed, pos, policy.attention_mask(t), None, img_mask, deepstack)
    valid = t["attention_mask"].bool()
    torch.testing.assert_close(again[valid], hidden[valid], atol=1e-4, rtol=1e-4)
    # and the slots really are recurrent: their input is not the <|latent|> token's embedding
    plain = run_text(policy.vlm, embeds, pos, policy.attention_mask(t), None, img_mask, deepstack)
    assert (plain[valid] - hidden[valid]).abs().max() > 1e-3


def test_recurrent_training_step_has_gradients_through_the_chain(make_batch, tiny_policy):
    policy = tiny_policy("--latent.slot_input=recurrent")
    loss, metrics = policy(make_batch(2), 3)
    loss.backward()
    assert torch.isfinite(loss) and metrics["loss/flow"] > 0
    grads = [p.grad for p in policy.vlm.model.language_model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_tag_order_turns_tags_latent_in_order_whatever_their_position():
    from lara.configuration_lara import LatentConfig
    from lara.latent_cot import select_latent

    cfg = LatentConfig()  # order SUBTASK, OBJECTS, MOVE, GRIPPER
    tags = ["PLAN", "MOVE", "SUBTASK", "GRIPPER", "OBJECTS"]
    assert select_latent(tags, 0.0, cfg) == [False] * 5
    assert select_latent(tags, 0.25, cfg) == [False, False, True, False, False]  # SUBTASK first, never MOVE
    assert select_latent(tags, 0.5, cfg) == [False, False, True, False, True]
    assert select_latent(tags, 0.75, cfg) == [False, True, True, False, True]
    assert (
        select_latent(tags, 1.0, cfg) == [True] * 5
    )  # tags outside the order (PLAN) only in the all-latent stretch
    custom = LatentConfig(order=["MOVE", "SUBTASK", "OBJECTS", "GRIPPER"])
    assert select_latent(tags, 0.25, custom) == [False, True, False, False, False]
    random = LatentConfig(selection="random")
    draws = [select_latent(tags[1:], 0.5, random, torch.Generator().manual_seed(s)) for s in range(20)]
    assert len({tuple(d) for d in draws}) > 2  # per-segment draws, not a fixed order


def test_stage_two_batch_follows_the_tag_order(make_batch, tiny_policy):
    policy = tiny_policy()
    batch, _ = policy.prepare_batch(make_batch(2), stage=2, latent_probability=0.25)
    t = batch["lara.prepared"]["tensors"]
    assert batch["lara.prepared"]["n_latent"] == 2  # SUBTASK of each sample, nothing else
    ids = t["input_ids"][0][t["part"][0] != LATENT].tolist()
    text = policy.tokenizer.decode(ids)
    assert "SUBTASK:" not in text and "OBJECTS:" in text and "MOVE:" in text


def test_the_curriculum_sets_the_policy_selection(tiny_policy):
    from curriculum.lara_adapter import apply_latent_schedule
    from curriculum.presets import load_train_config

    policy = tiny_policy()
    linear = ["--latent.kind", "linear", "--model.latent.selection", "random"]
    apply_latent_schedule(policy, load_train_config(preset="tiny", stage=2, overrides=linear))
    assert policy.cfg.latent.selection == "random"
    order = ["--model.latent.order", "[MOVE,SUBTASK]", "--latent.num_segments", "2"]
    apply_latent_schedule(policy, load_train_config(preset="tiny", stage=2, overrides=order))
    assert (policy.cfg.latent.selection, policy.cfg.latent.order) == ("tag_order", ["MOVE", "SUBTASK"])


def test_plan_has_its_own_slot_row_and_inference_places_it_as_training_does(cot, tiny_policy):
    policy = tiny_policy("--latent.include_plan=true")
    b = policy.builder
    planned = [("PLAN", "grasp bowl; place on plate"), *cot]
    trained = b.build("pick up the bowl", planned, [True] * len(planned), None)
    rows = [r for r in trained.latent_index if r >= 0]
    assert len(set(rows)) == len(planned)  # PLAN no longer shares SUBTASK's row
    assert rows[0] == policy.cfg.latent.row_tags.index("PLAN") and rows[1] == 0
    prompt = b.build_prompt("pick up the bowl", latent=True, img_next=True, act_start=False)
    stage3 = b.build("pick up the bowl", None, None, None, canonical_latent=True)
    assert [r for r in prompt.latent_index if r >= 0] == rows == [r for r in stage3.latent_index if r >= 0]
    assert prompt.input_ids == trained.input_ids  # the all-latent stage-II sequence is the inference prompt
    without = tiny_policy().builder.build_prompt(
        "pick up the bowl", latent=True, img_next=False, act_start=False
    )
    assert [r for r in without.latent_index if r >= 0] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="no latent slot row"):
        b.build("x", [("WHATEVER", "y")], [True], None)


def test_a_checkpoint_config_from_before_issue_12_keeps_its_behaviour(tmp_path):
    """Old config.json files lack the new keys: they load with the values they were trained with
    (causal block, no future tokens, ...), so their weights still fit; new configs round-trip."""
    from lara.configuration_lara import LaraConfig

    old = LaraConfig().to_dict()
    for section, key in (
        ("foresight", "attention"),
        ("expert", "num_future_tokens"),
        ("expert", "dropout"),
        ("expert", "flow_repeats"),
        ("latent", "selection"),
    ):
        del old[section][key]
    cfg = LaraConfig.from_dict(old)
    assert (cfg.foresight.attention, cfg.expert.num_future_tokens, cfg.expert.flow_repeats) == (
        "causal",
        0,
        1,
    )
    assert cfg.latent.selection == "random" and cfg.expert.dropout == 0.0
    new = LaraConfig()
    new.save(tmp_path / "config.json")
    assert LaraConfig.load(tmp_path / "config.json") == new


def test_a_later_stage_keeps_its_checkpoints_slot_inputs(tiny_checkpoint):
    """latent.slot_input has one owner from stage I on: the checkpoint. A stage-II (or III) run that
    asks for other slot inputs is refused with one line (it only warned, and trained the old ones)."""
    from curriculum.lara_adapter import _continued_policy
    from curriculum.presets import load_train_config
    from lara.utils.errors import LaraUserError

    learned = load_train_config(preset="tiny", stage=2, overrides=["--model.latent.slot_input", "learned"])
    with pytest.raises(LaraUserError, match="slot_input is learned but .* trained with recurrent"):
        _continued_policy(learned, None, tiny_checkpoint)
    same = load_train_config(preset="tiny", stage=2)
    assert _continued_policy(same, None, tiny_checkpoint).cfg.latent.slot_input == "recurrent"
