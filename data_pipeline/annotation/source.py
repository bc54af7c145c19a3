"""Where the annotator reads episodes from: a LeRobot dataset folder, or episodes in memory.

Why a tiny interface: the runner's workers each read only their own episodes (a picklable source
plus a list of indices crosses the process boundary, never the image arrays), and tests annotate
synthetic episodes without writing a LeRobot dataset first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from data_pipeline.episode import Episode
from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from lara.utils.errors import LaraUserError


class EpisodeSource(Protocol):
    root: Path  # dataset folder: the sidecar goes under root/annotations/

    def episode_indices(self) -> list[int]: ...

    def iter_episodes(self, indices: list[int]) -> Iterator[Episode]:
        """Episodes with these indices, in index order."""
        ...


@dataclass
class LeRobotSource:
    """A LeRobot v3 dataset read through `data_pipeline.lerobot_io` with a key mapping (a preset
    name, a YAML path or `auto`, resolved once here so that workers get the same mapping)."""

    root: Path
    mapping: str | KeyMapping = "auto"

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise LaraUserError(f"dataset folder {self.root} does not exist")
        if not (self.root / "meta" / "info.json").is_file():
            raise LaraUserError(
                f"{self.root}: not a LeRobot dataset (no meta/info.json); "
                "convert it first with `lara convert` or collect one with `lara collect`"
            )
        self.mapping = load_key_mapping(self.mapping, self.root)

    def episode_indices(self) -> list[int]:
        from data_pipeline.lerobot_io import episode_bounds, open_lerobot_dataset

        return sorted({ep for ep, _, _ in episode_bounds(open_lerobot_dataset(self.root))})

    def iter_episodes(self, indices: list[int]) -> Iterator[Episode]:
        from data_pipeline.lerobot_io import read_lerobot_dataset

        wanted = sorted(indices)
        if not wanted:
            return iter(())
        return iter(
            sorted(
                read_lerobot_dataset(self.root, self.mapping, episodes=wanted), key=lambda e: e.episode_index
            )
        )


@dataclass
class InMemorySource:
    """Episodes already in memory (tests, notebooks); `root` is where the sidecar is written."""

    root: Path
    episodes: list[Episode]

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        idx = [e.episode_index for e in self.episodes]
        if len(set(idx)) != len(idx):
            raise LaraUserError("InMemorySource: episode_index values must be unique")

    def episode_indices(self) -> list[int]:
        return sorted(e.episode_index for e in self.episodes)

    def iter_episodes(self, indices: list[int]) -> Iterator[Episode]:
        wanted = set(indices)
        return iter(
            sorted((e for e in self.episodes if e.episode_index in wanted), key=lambda e: e.episode_index)
        )
