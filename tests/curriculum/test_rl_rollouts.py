"""Rollout pieces that need no simulator: the per-chunk sampler the workers run (both policy
kinds), the rewards with and without a step cost, and the layout draw."""

import numpy as np
import pytest
import torch

from curriculum.rl.config import RLConfig
from curriculum.rl.layouts import Layout, pick_layouts
from curriculum.rl.loop import _rewards, rollout_seed
from envs.rollouts import RolloutSettings, sample_chunks
from lara.utils.errors import LaraUserError


@pytest.fixture()
def policy(tiny_checkpoint):
    from lara.modeling_lara import LaraPolicy

    return LaraPolicy.from_pretrained(tiny_checkpoint).eval()


@pytest.mark.parametrize("kind", ["flow", "tokens"])
def test_worker_chunk_sampler_records_what_the_update_needs(policy, kind, make_obs):
    policy.cfg.inference.max_action_tokens = 4  # keep the token path short on CPU
    s = RolloutSettings("unused", "libero_object", kind, noise_scale=0.2, temperature=1.0)
    obs = make_obs(0, size=64)
    ((a1, r1),) = sample_chunks(policy, [obs], s, [torch.Generator().manual_seed(3)])
    ((a2, r2),) = sample_chunks(policy, [obs], s, [torch.Generator().manual_seed(3)])
    assert a1.ndim == 2 and a1.shape[1] == 7 and np.array_equal(a1, a2)  # seeded: reproducible
    assert r1["instruction"] == obs.instruction and set(r1["images"]) == {"agentview", "wrist"}
    assert np.isfinite(r1["log_prob"]) and r1["log_prob"] == r2["log_prob"]
    if kind == "flow":
        assert r1["path"].shape == (policy.cfg.expert.num_inference_steps + 1, policy.cfg.chunk_size, 7)
    else:
        assert 1 <= len(r1["tokens"]) <= 4


def test_a_flow_chunk_does_not_depend_on_its_batch(policy, make_obs):
    """The driver plans the chunks of every rollout in flight in one forward (envs.rollout_driver):
    each row's noise comes from its own generator, so a rollout samples what it samples alone."""
    s = RolloutSettings("unused", "libero_object", "flow", noise_scale=0.2)
    obs = [make_obs(i, size=64) for i in (0, 1, 2)]
    batch = sample_chunks(policy, obs, s, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    for i, (actions, record) in enumerate(batch):
        ((alone, alone_record),) = sample_chunks(policy, [obs[i]], s, [torch.Generator().manual_seed(10 + i)])
        np.testing.assert_allclose(actions, alone, atol=1e-5)
        np.testing.assert_allclose(record["path"], alone_record["path"], atol=1e-5)
        assert record["log_prob"] == pytest.approx(alone_record["log_prob"], abs=1e-3)
    assert not np.allclose(batch[0][0], batch[1][0])  # the rows did not share their noise


def test_rewards_group_major_with_optional_step_cost():
    results = [{"success": s, "steps": n} for s, n in [(True, 10), (False, 20), (True, 30), (True, 40)]]
    cfg = RLConfig(policy="p", dataset="d", groups=2, group_size=2)
    assert _rewards(results, cfg).tolist() == [[1.0, 0.0], [1.0, 1.0]]
    cfg = RLConfig(policy="p", dataset="d", groups=2, group_size=2, step_cost=0.01)
    assert _rewards(results, cfg).flatten().tolist() == pytest.approx([0.9, -0.2, 0.7, 0.6])


def test_layout_draw_is_a_pure_function_of_seed_and_iteration():
    layouts = [Layout(task=t % 2, episode=t, state=np.full(3, t, float)) for t in range(6)]
    a = [x.episode for x in pick_layouts(layouts, 4, seed=0, iteration=3)]
    assert a == [x.episode for x in pick_layouts(layouts, 4, seed=0, iteration=3)]
    assert a != [x.episode for x in pick_layouts(layouts, 4, seed=0, iteration=4)] or len(set(a)) < 4
    assert len(set(a)) == 4  # without replacement while there are enough layouts
    assert len(pick_layouts(layouts, 9, seed=0, iteration=0)) == 9
    assert rollout_seed(0, 1, 2, 3) == rollout_seed(0, 1, 2, 3) != rollout_seed(0, 1, 2, 4)


def test_config_refuses_settings_that_break_exact_log_probs():
    from curriculum.config import LoraSettings

    with pytest.raises(LaraUserError, match="dropout"):
        RLConfig(
            policy="p", dataset="d", lora=LoraSettings(enabled=True, dropout=0.05, train_embeddings=False)
        )
    with pytest.raises(LaraUserError, match="noise_scale"):
        RLConfig(policy="p", dataset="d", noise_scale=0.0)
    a, b = RLConfig(policy="p", dataset="d"), RLConfig(policy="p", dataset="d", workers=3, iterations=50)
    assert a.fingerprint() == b.fingerprint()  # operational settings may change on resume
    assert a.fingerprint() != RLConfig(policy="p", dataset="d", lr=2e-5).fingerprint()


def test_tiny_preset_parses_and_flags_override_it():
    from pathlib import Path

    from lara.utils.config_parsing import parse_config

    preset = Path(__file__).resolve().parents[2] / "configs" / "rl" / "tiny.yaml"
    cfg = parse_config(
        RLConfig, ["--config_path", str(preset), "--policy", "p", "--dataset", "d", "--groups", "2"]
    )
    assert cfg.kind == "flow" and cfg.groups == 2 and cfg.group_size == 4 and cfg.noise_scale == 0.1
    with pytest.raises(LaraUserError, match="group_size"):
        parse_config(
            RLConfig, ["--config_path", str(preset), "--policy", "p", "--dataset", "d", "--group_size", "1"]
        )
