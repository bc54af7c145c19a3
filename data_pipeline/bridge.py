"""BridgeData V2 as a LeRobot dataset: camera selection, language checks, and a checked reader.

Why a Bridge module on top of the generic reader: Bridge differs from LIBERO in ways the key
mapping alone does not catch. It has up to four cameras (`observation.images.image_0..3`; image_0
is the fixed over-the-shoulder view that Octo/OpenVLA/SimplerEnv use as the primary camera,
image_1 a second fixed view, the others are absent from many episodes), episodes without a
language instruction (they must be counted and skipped, never trained on with an empty prompt),
a continuous gripper action stored as 1 = open / 0 = close, and ports that differ in state size
(7 or 8). `inspect_bridge` reports all of that in one pass over the low-dimensional columns,
`check_bridge_dataset` turns a mismatch into one clear error, and `read_bridge_episodes` yields
`Episode`s through `data_pipeline.lerobot_io.read_lerobot_dataset` for the episodes that have
language only, counting the ones it skips.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from data_pipeline.episode import Episode
from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from data_pipeline.lerobot_io import episode_bounds, open_lerobot_dataset, read_lerobot_dataset
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)

IMAGE_KEY = "observation.images.image_{}"
BRIDGE_IMAGE_KEYS = tuple(IMAGE_KEY.format(i) for i in range(4))
PRIMARY = "agentview"  # LaRA's name for image_0 (the camera the foresight head predicts)
BLANK_LEVEL = 2  # a frame whose pixels are all <= this is a placeholder for a missing camera


def camera_name(index: int) -> str:
    """LaRA camera name of Bridge's image_<index>: image_0 is `agentview`, the others keep their name."""
    return PRIMARY if index == 0 else f"image_{index}"


def bridge_mapping(cameras: Sequence[int] = (0,), base: str | Path | KeyMapping = "bridge") -> KeyMapping:
    """The `bridge` key mapping (or another base preset) with cameras image_<i> for i in `cameras`."""
    mapping = load_key_mapping(base)
    idx = [int(i) for i in cameras]
    if not idx or any(i not in range(4) for i in idx) or len(set(idx)) != len(idx):
        raise LaraUserError(
            f"Bridge cameras {list(cameras)}: choose distinct indices among 0..3 (image_0..image_3)"
        )
    if 0 not in idx:
        raise LaraUserError(
            "Bridge cameras must include 0 (image_0, the primary view used for visual foresight)"
        )
    return replace(mapping, cameras={camera_name(i): IMAGE_KEY.format(i) for i in idx})


