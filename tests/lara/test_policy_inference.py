"""LaraPolicy inference on the tiny preset: action chunks, the action queue, observation checks,
checkpoint round trips and batched prefill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lara.modeling_lara import LaraPolicy
from lara.utils.errors import LaraUserError


def test_predict_shapes_queue_and_unnormalization(loaded, make_obs):
    loaded.eval()
    obs = make_obs()
    for stage in (1, 2, 3):
        chunk = loaded.predict_action_chunk(obs, stage=stage)
        assert chunk.shape == (8, 7) and chunk.dtype == np.float32
        assert set(np.unique(chunk[:, -1])) <= {-1.0, 1.0}  # gripper in the env convention
    batched = {
        "images": {k: np.stack([v, v]) for k, v in obs.images.items()},
        "state": np.stack([obs.state, obs.state]),
        "instruction": [obs.instruction] * 2,
    }
    torch.manual_seed(0)
    out = loaded.predict_action_chunk(batched, stage=3)
    assert out.shape == (2, 8, 7)
    calls = []
    real = loaded.predict_action_chunk
    loaded.predict_action_chunk = lambda o, **k: calls.append(1) or real(o, stage=3)
    try:
        loaded.reset()
        acts = [loaded.select_action(obs) for _ in range(10)]
    finally:
        del loaded.predict_action_chunk
    assert all(a.shape == (7,) for a in acts) and len(calls) == 2  # n_action_steps = 8


def test_queue_executes_first_k_then_replans(loaded, monkeypatch):
    """The policy's action queue (the only one: the evaluator and RL rollouts use it): the first
    `execute_steps` actions of each chunk, one timed plan per chunk, reset drops the queue."""
    calls = []

    def chunker(obs, **kwargs):
        calls.append(obs)
        chunk = np.zeros((8, 7), dtype=np.float32)
        chunk[:, 0] = np.arange(8) + 100 * len(calls)  # (H, A): step index tagged with the call
        return chunk

    monkeypatch.setattr(loaded, "predict_action_chunk", chunker)
    try:
        loaded.execute_steps = 3
        loaded.reset()
        assert loaded.needs_observation()  # an empty queue: the next action plans from the frame
        wanted = []
        for _ in range(4):
            wanted.append(loaded.select_action(None)[0])
            wanted.append(loaded.needs_observation())  # the frame after this action is read?
        # 3, then a re-plan; only the frame before a plan is read (the simulator renders no other)
        assert wanted == [100, False, 101, False, 102, True, 200, False]
        assert len(calls) == 2 and len(loaded.chunk_latency_ms) == 2
        loaded.reset()
        assert loaded.chunk_latency_ms == [] and loaded.select_action(None)[0] == 300  # reset drops the queue
        loaded.reset()
        planned = [
            loaded.select_action("o", plan=lambda o: chunker(o) - 1)[0] for _ in range(4)
        ]  # RL's sampler
        assert planned == [399, 400, 401, 499] and calls[-1] == "o"
        loaded.execute_steps = 9
        loaded.reset()
        with pytest.raises(LaraUserError, match="execute_steps"):
            loaded.select_action(None)
    finally:
        loaded.execute_steps = None
        loaded.reset()


def test_stage3_inference_generates_no_tokens(loaded, monkeypatch, make_obs):
    loaded.eval()

    def boom(*a, **k):
        raise AssertionError("token generation during stage-3 inference")

    monkeypatch.setattr(loaded.engine, "greedy", boom)
    handle = loaded.vlm.lm_head.register_forward_hook(lambda *a: boom())
    try:
        before = loaded.engine.num_generated_tokens
        loaded.predict_action_chunk(make_obs(), stage=3)
        assert loaded.engine.num_generated_tokens == before
    finally:
        handle.remove()
    monkeypatch.undo()
    before = loaded.engine.num_generated_tokens
    loaded.predict_action_chunk(make_obs(), stage=1)
    assert loaded.engine.num_generated_tokens > before  # stage 1 does generate


def test_observation_errors(loaded, make_obs):
    obs = make_obs()
    del obs.images["wrist"]
    with pytest.raises(LaraUserError, match="wrist"):
        loaded.predict_action_chunk(obs)
    obs = make_obs()
    obs.state = np.zeros(5, dtype=np.float32)
    with pytest.raises(LaraUserError, match="state"):
        loaded.predict_action_chunk(obs)


# ---------------------------------------------------------------- checkpoints
def test_save_load_identical_predictions(tmp_path, make_batch, make_obs, tiny_policy):
    policy = tiny_policy(seed=3)
    policy(make_batch(2), 1)  # grows the observed output vocabulary
    policy.eval()
    policy.save_pretrained(tmp_path / "ck")
    again = LaraPolicy.from_pretrained(tmp_path / "ck")
    for name, t in policy.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], t, rtol=0, atol=0, msg=name)
    obs = make_obs(seed=4)
    for stage in (1, 2, 3):
        torch.manual_seed(0)
        a = policy.predict_action_chunk(obs, stage=stage)
        torch.manual_seed(0)
        b = again.predict_action_chunk(obs, stage=stage)
        np.testing.assert_array_equal(a, b)
    assert again.engine.last_cot_text == policy.engine.last_cot_text
    files = {p.name for p in (tmp_path / "ck").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "normalization.json",
        "fast_tokenizer.json",
        "tokenizer",
    } <= files
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in (tmp_path / "ck").rglob("*"))
    json.loads((tmp_path / "ck" / "config.json").read_text())


def test_load_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(LaraUserError, match="not a LaRA checkpoint"):
        LaraPolicy.from_pretrained(tmp_path / "nope")


# ---------------------------------------------------------------- overfit
def test_left_padded_batch_matches_single_samples(loaded, make_obs):
    """Batched latent prefill with different instruction lengths (left padding, M-RoPE positions
    over the valid tokens) gives each row the hidden states it gets alone."""
    from lara.pixels import to_float_images

    obs = make_obs()
    imgs = torch.cat([to_float_images(obs.images[c]) for c in ("agentview", "wrist")])  # (2, 3, H, W)
    texts = ["pick it", "put the black bowl in the bottom drawer of the cabinet and close it"]
    seqs = [loaded.builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in texts]
    loaded.eval()
    with torch.no_grad():
        t = loaded.builder.collate(seqs, "left")
        both = loaded.hidden_states(t, torch.cat([imgs, imgs]))  # (2, L, D)
        for i, seq in enumerate(seqs):
            alone = loaded.hidden_states(loaded.builder.collate([seq]), imgs)[0]  # (L_i, D)
            torch.testing.assert_close(both[i, -len(seq) :], alone, atol=2e-4, rtol=1e-4)
