"""Second round of data-pipeline crash and bad-input cases (issue 29):
case 1, one owner per folder (`lara collect --out`, `lara annotate`'s run folder);
case 4, a damaged annotation is refused when a run reads it, naming the file and the frame;
case 5, a dataset whose meta/info.json shapes disagree with its parquet is refused before lerobot reads it;
case 7, a missing parquet file is named, and `lara annotate` on it leaves no half run behind."""

import json
import shutil
from pathlib import Path

import pytest

from data_pipeline.annotation import sidecar
from data_pipeline.annotation.sidecar import (
    EpisodeAnnotation,
    annotation_dir,
    episode_path,
    write_episode,
    write_meta,
)
from data_pipeline.lerobot_io import open_lerobot_dataset, write_lerobot_dataset
from data_pipeline.samples import LaraSampleDataset, SampleConfig
from lara.scripts.cli import main as lara_main
from lara.utils.errors import LaraUserError

T = 10  # frames per episode
SIZE = 16  # image side


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _annotate_v2(root: Path) -> list[str]:
    run = ["--name", "v2", "--backend", "instruction", "--progress", "false"]
    return ["annotate", "--dataset", str(root), *run]


def _cot(t: int) -> list[tuple[str, str]]:
    return [
        ("SUBTASK", "grasp the bowl"),
        ("OBJECTS", "bowl [2, 3, 9, 12]"),
        ("MOVE", "move down"),
        ("GRIPPER", "open" if t < T // 2 else "close"),
    ]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, make_episode) -> Path:
    """2 episodes of T frames (SIZE x SIZE images), annotated as run v1."""
    root = tmp_path_factory.mktemp("data") / "ds"
    write_lerobot_dataset(root, [make_episode(T, index=i, size=SIZE) for i in range(2)])
    run = annotation_dir(root, "v1")
    for ep in range(2):
        write_episode(run, EpisodeAnnotation(ep, "ok", T, frames=[_cot(t) for t in range(T)]))
    write_meta(run, {"complete": True})
    return root


@pytest.fixture
def damaged(annotated, tmp_path):
    """A copy of the annotated dataset and the path of its episode 1 file, to damage."""
    root = tmp_path / "ds"
    shutil.copytree(annotated, root)
    return root, episode_path(annotation_dir(root, "v1"), 1)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _samples(root: Path) -> LaraSampleDataset:
    return LaraSampleDataset(root, SampleConfig(annotation="v1", image_size=8, foresight_image_size=8))


# -- case 4: damaged annotation files ---------------------------------------------------------------
def test_an_intact_annotation_reads(annotated):
    assert _samples(annotated)[T + 3]["cot"] == _cot(3)  # episode 1, frame 3


def test_a_cut_annotation_file_names_the_file_and_the_frame(damaged):
    root, path = damaged
    _write(path, _lines(path)[: 1 + 6])  # header + 6 of T frames
    with pytest.raises(
        LaraUserError, match=rf"{path}: damaged annotation, frame 6: 6 frame lines for num_frames {T}"
    ):
        _samples(root)


def test_a_wrong_num_frames_header_is_refused(damaged):
    root, path = damaged
    lines = _lines(path)
    lines[0]["num_frames"] = T + 5
    _write(path, lines)
    with pytest.raises(LaraUserError, match=rf"{path}: damaged annotation, frame {T}: {T} frame lines"):
        _samples(root)
    # header and frame lines agree with each other, but not with the episode in the dataset
    _write(
        path,
        [lines[0], *lines[1:], *({"type": "frame", "frame": t, "cot": _cot(0)} for t in range(T, T + 5))],
    )
    with pytest.raises(LaraUserError, match=rf"num_frames {T + 5}, episode 1 of the dataset has {T}"):
        _samples(root)


def test_empty_cot_on_every_frame_is_refused(damaged):
    root, path = damaged
    lines = _lines(path)
    _write(path, [lines[0], *({**line, "cot": []} for line in lines[1:])])
    with pytest.raises(LaraUserError, match=rf"{path}: damaged annotation, frame 0: empty cot"):
        _samples(root)