@dataclass
class BridgeSummary:
    """What `inspect_bridge` found; `format()` is the text `lara` prints."""

    root: str
    num_episodes: int
    num_frames: int
    image_keys: list[str]  # Bridge camera keys the dataset has
    blank_fraction: dict[str, float]  # camera key -> fraction of sampled episodes whose first frame is blank
    no_language: list[int]  # episodes whose task string is empty
    action_dim: int
    state_dim: int
    gripper_range: tuple[float, float]  # raw (dataset convention) min / max of the last action dim
    tasks: int
    notes: list[str] = field(default_factory=list)

    @property
    def language_episodes(self) -> int:
        return self.num_episodes - len(self.no_language)

    def format(self) -> str:
        cams = (
            ", ".join(
                f"{k.rsplit('.', 1)[-1]} (blank in {100 * self.blank_fraction.get(k, 0):.0f}%)"
                for k in self.image_keys
            )
            or "none"
        )
        lines = [
            f"Bridge dataset {self.root}: {self.num_episodes} episodes, {self.num_frames} frames, "
            f"{self.tasks} tasks",
            f"  cameras: {cams}",
            f"  language: {self.language_episodes} episodes with an instruction, {len(self.no_language)} "
            "without "
            "(skipped for training and evaluation)",
            f"  action: {self.action_dim} dims, raw gripper in [{self.gripper_range[0]:.3f}, "
            f"{self.gripper_range[1]:.3f}]"
            f"; state: {self.state_dim} dims",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _task_strings(dataset) -> dict[int, str]:
    tasks = dataset.meta.tasks
    return {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"])}


def language_by_episode(root: str | Path, dataset=None) -> dict[int, str]:
    """episode index -> its instruction ('' when the episode has none), from the parquet index only.
    `dataset`: an already opened `LeRobotDataset` of `root` (opening one costs seconds)."""
    dataset = dataset if dataset is not None else open_lerobot_dataset(root)
    tasks = _task_strings(dataset)
    table = dataset.hf_dataset.with_format("numpy", columns=["episode_index", "task_index"])[:]
    ep_col, task_col = np.asarray(table["episode_index"]), np.asarray(table["task_index"])  # (N,), (N,)
    first = np.flatnonzero(np.r_[True, ep_col[1:] != ep_col[:-1]])  # first row of each episode
    return {int(ep_col[r]): tasks.get(int(task_col[r]), "").strip() for r in first}


def episodes_without_language(root: str | Path, dataset=None) -> list[int]:
    """Sorted episodes whose instruction is empty or whitespace."""
    return sorted(ep for ep, text in language_by_episode(root, dataset).items() if not text)


def _feature_dim(dataset, key: str) -> int | None:
    feat = dataset.meta.features.get(key)
    return None if feat is None else int(np.prod(feat["shape"]))


def inspect_bridge(
    root: str | Path, mapping: str | Path | KeyMapping = "bridge", sample_episodes: int = 32, dataset=None
) -> BridgeSummary:
    """Cameras (and how often each is a blank placeholder), language coverage, dims, gripper range.

    Blank detection decodes only the first frame of up to `sample_episodes` evenly spaced episodes.
    """
    root = Path(root)
    mapping = load_key_mapping(mapping, root)
    dataset = dataset if dataset is not None else open_lerobot_dataset(root)
    bounds = episode_bounds(dataset)
    if not bounds:
        raise LaraUserError(f"{root}: the dataset has no frames; it is empty")
    image_keys = [k for k in BRIDGE_IMAGE_KEYS if k in dataset.meta.features]
    picks = np.unique(np.linspace(0, len(bounds) - 1, min(sample_episodes, len(bounds))).astype(int))
    blank: dict[str, float] = {}
    for key in image_keys:
        rows = dataset.hf_dataset.with_format("numpy", columns=[key])
        flags = [bool(np.asarray(rows[bounds[i][1]][key]).max() <= BLANK_LEVEL) for i in picks]
        blank[key] = float(np.mean(flags))
    action = (
        np.stack(dataset.hf_dataset.with_format("numpy", columns=[mapping.action])[:][mapping.action])
        if mapping.action in dataset.meta.features
        else np.zeros((1, 1), np.float32)
    )  # (N, A)
    grip = action[:, -1]
    summary = BridgeSummary(
        root=str(root),
        num_episodes=len(bounds),
        num_frames=int(sum(e - s for _, s, e in bounds)),
        image_keys=image_keys,
        blank_fraction=blank,
        no_language=episodes_without_language(root, dataset),
        action_dim=_feature_dim(dataset, mapping.action) or 0,
        state_dim=_feature_dim(dataset, mapping.state) or 0,
        gripper_range=(float(grip.min()), float(grip.max())),
        tasks=len(_task_strings(dataset)),
    )
    for key, frac in blank.items():
        if key in mapping.cameras.values() and frac > 0:
            summary.notes.append(
                f"{key} is blank in {100 * frac:.0f}% of sampled episodes but the mapping uses it"
            )
    return summary


def check_bridge_dataset(
    root: str | Path,
    mapping: str | Path | KeyMapping = "bridge",
    action_dim: int | None = None,
    state_dim: int | None = None,
    dataset=None,
) -> BridgeSummary:
    """Raise one clear `LaraUserError` naming what differs; return the summary when all fits.

    Checks: every camera key of the mapping exists; action/state dims match the mapping and (when
    given) the model; the raw gripper values fit the mapping's gripper convention; at least one
    episode has language.
    """
    mapping = load_key_mapping(mapping, root)
    dataset = dataset if dataset is not None else open_lerobot_dataset(root)
    summary = inspect_bridge(root, mapping, dataset=dataset)
    missing = [k for k in mapping.cameras.values() if k not in dataset.meta.features]
    if missing:
        raise LaraUserError(
            f"{root}: camera key(s) {missing} missing; the dataset has cameras "
            f"{summary.image_keys or 'none'} "
            f"(mapping {mapping.name!r} wants {sorted(mapping.cameras.values())}); choose cameras the "
            "dataset has"
        )
    for label, key, want_map, want_model in (
        ("action", mapping.action, mapping.action_dim, action_dim),
        ("state", mapping.state, mapping.state_dim, state_dim),
    ):
        have = _feature_dim(dataset, key)
        if have is None:
            raise LaraUserError(
                f"{root}: no {label} column {key!r}; the dataset has {sorted(dataset.meta.features)}"
            )
        if have != want_map:
            raise LaraUserError(
                f"{root}: {label} {key!r} has {have} dims, the key mapping {mapping.name!r} expects "
                f"{want_map}; use a mapping for this port (e.g. configs/data/bridge_state7.yaml)"
            )
        if want_model is not None and have != want_model:
            raise LaraUserError(
                f"{root}: {label} has {have} dims, the model expects {want_model}; "
                f"train a model with {label}_dim={have} for this dataset"
            )
    lo, hi = summary.gripper_range
    if mapping.gripper_convention in ("open_1_close_0", "open_0_close_1") and (lo < -0.05 or hi > 1.05):
        raise LaraUserError(
            f"{root}: raw gripper action spans [{lo:.3f}, {hi:.3f}] but mapping {mapping.name!r} declares "
            f"{mapping.gripper_convention!r} (values in [0, 1]); this port stores another convention, set "
            "gripper_convention: env in a copy of the mapping"
        )
    if summary.language_episodes == 0:
        raise LaraUserError(f"{root}: none of the {summary.num_episodes} episodes has a language instruction")
    return summary


@dataclass
class SkipCount:
    """Episodes a reader skipped, by reason (filled while iterating)."""

    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, episode: int) -> None:
        self.counts.setdefault(reason, []).append(int(episode))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.counts.values())


