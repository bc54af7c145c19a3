"""Bad data and interrupted writes on the data side (issue 14, cases 2, 3, 5, 7, 8)."""

import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.lerobot_io import write_lerobot_dataset
from data_pipeline.libero_hdf5 import write_libero_hdf5
from data_pipeline.samples import LaraSampleDataset, SampleConfig
from data_pipeline.stats import STATS_FILE, load_or_compute_stats
from lara.utils.atomic import remove_stale_temps
from lara.utils.errors import LaraUserError


@pytest.fixture
def dataset(tmp_path, make_episode):
    root = tmp_path / "ds"
    write_lerobot_dataset(root, [make_episode(6, index=0), make_episode(5, index=1, task=1)])
    return root


def _poison_action(root, row: int, dim: int) -> None:
    """Write NaN into one action value of the dataset's parquet file, as a bad export would."""
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    action = np.stack(table["action"].to_numpy(zero_copy_only=False))  # (N, 7)
    action[row, dim] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1), pa.float32()), action.shape[1])
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", column), path)


def test_nan_in_a_dataset_with_stored_stats_is_one_line(dataset):
    """Statistics were stored while the data was clean; the data changed later. Opening the dataset
    for training must not hand NaN to the loss (it failed at step 9 with a traceback)."""
    load_or_compute_stats(dataset)
    _poison_action(dataset, row=8, dim=2)  # episode 1 (rows 6..10), frame 2
    with pytest.raises(LaraUserError) as err:
        LaraSampleDataset(dataset, SampleConfig(chunk_size=2, image_size=8, foresight_image_size=8))
    message = str(err.value)
    assert str(dataset) in message and "action is NaN/inf in episode 1, frame 2, dim 2" in message
    assert "re-convert" in message and "\n" not in message


def test_stale_stats_with_other_dimensions_are_recomputed(dataset, caplog):
    stats = load_or_compute_stats(dataset)
    path = dataset / STATS_FILE
    data = json.loads(path.read_text())
    for key in ("mean", "std", "q01", "q99", "min", "max"):
        data["features"]["state"][key] = data["features"]["state"][key][:6]  # stats of another robot
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        again = load_or_compute_stats(dataset)
    assert again.features["state"].dim == 8 and again.to_dict() == stats.to_dict()
    assert "stale" in caplog.text and "state: 6 dims stored, 8 in the data" in caplog.text


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_folders_of_dead_processes_are_removed(tmp_path, caplog):
    stale = tmp_path / f".ds.tmp-{_dead_pid()}"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "x.parquet").write_bytes(b"\0" * 2048)
    live = tmp_path / f".ds.tmp-{subprocess.os.getppid()}"  # a concurrent run: kept
    live.mkdir()
    other = tmp_path / f".other.tmp-{_dead_pid()}"  # another destination: not ours to delete
    other.mkdir()
    with caplog.at_level(logging.INFO, logger="lara.utils.atomic"):
        assert remove_stale_temps(tmp_path, ".ds.tmp-") == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    assert str(stale) in caplog.text and "no longer runs" in caplog.text


def test_convert_removes_the_temp_folder_a_killed_conversion_left(tmp_path, make_episode, caplog):
    from lara.scripts.convert_cli import main

    write_libero_hdf5(tmp_path / "a_demo.hdf5", [make_episode(5)])
    stale = tmp_path / f".out.tmp-{_dead_pid()}"
    (stale / "meta").mkdir(parents=True)
    with caplog.at_level(logging.INFO, logger="lara.utils.atomic"):
        assert main(["--dataset", str(tmp_path / "a_demo.hdf5"), "--out", str(tmp_path / "out")]) == 0
    assert not stale.exists() and (tmp_path / "out" / "meta" / "info.json").is_file()
    assert f"removed {stale}" in caplog.text


def test_opening_a_dataset_logs_no_video_backend_warning(dataset, caplog):
    from data_pipeline.lerobot_io import read_lerobot_dataset

    with caplog.at_level(logging.WARNING):
        assert len(list(read_lerobot_dataset(dataset))) == 2
    assert "torchcodec" not in caplog.text


def test_collect_repairs_a_torn_report_log(tmp_path):
    from data_pipeline.collect import CollectResult, _run_jobs

    reports = tmp_path / "reports.jsonl"
    reports.write_text('{"status": "ok"}\n{"status": "fai')  # killed mid-write
    _run_jobs([], 1, tmp_path, CollectResult(out=tmp_path / "out"))
    assert reports.read_text() == '{"status": "ok"}\n'


def test_collect_progress_counts_demos_on_disk_and_resumed(tmp_path):
    from data_pipeline.collect import _Progress

    jobs = [SimpleNamespace(file=tmp_path / f"ep{k}.npz") for k in range(4)]
    progress = _Progress(jobs, resumed=3)
    assert progress.bar.n == 3 and progress.bar.total == 7
    jobs[0].file.write_bytes(b"x")  # a worker saved a demo; its batch has not returned yet
    jobs[2].file.write_bytes(b"x")
    progress.refresh()
    assert progress.bar.n == 5
    progress.bar.close()


def test_collect_summary_of_a_fully_resumed_run(tmp_path):
    from data_pipeline.collect import CollectResult, summary

    text = summary(CollectResult(out=tmp_path, episodes=4, frames=400, resumed=4))
    assert "all 4 from a previous run" in text and "0 collected now" not in text and "demos/min" not in text