def test_a_box_outside_the_image_is_refused(damaged):
    root, path = damaged
    lines = _lines(path)
    lines[1 + 4]["cot"][1] = ["OBJECTS", "bowl [9000, -54, 90, 54]"]
    _write(path, lines)
    with pytest.raises(
        LaraUserError, match=rf"frame 4: box \[9000, -54, 90, 54\] is outside the {SIZE}x{SIZE} image"
    ):
        _samples(root)


def test_unknown_or_reordered_tags_are_refused(damaged):
    root, path = damaged
    lines = _lines(path)
    lines[1 + 2]["cot"] = [["MOVE", "move down"], ["SUBTASK", "grasp"]]
    _write(path, lines)
    with pytest.raises(LaraUserError, match=r"frame 2: tags \['MOVE', 'SUBTASK'\]"):
        _samples(root)


# -- case 5: info.json shapes that disagree with the data -------------------------------------------
@pytest.mark.parametrize(("key", "shape", "real"), [("observation.state", 9, 8), ("action", 6, 7)])
def test_info_json_shape_disagreeing_with_the_parquet_is_refused_before_lerobot(
    annotated, tmp_path, monkeypatch, key, shape, real
):
    root = tmp_path / "ds"
    shutil.copytree(annotated, root)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"][key].update(shape=[shape], names=None)
    (root / "meta" / "info.json").write_text(json.dumps(info))

    def never(*args, **kwargs):  # lerobot's failing parquet read left reader threads that aborted the exit
        raise AssertionError("lerobot was asked to load an inconsistent dataset")

    monkeypatch.setattr("data_pipeline.lerobot_io.LeRobotDataset", never)
    with pytest.raises(
        LaraUserError, match=rf"'{key}' has shape \[{shape}\] in meta/info.json but {real} values"
    ):
        open_lerobot_dataset(root)


# -- case 7: a missing parquet file -----------------------------------------------------------------
def test_a_missing_parquet_file_is_named(annotated, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(annotated, root)
    (root / "data" / "chunk-000" / "file-000.parquet").unlink()
    with pytest.raises(LaraUserError) as err:
        open_lerobot_dataset(root)
    assert "data file data/chunk-000/file-000.parquet is missing" in str(err.value)
    assert "episodes [0, 1]" in str(err.value) and "Cannot reach" not in str(err.value)


def test_annotate_on_a_missing_parquet_leaves_no_run_and_a_rerun_works(annotated, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(annotated, root)
    data = root / "data" / "chunk-000" / "file-000.parquet"
    data.rename(tmp_path / "kept.parquet")
    argv = _annotate_v2(root)
    assert lara_main(argv) == 2
    assert "data/chunk-000/file-000.parquet is missing" in _one_error_line(capsys)
    assert not annotation_dir(root, "v2").exists()  # no meta.json saying `complete: false`
    assert [r["name"] for r in sidecar.list_annotations(root)] == ["v1"]
    (tmp_path / "kept.parquet").rename(data)
    assert lara_main(argv) == 0
    capsys.readouterr()
    meta = sidecar.read_meta(annotation_dir(root, "v2"))
    assert meta["complete"] is True and meta["counts"]["episodes"] == 2


# -- case 1: one owner per folder -------------------------------------------------------------------
def test_a_second_annotate_into_a_held_run_folder_is_refused(
    annotated, tmp_path, capsys, held_by_another_process
):
    root = tmp_path / "ds"
    shutil.copytree(annotated, root)
    run = annotation_dir(root, "v2")
    argv = _annotate_v2(root)
    with held_by_another_process(run, "lara annotate") as holder:
        assert lara_main(argv) == 2
    assert f"in use by lara annotate (PID {holder.pid}" in _one_error_line(capsys)
    assert not sidecar.finished_episodes(run) and sidecar.read_meta(run) is None


def test_a_second_collect_into_a_held_out_is_refused(tmp_path, capsys, held_by_another_process):
    out = tmp_path / "demos"
    argv = [
        "collect",
        "--suite",
        "libero_object",
        "--tasks",
        "0",
        "--episodes_per_task",
        "1",
        "--out",
        str(out),
    ]
    with held_by_another_process(tmp_path / "demos.partial", "lara collect") as holder:
        assert lara_main(argv) == 2
    assert f"in use by lara collect (PID {holder.pid}" in _one_error_line(capsys)
    assert not (tmp_path / "demos.partial" / "config.json").exists() and not out.exists()
