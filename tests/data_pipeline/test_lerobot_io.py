import sys

import numpy as np
import pytest
import torch

from data_pipeline.episode import EpisodeError
from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from data_pipeline.lerobot_compat import LeRobotDataset
from data_pipeline.lerobot_io import read_lerobot_dataset, write_lerobot_dataset
from lara.utils.errors import LaraUserError


def test_round_trip_is_bit_exact(tmp_path, make_episode):
    eps = [make_episode(5, index=0, task=0, sim_dim=10), make_episode(7, index=1, task=1, sim_dim=13)]
    write_lerobot_dataset(tmp_path / "ds", eps)
    back = list(read_lerobot_dataset(tmp_path / "ds"))
    assert [b.episode_index for b in back] == [0, 1]
    for a, b in zip(eps, back):
        for cam in a.images:
            np.testing.assert_array_equal(a.images[cam], b.images[cam])
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.sim_states, b.sim_states)  # per-task size differs: sidecar
        np.testing.assert_array_equal(a.init_state, b.init_state)
        assert (b.instruction, b.task_index, b.suite, b.bddl_file) == (
            a.instruction,
            a.task_index,
            a.suite,
            a.bddl_file,
        )
        assert b.expert_phases == a.expert_phases
    assert [p.name for p in tmp_path.iterdir()] == ["ds"], "temp folder left behind"


def test_lerobot_own_reader_loads_our_output(tmp_path, make_episode):
    eps = [make_episode(4, index=0), make_episode(6, index=1, task=1)]
    write_lerobot_dataset(tmp_path / "ds", eps)
    ds = LeRobotDataset("local/ds", root=tmp_path / "ds")
    assert len(ds) == 10 and ds.num_episodes == 2 and ds.meta.total_tasks == 2
    item = ds[5]  # episode 1, frame 1
    assert item["episode_index"].item() == 1 and item["frame_index"].item() == 1
    expected = torch.from_numpy(eps[1].images["agentview"][1]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item["observation.images.image"], expected)
    torch.testing.assert_close(item["action"], torch.from_numpy(eps[1].action[1]))
    assert item["task"] == "pick up object 1"
    assert "torchvision" not in sys.modules or not getattr(
        sys.modules["torchvision"], "__doc__", ""
    ).startswith("lara-torchvision-shim"), "the torchvision shim must not stay visible to other libraries"


def test_shim_to_tensor_matches_torchvision_contract():
    import lerobot.datasets.utils as lu

    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = lu.transforms.ToTensor()(img)
    assert out.shape == (3, 2, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, 1, 2], torch.tensor([15.0, 16.0, 17.0]) / 255)


def test_bridge_mapping_converts_gripper_once(tmp_path, make_episode):
    bridge = load_key_mapping("bridge")
    ep = make_episode(6)
    ep.images.pop("wrist")
    write_lerobot_dataset(tmp_path / "b", [ep], mapping=bridge)
    stored = LeRobotDataset("local/b", root=tmp_path / "b")
    grip = np.array([stored[i]["action"][-1].item() for i in range(6)])
    np.testing.assert_array_equal(grip, [1, 1, 1, 0, 0, 0])  # Bridge: 1 = open, 0 = close
    (back,) = read_lerobot_dataset(tmp_path / "b", mapping="bridge")
    np.testing.assert_array_equal(back.action[:, -1], ep.action[:, -1])  # env: -1 open, +1 close
    assert list(back.images) == ["agentview"]


def test_unknown_and_mismatched_key_mapping(tmp_path, make_episode):
    with pytest.raises(LaraUserError, match="unknown key mapping 'nope'.*bridge.*libero"):
        load_key_mapping("nope")
    with pytest.raises(LaraUserError, match="gripper_convention"):
        KeyMapping(gripper_convention="inverted")
    write_lerobot_dataset(tmp_path / "ds", [make_episode(3)])
    with pytest.raises(LaraUserError, match=r"needs \['observation.images.image_0'\].*--mapping"):
        list(read_lerobot_dataset(tmp_path / "ds", mapping="bridge"))


def test_wrong_action_dim_and_empty_input(tmp_path, make_episode):
    ep = make_episode(3)
    ep.action = ep.action[:, :6]
    with pytest.raises(EpisodeError, match="6 dims, expected 7"):
        write_lerobot_dataset(tmp_path / "a", [ep])
    with pytest.raises(LaraUserError, match="empty"):
        write_lerobot_dataset(tmp_path / "b", [])
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_never_looks_complete(tmp_path, make_episode):
    def episodes():
        yield make_episode(4, index=0)
        yield make_episode(4, index=1)
        raise KeyboardInterrupt  # killed mid-conversion

    with pytest.raises(KeyboardInterrupt):
        write_lerobot_dataset(tmp_path / "ds", episodes())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LaraUserError, match="not a LeRobot dataset"):
        list(read_lerobot_dataset(tmp_path / "ds"))


def test_existing_destination_is_refused(tmp_path, make_episode):
    (tmp_path / "ds").mkdir()
    with pytest.raises(LaraUserError, match="already exists"):
        write_lerobot_dataset(tmp_path / "ds", [make_episode(3)])


def test_foreign_dataset_with_nan_actions_is_named(tmp_path):
    """A dataset written by someone else (plain lerobot, no validation) with a NaN action."""
    features = {
        "observation.images.image": {
            "dtype": "image",
            "shape": (8, 8, 3),
            "names": ["height", "width", "channel"],
        },
        "observation.images.wrist_image": {
            "dtype": "image",
            "shape": (8, 8, 3),
            "names": ["height", "width", "channel"],
        },
        "observation.state": {"dtype": "float32", "shape": (8,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    ds = LeRobotDataset.create("x/y", fps=10, features=features, root=tmp_path / "foreign", use_videos=False)
    for t in range(3):
        action = np.zeros(7, np.float32)
        if t == 2:
            action[0] = np.nan
        ds.add_frame(
            {
                "observation.images.image": np.zeros((8, 8, 3), np.uint8),
                "observation.images.wrist_image": np.zeros((8, 8, 3), np.uint8),
                "observation.state": np.zeros(8, np.float32),
                "action": action,
                "task": "t",
            }
        )
    ds.save_episode()
    ds.finalize()
    with pytest.raises(EpisodeError, match=r"foreign, episode 0, key 'action': NaN/inf at frame 2"):
        list(read_lerobot_dataset(tmp_path / "foreign"))
