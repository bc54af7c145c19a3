"""Read and write the official LIBERO HDF5 layout, so the public LIBERO datasets load unchanged.

Layout (one file per task, as LIBERO's `create_dataset.py` writes it):
```
data.attrs: problem_info (JSON: language_instruction, problem_name, ...), bddl_file_name,
            env_name, env_args, macros_image_convention ("opengl" = raw upside-down renders)
data/demo_i/actions (T, 7)   states (T, D)   rewards (T,)   dones (T,)
data/demo_i/obs/{agentview_rgb, eye_in_hand_rgb} (T, H, W, 3) uint8
data/demo_i/obs/{gripper_states (T, 2), joint_states (T, 7), ee_pos (T, 3), ee_ori (T, 3)}
```
Official LIBERO files store raw MuJoCo renders (upside down, `macros_image_convention=opengl`);
openvla's regenerated `*_no_noops` files store upright images. The reader flips when the file
says (or, for files without the attribute, is assumed to hold) opengl images; the writer writes
upright images and says `opencv`. Writes go to a temp file renamed into place (atomic).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from data_pipeline.episode import Episode, EpisodeError

CAMERA_KEYS = {"agentview": "agentview_rgb", "wrist": "eye_in_hand_rgb"}
_DEMO_RE = re.compile(r"^demo_(\d+)$")


def _fail(path: Path, demo: str, key: str, problem: str, fix: str) -> EpisodeError:
    return EpisodeError(f"{path}, episode {demo}, key {key!r}: {problem}; {fix}")


def _demo_names(data: h5py.Group) -> list[str]:
    names = [n for n in data.keys() if _DEMO_RE.match(n)]
    return sorted(names, key=lambda n: int(_DEMO_RE.match(n).group(1)))  # type: ignore[union-attr]


def _task_from_bddl(bddl: str | None, path: Path) -> tuple[str, str]:
    """(suite, task_name) from the BDDL path, else from the file name (`<task>_demo.hdf5`)."""
    if bddl:
        p = Path(bddl)
        return p.parent.name, p.stem
    return "", re.sub(r"_demo$", "", path.stem)


def _read_attrs(data: h5py.Group) -> dict:
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in data.attrs.items()}
    try:
        attrs["problem_info"] = json.loads(attrs.get("problem_info", "{}"))
    except (TypeError, ValueError):
        attrs["problem_info"] = {}
    return attrs


def read_libero_hdf5(
    path: str | Path, task_index: int = 0, image_orientation: str = "auto", start_index: int = 0
) -> list[Episode]:
    """All demos of one LIBERO HDF5 file as validated Episodes (see `iter_libero_hdf5`)."""
    return list(iter_libero_hdf5(path, task_index, image_orientation, start_index))


def iter_libero_hdf5(
    path: str | Path, task_index: int = 0, image_orientation: str = "auto", start_index: int = 0
) -> Iterator[Episode]:
    """Yield the demos of one LIBERO HDF5 file one at a time (an official file holds ~50 demos and
    hundreds of MB of images: never all in memory at once), validated, in demo-number order.

    image_orientation: "auto" (from `macros_image_convention`; missing = opengl, as official files),
    "raw" (flip `[::-1, ::-1]`) or "upright" (keep). Raises EpisodeError naming file, demo and key.
    """
    path = Path(path)
    if image_orientation not in ("auto", "raw", "upright"):
        raise ValueError(f"image_orientation must be auto, raw or upright, got {image_orientation!r}")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise EpisodeError(
            f"{path}: cannot open as HDF5 ({err}); the file is truncated or corrupt, download/convert it "
            "again"
        ) from err
    with f:
        if "data" not in f:
            raise _fail(path, "-", "data", "no 'data' group", "this is not a LIBERO demo file")
        data = f["data"]
        attrs = _read_attrs(data)
        instruction = str(attrs["problem_info"].get("language_instruction", "")).strip()
        bddl = attrs.get("bddl_file_name") or None
        suite, task_name = _task_from_bddl(bddl, path)
        if not instruction:
            instruction = task_name.replace("_", " ")
        flip = image_orientation == "raw" or (
            image_orientation == "auto" and attrs.get("macros_image_convention", "opengl") != "opencv"
        )
        demos = _demo_names(data)
        if not demos:
            raise _fail(
                path, "-", "data/demo_*", "no demos in the file", "the dataset is empty; check the file"
            )
        for i, demo in enumerate(demos):
            yield _read_demo(
                path, data[demo], demo, flip, instruction, task_index, task_name, suite, bddl, start_index + i
            )


def _read_demo(
    path: Path,
    grp: h5py.Group,
    demo: str,
    flip: bool,
    instruction: str,
    task_index: int,
    task_name: str,
    suite: str,
    bddl: str | None,
    episode_index: int,
) -> Episode:
    def get(key: str, required: bool = True) -> np.ndarray | None:
        if key not in grp:
            if not required:
                return None
            raise _fail(
                path, demo, key, "missing", "the file does not follow the LIBERO layout (data/demo_i/...)"
            )
        try:
            return grp[key][()]
        except (OSError, KeyError, ValueError) as err:
            raise _fail(
                path, demo, key, f"cannot be read ({err})", "the file is truncated or corrupt; re-download it"
            ) from err

    action = get("actions").astype(np.float32)  # (T, 7)
    images = {}
    for cam, key in CAMERA_KEYS.items():
        img = get(f"obs/{key}")  # (T, H, W, 3) uint8
        images[cam] = np.ascontiguousarray(img[:, ::-1, ::-1]) if flip else img
    gripper_states = get("obs/gripper_states").astype(np.float32)  # (T, 2)
    ee_pos = get("obs/ee_pos").astype(np.float32)  # (T, 3)
    ee_ori = get("obs/ee_ori").astype(np.float32)  # (T, 3) axis-angle
    if not (len(ee_pos) == len(ee_ori) == len(gripper_states)):
        raise _fail(
            path,
            demo,
            "obs/ee_pos, obs/ee_ori, obs/gripper_states",
            f"lengths {len(ee_pos)}, {len(ee_ori)}, {len(gripper_states)} differ",
            "re-export the demo",
        )
    state = np.concatenate([ee_pos, ee_ori, gripper_states], axis=1)  # (T, 8)
    states = get("states", required=False)
    extras = {}
    for key in ("obs/joint_states", "rewards", "dones"):
        value = get(key, required=False)
        if value is not None:
            extras[key.split("/")[-1]] = value
    init_state = grp.attrs.get("init_state")
    if init_state is None and states is not None and len(states):
        init_state = states[0]
    episode = Episode(
        images=images,
        state=state,
        action=action,
        gripper=action[:, -1].copy() if action.ndim == 2 else action,
        ee_pos=ee_pos,
        ee_ori=ee_ori,
        instruction=instruction,
        task_index=task_index,
        task_name=task_name,
        suite=suite,
        episode_index=episode_index,
        sim_states=None if states is None else states.astype(np.float64),
        bddl_file=bddl,
        init_state=None if init_state is None else np.asarray(init_state, np.float64),
        source=f"{path} ({demo})",
        extras=extras,
    )
    return episode.validate(action_dim=7, state_dim=8)


def write_libero_hdf5(path: str | Path, episodes: list[Episode]) -> Path:
    """Write episodes of ONE task in the LIBERO layout (upright images, `opencv`); atomic."""
    path = Path(path)
    if not episodes:
        raise EpisodeError(f"{path}: no episodes to write; the dataset would be empty")
    for ep in episodes:
        ep.validate(action_dim=7, state_dim=8)
    first = episodes[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs["problem_info"] = json.dumps(
                {
                    "language_instruction": first.instruction,
                    "problem_name": first.task_name,
                    "domain_name": first.suite,
                }
            )
            data.attrs["bddl_file_name"] = first.bddl_file or ""
            data.attrs["macros_image_convention"] = "opencv"
            data.attrs["env_name"] = first.suite
            data.attrs["num_demos"] = len(episodes)
            data.attrs["total"] = int(sum(ep.length for ep in episodes))
            for i, ep in enumerate(episodes):
                grp = data.create_group(f"demo_{i}")
                grp.attrs["num_samples"] = ep.length
                if ep.init_state is not None:
                    grp.attrs["init_state"] = ep.init_state
                grp.create_dataset("actions", data=ep.action.astype(np.float64))
                for cam, key in CAMERA_KEYS.items():
                    if cam in ep.images:
                        grp.create_dataset(
                            f"obs/{key}", data=ep.images[cam], compression="gzip", compression_opts=1
                        )
                grp.create_dataset("obs/gripper_states", data=ep.state[:, 6:8])
                grp.create_dataset("obs/ee_pos", data=ep.ee_pos)
                grp.create_dataset("obs/ee_ori", data=ep.ee_ori)
                if "joint_states" in ep.extras:
                    grp.create_dataset("obs/joint_states", data=ep.extras["joint_states"])
                if ep.sim_states is not None:
                    grp.create_dataset("states", data=ep.sim_states)
                dones = ep.extras.get("dones", np.eye(1, ep.length, ep.length - 1, dtype=np.uint8)[0])
                grp.create_dataset("rewards", data=ep.extras.get("rewards", dones))
                grp.create_dataset("dones", data=dones)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
