"""Helpers for tests/examples/test_journeys.py (a uniquely named module, never `from conftest import`):
load an example script's `main`, synthetic pick-and-place episodes, a tiny LeRobot dataset, a
directly written annotation sidecar and a tiny random-init LaraPolicy."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lara_testing import tiny_policy  # noqa: E402,F401  (re-exported for test_journeys)

# 2 shared cores: one intra-op thread avoids the spin contention that slows tiny backwards ~100x
torch.set_num_threads(1)

INSTRUCTION = "pick up the black bowl and place it on the plate"
# (frames, end-effector velocity per frame in metres, gripper command -1 open / +1 close)
PICK_PLACE = [(12, (0.01, 0, 0), -1), (8, (0, 0, -0.01), -1), (6, (0, 0, 0), 1), (8, (0, 0, 0.012), 1),
              (12, (0, 0.01, 0), 1), (6, (0, 0, -0.01), 1), (6, (0, 0, 0), -1), (8, (0, 0, 0.012), -1)]


def load_main(script: str):
    """`main(argv)` of examples/<script>.py, loaded by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{script}", EXAMPLES / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through the module
    spec.loader.exec_module(module)
    return module.main


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
        state=state, action=action, gripper=grip.copy(), ee_pos=ee.astype(np.float32),
        ee_ori=np.zeros((T, 3), dtype=np.float32), instruction=INSTRUCTION, task_index=0,
        task_name="pick_bowl", suite="libero_object", episode_index=index,
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
        frames = [[("SUBTASK", "grasp the bowl" if t < 26 else "place the bowl"), ("MOVE", "move down"),
                   ("GRIPPER", "open" if t < 20 else "close")] for t in range(T)]
        write_episode(run, EpisodeAnnotation(episode=ep, status="ok", num_frames=T, frames=frames))
    write_meta(run, {"complete": True})
