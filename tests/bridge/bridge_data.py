"""A small BridgeData V2-layout LeRobot dataset, written with lerobot itself (no download).

Layout of the public LeRobot ports of BridgeData V2 (WidowX 250, 5 Hz): four cameras
`observation.images.image_0..3`, an 8-dim state (x, y, z, roll, pitch, yaw, pad, gripper opening),
a 7-dim action (delta xyz, delta rpy, gripper with 1 = open / 0 = close, continuous) and the
language instruction as the LeRobot task. Episodes are scripted pick-and-place motions: move to
the object, close the gripper (ramping 1 -> 0 over a few frames, continuous as in Bridge), carry,
open, retract. Cameras 2 and 3 are black placeholders, as in episodes recorded without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_pipeline.lerobot_compat import LeRobotDataset

INSTRUCTIONS = [
    "put the carrot on the plate",
    "put the spoon on the towel",
    "",  # an episode without language: must be skipped and counted
    "put the eggplant in the basket",
    "stack the green block on the yellow block",
    "put the carrot on the plate",
]


def bridge_episode(T: int, seed: int, size: int = 32) -> dict[str, np.ndarray]:
    """Arrays of one episode: images (4 x (T, size, size, 3)), state (T, 8), action (T, 7)."""
    rng = np.random.default_rng(seed)
    start = np.array([0.25, 0.0, 0.10]) + rng.uniform(-0.02, 0.02, 3)
    obj = np.array([0.30, rng.uniform(-0.12, -0.06), 0.02])
    goal = np.array([0.30, rng.uniform(0.06, 0.12), 0.05])
    t1, t2 = T // 3, 2 * T // 3
    waypoints = np.concatenate([
        np.linspace(start, obj, t1), np.linspace(obj, goal, t2 - t1), np.linspace(goal, goal + [0, 0, 0.08], T - t2)])
    pos = waypoints + rng.normal(0, 0.0005, (T, 3))  # (T, 3)
    rpy = np.cumsum(rng.normal(0, 0.01, (T, 3)), axis=0)  # (T, 3)
    grip_cmd = np.ones(T)  # 1 open, 0 closed (Bridge convention), ramped like the real continuous signal
    grip_cmd[t1:t2] = 0.0
    grip_cmd[t1 : t1 + 2] = [0.6, 0.2]
    grip_cmd[t2 : t2 + 2] = [0.4, 0.8]
    action = np.zeros((T, 7), np.float32)
    action[:-1, :3] = pos[1:] - pos[:-1]
    action[:-1, 3:6] = rpy[1:] - rpy[:-1]
    action[:, 6] = grip_cmd
    state = np.zeros((T, 8), np.float32)
    state[:, :3], state[:, 3:6] = pos, rpy
    state[:, 7] = np.clip(grip_cmd + rng.normal(0, 0.01, T), 0, 1)  # measured opening
    images = []
    for cam in range(4):
        img = np.zeros((T, size, size, 3), np.uint8)
        if cam < 2:
            img[:] = rng.integers(40, 80, (1, 1, 1, 3), dtype=np.uint8)
            for t in range(T):  # a bright square where the gripper is, seen from two views
                u = int(np.clip((pos[t, 1] + 0.15) / 0.3 * (size - 6), 0, size - 6))
                v = int(np.clip((0.2 - pos[t, 2]) / 0.25 * (size - 6), 0, size - 6)) if cam == 0 else size // 2
                img[t, v : v + 6, u : u + 6] = (230, 200 * int(grip_cmd[t] > 0.5), 60)
        images.append(img)
    return {"images": images, "state": state, "action": action}


def write_bridge_dataset(root: Path, lengths: list[int] | None = None, instructions: list[str] | None = None,
                         size: int = 32, action_dim: int = 7, cameras: int = 4) -> Path:
    """Write the dataset at `root` with `LeRobotDataset.create` (image mode) and return `root`."""
    instructions = INSTRUCTIONS if instructions is None else instructions
    lengths = lengths or [24 + 2 * i for i in range(len(instructions))]
    features = {f"observation.images.image_{c}": {"dtype": "image", "shape": (size, size, 3),
                                                  "names": ["height", "width", "channel"]} for c in range(cameras)}
    features["observation.state"] = {"dtype": "float32", "shape": (8,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (action_dim,), "names": None}
    ds = LeRobotDataset.create(repo_id="test/bridge", fps=5, features=features, root=root, robot_type="widowx",
                               use_videos=False)
    for i, (T, text) in enumerate(zip(lengths, instructions)):
        ep = bridge_episode(T, seed=i, size=size)
        action = ep["action"] if action_dim == 7 else np.concatenate(
            [ep["action"], np.zeros((T, action_dim - 7), np.float32)], axis=1)
        for t in range(T):
            frame = {f"observation.images.image_{c}": ep["images"][c][t] for c in range(cameras)}
            frame["observation.state"] = ep["state"][t]
            frame["action"] = action[t]
            frame["task"] = text
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


def tiny_bridge_checkpoint(dataset: Path, path: Path, cameras: tuple[str, ...] = ("agentview",), stats: bool = True,
                           chunk_size: int = 16) -> Path:
    """A tiny random LaRA policy for Bridge (chunk 16, the given cameras), with the dataset's
    normalization statistics and a FAST tokenizer fit on random chunks, saved at `path`."""
    import torch

    from data_pipeline.stats import load_or_compute_stats
    from lara.configuration_lara import load_config
    from lara.modeling_lara import LaraPolicy

    cfg = load_config("tiny", [f"--vision.cameras=[{','.join(cameras)}]", f"--chunk_size={chunk_size}"])
    torch.manual_seed(0)
    policy = LaraPolicy(cfg)
    policy.train_fast_tokenizer(np.random.default_rng(0).uniform(-1, 1, (200, chunk_size, 7)).astype(np.float32))
    if stats:
        policy.set_normalization(load_or_compute_stats(dataset, "bridge"))
    policy.save_pretrained(path)
    return path
