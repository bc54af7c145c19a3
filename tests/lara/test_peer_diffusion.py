"""The peer arm (lara.peer): lerobot's own Diffusion Policy imports beside transformers 5 without
torchvision, trains on a LeRobot dataset as `lara collect` writes it (tiny: 32 px, a 2-level U-Net, a
few steps), resumes, and acts through the evaluator's policy API: valid 7-d actions in the data's
range, a new chunk every n_action_steps."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from envs.protocol import Observation
from lara.utils.errors import LaraUserError

TINY = {"batch_size": 4, "down_dims": (16, 32), "num_inference_steps": 4, "save_every": 2, "progress": False}


def _episode(index: int, T: int = 30, size: int = 32):
    """A LIBERO-like episode as `lara collect` records it: two cameras, 8-d state, 7-d action."""
    from data_pipeline.episode import Episode

    rng = np.random.default_rng(index)
    action = rng.uniform(-1, 1, (T, 7)).astype(np.float32)
    action[:, -1] = np.where(np.arange(T) < T // 2, -1.0, 1.0)  # gripper: open, then closed
    state = rng.normal(size=(T, 8)).astype(np.float32)
    images = {cam: rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8) for cam in ("agentview", "wrist")}
    return Episode(
        images=images,
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction=f"pick up object {index % 2}",
        task_index=index % 2,
        task_name=f"task_{index % 2}",
        episode_index=index,
    )


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from data_pipeline.lerobot_io import write_lerobot_dataset

    root = tmp_path_factory.mktemp("peer") / "data"
    episodes = [_episode(i) for i in range(3)]
    return write_lerobot_dataset(root, episodes), np.concatenate([ep.action for ep in episodes])


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    from lara.peer.train import PeerTrainConfig, train

    out = tmp_path_factory.mktemp("peer") / "run"
    meta = train(PeerTrainConfig(dataset=tiny_dataset[0], out=out, steps=3, seed=0, **TINY))
    return out, meta


def _obs(rng, size: int = 64) -> Observation:
    images = {cam: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for cam in ("agentview", "wrist")}
    return Observation(
        images=images, state=rng.normal(size=8).astype(np.float32), instruction="x", sim_state=None
    )


def test_lerobot_diffusion_imports_without_leaving_stand_ins():
    from lara.peer.lerobot_diffusion import DiffusionPolicy

    assert DiffusionPolicy.__module__ == "lerobot.policies.diffusion.modeling_diffusion"  # lerobot's own
    assert "torchvision" not in sys.modules and "serial" not in sys.modules
    from transformers.utils import is_torchvision_available

    assert not is_torchvision_available()


def test_training_writes_a_lerobot_checkpoint_and_a_loss_log(trained):
    out, meta = trained
    assert meta["step"] == 3 and meta["cameras"] == {
        "agentview": "observation.images.image",
        "wrist": "observation.images.wrist_image",
    }
    assert meta["image_hw"] == [32, 32]
    files = {p.name for p in (out / "checkpoint").iterdir()}
    assert {"config.json", "model.safetensors", "policy_preprocessor.json", "training_state.pt"} <= files
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["type"] == "diffusion" and config["crop_shape"] == [28, 28]  # 0.9 of 32 px
    losses = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert losses and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in losses)


def test_training_resumes_and_refuses_a_changed_setting(tiny_dataset, tmp_path):
    from lara.peer.train import PeerTrainConfig, train

    cfg = dict(dataset=tiny_dataset[0], out=tmp_path / "run", seed=1, **TINY)
    assert train(PeerTrainConfig(steps=2, **cfg))["step"] == 2
    assert train(PeerTrainConfig(steps=4, **cfg))["step"] == 4  # continued from step 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # log_every=10: one line at each run's last step, none repeated
    with pytest.raises(LaraUserError, match="crop_ratio"):
        train(PeerTrainConfig(steps=6, **{**cfg, "crop_ratio": 0.8}))


def test_column_queries_give_lerobots_items(tiny_dataset):
    """lara.peer.dataset reads the delta-timestamp frames column by column: the same items as lerobot."""
    import torch

    from data_pipeline.lerobot_compat import LeRobotDataset
    from lara.peer.dataset import ColumnQueryDataset

    deltas = {"action": [t / 20 for t in range(-1, 15)], "observation.state": [-0.05, 0.0]}
    deltas |= {key: [-0.05, 0.0] for key in ("observation.images.image", "observation.images.wrist_image")}
    ours, theirs = (
        cls("local/data", root=tiny_dataset[0], delta_timestamps=deltas)
        for cls in (ColumnQueryDataset, LeRobotDataset)
    )
    for index in (0, 17, 29, 30, 89):  # episode starts and ends: padded frames on both sides
        a, b = ours[index], theirs[index]
        assert a.keys() == b.keys() and a["action"].shape == (16, 7)
        for key in a:
            if torch.is_tensor(a[key]):
                assert torch.equal(a[key], b[key]), (index, key)


def test_adapter_returns_7d_actions_and_replans_every_n_action_steps(trained, tiny_dataset):
    from lara.peer.policy import PeerPolicyBuilder

    policy = PeerPolicyBuilder(str(trained[0]))(env=None)
    assert policy.n_action_steps == 8  # lerobot's default
    actions = tiny_dataset[1]
    rng = np.random.default_rng(0)
    for episode in range(2):
        policy.reset()
        plans = []
        for _ in range(18):
            plans.append(policy.plans_next())
            action = policy.select_action(_obs(rng))  # 64 px frames: resized to the 32 px trained on
            assert action.shape == (7,) and action.dtype == np.float32 and np.isfinite(action).all()
            # MIN_MAX actions are clipped to [-1, 1] before unnormalizing: inside the data's range
            assert (action >= actions.min(0) - 1e-4).all() and (action <= actions.max(0) + 1e-4).all()
        assert [t for t, p in enumerate(plans) if p] == [0, 8, 16], episode
        assert len(policy.chunk_latency_ms) == 3


def test_adapter_execute_steps_and_seeded_noise(trained):
    from lara.peer.policy import PeerPolicyBuilder

    first, second = (PeerPolicyBuilder(str(trained[0]), seed=3, execute_steps=4)(None) for _ in range(2))
    rng = np.random.default_rng(1)
    observations = [_obs(rng) for _ in range(9)]
    plans = []
    for obs in observations:
        plans.append(first.plans_next())
        np.testing.assert_array_equal(first.select_action(obs), second.select_action(obs))
    assert [t for t, p in enumerate(plans) if p] == [0, 4, 8]
    with pytest.raises(LaraUserError, match="execute_steps"):
        PeerPolicyBuilder(str(trained[0]), execute_steps=16)(None)  # more than horizon - n_obs_steps + 1


def test_builder_names_a_missing_checkpoint_and_describes_a_present_one(tmp_path, trained):
    from lara.peer.policy import PeerPolicyBuilder

    described = PeerPolicyBuilder(str(trained[0]), execute_steps=4).describe()["inference"]
    assert "DDPM with 4 denoising steps" in described and "4 executed; trained 3 steps" in described

    with pytest.raises(LaraUserError, match="lara peer-train"):
        PeerPolicyBuilder(str(tmp_path))


def test_lara_eval_builds_the_peer_policy_for_peer_dir(trained, tmp_path):
    from envs.evaluator import EvalConfig
    from lara.peer.policy import PeerPolicyBuilder
    from lara.scripts.eval_policies import policy_builder

    cfg = EvalConfig(
        policy=f"peer:{trained[0]}", suite="libero_object", seed=5, execute_steps=4, out=tmp_path
    )
    assert policy_builder(cfg) == PeerPolicyBuilder(str(trained[0]), seed=5, execute_steps=4)
    with pytest.raises(LaraUserError, match="lara peer-train"):  # a wrong folder: one line, no worker started
        policy_builder(EvalConfig(policy=f"peer:{tmp_path}", suite="libero_object", out=tmp_path / "e"))


@pytest.mark.sim
@pytest.mark.slow
def test_the_evaluator_scores_a_peer_checkpoint(trained, tmp_path):
    """`lara eval --policy peer:DIR`: the standard evaluator with the peer builder."""
    from envs.evaluator import EvalConfig, evaluate
    from lara.scripts.eval_policies import policy_builder

    cfg = EvalConfig(
        policy=f"peer:{trained[0]}", suite="libero_object", tasks="0", episodes=2, max_steps=12, out=tmp_path
    )
    results = evaluate(cfg, policy_builder=policy_builder(cfg))
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["episode"] for r in records) == [0, 1]
    assert all(
        r["error"] is None and r["steps"] == 12 and r["init_state_index"] == r["episode"] for r in records
    )
    assert all(r["chunk_latency_ms"] for r in records)  # 12 steps: chunks planned at steps 0 and 8
    assert results["suites"][0]["episodes"] == 2 and (tmp_path / "report.md").is_file()
