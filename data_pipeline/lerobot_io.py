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


def _check_data_files(root: Path) -> None:
    """Every file meta/ lists is on disk, or one line naming the first one missing. lerobot, finding a
    file missing, tries to download the dataset from the hub and reports only that it cannot."""
    import pyarrow.parquet as pq

    try:
        info = json.loads((root / "meta" / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LaraUserError(
            f"{root / 'meta' / 'info.json'}: unreadable ({err}); write the dataset again"
        ) from None
    data_path = info.get("data_path") if isinstance(info, dict) else None
    if not isinstance(data_path, str):
        return  # not lerobot v3: lerobot itself says what is wrong
    episode_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    needed = [root / "meta" / "tasks.parquet"]
    if not episode_files:
        needed.append(root / "meta" / "episodes")
    for file in needed:
        if not file.exists():
            raise LaraUserError(
                f"{root}: {file} is missing; the dataset is incomplete, copy or write it again"
            )
    files: dict[Path, list[int]] = {}  # data file -> the episodes stored in it
    for path in episode_files:
        try:
            table = pq.read_table(path, columns=["episode_index", "data/chunk_index", "data/file_index"])
        except Exception:  # noqa: BLE001 (damaged metadata: lerobot's own error names it)
            return
        columns = table.to_pydict()
        for ep, chunk, index in zip(
            columns["episode_index"], columns["data/chunk_index"], columns["data/file_index"]
        ):
            files.setdefault(root / data_path.format(chunk_index=chunk, file_index=index), []).append(int(ep))
    for file, episodes in sorted(files.items()):
        if not file.is_file():
            listed = f"{episodes[:5]}{' ...' if len(episodes) > 5 else ''}"
            raise LaraUserError(
                f"{root}: data file {file.relative_to(root)} is missing (meta/episodes puts episodes "
                f"{listed} in it); the dataset is incomplete, copy or write it again"
            )
        _check_vector_shapes(root, file, info.get("features") or {})


def _check_vector_shapes(root: Path, file: Path, features: dict) -> None:
    """A vector feature (state, action) whose meta/info.json shape disagrees with the parquet file's
    fixed-size lists: one line, read from the file's footer alone. Handed to lerobot, such a
    dataset fails inside a parquet read whose abandoned reader threads could abort the process at
    exit ("terminate called without an active exception", exit 134)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
    except Exception:  # noqa: BLE001 (not parquet: lerobot's own error names it)
        return
    for key, feature in features.items():
        shape = feature.get("shape") if isinstance(feature, dict) else None
        if feature.get("dtype") in ("image", "video") or not isinstance(shape, list) or len(shape) != 1:
            continue
        if key not in schema.names:
            raise LaraUserError(
                f"{root}: meta/info.json lists feature {key!r}, {file.relative_to(root)} has no such column; "
                "the dataset is inconsistent, write it again"
            )
        field_type = schema.field(key).type
        if pa.types.is_fixed_size_list(field_type) and field_type.list_size != shape[0]:
            raise LaraUserError(
                f"{root}: feature {key!r} has shape {shape} in meta/info.json but {field_type.list_size} "
                f"values per frame in {file.relative_to(root)}; fix meta/info.json or write the dataset again"
            )


def open_lerobot_dataset(root: str | Path, repo_id: str | None = None) -> LeRobotDataset:
    """`LeRobotDataset` for a local folder, with a clear error when it is not a finished dataset."""
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise LaraUserError(
            f"{root}: not a LeRobot dataset (no meta/info.json); an interrupted write leaves only a hidden "
            "'.NAME.tmp-*' folder, re-run the conversion/collection"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _check_data_files(root)
    try:
        return LeRobotDataset(repo_id or f"local/{root.name}", root=root)
    except Exception as err:
        raise LaraUserError(
            f"{root}: lerobot cannot load the dataset ({type(err).__name__}: {err}); "
            "the dataset is incomplete or corrupt, write it again"
        ) from err


def image_hw(dataset: LeRobotDataset, key: str) -> tuple[int, int] | None:
    """(H, W) of image feature `key` as meta/info.json declares it; None when it names no height/width."""
    feature = dataset.meta.features.get(key) or {}
    shape = list(feature.get("shape") or [])
    names = list(feature.get("names") or ["height", "width", "channel"])
    if len(shape) != 3 or "height" not in names or "width" not in names:
        return None
    return int(shape[names.index("height")]), int(shape[names.index("width")])


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
