"""Read and write LeRobot v3 datasets (image mode) through lerobot's own `LeRobotDataset`.

Why through lerobot: a dataset we write must load with `LeRobotDataset` unchanged (and public
LeRobot datasets must read into the same `Episode`), so we let lerobot own the on-disk format
(`meta/info.json`, parquet with embedded PNG images, per-episode stats) and keep only what
LeRobot has no column for in a sidecar folder `lara/` inside the dataset:
`lara/episodes/episode_XXXXXX.npz` (flattened MuJoCo states, whose size differs per task and so
cannot be a fixed-shape feature; init state; expert phases; BDDL file; LIBERO task id and suite).
Foreign datasets have no sidecar and simply read without those fields.

Writes are atomic: the dataset is built in a hidden temp folder next to the destination and
renamed into place after lerobot's `finalize()`; an interrupted write leaves only the temp folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import numpy as np

from data_pipeline.episode import Episode, EpisodeError
from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from data_pipeline.lerobot_compat import LeRobotDataset
from lara.utils.errors import LaraUserError

SIDECAR_DIR = "lara/episodes"
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_ax", "eef_ay", "eef_az", "gripper_q0", "gripper_q1"]
ACTION_NAMES = ["dx", "dy", "dz", "dax", "day", "daz", "gripper"]


def _features(episode: Episode, mapping: KeyMapping) -> dict:
    features: dict[str, dict] = {}
    for cam, key in mapping.cameras.items():
        if cam not in episode.images:
            raise EpisodeError(
                f"{episode.source or '<memory>'}, episode {episode.episode_index}, key 'images.{cam}': "
                f"camera missing; the key mapping {mapping.name!r} expects {sorted(mapping.cameras)}"
            )
        h, w = episode.images[cam].shape[1:3]
        features[key] = {"dtype": "image", "shape": (h, w, 3), "names": ["height", "width", "channel"]}
    features[mapping.state] = {
        "dtype": "float32",
        "shape": (mapping.state_dim,),
        "names": STATE_NAMES if mapping.state_dim == 8 else None,
    }
    features[mapping.action] = {
        "dtype": "float32",
        "shape": (mapping.action_dim,),
        "names": ACTION_NAMES if mapping.action_dim == 7 else None,
    }
    return features


def _save_sidecar(root: Path, index: int, ep: Episode) -> None:
    info = {
        "task_index": ep.task_index,
        "task_name": ep.task_name,
        "suite": ep.suite,
        "bddl_file": ep.bddl_file,
        "expert_phases": ep.expert_phases,
        "gripper_kind": ep.gripper_kind,
        "source": ep.source,
    }
    arrays: dict[str, np.ndarray] = {"info": np.array(json.dumps(info))}
    if ep.sim_states is not None:
        arrays["sim_states"] = ep.sim_states
    if ep.init_state is not None:
        arrays["init_state"] = ep.init_state
    for key, value in ep.extras.items():
        arrays[f"extra.{key}"] = value
    path = root / SIDECAR_DIR / f"episode_{index:06d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def write_lerobot_dataset(
    root: str | Path,
    episodes: Iterable[Episode],
    mapping: str | KeyMapping = "libero",
    repo_id: str = "lara/local",
    fps: int | None = None,
    progress: bool = False,
) -> Path:
    """Write episodes as a LeRobot v3 dataset at `root` (must not exist); returns `root`. Atomic."""
    root = Path(root)
    mapping = load_key_mapping(mapping)
    if root.exists():
        raise LaraUserError(f"{root} already exists; choose a new output folder or delete it")
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    dataset = None
    count = 0
    datasets.disable_progress_bars()  # one progress bar per episode from `datasets.map` is noise
    try:
        iterator: Iterable[Episode] = episodes
        if progress:
            from tqdm import tqdm

            iterator = tqdm(episodes, desc="writing episodes", unit="ep")
        for ep in iterator:
            ep.validate(action_dim=mapping.action_dim, state_dim=mapping.state_dim)
            if dataset is None:
                dataset = LeRobotDataset.create(
                    repo_id=repo_id,
                    fps=fps or mapping.fps,
                    features=_features(ep, mapping),
                    root=tmp,
                    robot_type=mapping.robot_type,
                    use_videos=False,
                )
            action = ep.action.copy()
            action[:, -1] = mapping.gripper_from_env(action[:, -1])
            for t in range(ep.length):
                frame = {key: ep.images[cam][t] for cam, key in mapping.cameras.items()}
                frame[mapping.state] = ep.state[t].astype(np.float32)
                frame[mapping.action] = action[t].astype(np.float32)
                frame["task"] = ep.instruction
                dataset.add_frame(frame)
            dataset.save_episode()
            _save_sidecar(tmp, count, ep)
            count += 1
        if dataset is None:
            raise LaraUserError(f"{root}: no episodes to write; the dataset would be empty (check the input)")
        dataset.finalize()
        images_dir = tmp / "images"  # lerobot's per-frame PNG staging folder, empty once embedded
        if images_dir.is_dir() and not any(images_dir.rglob("*.png")):
            shutil.rmtree(images_dir)
        tmp.replace(root)
    finally:
        if tmp.exists():
            # close lerobot's parquet/metadata writers first: their __del__ would otherwise flush
            # buffered metadata into the folder again after we removed it
            if dataset is not None:
                with contextlib.suppress(Exception):
                    dataset.finalize()
                dataset = None
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def open_lerobot_dataset(root: str | Path, repo_id: str | None = None) -> LeRobotDataset:
    """`LeRobotDataset` for a local folder, with a clear error when it is not a finished dataset."""
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise LaraUserError(
            f"{root}: not a LeRobot dataset (no meta/info.json); an interrupted write leaves only a hidden "
            "'.NAME.tmp-*' folder, re-run the conversion/collection"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return LeRobotDataset(repo_id or f"local/{root.name}", root=root)
    except Exception as err:
        raise LaraUserError(
            f"{root}: lerobot cannot load the dataset ({type(err).__name__}: {err}); "
            "the dataset is incomplete or corrupt, write it again"
        ) from err


def _check_keys(root: Path, dataset: LeRobotDataset, mapping: KeyMapping) -> None:
    have = set(dataset.meta.features)
    need = [*mapping.cameras.values(), mapping.state, mapping.action]
    missing = [k for k in need if k not in have]
    if missing:
        raise LaraUserError(
            f"{root}: key mapping {mapping.name!r} needs {missing}, the dataset has {sorted(have)}; "
            "pick another preset (--mapping) or write a YAML mapping for this dataset"
        )
    shape = tuple(dataset.meta.features[mapping.action]["shape"])
    if shape != (mapping.action_dim,):
        raise LaraUserError(
            f"{root}, key {mapping.action!r}: action shape {shape}, mapping {mapping.name!r} "
            f"expects ({mapping.action_dim},); fix action_dim in the key mapping"
        )


def episode_bounds(dataset: LeRobotDataset) -> list[tuple[int, int, int]]:
    """[(episode_index, from_row, to_row)] of the loaded hf_dataset, in row order."""
    table = dataset.hf_dataset.with_format("numpy", columns=["episode_index"])[:]  # one vectorized arrow read
    ep_col = np.asarray(table["episode_index"])  # (N,)
    if ep_col.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, ep_col[1:] != ep_col[:-1]])
    ends = np.r_[starts[1:], ep_col.size]
    return [(int(ep_col[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def _load_sidecar(root: Path, index: int) -> dict:
    path = root / SIDECAR_DIR / f"episode_{index:06d}.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["info"] = json.loads(str(out["info"]))
    return out


def read_lerobot_dataset(
    root: str | Path,
    mapping: str | KeyMapping = "auto",
    episodes: list[int] | None = None,
) -> Iterator[Episode]:
    """Yield validated Episodes from a LeRobot v3 dataset folder (any dataset the mapping fits;
    `auto`: the preset that fits its features)."""
    root = Path(root)
    mapping = load_key_mapping(mapping, root)
    dataset = open_lerobot_dataset(root)
    _check_keys(root, dataset, mapping)
    bounds = episode_bounds(dataset)
    if not bounds:
        raise LaraUserError(f"{root}: the dataset has no frames; it is empty")
    tasks = {int(i): str(t) for t, i in zip(dataset.meta.tasks.index, dataset.meta.tasks["task_index"])}
    columns = [*mapping.cameras.values(), mapping.state, mapping.action, "task_index"]
    rows = dataset.hf_dataset.with_format("numpy", columns=columns)
    wanted = None if episodes is None else set(episodes)
    for ep_index, start, stop in bounds:
        if wanted is not None and ep_index not in wanted:
            continue
        chunk = rows[start:stop]
        images = {}
        for cam, key in mapping.cameras.items():
            img = np.stack(list(chunk[key])) if chunk[key].dtype == object else chunk[key]  # (T, H, W, 3)
            images[cam] = (
                np.ascontiguousarray(img[:, ::-1, ::-1]) if mapping.flip_images else img.astype(np.uint8)
            )
        state = np.asarray(chunk[mapping.state], np.float32)  # (T, S)
        action = np.asarray(chunk[mapping.action], np.float32).copy()  # (T, A)
        action[:, -1] = mapping.gripper_to_env(action[:, -1])
        side = _load_sidecar(root, ep_index)
        info = side.get("info", {})
        lerobot_task = int(chunk["task_index"][0])
        (p0, p1), (o0, o1) = mapping.ee_pos_slice, mapping.ee_ori_slice
        episode = Episode(
            images=images,
            state=state,
            action=action,
            gripper=action[:, -1].copy(),
            ee_pos=state[:, p0:p1],
            ee_ori=state[:, o0:o1],
            instruction=tasks.get(lerobot_task, ""),
            task_index=int(info.get("task_index", lerobot_task)),
            task_name=info.get("task_name", ""),
            suite=info.get("suite", ""),
            episode_index=ep_index,
            sim_states=side.get("sim_states"),
            bddl_file=info.get("bddl_file"),
            init_state=side.get("init_state"),
            expert_phases=info.get("expert_phases"),
            gripper_kind=info.get("gripper_kind", "command"),
            source=str(root),
            extras={k[len("extra.") :]: v for k, v in side.items() if k.startswith("extra.")},
        )
        yield episode.validate(action_dim=mapping.action_dim, state_dim=mapping.state_dim)
