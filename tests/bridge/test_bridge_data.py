"""Bridge data: reading through the key mapping, camera selection, language skipping, bad input,
and `lara annotate --backend instruction` on a BridgeData V2-layout dataset written by lerobot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipeline.bridge import (
    BRIDGE_IMAGE_KEYS,
    SkipCount,
    bridge_mapping,
    check_bridge_dataset,
    episodes_without_language,
    read_bridge_episodes,
)
from data_pipeline.key_mapping import load_key_mapping
from lara.utils.errors import LaraUserError


def test_inspect_reports_cameras_language_and_dims(bridge_dataset):
    s = check_bridge_dataset(bridge_dataset, "bridge", action_dim=7, state_dim=8)
    assert s.num_episodes == 6 and s.num_frames == sum(24 + 2 * i for i in range(6))
    assert s.image_keys == list(BRIDGE_IMAGE_KEYS)
    assert s.blank_fraction[BRIDGE_IMAGE_KEYS[0]] == 0.0 and s.blank_fraction[BRIDGE_IMAGE_KEYS[3]] == 1.0
    assert s.no_language == [2] and s.language_episodes == 5
    assert (s.action_dim, s.state_dim) == (7, 8)
    assert s.gripper_range == (0.0, 1.0)
    assert "1 without" in s.format()


def test_reader_skips_and_counts_episodes_without_language(bridge_dataset):
    skipped = SkipCount()
    episodes = list(read_bridge_episodes(bridge_dataset, "bridge", skipped=skipped))
    assert [e.episode_index for e in episodes] == [0, 1, 3, 4, 5]
    assert skipped.counts == {"no_language": [2]} and skipped.total == 1
    assert all(e.instruction for e in episodes)
    assert episodes_without_language(bridge_dataset) == [2]
    # asking for episode 2 explicitly still skips it (never an empty-prompt episode)
    skipped = SkipCount()
    assert [
        e.episode_index for e in read_bridge_episodes(bridge_dataset, episodes=[1, 2], skipped=skipped)
    ] == [1]
    assert skipped.counts == {"no_language": [2]}


def test_gripper_converted_to_env_convention_and_state_slices(bridge_dataset):
    ep = next(read_bridge_episodes(bridge_dataset, "bridge", episodes=[0]))
    T = ep.length
    t1, t2 = T // 3, 2 * T // 3
    # raw 1 = open -> -1, raw 0 = closed -> +1; the ramp frames stay continuous
    assert ep.action[0, -1] == -1.0 and ep.action[t1 + 3, -1] == 1.0 and ep.action[-1, -1] == -1.0
    assert -1.0 < ep.action[t1, -1] < 1.0
    np.testing.assert_allclose(ep.gripper, ep.action[:, -1])
    np.testing.assert_allclose(ep.ee_pos, ep.state[:, :3])
    assert ep.images["agentview"].shape == (T, 32, 32, 3) and ep.images["agentview"].dtype == np.uint8
    assert set(ep.images) == {"agentview"}
    assert t2 > t1


def test_camera_selection(bridge_dataset):
    mapping = bridge_mapping((0, 1))
    assert mapping.cameras == {"agentview": BRIDGE_IMAGE_KEYS[0], "image_1": BRIDGE_IMAGE_KEYS[1]}
    ep = next(read_bridge_episodes(bridge_dataset, mapping, episodes=[1]))
    assert set(ep.images) == {"agentview", "image_1"}
    assert not np.array_equal(ep.images["agentview"], ep.images["image_1"])
    with pytest.raises(LaraUserError, match="must include 0"):
        bridge_mapping((1,))
    with pytest.raises(LaraUserError, match="0..3"):
        bridge_mapping((0, 4))
    # a blank camera in the mapping is reported, not an error
    s = check_bridge_dataset(bridge_dataset, bridge_mapping((0, 3)))
    assert any("image_3 is blank" in n for n in s.notes)


def test_bad_input_names_what_differs(tmp_path, bridge_dataset, write_bridge_dataset):
    one_cam = write_bridge_dataset(
        tmp_path / "one_cam", lengths=[12, 12], instructions=["put the carrot on the plate"] * 2, cameras=1
    )
    with pytest.raises(LaraUserError, match=r"observation\.images\.image_1.*missing"):
        check_bridge_dataset(one_cam, bridge_mapping((0, 1)))
    wide = write_bridge_dataset(
        tmp_path / "wide",
        lengths=[12, 12],
        instructions=["put the carrot on the plate"] * 2,
        action_dim=10,
        cameras=1,
    )
    with pytest.raises(LaraUserError, match="action 'action' has 10 dims.*expects 7"):
        check_bridge_dataset(wide, "bridge")
    with pytest.raises(LaraUserError, match="state 'observation.state' has 8 dims.*expects 7"):
        check_bridge_dataset(bridge_dataset, "bridge_state7")
    with pytest.raises(LaraUserError, match="model expects 9"):
        check_bridge_dataset(bridge_dataset, "bridge", action_dim=9)
    silent = write_bridge_dataset(tmp_path / "silent", lengths=[12, 12], instructions=["", " "], cameras=1)
    with pytest.raises(LaraUserError, match="none of the 2 episodes has a language instruction"):
        check_bridge_dataset(silent, "bridge")


def test_bridge_presets_load():
    for name in ("bridge", "bridge_state7"):
        m = load_key_mapping(name)
        assert m.robot_type == "widowx" and m.fps == 5 and m.gripper_convention == "open_1_close_0"
        assert m.cameras["agentview"] == BRIDGE_IMAGE_KEYS[0]
    assert load_key_mapping("bridge_state7").state_dim == 7


def test_annotate_instruction_backend_on_bridge(bridge_copy, capsys):
    from data_pipeline.annotation.sidecar import load_annotations
    from lara.scripts.annotate_cli import main as annotate_main

    assert (
        annotate_main(
            ["--dataset", str(bridge_copy), "--backend", "instruction", "--name", "v1", "--progress", "false"]
        )
        == 0
    )  # the key mapping is detected: bridge
    out = capsys.readouterr().out
    assert "5/6 episodes annotated" in out and "no instruction" in out
    header = json.loads(
        (bridge_copy / "annotations/v1/episodes/episode_000000.jsonl").read_text().splitlines()[0]
    )
    assert header["status"] == "ok" and header["quality_flags"] == []
    phases = [s["phase"] for s in header["segments"]]
    assert phases == ["move_to_object", "grasp", "move_to_goal", "place", "retract"]
    T = header["num_frames"]
    grasp = next(s for s in header["segments"] if s["phase"] == "grasp")
    place = next(s for s in header["segments"] if s["phase"] == "place")
    assert (
        abs(grasp["start"] - T // 3) <= 2 and abs(place["start"] - 2 * T // 3) <= 2
    )  # from the continuous gripper
    skipped = json.loads(
        (bridge_copy / "annotations/v1/episodes/episode_000002.jsonl").read_text().splitlines()[0]
    )
    assert skipped["status"] == "skipped" and skipped["reason"] == "no instruction"
    cot = load_annotations(bridge_copy, "v1")
    tags0 = dict(cot[(0, 0)])
    assert tags0["OBJECTS"] == "carrot; plate" and tags0["GRIPPER"] == "open"
    assert "right" in tags0["MOVE"]  # the scripted arm moves to -y (the robot's right) first
    carry = dict(cot[(0, T // 3 + 4)])
    assert "left" in carry["MOVE"] and carry["SUBTASK"] == "carry the carrot to the plate"
    assert (2, 0) not in cot


def test_training_config_detects_the_dataset_mapping(bridge_dataset):
    """`data.mapping` defaults to `auto`: a Bridge-layout dataset needs no `--data.mapping` flag."""
    from curriculum.presets import load_train_config

    cfg = load_train_config([], ["--data.root", str(bridge_dataset)], preset="tiny", stage=3)
    assert cfg.data.mapping == "auto"
    detected = load_key_mapping(cfg.data.mapping, dataset=cfg.data.root)
    assert (detected.name, detected.state_dim, detected.robot_type) == ("bridge", 8, "widowx")
