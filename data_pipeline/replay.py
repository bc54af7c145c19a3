"""`--policy replay`: a dataset's recorded actions played back in the closed-loop evaluator.

Replaying a dataset's actions from its own recorded initial simulator state and reaching LIBERO's
success predicate checks, end to end, that actions, gripper sign and state layout line up between
the data and the environment. Accepts a LeRobot dataset folder or a LIBERO HDF5 file/folder.
Episodes are matched to the environment's task by task name, or else by instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.protocol import NOOP_ACTION, Observation
from lara.utils.errors import LaraUserError


def _read_all(path: Path) -> list:
    if path.is_file() and path.suffix in (".hdf5", ".h5"):
        from data_pipeline.libero_hdf5 import read_libero_hdf5

        return read_libero_hdf5(path)
    if path.is_dir() and (path / "meta" / "info.json").exists():
        from data_pipeline.lerobot_io import read_lerobot_dataset

        return list(read_lerobot_dataset(path))
    if path.is_dir() and sorted(path.glob("*.hdf5")):
        from data_pipeline.libero_hdf5 import read_libero_hdf5

        return [ep for f in sorted(path.glob("*.hdf5")) for ep in read_libero_hdf5(f)]
    raise LaraUserError(f"{path} is neither a LeRobot dataset folder nor a LIBERO .hdf5 file/folder")


def load_task_episodes(path: str | Path, task_name: str, instruction: str) -> list:
    """Episodes whose task name (or, failing that, instruction) matches the environment's task."""
    path = Path(path)
    if not path.exists():
        raise LaraUserError(f"replay dataset {path} does not exist")
    episodes = _read_all(path)
    matched = [ep for ep in episodes if ep.task_name == task_name]
    if not matched:
        matched = [ep for ep in episodes if ep.instruction.strip().lower() == instruction.strip().lower()]
    if not matched:
        raise LaraUserError(f"{path} holds no episode of task {task_name!r} ({instruction!r})")
    return matched


class ReplayPolicy:
    """Plays back one recorded episode's actions; the evaluator resets to its initial state."""

    needs_images = False

    def __init__(self, episodes: list):
        if not episodes:
            raise LaraUserError("the replay dataset holds no episode of this task")
        self.episodes = episodes
        self._actions: list[np.ndarray] = []

    def episode_for(self, index: int):
        return self.episodes[index % len(self.episodes)]

    def start(self, episode) -> None:
        self._actions = list(np.asarray(episode.action, dtype=np.float32))

    def reset(self) -> None:
        pass

    def select_action(self, obs: Observation) -> np.ndarray:
        return self._actions.pop(0) if self._actions else np.asarray(NOOP_ACTION, dtype=np.float32)


@dataclass(frozen=True)
class ReplayPolicyBuilder:
    """`env -> ReplayPolicy` for `envs.evaluator.evaluate(cfg, policy_builder=...)`; picklable, so
    each evaluator worker reads the episodes of its own task."""

    dataset: str

    def __call__(self, env) -> ReplayPolicy:
        return ReplayPolicy(load_task_episodes(self.dataset, env.task_name, env.instruction))
