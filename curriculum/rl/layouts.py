"""Rollout layouts from the training distribution: the start states of a dataset's demos.

GRPO needs many initial layouts; the only honest source is the data the policy was trained on
(scripted demos collected from layouts drawn by LIBERO's placement sampler, or the official demos,
recorded from other layouts than the evaluation init states). Each demo's first simulator state
(after the protocol's wait steps, as recorded) is one layout of its task. A dataset without
simulator states (e.g. converted real data) cannot seed rollouts: that is a user error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lara.utils.errors import LaraUserError


@dataclass(frozen=True)
class Layout:
    task: int  # task id in the suite
    episode: int  # the demo it comes from
    state: np.ndarray  # (D,) flattened MuJoCo state


def _episodes(path: Path):
    if path.is_dir() and (path / "meta" / "info.json").exists():
        from data_pipeline.lerobot_io import read_lerobot_dataset

        return read_lerobot_dataset(path)
    files = [path] if path.is_file() else sorted(path.glob("*.hdf5")) if path.is_dir() else []
    if not files:
        raise LaraUserError(f"--dataset {path}: neither a LeRobot dataset folder nor LIBERO .hdf5 file(s)")
    from data_pipeline.libero_hdf5 import read_libero_hdf5

    return (ep for f in files for ep in read_libero_hdf5(f))


def load_layouts(dataset: str | Path, task_ids: dict[str, int], tasks: list[int]) -> list[Layout]:
    """Layouts of `tasks` from the dataset's demos; task_ids maps the suite's task names to ids."""
    by_instruction = {name.replace("_", " ").lower(): i for name, i in task_ids.items()}
    out = []
    for ep in _episodes(Path(dataset)):
        task = task_ids.get(ep.task_name, by_instruction.get(ep.instruction.strip().lower()))
        if task is None or task not in tasks:
            continue
        state = (
            ep.init_state
            if getattr(ep, "init_state", None) is not None
            else (None if ep.sim_states is None else ep.sim_states[0])
        )
        if state is None:
            raise LaraUserError(
                f"--dataset {dataset}: episode {ep.episode_index} has no simulator states; RL layouts "
                "need demos collected in simulation (lara collect) or official LIBERO HDF5 files"
            )
        out.append(Layout(task, int(ep.episode_index), np.asarray(state, np.float64)))
    if not out:
        raise LaraUserError(f"--dataset {dataset} holds no demo of the selected tasks {tasks}")
    return out


def pick_layouts(layouts: list[Layout], n: int, seed: int, iteration: int) -> list[Layout]:
    """n layouts for one iteration, a pure function of (seed, iteration): resume draws the same."""
    rng = np.random.default_rng([seed, iteration])
    idx = rng.choice(len(layouts), size=n, replace=n > len(layouts))
    return [layouts[int(i)] for i in idx]
