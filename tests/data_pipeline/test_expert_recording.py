"""The scripted expert's recording loop on a fake env (no simulator): where each stop rule ends."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from data_pipeline.expert_recording import episode_from_recording, record_expert

PHASES = ["approach", "grasp", "lift", "release", "done", "done", "done", "done", "done", "done"]
SUCCESS_FROM = 2  # LIBERO's predicate holds after the 3rd step (object above the basket, not yet released)


class FakeEnv:
    camera_size = 4

    def __init__(self, render: bool = True):
        self.t, self.render = 0, render
        self.sim = SimpleNamespace(data=SimpleNamespace(qpos=np.arange(20.0)))
        self.raw_env = SimpleNamespace(robots=[SimpleNamespace(_ref_joint_pos_indexes=list(range(7)))])

    def obs(self):
        images = {"agentview": np.full((4, 4, 3), self.t, np.uint8)} if self.render else {}
        return SimpleNamespace(images=images, state=np.full(8, self.t), sim_state=np.full(3, self.t))

    def step(self, action):
        self.t += 1
        return self.obs(), self.t > SUCCESS_FROM, {}


class FakeExpert:
    def __init__(self, env):
        self.env = env

    @property
    def phase(self):
        return PHASES[min(self.env.t, len(PHASES) - 1)]

    def select_action(self, obs):
        return np.full(7, self.env.t, np.float32)


def _record(**kw):
    env = FakeEnv(render=kw.pop("render", True))
    return record_expert(env, FakeExpert(env), env.obs(), max_steps=kw.pop("max_steps", 50), **kw)


def test_stops_when_the_expert_is_done_and_keeps_the_release():
    arrays, success = _record(stop_at="expert_done", joints=True)
    # the 4th action brings the expert to "done": 4 frames, the release among them
    assert list(arrays["expert_phases"]) == ["approach", "grasp", "lift", "release"]
    assert success and arrays["action"].shape == (4, 7) and arrays["joint_states"].shape == (4, 7)
    np.testing.assert_array_equal(arrays["state"][:, 0], [0, 1, 2, 3])  # frame t: before action t


def test_stops_at_the_first_success():
    arrays, success = _record(stop_at="success")
    assert success and len(arrays["action"]) == SUCCESS_FROM + 1
    assert "joint_states" not in arrays


@pytest.mark.parametrize("tail", [0, 1, 3])
def test_tail_frames_after_done(tail):
    arrays, _ = _record(stop_at="expert_done", tail=tail)
    assert len(arrays["action"]) == 4 + tail
    assert list(arrays["expert_phases"][4:]) == ["done"] * tail


def test_step_limit_without_reaching_the_stop_rule():
    arrays, success = _record(stop_at="expert_done", max_steps=2)
    assert len(arrays["action"]) == 2 and not success


def test_missing_cameras_record_black_frames():
    arrays, _ = _record(render=False)
    assert arrays["images.agentview"].shape == (4, 4, 4, 3) and not arrays["images.wrist"].any()


def test_recording_becomes_a_valid_episode_with_the_command_as_gripper_signal():
    arrays, _ = _record(stop_at="expert_done")
    meta = dict(instruction="put it in the basket", task_index=3, task_name="t3", suite="libero_object")
    episode = episode_from_recording(
        arrays, episode_index=0, bddl_file="t3.bddl", init_state=np.zeros(3), source="fake", **meta
    ).validate(action_dim=7, state_dim=8)
    np.testing.assert_array_equal(episode.gripper, arrays["action"][:, -1])
    np.testing.assert_array_equal(episode.ee_pos, arrays["state"][:, :3])
    assert episode.expert_phases == ["approach", "grasp", "lift", "release"]
    assert episode.images["wrist"].shape == (4, 4, 4, 3) and episode.task_index == 3
