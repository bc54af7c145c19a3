"""Episodes of one task from a dataset, for `--policy replay` (recorded actions played back).

Replaying a dataset's actions from its own recorded initial simulator state and reaching LIBERO's
success predicate checks, end to end, that actions, gripper sign and state layout line up between
the data and the environment. Accepts a LeRobot dataset folder or a LIBERO HDF5 file/folder.
Episodes are matched to the environment's task by task name, or else by instruction.
"""

from __future__ import annotations

from pathlib import Path

from lara.errors import LaraUserError


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