def read_bridge_episodes(
    root: str | Path,
    mapping: str | Path | KeyMapping = "bridge",
    episodes: list[int] | None = None,
    skipped: SkipCount | None = None,
) -> Iterator[Episode]:
    """Validated Episodes of the episodes with language (all, or those in `episodes`).

    Episodes without an instruction are never decoded: they are recorded in `skipped` under
    "no_language" and logged once. The gripper is converted to -1 open / +1 close by the mapping;
    Bridge's gripper is continuous, so `Episode.gripper` is the continuous command in [-1, 1].
    """
    mapping = load_key_mapping(mapping, root)
    language = language_by_episode(root)
    wanted = sorted(language) if episodes is None else sorted(int(e) for e in episodes)
    unknown = [e for e in wanted if e not in language]
    if unknown:
        raise LaraUserError(f"{root}: episodes {unknown[:10]} do not exist (the dataset has {len(language)})")
    keep = [e for e in wanted if language[e]]
    dropped = [e for e in wanted if not language[e]]
    for e in dropped:
        if skipped is not None:
            skipped.add("no_language", e)
    if dropped:
        log.info("%s: skipping %d episode(s) without a language instruction", root, len(dropped))
    if not keep:
        return
    yield from read_lerobot_dataset(root, mapping, episodes=keep)
