"""Fixtures of tests/examples/test_journeys.py: a tiny LeRobot dataset of synthetic pick-and-place
episodes with a directly written annotation sidecar (`dataset`). Example scripts load
through the `load_example` fixture, tiny policies through `tiny_policy` (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# 2 shared cores: one intra-op thread avoids the spin contention that slows tiny backwards ~100x
torch.set_num_threads(1)

EPISODES = 3  # in `dataset`
FIXTURE_ANNOTATION = "fixture-v1"  # the annotation run `dataset` carries
INSTRUCTION = "pick up the black bowl and place it on the plate"
# (frames, end-effector velocity per frame in metres, gripper command -1 open / +1 close)
PICK_PLACE = [
    (12, (0.01, 0, 0), -1),
    (8, (0, 0, -0.01), -1),
    (6, (0, 0, 0), 1),
    (8, (0, 0, 0.012), 1),
    (12, (0, 0.01, 0), 1),
    (6, (0, 0, -0.01), 1),
    (6, (0, 0, 0), -1),
    (8, (0, 0, 0.012), -1),
]


def pick_place_episode(index: int, size: int = 32):
    """One pick-and-place episode (66 frames) with both cameras: a grasp and a release the
    `instruction` annotation backend segments into move/grasp/move/place/retract."""
    from data_pipeline.episode import Episode

    rng = np.random.default_rng(index)
    vel = np.concatenate([np.tile(v, (n, 1)) for n, v, _ in PICK_PLACE]).astype(np.float64)  # (T, 3)
    grip = np.concatenate([np.full(n, g, dtype=np.float32) for n, _, g in PICK_PLACE])  # (T,)
    T = len(grip)
    # (T, 3); ee[t] is the position before frame t's motion
    ee = np.concatenate([np.zeros((1, 3)), np.cumsum(vel, axis=0)[:-1]]) + np.array([-0.2, 0.0, 1.1])
    action = np.zeros((T, 7), dtype=np.float32)
    action[:, :3] = vel / 0.05
    action[:, -1] = grip
    state = np.zeros((T, 8), dtype=np.float32)
    state[:, :3] = ee
    state[:, 6:] = np.where(grip[:, None] > 0, 0.0, 0.04)  # finger joints: open wide, closed 0
    return Episode(
        images={c: rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
        state=state,
        action=action,
        gripper=grip.copy(),
        ee_pos=ee.astype(np.float32),
        ee_ori=np.zeros((T, 3), dtype=np.float32),
        instruction=INSTRUCTION,
        task_index=0,
        task_name="pick_bowl",
        suite="libero_object",
        episode_index=index,
    )


def write_dataset(root: Path, episodes: int = 3) -> Path:
    from data_pipeline.lerobot_io import write_lerobot_dataset

    return write_lerobot_dataset(root, [pick_place_episode(i) for i in range(episodes)])


def write_sidecar(root: Path, name: str, episodes: int = 3) -> None:
    """An annotation run written directly (what `annotate_dataset` would produce, minus its logic)."""
    from data_pipeline.annotation.sidecar import EpisodeAnnotation, annotation_dir, write_episode, write_meta

    run = annotation_dir(root, name)
    T = sum(n for n, _, _ in PICK_PLACE)
    for ep in range(episodes):
        frames = [
            [
                ("SUBTASK", "grasp the bowl" if t < 26 else "place the bowl"),
                ("MOVE", "move down"),
                ("GRIPPER", "open" if t < 20 else "close"),
            ]
            for t in range(T)
        ]
        write_episode(run, EpisodeAnnotation(episode=ep, status="ok", num_frames=T, frames=frames))
    write_meta(run, {"complete": True})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """EPISODES pick-and-place episodes (66 frames each) with the annotation run FIXTURE_ANNOTATION."""
    root = write_dataset(tmp_path_factory.mktemp("journeys") / "pick_place", EPISODES)
    write_sidecar(root, FIXTURE_ANNOTATION, EPISODES)
    return root
