import json

import h5py
import numpy as np
import pytest

from data_pipeline.episode import EpisodeError
from data_pipeline.libero_hdf5 import read_libero_hdf5, write_libero_hdf5


def _assert_same(a, b):
    for cam in a.images:
        np.testing.assert_array_equal(a.images[cam], b.images[cam])
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.sim_states, b.sim_states)
    np.testing.assert_array_equal(a.init_state, b.init_state)
    assert a.instruction == b.instruction


def test_round_trip_is_bit_exact(tmp_path, make_episode):
    eps = [make_episode(7, index=0), make_episode(9, index=1)]
    path = write_libero_hdf5(tmp_path / "pick_demo.hdf5", eps)
    back = read_libero_hdf5(path)
    assert len(back) == 2
    for a, b in zip(eps, back):
        _assert_same(a, b)
        assert b.suite == "libero_object" and b.task_name == "task_0"
        np.testing.assert_array_equal(b.gripper, a.action[:, -1])
    assert not list(tmp_path.glob(".*tmp*")), "temp file left behind"


def _official_file(path, T=4, size=8):
    """A file laid out like LIBERO's own create_dataset.py output (raw upside-down images, opengl)."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "put the bowl on the plate"})
        data.attrs["bddl_file_name"] = "libero/bddl_files/libero_goal/put_the_bowl_on_the_plate.bddl"
        data.attrs["macros_image_convention"] = "opengl"
        g = data.create_group("demo_0")
        g.create_dataset("actions", data=rng.uniform(-1, 1, (T, 7)))
        g.create_dataset("states", data=rng.normal(size=(T, 12)))
        g.create_dataset("rewards", data=np.zeros(T))
        g.create_dataset("dones", data=np.r_[np.zeros(T - 1), 1])
        g.create_dataset("obs/agentview_rgb", data=img)
        g.create_dataset("obs/eye_in_hand_rgb", data=img)
        g.create_dataset("obs/gripper_states", data=rng.normal(size=(T, 2)))
        g.create_dataset("obs/joint_states", data=rng.normal(size=(T, 7)))
        g.create_dataset("obs/ee_pos", data=rng.normal(size=(T, 3)))
        g.create_dataset("obs/ee_ori", data=rng.normal(size=(T, 3)))
    return img


def test_official_layout_loads_and_is_flipped_upright(tmp_path):
    raw = _official_file(tmp_path / "x_demo.hdf5")
    (ep,) = read_libero_hdf5(tmp_path / "x_demo.hdf5")
    assert ep.instruction == "put the bowl on the plate"
    assert ep.suite == "libero_goal" and ep.task_name == "put_the_bowl_on_the_plate"
    np.testing.assert_array_equal(ep.images["agentview"], raw[:, ::-1, ::-1])
    assert ep.state.shape == (4, 8) and ep.sim_states.shape == (4, 12)
    np.testing.assert_array_equal(ep.init_state, ep.sim_states[0])
    (kept,) = read_libero_hdf5(tmp_path / "x_demo.hdf5", image_orientation="upright")
    np.testing.assert_array_equal(kept.images["agentview"], raw)


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f["data/demo_0"])


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda g: g.__delitem__("obs/ee_pos"), ["'obs/ee_pos'", "missing"]),
        (lambda g: g.__delitem__("actions"), ["'actions'", "missing"]),
        (
            lambda g: (g.__delitem__("actions"), g.create_dataset("actions", data=np.zeros((3, 7)))),
            ["has 4 frames but action has 3"],
        ),
        (
            lambda g: (g.__delitem__("actions"), g.create_dataset("actions", data=np.full((4, 7), np.nan))),
            ["NaN/inf", "'action'"],
        ),
        (
            lambda g: (g.__delitem__("actions"), g.create_dataset("actions", data=np.zeros((4, 6)))),
            ["6 dims, expected 7"],
        ),
    ],
)
def test_bad_files_name_file_episode_and_key(tmp_path, edit, words):
    path = tmp_path / "bad_demo.hdf5"
    _official_file(path)
    _edit(path, edit)
    with pytest.raises(EpisodeError) as info:
        read_libero_hdf5(path)
    msg = str(info.value)
    assert "bad_demo.hdf5" in msg and "demo_0" in msg
    for w in words:
        assert w in msg


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t_demo.hdf5"
    _official_file(path, T=20, size=32)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeError, match="t_demo.hdf5.*(truncated|corrupt)"):
        read_libero_hdf5(path)


def test_not_hdf5_and_empty_file(tmp_path):
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(EpisodeError, match="cannot open as HDF5"):
        read_libero_hdf5(junk)
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        f.create_group("data")
    with pytest.raises(EpisodeError, match="empty"):
        read_libero_hdf5(empty)


def test_interrupted_write_leaves_nothing(tmp_path, make_episode):
    bad = make_episode(5)
    bad.action[2, 0] = np.nan
    with pytest.raises(EpisodeError):
        write_libero_hdf5(tmp_path / "out.hdf5", [make_episode(5), bad])
    assert list(tmp_path.iterdir()) == []
