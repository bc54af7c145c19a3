"""LIBERO HDF5 (file or folder) -> LeRobot v3 dataset, with `no_noops` filtering and a summary.

Why filter no-ops: the standard LIBERO training convention (`*_no_noops`, openvla's regeneration)
drops frames whose action neither moves the arm nor changes the gripper; a policy trained on them
learns to stand still. We drop the same frames (`episode.noop_mask`) and keep every other array,
including the simulator states, aligned with the kept frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_pipeline.episode import Episode, noop_mask
from lara.utils.atomic import remove_stale_temps
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)


@dataclass
class ConvertSummary:
    episodes: int = 0
    frames: int = 0
    dropped_noops: int = 0
    tasks: set[str] = field(default_factory=set)
    files: int = 0

    def __str__(self) -> str:
        return (
            f"{self.files} file(s) -> {self.episodes} episodes, {self.frames} frames, {len(self.tasks)} "
            "tasks, "
            f"{self.dropped_noops} no-op frames dropped"
        )


def hdf5_files(src: str | Path) -> list[Path]:
    """The .hdf5 files of SRC (a file or a folder, not recursive), sorted by name."""
    src = Path(src)
    if src.is_file():
        return [src]
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix in (".hdf5", ".h5"))
        if files:
            return files
        raise LaraUserError(f"{src}: no .hdf5 files in this folder; the dataset is empty")
    raise LaraUserError(f"{src}: no such file or folder")


def iter_converted(
    files: list[Path],
    summary: ConvertSummary,
    keep_noops: bool = False,
    image_orientation: str = "auto",
) -> Iterator[Episode]:
    """Episodes of every file, no-ops dropped, re-indexed 0..N-1; task index = file position."""
    from tqdm import tqdm

    from data_pipeline.libero_hdf5 import iter_libero_hdf5

    index = 0
    for task_index, path in enumerate(tqdm(files, desc="converting files", unit="file")):
        for ep in iter_libero_hdf5(path, task_index=task_index, image_orientation=image_orientation):
            if not keep_noops:
                mask = noop_mask(ep.action)  # (T,) True = drop
                summary.dropped_noops += int(mask.sum())
                if mask.all():
                    logger.warning("%s: every frame is a no-op; episode skipped", ep.source)
                    continue
                ep = ep.slice(~mask)
            ep.episode_index = index
            index += 1
            summary.episodes += 1
            summary.frames += ep.length
            summary.tasks.add(ep.instruction)
            yield ep
        summary.files += 1


def convert_libero_hdf5(
    src: str | Path,
    dst: str | Path,
    keep_noops: bool = False,
    image_orientation: str = "auto",
    mapping: str = "libero",
    repo_id: str = "lara/converted",
) -> ConvertSummary:
    """Convert and write atomically; computes and stores the normalization statistics too."""
    from data_pipeline.lerobot_io import write_lerobot_dataset  # heavy (lerobot, torch): not for `--help`
    from data_pipeline.stats import load_or_compute_stats

    files = hdf5_files(src)
    remove_stale_temps(Path(dst).parent, f".{Path(dst).name}.tmp-")  # left by a conversion killed mid-write
    summary = ConvertSummary()
    write_lerobot_dataset(
        dst, iter_converted(files, summary, keep_noops, image_orientation), mapping, repo_id
    )
    load_or_compute_stats(dst, mapping)
    return summary
