"""The dataset a collection writes, assembled from the demo files its workers saved.

`write_collected` turns `<out>.partial/episodes/*.npz` (one success each, `load_episode_file`) into
the LeRobot dataset (and optional LIBERO HDF5 files) plus `lara/collection.json`
(`collection_meta`: how the start layouts were drawn), and computes the normalization statistics.
`data_pipeline.collect` runs the workers and calls it once every demo is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.collect_worker import episode_file
from data_pipeline.episode import Episode
from data_pipeline.expert_recording import episode_from_recording
from lara.utils.atomic import atomic_write_text
from lara.utils.jsonl import read_jsonl

COLLECTION_FILE = "lara/collection.json"  # inside the dataset: how its start layouts were drawn


def load_episode_file(path: Path, task_id: int, suite: str, index: int) -> Episode:
    """A worker's npz -> Episode (gripper signal = the gripper command)."""
    with np.load(path, allow_pickle=False) as z:
        return episode_from_recording(
            z,
            instruction=str(z["instruction"]),
            task_index=task_id,
            task_name=str(z["task_name"]),
            suite=suite,
            episode_index=index,
            bddl_file=str(z["bddl_file"]),
            init_state=z["init_state"],
            source=str(path),
            extras={"joint_states": z["joint_states"]},
        ).validate(action_dim=7, state_dim=8)


def write_collected(partial: Path, done: list[tuple[int, int]], cfg, out: Path) -> None:
    """Assemble the finished episode files into the LeRobot dataset (+ optional HDF5), atomically.
    `done`: the (task, slot) of every demo on disk; `cfg`: the run's `data_pipeline.collect.CollectConfig`."""
    from data_pipeline.lerobot_io import write_lerobot_dataset
    from data_pipeline.libero_hdf5 import write_libero_hdf5  # heavy (h5py, lerobot): not for `--help`
    from data_pipeline.stats import load_or_compute_stats

    def episodes() -> Iterator[Episode]:
        for index, (task_id, slot) in enumerate(done):
            yield load_episode_file(episode_file(partial, task_id, slot), task_id, cfg.suite, index)

    if cfg.hdf5_dir:
        hdf5_dir = Path(cfg.hdf5_dir)
        for task_id in sorted({t for t, _ in done}):
            eps = [
                load_episode_file(episode_file(partial, t, k), t, cfg.suite, i)
                for i, (t, k) in enumerate(done)
                if t == task_id
            ]
            write_libero_hdf5(hdf5_dir / f"{eps[0].task_name}_demo.hdf5", eps)
    write_lerobot_dataset(out, episodes(), "libero", repo_id=cfg.repo_id, fps=20, progress=True)
    atomic_write_text(out / COLLECTION_FILE, json.dumps(collection_meta(partial, done, cfg), indent=1))
    load_or_compute_stats(out, "libero")


def collection_meta(partial: Path, done: list[tuple[int, int]], cfg) -> dict[str, Any]:
    """How the dataset's start layouts were drawn: the run's settings, the layouts refused for being
    too close to an evaluation init state, and each episode's start (seed, nearest init state)."""
    lines, _ = read_jsonl(partial / "reports.jsonl")
    starts = []
    for index, (task_id, slot) in enumerate(done):
        with np.load(episode_file(partial, task_id, slot), allow_pickle=False) as z:
            layout = (
                json.loads(str(z["layout"])) if "layout" in z.files else {}
            )  # files of runs before --init
        starts.append({"episode_index": index, "task_id": task_id, "slot": slot, **layout})
    distances = [s["distance_m"] for s in starts if "distance_m" in s]
    return {
        "init": cfg.init,
        "render_quality": cfg.render_quality,  # lara eval --render_quality should match
        "seed": cfg.seed,
        "perturb_xy": cfg.perturb_xy,
        "min_layout_distance_m": cfg.min_layout_distance if cfg.init == "sampled" else None,
        "max_layout_draws": cfg.max_layout_draws if cfg.init == "sampled" else None,
        "region_fit": cfg.region_fit if cfg.init == "sampled" else None,
        "starts_from_evaluation_states": cfg.init == "shipped",
        "layouts_refused": sum(r.get("layouts_refused", 0) for r in lines),
        "min_distance_to_evaluation_states_m": min(distances) if distances else None,
        "episodes": starts,
    }
