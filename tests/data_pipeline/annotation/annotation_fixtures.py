"""Synthetic pick-and-place episodes with known phase boundaries (no simulator needed).

A uniquely named module (not conftest) so tests can import it whatever conftest is loaded first."""

from __future__ import annotations

import numpy as np

from data_pipeline.episode import Episode

# (expert phase, frames, end-effector velocity per frame (m), gripper command)
PICK_PLACE_SCRIPT = [
    ("approach", 20, (0.01, 0.0, 0.0), -1.0),
    ("descend", 10, (0.0, 0.0, -0.01), -1.0),
    ("close", 8, (0.0, 0.0, 0.0), 1.0),
    ("lift", 10, (0.0, 0.0, 0.012), 1.0),
    ("move", 20, (0.0, 0.01, 0.0), 1.0),
    ("lower", 8, (0.0, 0.0, -0.01), 1.0),
    ("release", 6, (0.0, 0.0, 0.0), -1.0),
    ("retract", 10, (0.0, 0.0, 0.012), -1.0),
]


def synthetic_episode(
    index: int = 0,
    script=PICK_PLACE_SCRIPT,
    instruction: str = "pick up the black bowl and place it on the plate",
    size: int = 16,
    noise: float = 0.0,
    seed: int = 0,
) -> Episode:
    rng = np.random.default_rng(seed + index)
    phases: list[str] = []
    vel: list[tuple[float, float, float]] = []
    grip: list[float] = []
    for name, n, v, g in script:
        phases += [name] * n
        vel += [v] * n
        grip += [g] * n
    T = len(phases)
    v = np.asarray(vel, dtype=np.float64)  # (T, 3)
    # ee_pos[t] is the position before the motion of frame t is applied
    ee = np.concatenate([np.zeros((1, 3)), np.cumsum(v, axis=0)[:-1]]) + np.array([-0.2, 0.0, 1.1])  # (T, 3)
    ee += rng.normal(scale=noise, size=ee.shape)
    action = np.zeros((T, 7), dtype=np.float32)
    action[:, :3] = (v / 0.05).astype(np.float32)
    action[:, -1] = np.asarray(grip, dtype=np.float32)
    state = np.zeros((T, 8), dtype=np.float32)
    state[:, :3] = ee
    return Episode(
        images={"agentview": rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8)},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=ee.astype(np.float32),
        ee_ori=np.zeros((T, 3), dtype=np.float32),
        instruction=instruction,
        episode_index=index,
        expert_phases=phases,
    )
