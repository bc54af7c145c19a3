"""Shared test set-up and fixtures: offline, quiet, a per-session `datasets` cache so tests never
touch ~/.cache, and the helpers several test folders use, as fixtures (no test reaches a helper
module of another folder through sys.path):

- `tiny_policy(*overrides, seed=0)`: a tiny random `LaraPolicy` with a fitted FAST tokenizer and
  normalization statistics; `tiny_checkpoint`: one saved per session;
- `make_batch`, `make_obs`, `make_stats`, `smooth_chunks`, `cot`: training batches, observations,
  statistics, action chunks and the CoT they are built from;
- `write_bridge_dataset`, `tiny_bridge_checkpoint`: a BridgeData V2-layout LeRobot dataset written
  with lerobot itself, and a tiny policy for it;
- `load_example(name)`: `main(argv)` of examples/<name>.py;
- `write_annotated_dataset(root, run, frames_of)`: 3 two-task LeRobot episodes of 12 frames (32 px)
  with a complete CoT annotation run `run`, `frames_of(episode, t)` giving each frame's (tag, text);
- `held_by_another_process(folder, command)`: a live process holding `folder`'s run lock as
  `command` (`lara.utils.run_lock`), SIGKILLed at the end;
- `lara_cli`: the `lara` command as a subprocess (`lara_cli.argv(*args)`, `lara_cli.env`,
  `lara_cli.run(*args)`), with this checkout's packages first and one torch thread.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# lerobot loads parquet through `datasets`, which caches arrow copies: keep them out of ~/.cache
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
COT = [
    ("SUBTASK", "grasp the black bowl"),
    ("OBJECTS", "black bowl [12, 40, 30, 58]; plate [70, 20, 96, 44]"),
    ("MOVE", "move down"),
    ("GRIPPER", "close"),
]
INSTRUCTIONS = ["pick up the black bowl and place it on the plate", "open the top drawer of the cabinet"]


def _smooth_chunks(n: int, h: int = 8, a: int = 7, seed: int = 0) -> np.ndarray:
    """Smooth normalized action chunks (N, H, A) in [-1, 1]; the last dim is a +-1 gripper."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, h)[None, :, None]
    x = np.sin(2 * np.pi * (t * rng.uniform(0.1, 0.8, (n, 1, a)) + rng.uniform(0, 1, (n, 1, a))))
    x = x * rng.uniform(0.2, 0.9, (n, 1, a))
    x[..., -1] = np.where(rng.uniform(size=(n, 1)) > 0.5, 1.0, -1.0)
    return x.astype(np.float32)


def _make_stats(a: int = 7, s: int = 8):
    from lara.normalization import NormalizationStats

    rng = np.random.default_rng(1)
    act = rng.normal(0, 0.3, (500, a))
    act[:, -1] = np.where(rng.uniform(size=500) > 0.5, 1.0, -1.0)
    return NormalizationStats.from_arrays(
        {"action": act, "state": rng.normal(0, 1, (500, s))}, passthrough_dims={"action": [a - 1]}
    )


def _make_batch(b: int = 2, size: int = 64, seed: int = 0, cot: bool = True) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    chunks = _smooth_chunks(b, seed=seed)
    return {
        "image.agentview": torch.rand(b, 3, size, size, generator=g),
        "image.wrist": torch.rand(b, 3, size, size, generator=g),
        "next_image.agentview": torch.rand(b, 3, size, size, generator=g),
        "state": torch.randn(b, 8, generator=g),
        "action": torch.from_numpy(chunks),
        "action_is_pad": torch.zeros(b, 8, dtype=torch.bool),
        "instruction": [INSTRUCTIONS[i % 2] for i in range(b)],
        "cot": [list(COT) if cot else None for _ in range(b)],
        "episode_index": torch.arange(b),
        "frame_index": torch.zeros(b, dtype=torch.long),
        "task_index": torch.zeros(b, dtype=torch.long),
    }


@dataclass
class FakeObservation:
    images: dict
    state: np.ndarray
    instruction: str
    sim_state: np.ndarray | None = None


