"""The runner: idempotent, resumable, parallel, and loud about bad input."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.annotation import sidecar
from data_pipeline.annotation.annotate import annotate_dataset, annotate_episode
from data_pipeline.annotation.backends import make_backend
from data_pipeline.annotation.config import AnnotationConfig
from data_pipeline.annotation.source import InMemorySource
from lara.utils.errors import LaraUserError


def _files(root, name):
    run = sidecar.annotation_dir(root, name)
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_cot_content(pick_place_episode):
    cfg = AnnotationConfig()
    ann = annotate_episode(pick_place_episode(), cfg, make_backend(cfg))
    assert ann.status == "ok" and ann.num_frames == len(ann.frames) == 92
    assert ann.plan == [
        "move to the black bowl",
        "grasp the black bowl",
        "carry the black bowl to the plate",
        "place it on the plate",
        "retract the arm",
    ]
    assert ann.frames[31] == [
        ("SUBTASK", "grasp the black bowl"),
        ("OBJECTS", "black bowl; plate"),
        ("MOVE", "stop"),
        ("GRIPPER", "close"),
    ]
    assert dict(ann.frames[60])["GRIPPER"] == "hold" and dict(ann.frames[0])["GRIPPER"] == "open"
    assert dict(ann.frames[78])["SUBTASK"] == "place it on the plate"


def test_idempotent_resumable_parallel(tmp_path, pick_place_episode):
    eps = [pick_place_episode(i, noise=0.0005) for i in range(5)]
    cfg = AnnotationConfig()
    s1 = annotate_dataset(InMemorySource(tmp_path / "a", eps), "v1", cfg, workers=1, progress=False)
    assert (s1.annotated, s1.skipped, s1.newly_done) == (5, 0, 5)
    s2 = annotate_dataset(InMemorySource(tmp_path / "b", eps), "v1", cfg, workers=2, progress=False)
    assert s2.annotated == 5
    assert _files(tmp_path / "a", "v1") == _files(tmp_path / "b", "v1")  # byte-identical, any worker count
    # resume: delete two episodes (as if killed), re-run does only those
    run = sidecar.annotation_dir(tmp_path / "a", "v1")
    before = _files(tmp_path / "a", "v1")
    sidecar.episode_path(run, 1).unlink()
    sidecar.episode_path(run, 3).unlink()
    s3 = annotate_dataset(InMemorySource(tmp_path / "a", eps), "v1", cfg, workers=1, progress=False)
    assert s3.newly_done == 2 and _files(tmp_path / "a", "v1") == before
    s4 = annotate_dataset(InMemorySource(tmp_path / "a", eps), "v1", cfg, workers=1, progress=False)
    assert s4.newly_done == 0
    meta = sidecar.read_meta(run)
    assert meta["complete"] and meta["config_hash"] == cfg.config_hash() and meta["counts"]["annotated"] == 5
    assert meta["counts"]["subtask_vocabulary"]["grasp the black bowl"] == 5
    assert len(sidecar.load_annotations(tmp_path / "a", "v1")) == 5 * 92


@pytest.mark.slow  # ~30 s: starts a local Ray instance
def test_ray_workers_write_the_same_files(tmp_path, pick_place_episode):
    """`lara annotate --worker_backend ray`: the chunks run in Ray actors, byte-identical output."""
    eps = [pick_place_episode(i, noise=0.0005) for i in range(3)]
    cfg = AnnotationConfig()
    annotate_dataset(InMemorySource(tmp_path / "local", eps), "v1", cfg, workers=2, progress=False)
    on_ray = annotate_dataset(
        InMemorySource(tmp_path / "ray", eps), "v1", cfg, workers=2, progress=False, worker_backend="ray"
    )
    assert on_ray.annotated == 3
    assert _files(tmp_path / "local", "v1") == _files(tmp_path / "ray", "v1")


def test_worker_backend_flags_are_checked(tmp_path, pick_place_episode):
    from lara.scripts.annotate_cli import AnnotateConfig

    common = dict(backend="instruction", dataset="d", name="v1")
    with pytest.raises(LaraUserError, match="--worker_backend 'slurm': choose one of local, ray"):
        AnnotateConfig(**common, worker_backend="slurm")
    with pytest.raises(LaraUserError, match="add --worker_backend ray"):
        AnnotateConfig(**common, ray_address="auto")
    src = InMemorySource(tmp_path, [pick_place_episode()])
    with pytest.raises(LaraUserError, match="--worker_backend"):
        annotate_dataset(src, "v1", AnnotationConfig(), progress=False, worker_backend="slurm")


def test_config_mismatch_and_second_run(tmp_path, pick_place_episode):
    src = InMemorySource(tmp_path, [pick_place_episode(0)])
    annotate_dataset(src, "v1", AnnotationConfig(), progress=False)
    other = AnnotationConfig(motion_dead_zone=0.02)
    with pytest.raises(LaraUserError, match="another config.*motion_dead_zone: .* there vs 0.02 now"):
        annotate_dataset(src, "v1", other, progress=False)
    annotate_dataset(src, "v2", other, progress=False)  # a second run under another name
    assert [r["name"] for r in sidecar.list_annotations(tmp_path)] == ["v1", "v2"]
    annotate_dataset(src, "v1", other, progress=False, overwrite=True)
    assert sidecar.read_meta(sidecar.annotation_dir(tmp_path, "v1"))["config_hash"] == other.config_hash()


def test_bad_episodes_are_skipped_and_counted(tmp_path, pick_place_episode):
    no_grip = pick_place_episode(1)
    no_grip.gripper = np.full_like(no_grip.gripper, np.nan)
    no_instr = pick_place_episode(2, instruction="")
    ok = pick_place_episode(0)
    summary = annotate_dataset(
        InMemorySource(tmp_path, [ok, no_grip, no_instr]), "v1", AnnotationConfig(), progress=False
    )
    assert (summary.annotated, summary.skipped) == (1, 2)
    assert summary.skip_reasons == {"no gripper signal": 1, "no instruction": 1}
    cot = sidecar.load_annotations(tmp_path, "v1")
    assert {ep for ep, _ in cot} == {0}  # skipped episodes have no (empty) CoT
    head = sidecar.read_episode(sidecar.episode_path(sidecar.annotation_dir(tmp_path, "v1"), 1))
    assert head.status == "skipped" and "NaN" in head.reason


def test_quality_flag_recorded(tmp_path, pick_place_episode):
    ep = pick_place_episode(0)
    ep.gripper = -np.ones_like(ep.gripper)  # pick-and-place without any grasp
    summary = annotate_dataset(InMemorySource(tmp_path, [ep]), "v1", AnnotationConfig(), progress=False)
    assert summary.quality_flags == {"grasp_count_mismatch": 1}


def test_unknown_backend_and_bad_config():
    with pytest.raises(LaraUserError, match="unknown annotation backend"):
        AnnotationConfig(backend="magic")
    with pytest.raises(LaraUserError, match="invalid annotation config"):
        AnnotationConfig(smooth_window=4)
    with pytest.raises(LaraUserError, match="unknown annotation config keys"):
        AnnotationConfig.from_dict({"smoth_window": 3})


def test_two_objects_two_cycles(pick_place_episode):
    from annotation_fixtures import PICK_PLACE_SCRIPT

    ep = pick_place_episode(
        0,
        script=PICK_PLACE_SCRIPT * 2,
        instruction="put both the alphabet soup and the tomato sauce in the basket",
    )
    cfg = AnnotationConfig()
    ann = annotate_episode(ep, cfg, make_backend(cfg))
    assert ann.quality_flags == []
    assert "grasp the alphabet soup" in ann.plan and "grasp the tomato sauce" in ann.plan
    assert ann.plan.index("grasp the alphabet soup") < ann.plan.index("grasp the tomato sauce")
    assert dict(ann.frames[92 + 31])["SUBTASK"] == "grasp the tomato sauce"
    assert dict(ann.frames[78])["SUBTASK"] == "place it in the basket"


def test_subset_run_is_not_complete(tmp_path, pick_place_episode):
    src = InMemorySource(tmp_path, [pick_place_episode(i) for i in range(3)])
    annotate_dataset(src, "v1", AnnotationConfig(), progress=False, episodes=[0, 2])
    run = sidecar.annotation_dir(tmp_path, "v1")
    assert sidecar.finished_episodes(run) == [0, 2] and not sidecar.read_meta(run)["complete"]
    with pytest.raises(LaraUserError, match="incomplete"):
        sidecar.load_annotations(tmp_path, "v1", require_complete=True)
    annotate_dataset(src, "v1", AnnotationConfig(), progress=False)
    assert sidecar.read_meta(run)["complete"]
    with pytest.raises(LaraUserError, match="not in the dataset"):
        annotate_dataset(src, "v1", AnnotationConfig(), progress=False, episodes=[7])
