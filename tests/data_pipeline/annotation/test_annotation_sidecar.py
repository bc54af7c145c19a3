"""Sidecar format: round trip, byte identity, resume bookkeeping, clear errors."""

from __future__ import annotations

import pytest

from data_pipeline.annotation import sidecar
from data_pipeline.annotation.sidecar import EpisodeAnnotation
from lara.utils.errors import LaraUserError


def _ann(ep: int, T: int = 3) -> EpisodeAnnotation:
    frames = [
        [
            ("SUBTASK", f"grasp the bowl {t}"),
            ("OBJECTS", "bowl [1, 2, 3, 4]"),
            ("MOVE", "move down"),
            ("GRIPPER", "open"),
        ]
        for t in range(T)
    ]
    return EpisodeAnnotation(
        episode=ep,
        status="ok",
        num_frames=T,
        instruction="put the bowl on the plate",
        plan=["grasp the bowl", "place it on the plate"],
        frames=frames,
        config_hash="abc",
    )


def test_round_trip_and_load(tmp_path):
    run = sidecar.annotation_dir(tmp_path, "v1")
    sidecar.write_episode(run, _ann(0))
    sidecar.write_episode(run, _ann(5, T=2))
    sidecar.write_episode(
        run, EpisodeAnnotation(episode=7, status="skipped", num_frames=4, reason="no gripper")
    )
    sidecar.write_meta(run, {"complete": True, "backend": "instruction"})
    assert sidecar.finished_episodes(run) == [0, 5, 7]
    cot = sidecar.load_annotations(tmp_path, "v1")
    assert sorted(cot) == [(0, 0), (0, 1), (0, 2), (5, 0), (5, 1)]
    assert [tag for tag, _ in cot[(0, 1)]] == list(sidecar.FRAME_TAGS)
    assert cot[(0, 1)][0] == ("SUBTASK", "grasp the bowl 1")
    with_plan = sidecar.load_annotations(tmp_path, "v1", include_plan=True)
    assert with_plan[(5, 0)][0] == ("PLAN", "grasp the bowl; place it on the plate")
    assert sidecar.load_plans(tmp_path, "v1") == {
        0: ["grasp the bowl", "place it on the plate"],
        5: ["grasp the bowl", "place it on the plate"],
    }
    runs = sidecar.list_annotations(tmp_path)
    assert [r["name"] for r in runs] == ["v1"] and runs[0]["complete"] is True


def test_byte_identical(tmp_path):
    a = sidecar.write_episode(sidecar.annotation_dir(tmp_path / "a", "v1"), _ann(1))
    b = sidecar.write_episode(sidecar.annotation_dir(tmp_path / "b", "v1"), _ann(1))
    assert a.read_bytes() == b.read_bytes()
    assert not list(a.parent.glob(".*tmp"))  # no temp files left


def test_never_writes_empty_frames(tmp_path):
    bad = _ann(0)
    bad.frames[1] = []
    with pytest.raises(ValueError):
        sidecar.write_episode(sidecar.annotation_dir(tmp_path, "v1"), bad)


def test_errors(tmp_path):
    with pytest.raises(LaraUserError, match="no annotation run"):
        sidecar.load_annotations(tmp_path, "missing")
    with pytest.raises(LaraUserError, match="invalid annotation name"):
        sidecar.annotation_dir(tmp_path, "../evil")
    run = sidecar.annotation_dir(tmp_path, "v2")
    sidecar.write_episode(run, _ann(0))
    with pytest.raises(LaraUserError, match="incomplete"):
        sidecar.load_annotations(tmp_path, "v2", require_complete=True)
    sidecar.episode_path(run, 3).write_text('{"type": "episode"\n')
    with pytest.raises(LaraUserError, match="corrupt"):
        sidecar.load_annotations(tmp_path, "v2")