def _make_obs(seed: int = 0, size: int = 128) -> FakeObservation:
    rng = np.random.default_rng(seed)
    imgs = {c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
    return FakeObservation(imgs, rng.normal(size=8).astype(np.float32), INSTRUCTIONS[0])


def _tiny_policy(*overrides: str, seed: int = 0):
    import torch

    from lara.modeling_lara import LaraPolicy
    from lara.presets import load_config

    torch.manual_seed(seed)
    policy = LaraPolicy(load_config("tiny", list(overrides)))
    policy.train_fast_tokenizer(_smooth_chunks(400, seed=3))
    policy.set_normalization(_make_stats())
    return policy


def _load_example(name: str):
    """`main(argv)` of examples/<name>.py, loaded by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through the module
    spec.loader.exec_module(module)
    return module.main


# ------------------------------------------------------------------ BridgeData V2 layout
# The public LeRobot ports of BridgeData V2 (WidowX 250, 5 Hz): four cameras
# `observation.images.image_0..3`, an 8-dim state (x, y, z, roll, pitch, yaw, pad, gripper opening),
# a 7-dim action (delta xyz, delta rpy, gripper with 1 = open / 0 = close, continuous) and the
# language instruction as the LeRobot task. Episodes are scripted pick-and-place motions: move to
# the object, close the gripper (ramping 1 -> 0 over a few frames, continuous as in Bridge), carry,
# open, retract. Cameras 2 and 3 are black placeholders, as in episodes recorded without them.
BRIDGE_INSTRUCTIONS = [
    "put the carrot on the plate",
    "put the spoon on the towel",
    "",  # an episode without language: must be skipped and counted
    "put the eggplant in the basket",
    "stack the green block on the yellow block",
    "put the carrot on the plate",
]


def _bridge_episode(T: int, seed: int, size: int = 32) -> dict[str, np.ndarray]:
    """Arrays of one episode: images (4 x (T, size, size, 3)), state (T, 8), action (T, 7)."""
    rng = np.random.default_rng(seed)
    start = np.array([0.25, 0.0, 0.10]) + rng.uniform(-0.02, 0.02, 3)
    obj = np.array([0.30, rng.uniform(-0.12, -0.06), 0.02])
    goal = np.array([0.30, rng.uniform(0.06, 0.12), 0.05])
    t1, t2 = T // 3, 2 * T // 3
    lift = goal + [0, 0, 0.08]
    waypoints = np.concatenate(
        [np.linspace(start, obj, t1), np.linspace(obj, goal, t2 - t1), np.linspace(goal, lift, T - t2)]
    )
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
                v = (
                    int(np.clip((0.2 - pos[t, 2]) / 0.25 * (size - 6), 0, size - 6))
                    if cam == 0
                    else size // 2
                )
                img[t, v : v + 6, u : u + 6] = (230, 200 * int(grip_cmd[t] > 0.5), 60)
        images.append(img)
    return {"images": images, "state": state, "action": action}


def _write_bridge_dataset(
    root: Path,
    lengths: list[int] | None = None,
    instructions: list[str] | None = None,
    size: int = 32,
    action_dim: int = 7,
    cameras: int = 4,
) -> Path:
    """Write the dataset at `root` with `LeRobotDataset.create` (image mode) and return `root`."""
    from data_pipeline.lerobot_compat import LeRobotDataset

    instructions = BRIDGE_INSTRUCTIONS if instructions is None else instructions
    lengths = lengths or [24 + 2 * i for i in range(len(instructions))]
    image = {"dtype": "image", "shape": (size, size, 3), "names": ["height", "width", "channel"]}
    features = {f"observation.images.image_{c}": dict(image) for c in range(cameras)}
    features["observation.state"] = {"dtype": "float32", "shape": (8,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (action_dim,), "names": None}
    ds = LeRobotDataset.create(
        repo_id="test/bridge", fps=5, features=features, root=root, robot_type="widowx", use_videos=False
    )
    for i, (T, text) in enumerate(zip(lengths, instructions)):
        ep = _bridge_episode(T, seed=i, size=size)
        action = (
            ep["action"]
            if action_dim == 7
            else np.concatenate([ep["action"], np.zeros((T, action_dim - 7), np.float32)], axis=1)
        )
        for t in range(T):
            frame = {f"observation.images.image_{c}": ep["images"][c][t] for c in range(cameras)}
            frame["observation.state"] = ep["state"][t]
            frame["action"] = action[t]
            frame["task"] = text
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


def _tiny_bridge_checkpoint(
    dataset: Path,
    path: Path,
    cameras: tuple[str, ...] = ("agentview",),
    stats: bool = True,
    chunk_size: int = 16,
) -> Path:
    """A tiny random LaRA policy for Bridge (chunk 16, the given cameras), with the dataset's
    normalization statistics and a FAST tokenizer fit on random chunks, saved at `path`."""
    import torch

    from data_pipeline.stats import load_or_compute_stats
    from lara.modeling_lara import LaraPolicy
    from lara.presets import load_config

    cfg = load_config("tiny", [f"--vision.cameras=[{','.join(cameras)}]", f"--chunk_size={chunk_size}"])
    torch.manual_seed(0)
    policy = LaraPolicy(cfg)
    chunks = np.random.default_rng(0).uniform(-1, 1, (200, chunk_size, 7)).astype(np.float32)  # (N, H, A)
    policy.train_fast_tokenizer(chunks)
    if stats:
        policy.set_normalization(load_or_compute_stats(dataset, "bridge"))
    policy.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def cot() -> list[tuple[str, str]]:
    return list(COT)


@pytest.fixture(scope="session")
def smooth_chunks():
    return _smooth_chunks


@pytest.fixture(scope="session")
def make_stats():
    return _make_stats


@pytest.fixture(scope="session")
def make_batch():
    return _make_batch


@pytest.fixture(scope="session")
def make_obs():
    return _make_obs


@pytest.fixture(scope="session")
def tiny_policy():
    return _tiny_policy


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random policy with a trained FAST tokenizer and stats, saved once per session (read-only)."""
    path = tmp_path_factory.mktemp("lara") / "tiny"
    _tiny_policy().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def write_bridge_dataset():
    return _write_bridge_dataset


@pytest.fixture(scope="session")
def tiny_bridge_checkpoint():
    return _tiny_bridge_checkpoint


@pytest.fixture(scope="session")
def load_example():
    return _load_example


def _two_task_episode(index: int, T: int = 12, size: int = 32):
    from data_pipeline.episode import Episode

    rng = np.random.default_rng(index)
    action = np.clip(rng.normal(0, 0.3, (T, 7)), -1, 1).astype(np.float32)
    action[:, -1] = np.where(np.arange(T) < T // 2, -1.0, 1.0)
    state = rng.normal(size=(T, 8)).astype(np.float32)
    return Episode(
        images={c: rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction=f"put bowl {index % 2} on the plate",
        task_index=index % 2,
        task_name=f"task_{index % 2}",
        suite="libero_object",
        episode_index=index,
        sim_states=rng.normal(size=(T, 4)),
        bddl_file="x.bddl",
        init_state=rng.normal(size=4),
        expert_phases=["approach"] * T,
    )


def _write_annotated_dataset(root: Path, run: str, frames_of) -> Path:
    from data_pipeline.annotation.sidecar import EpisodeAnnotation, annotation_dir, write_episode, write_meta
    from data_pipeline.lerobot_io import write_lerobot_dataset

    episodes = [_two_task_episode(i) for i in range(3)]
    write_lerobot_dataset(root, episodes)
    run_dir = annotation_dir(root, run)
    for ep in episodes:
        frames = [frames_of(ep, t) for t in range(ep.length)]
        write_episode(run_dir, EpisodeAnnotation(ep.episode_index, "ok", ep.length, frames=frames))
    write_meta(run_dir, {"complete": True})
    return root


@pytest.fixture(scope="session")
def write_annotated_dataset():
    return _write_annotated_dataset


_HOLD_LOCK = (
    "import sys, time\n"
    "from lara.utils.run_lock import run_lock\n"
    "with run_lock(sys.argv[1], sys.argv[2]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


@contextlib.contextmanager
def _held_by_another_process(folder: Path, command: str = "lara eval"):
    """A live process holding `folder`'s run lock as `command` (killed with SIGKILL at the end, so
    its lock file stays behind as a crashed run's would)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(folder), command], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def held_by_another_process():
    return _held_by_another_process


@dataclass(frozen=True)
class LaraCli:
    """`python -m lara.scripts.cli` in a subprocess: what a user's `lara ...` runs."""

    env: dict

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lara.scripts.cli", *args]

    def run(self, *args: str, timeout: float = 600):
        """Run to the end; returns the CompletedProcess with text stdout and stderr."""
        import subprocess

        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout)


@pytest.fixture(scope="session")
def lara_cli() -> LaraCli:
    return LaraCli(env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
