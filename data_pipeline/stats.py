"""Normalization statistics of a dataset: computed once, stored with it, reused everywhere.

Why stored with the dataset: the trainer and every DataLoader worker must normalize with the very
same numbers, and the checkpoint copies them so inference un-normalizes with them too
(`lara.normalization.NormalizationStats`, one object, both directions). Recomputing per run would
let two runs disagree silently; a stored file with a fingerprint (frame and episode counts, key
mapping) is recomputed only when the dataset changed.

Statistics are over actions in the environment's gripper convention (the key mapping converts at
read time, before statistics), and the action's gripper dimension is passthrough: never rescaled.

Several datasets trained as one run (a mixture, e.g. the four LIBERO suites) share one set of
statistics computed over all their frames (`joint_stats`): one robot and one action space, so one
physical action must map to one normalized value whatever dataset it came from, and the evaluated
policy, which is not told which dataset a scene resembles, un-normalizes with that one set.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from data_pipeline.lerobot_io import open_lerobot_dataset
from lara.normalization import NormalizationStats
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError

STATS_FILE = "lara/norm_stats.json"
logger = logging.getLogger(__name__)


def read_low_dim(root: str | Path, mapping: str | KeyMapping = "auto") -> dict[str, np.ndarray]:
    """All non-image columns of a dataset in memory: state (N, S), action (N, A) in env convention,
    episode_index / frame_index / task_index (N,). Images are not decoded."""
    mapping = load_key_mapping(mapping, root)
    dataset = open_lerobot_dataset(root)
    missing = [k for k in (mapping.state, mapping.action) if k not in dataset.meta.features]
    if missing:
        raise LaraUserError(
            f"{root}: key mapping {mapping.name!r} needs {missing}, the dataset has "
            f"{sorted(dataset.meta.features)}; choose another mapping"
        )
    cols = [mapping.state, mapping.action, "episode_index", "frame_index", "task_index"]
    table = dataset.hf_dataset.with_format("numpy", columns=cols)[:]
    if len(table["episode_index"]) == 0:
        raise LaraUserError(f"{root}: the dataset has no frames; it is empty")
    action = np.stack(table[mapping.action]).astype(np.float32)  # (N, A)
    action[:, -1] = mapping.gripper_to_env(action[:, -1])
    return {
        "state": np.stack(table[mapping.state]).astype(np.float32),  # (N, S)
        "action": action,
        "episode_index": np.asarray(table["episode_index"], np.int64),
        "frame_index": np.asarray(table["frame_index"], np.int64),
        "task_index": np.asarray(table["task_index"], np.int64),
    }


def check_finite(low_dim: dict[str, np.ndarray], source: str | Path = "") -> None:
    """Refuse NaN/inf in state or action with one line naming the dataset, episode, frame and count.

    Run whenever a dataset is opened for statistics or training (not only when statistics are first
    computed): data changed after its statistics were stored would otherwise reach the loss as NaN."""
    for key in ("state", "action"):
        bad = ~np.isfinite(low_dim[key])  # (N, D)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            row, dim = int(rows[0]), int(np.argwhere(bad[rows[0]])[0][0])
            episodes = np.unique(low_dim["episode_index"][rows])
            where = f"{source}: " if source else ""
            raise LaraUserError(
                f"{where}{key} is NaN/inf in episode {int(low_dim['episode_index'][row])}, frame "
                f"{int(low_dim['frame_index'][row])}, dim {dim} ({len(rows)} frame(s) in {len(episodes)} "
                "episode(s): "
                f"{episodes[:10].tolist()}); drop those episodes or re-convert/re-collect the dataset"
            )


def compute_stats(low_dim: dict[str, np.ndarray], mode: str = "quantile") -> NormalizationStats:
    """Per-dimension mean/std/q01/q99/min/max of state and action; the action gripper is passthrough."""
    check_finite(low_dim)
    action_dim = low_dim["action"].shape[1]
    return NormalizationStats.from_arrays(
        {"state": low_dim["state"], "action": low_dim["action"]},
        mode=mode,
        passthrough_dims={"action": [action_dim - 1]},
    )


def _stale_dims(stats: NormalizationStats, low_dim: dict[str, np.ndarray]) -> str:
    """'' when the stored statistics cover every state/action dimension of the data, else what differs."""
    diffs = []
    for key in ("state", "action"):
        have = stats.features[key].dim if key in stats.features else None
        if have != low_dim[key].shape[1]:
            diffs.append(f"{key}: {have} dims stored, {low_dim[key].shape[1]} in the data")
    return "; ".join(diffs)


def _fingerprint(low_dim: dict[str, np.ndarray], mapping: KeyMapping) -> dict:
    return {
        "num_frames": int(len(low_dim["episode_index"])),
        "num_episodes": int(len(np.unique(low_dim["episode_index"]))),
        "mapping": mapping.name,
        "gripper_convention": mapping.gripper_convention,
    }


def load_or_compute_stats(
    root: str | Path,
    mapping: str | KeyMapping = "auto",
    mode: str = "quantile",
    low_dim: dict[str, np.ndarray] | None = None,
) -> NormalizationStats:
    """The dataset's stored statistics, (re)computed and stored atomically when missing or stale."""
    root = Path(root)
    mapping = load_key_mapping(mapping, root)
    low_dim = low_dim if low_dim is not None else read_low_dim(root, mapping)
    check_finite(low_dim, root)
    fingerprint = _fingerprint(low_dim, mapping)
    path = root / STATS_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("dataset") == fingerprint and data.get("mode") == mode:
                stored = NormalizationStats.from_dict(data)
                stale = _stale_dims(stored, low_dim)
                if not stale:
                    return stored
                logger.warning("%s: stored statistics are stale (%s); recomputing them", path, stale)
        except (ValueError, KeyError, TypeError):
            logger.warning("%s: unreadable; recomputing the statistics", path)
    stats = compute_stats(low_dim, mode)
    atomic_write_text(path, json.dumps({**stats.to_dict(), "dataset": fingerprint}, indent=2))
    return stats


def joint_stats(
    low_dims: list[dict[str, np.ndarray]], mode: str = "quantile", sources=()
) -> NormalizationStats:
    """One set of statistics over the frames of several datasets together (rows concatenated; a
    dataset with more frames weighs more, as in the mixture at weight 1). Every dataset must have
    the same state and action widths: they are one robot's (docs/method.md, "several datasets")."""
    if not low_dims:
        raise LaraUserError("joint statistics need at least one dataset")
    names = [str(s) for s in sources] or [f"dataset {i}" for i in range(len(low_dims))]
    for low, name in zip(low_dims, names):
        check_finite(low, name)
    for key in ("state", "action"):
        widths = {name: low[key].shape[1] for low, name in zip(low_dims, names)}
        if len(set(widths.values())) > 1:
            raise LaraUserError(
                f"the datasets of one run must share the {key} width, got {widths}; train them separately "
                "or map them to one robot's keys"
            )
    merged = {
        key: np.concatenate([low[key] for low in low_dims]) for key in ("state", "action")
    }  # (sum N, D)
    merged["episode_index"] = np.concatenate([low["episode_index"] for low in low_dims])  # (sum N,)
    merged["frame_index"] = np.concatenate([low["frame_index"] for low in low_dims])  # (sum N,)
    return compute_stats(merged, mode)
