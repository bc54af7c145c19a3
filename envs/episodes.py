"""What an evaluation episode is and what it leaves: `EpisodeUnit`, `EpisodeRecord`, its noise seed
and its video. Shared by the two ways episodes run (envs.driver, envs.episode_worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class EpisodeUnit:
    task: int
    episode: int


@dataclass
class EpisodeRecord:
    suite: str
    task: int
    task_name: str
    episode: int
    init_state_index: int | None
    success: bool
    steps: int
    seconds: float
    policy_latency_ms: float | None  # mean per action (driver: a batch's time shared by its episodes)
    chunk_latency_ms: float | None = None  # mean per predicted chunk (chunked policies)
    # where the episode's `seconds` went (see EpisodeClock); the rest is checks, policy reset and video
    sim_seconds: float | None = None  # physics, controller, observation building (reset included)
    render_seconds: float | None = None  # MuJoCo offscreen rendering of the cameras
    policy_seconds: float | None = None  # select_action calls
    setup_seconds: float | None = None  # building the env and the policy (when the task changed)
    error: str | None = None
    video: str | None = None
    extra: dict = field(default_factory=dict)


def new_record(suite: str, unit: EpisodeUnit) -> EpisodeRecord:
    return EpisodeRecord(suite, unit.task, "", unit.episode, unit.episode, False, 0, 0.0, None)


def episode_seed(seed: int, unit: EpisodeUnit) -> int:
    """The episode's own noise seed (a stochastic policy's draws): a function of the run's seed and
    the episode alone, never of the worker, the batch or the order episodes ran in."""
    return int(np.random.SeedSequence([seed, unit.task, unit.episode]).generate_state(1)[0])


class ActionDigest:
    """SHA-1 of the actions an episode took (float32 bytes, in order): `extra["actions_sha1"]` of its
    record, what shows that two runs took the same actions (not only the same outcome)."""

    def __init__(self) -> None:
        import hashlib

        self._sha = hashlib.sha1()

    def add(self, action: np.ndarray) -> None:
        self._sha.update(np.asarray(action, dtype=np.float32).tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def video_frame(obs) -> np.ndarray:
    """agentview | wrist side by side: (H, 2W, 3)."""
    return np.concatenate([obs.images["agentview"], obs.images["wrist"]], axis=1)


def write_video(frames: list[np.ndarray], out: Path, record: EpisodeRecord, fps: int = 20) -> None:
    """<out>/videos/taskTT_epEE_<success|failure>.mp4, named in `record.video`."""
    import imageio.v2 as imageio

    video_dir = out / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    name = f"task{record.task:02d}_ep{record.episode:02d}_{'success' if record.success else 'failure'}.mp4"
    tmp = video_dir / (Path(name).stem + ".tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    tmp.replace(video_dir / name)
    record.video = f"videos/{name}"
