import numpy as np
import pytest

from data_pipeline.episode import EpisodeError
from data_pipeline.lerobot_io import read_lerobot_dataset
from data_pipeline.libero_hdf5 import write_libero_hdf5
from data_pipeline.stats import STATS_FILE
from lara.scripts.convert_cli import main
from lara.utils.errors import LaraUserError


def test_convert_drops_noops_and_reports(tmp_path, make_episode, capsys):
    src = tmp_path / "src"
    write_libero_hdf5(
        src / "a_demo.hdf5", [make_episode(8, index=0, noop_prefix=3), make_episode(6, index=1)]
    )
    write_libero_hdf5(src / "b_demo.hdf5", [make_episode(5, index=2, task=1, noop_prefix=2)])
    assert main(["--dataset", str(src), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "3 episodes, 14 frames, 2 tasks, 5 no-op frames dropped" in out
    eps = list(read_lerobot_dataset(tmp_path / "out"))
    assert [e.length for e in eps] == [5, 6, 3]
    original = make_episode(8, index=0, noop_prefix=3)
    np.testing.assert_array_equal(eps[0].action, original.action[3:])
    np.testing.assert_array_equal(eps[0].sim_states, original.sim_states[3:])  # kept aligned for replay
    assert (tmp_path / "out" / STATS_FILE).is_file()


def test_convert_keep_noops(tmp_path, make_episode):
    write_libero_hdf5(tmp_path / "a_demo.hdf5", [make_episode(8, noop_prefix=3)])
    main(["--dataset", str(tmp_path / "a_demo.hdf5"), "--out", str(tmp_path / "out"), "--keep_noops"])
    assert [e.length for e in read_lerobot_dataset(tmp_path / "out")] == [8]


def test_convert_corrupt_input_leaves_no_dataset(tmp_path, make_episode):
    src = tmp_path / "src"
    write_libero_hdf5(src / "a_demo.hdf5", [make_episode(6)])
    (src / "b_demo.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # truncated header
    with pytest.raises(EpisodeError, match="b_demo.hdf5"):
        main(["--dataset", str(src), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["src"]


def test_convert_user_errors(tmp_path):
    with pytest.raises(LaraUserError, match="no such file"):
        main(["--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LaraUserError, match="empty"):
        main(["--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    with pytest.raises(LaraUserError, match="give --dataset"):
        main([])
    with pytest.raises(LaraUserError, match="takes no positional arguments"):
        main([str(tmp_path / "empty"), str(tmp_path / "out")])
