"""Key mapping `auto`: the preset whose keys and dimensions match a dataset's features, detected
from small LeRobot datasets written here with lerobot itself; none or several is a clear error."""

from pathlib import Path

import numpy as np
import pytest

from data_pipeline import key_mapping
from data_pipeline.key_mapping import detect_key_mapping, load_key_mapping
from lara.utils.errors import LaraUserError

LIBERO_CAMERAS = ("observation.images.image", "observation.images.wrist_image")
BRIDGE_CAMERAS = tuple(f"observation.images.image_{i}" for i in range(4))


def lerobot_dataset(root: Path, cameras: tuple[str, ...], state_dim: int, action_dim: int = 7) -> Path:
    """A 1-episode, 3-frame dataset with these image keys and state/action sizes; the action's
    last dim is 1 (= open in Bridge's convention)."""
    from data_pipeline.lerobot_compat import LeRobotDataset

    image = {"dtype": "image", "shape": (8, 8, 3), "names": ["height", "width", "channel"]}
    features = {cam: dict(image) for cam in cameras}
    features["observation.state"] = {"dtype": "float32", "shape": (state_dim,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (action_dim,), "names": None}
    ds = LeRobotDataset.create(repo_id="test/mapping", fps=5, features=features, root=root, use_videos=False)
    for t in range(3):
        frame = {cam: np.full((8, 8, 3), 10 * t, np.uint8) for cam in cameras}
        frame["observation.state"] = np.full(state_dim, t, np.float32)
        frame["action"] = np.ones(action_dim, np.float32)
        frame["task"] = "put the carrot on the plate"
        ds.add_frame(frame)
    ds.save_episode()
    ds.finalize()
    return root


@pytest.mark.parametrize(
    "cameras, state_dim, preset",
    [
        (LIBERO_CAMERAS, 8, "libero"),
        (BRIDGE_CAMERAS, 8, "bridge"),
        (BRIDGE_CAMERAS[:1], 7, "bridge_state7"),
    ],
)
def test_auto_picks_the_one_preset_that_fits(tmp_path, cameras, state_dim, preset):
    root = lerobot_dataset(tmp_path / "ds", cameras, state_dim)
    assert detect_key_mapping(root).name == preset
    assert load_key_mapping("auto", root) == load_key_mapping(preset)


def test_readers_default_to_auto(tmp_path):
    """A Bridge-layout dataset with a 7-dim state reads with no --mapping, gripper converted."""
    from data_pipeline.lerobot_io import read_lerobot_dataset
    from data_pipeline.stats import read_low_dim

    root = lerobot_dataset(tmp_path / "bridge7", BRIDGE_CAMERAS[:2], 7)
    (episode,) = read_lerobot_dataset(root)
    assert sorted(episode.images) == ["agentview"] and episode.state.shape == (3, 7)
    np.testing.assert_array_equal(episode.action[:, -1], -1.0)  # Bridge's 1 = open -> the env's -1
    assert read_low_dim(root)["state"].shape == (3, 7)


def test_no_fitting_preset_lists_every_preset_and_the_features(tmp_path):
    root = lerobot_dataset(tmp_path / "odd", ("observation.images.front",), 9)
    with pytest.raises(LaraUserError) as err:
        load_key_mapping("auto", root)
    message = str(err.value)
    assert "no key-mapping preset fits its features" in message
    assert "libero: no camera observation.images.image" in message
    state7 = "bridge_state7: no camera observation.images.image_0, observation.state has shape [9], not [7]"
    assert state7 in message
    seen = "features seen: observation.images.front (image [8, 8, 3]), observation.state (float32 [9])"
    assert seen in message
    assert "--mapping" in message


def test_several_fitting_presets_are_named(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    presets.mkdir()
    for name in ("libero", "libero_copy"):
        (presets / f"{name}.yaml").write_text((key_mapping.PRESET_DIR / "libero.yaml").read_text())
    monkeypatch.setattr(key_mapping, "PRESET_DIR", presets)
    root = lerobot_dataset(tmp_path / "ds", LIBERO_CAMERAS, 8)
    with pytest.raises(LaraUserError, match=r"presets \['libero', 'libero_copy'\] all fit its features"):
        detect_key_mapping(root)


def test_auto_without_a_dataset_and_a_folder_without_info(tmp_path):
    with pytest.raises(LaraUserError, match="needs a dataset"):
        load_key_mapping("auto")
    with pytest.raises(LaraUserError, match="no meta/info.json"):
        load_key_mapping("auto", tmp_path)
