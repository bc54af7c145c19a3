"""`lara collect --init`: settings, resume of runs from before the flag, and the dataset's record of
how its start layouts were drawn (no simulator: the worker's files are written by hand here)."""

import json

import numpy as np
import pytest

from data_pipeline.collect import CollectConfig, _check_resume, partial_dir
from data_pipeline.collect_worker import episode_file
from data_pipeline.collected_dataset import collection_meta
from lara.utils.errors import LaraUserError


def test_init_settings_are_validated():
    assert CollectConfig().init == "shipped"  # today's behaviour stays the default
    with pytest.raises(LaraUserError, match="--init 'random'"):
        CollectConfig(init="random")
    with pytest.raises(LaraUserError, match="region_fit"):
        CollectConfig(init="sampled", region_fit="loose")
    with pytest.raises(LaraUserError, match="min_layout_distance"):
        CollectConfig(init="sampled", min_layout_distance=-0.01)


def test_resume_of_a_run_from_before_init_counts_as_shipped(tmp_path):
    partial = partial_dir(tmp_path / "out")
    partial.mkdir(parents=True)
    old = {
        "suite": "libero_object",
        "camera_size": 128,
        "perturb_xy": 0.01,
        "settle_steps": 5,
        "max_steps": None,
        "seed": 7,
        "finish_motion": True,
    }
    (partial / "config.json").write_text(json.dumps(old))
    _check_resume(partial, CollectConfig(out=str(tmp_path / "out")))  # same run: resumes
    with pytest.raises(LaraUserError, match="init"):
        _check_resume(partial, CollectConfig(out=str(tmp_path / "out"), init="sampled"))


def _episode(partial, task, slot, layout):
    path = episode_file(partial, task, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, action=np.zeros((3, 7)), layout=np.array(json.dumps(layout)))


def test_collection_meta_records_how_layouts_were_drawn(tmp_path):
    partial = tmp_path / "run.partial"
    _episode(partial, 0, 0, {"layout_seed": 11, "resampled": 0, "nearest_init_state": 4, "distance_m": 0.021})
    _episode(partial, 2, 1, {"layout_seed": 12, "resampled": 2, "nearest_init_state": 9, "distance_m": 0.013})
    reports = [
        {"status": "ok", "layouts_refused": 0},
        {"status": "failed", "layouts_refused": 1},
        {"status": "ok", "layouts_refused": 2},
    ]
    (partial / "reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reports))
    cfg = CollectConfig(init="sampled", seed=3, min_layout_distance=0.01, perturb_xy=0.0)
    meta = collection_meta(partial, [(0, 0), (2, 1)], cfg)
    assert meta["init"] == "sampled" and meta["seed"] == 3 and meta["region_fit"] == "center"
    assert meta["min_layout_distance_m"] == 0.01 and meta["layouts_refused"] == 3
    assert meta["min_distance_to_evaluation_states_m"] == 0.013 and not meta["starts_from_evaluation_states"]
    assert [(e["episode_index"], e["task_id"], e["slot"], e["layout_seed"]) for e in meta["episodes"]] == [
        (0, 0, 0, 11),
        (1, 2, 1, 12),
    ]

    shipped = collection_meta(partial, [(0, 0)], CollectConfig())
    assert shipped["starts_from_evaluation_states"] and shipped["min_layout_distance_m"] is None


def test_collect_help_lists_init(capsys):
    from lara.scripts.collect_cli import main

    with pytest.raises(
        SystemExit
    ) as exit_info:  # argparse formats every field's comment: a stray % breaks it
        main(["--help"])
    assert exit_info.value.code == 0 and "--init str" in capsys.readouterr().out
