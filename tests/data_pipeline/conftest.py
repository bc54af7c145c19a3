"""Fixtures for data_pipeline tests: tiny random episodes built in memory, datasets in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.episode import Episode


def random_episode(
    T: int,
    index: int = 0,
    task: int = 0,
    size: int = 16,
    sim_dim: int = 10,
    seed: int = 0,
    noop_prefix: int = 0,
) -> Episode:
    """A valid LIBERO-like episode: 2 cameras (T, size, size, 3), state (T, 8), action (T, 7) with a
    +-1 gripper."""
    rng = np.random.default_rng(seed + 1000 * index)
    action = rng.uniform(-1, 1, (T, 7)).astype(np.float32)
    action[:, -1] = np.where(np.arange(T) < T // 2, -1.0, 1.0)
    action[:noop_prefix, :6] = 0.0
    state = rng.normal(size=(T, 8)).astype(np.float32)
    return Episode(
        images={
            cam: rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8) for cam in ("agentview", "wrist")
        },
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction=f"pick up object {task}",
        task_index=task,
        task_name=f"task_{task}",
        suite="libero_object",
        episode_index=index,
        sim_states=rng.normal(size=(T, sim_dim)),
        bddl_file=f"libero_object/task_{task}.bddl",
        init_state=rng.normal(size=sim_dim),
        expert_phases=["approach"] * (T // 2) + ["lift"] * (T - T // 2),
    )


@pytest.fixture(scope="session")
def make_episode():
    return random_episode
