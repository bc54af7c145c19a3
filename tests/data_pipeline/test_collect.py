import json

import numpy as np
import pytest

from data_pipeline.collect import CollectConfig, _check_resume, collect, partial_dir
from lara.utils.errors import LaraUserError


def test_config_validation():
    with pytest.raises(LaraUserError, match="perturb_xy"):
        CollectConfig(perturb_xy=0.2)
    with pytest.raises(LaraUserError, match=">= 1"):
        CollectConfig(workers=0)
    assert CollectConfig(tasks="all").task_ids(10) == list(range(10))
    assert CollectConfig(tasks="0, 3").task_ids(10) == [0, 3]
    with pytest.raises(LaraUserError, match=r"0\.\.9"):
        CollectConfig(tasks="12").task_ids(10)


def test_resume_refuses_other_settings(tmp_path):
    partial = partial_dir(tmp_path / "out")
    _check_resume(partial, CollectConfig(out=str(tmp_path / "out"), camera_size=128))
    assert json.loads((partial / "config.json").read_text())["camera_size"] == 128
    _check_resume(partial, CollectConfig(out=str(tmp_path / "out"), camera_size=128, episodes_per_task=50))
    with pytest.raises(LaraUserError, match="other settings.*camera_size"):
        _check_resume(partial, CollectConfig(out=str(tmp_path / "out"), camera_size=64))


@pytest.mark.sim
def test_collect_two_demos_resume_and_replay_to_success(tmp_path):
    from data_pipeline.lerobot_io import read_lerobot_dataset
    from envs import libero_setup

    libero_setup.configure()
    from envs.libero_env import LiberoEnv

    out = tmp_path / "demos"
    cfg = CollectConfig(
        suite="libero_object",
        tasks="0",
        episodes_per_task=2,
        out=str(out),
        camera_size=64,
        max_attempts=2,
        keep_partial=True,
        hdf5_dir=str(tmp_path / "hdf5"),
    )
    result = collect(cfg)
    assert result.episodes == 2 and result.collected_now == 2 and not result.failed
    episodes = list(read_lerobot_dataset(out))
    assert [e.episode_index for e in episodes] == [0, 1]
    assert list((tmp_path / "hdf5").glob("*_demo.hdf5"))
    # a killed run keeps finished episodes: the same command continues from the partial folder
    import shutil

    shutil.rmtree(out)
    again = collect(cfg)
    assert again.resumed == 2 and again.collected_now == 0 and again.episodes == 2
    env = LiberoEnv("libero_object", 0, render=False)
    try:
        for ep in episodes:
            assert ep.images["agentview"].shape[1:] == (64, 64, 3) and ep.sim_states is not None
            assert ep.expert_phases[0] == "approach" and "grasp" in ep.expert_phases
            assert not np.array_equal(ep.init_state, env.init_states[0])  # perturbed start state
            env.reset(0)
            env.set_sim_state(ep.init_state)
            first_success = None
            for t, action in enumerate(ep.action):
                _, done, _ = env.step(action)
                if done and first_success is None:
                    first_success = t
            # the demo goes on past the first success through release and retract (finish_motion)
            assert first_success is not None, f"replay of episode {ep.episode_index} never succeeded"
            assert env.check_success(), f"replay of episode {ep.episode_index} ends with the task undone"
            assert ep.expert_phases[-1] in ("retract", "done") and "release" in ep.expert_phases
    finally:
        env.close()


def test_batches_keep_one_task_per_worker_build(tmp_path):
    from data_pipeline.collect import batch_jobs
    from data_pipeline.collect_worker import Job

    def jobs(n_tasks, n_slots):
        return [
            Job("libero_object", t, k, 64, 0.01, 5, 1, None, 7, str(tmp_path))
            for t in range(n_tasks)
            for k in range(n_slots)
        ]

    two_tasks = batch_jobs(jobs(2, 2), workers=2)
    assert [[(j.task_id, j.slot) for j in b] for b in two_tasks] == [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]
    one_task = batch_jobs(jobs(1, 6), workers=2)
    assert [len(b) for b in one_task] == [3, 3]
    many = batch_jobs(jobs(10, 50), workers=2)
    assert all(len(b) == 5 and len({j.task_id for j in b}) == 1 for b in many) and sum(map(len, many)) == 500


def test_perturb_objects_shifts_free_joints_only():
    from types import SimpleNamespace

    from data_pipeline.collect_worker import perturb_objects

    class Data:
        def __init__(self):
            self.qpos = {"cup_joint0": np.array([0.1, 0.2, 0.05, 1, 0, 0, 0.0]), "hinge": np.array([0.3])}
            self.qvel = {}

        def get_joint_qpos(self, name):
            return self.qpos[name].copy()

        def set_joint_qpos(self, name, value):
            self.qpos[name] = np.asarray(value)

        def set_joint_qvel(self, name, value):
            self.qvel[name] = np.asarray(value)

    calls = []
    data = Data()
    env = SimpleNamespace(
        sim=SimpleNamespace(data=data, forward=lambda: calls.append("forward")),
        raw_env=SimpleNamespace(
            objects_dict={
                "cup": SimpleNamespace(joints=["cup_joint0"]),
                "drawer": SimpleNamespace(joints=["hinge"]),
            }
        ),
    )
    perturb_objects(env, np.random.default_rng(0), 0.01)
    moved = data.qpos["cup_joint0"]
    delta = moved[:2] - np.array([0.1, 0.2])
    assert np.all(np.abs(delta) <= 0.01) and np.any(delta != 0)
    np.testing.assert_array_equal(moved[2:], [0.05, 1, 0, 0, 0])  # height and orientation kept
    np.testing.assert_array_equal(data.qpos["hinge"], [0.3])  # not a free joint: untouched
    np.testing.assert_array_equal(data.qvel["cup_joint0"], np.zeros(6))
    assert calls == ["forward"]
