import json

import numpy as np
import pytest
import torch

from data_pipeline.annotation.sidecar import EpisodeAnnotation, annotation_dir, write_episode
from data_pipeline.lerobot_io import write_lerobot_dataset
from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples
from data_pipeline.stats import STATS_FILE, compute_stats, load_or_compute_stats, read_low_dim
from lara.normalization import NormalizationStats
from lara.utils.errors import LaraUserError


@pytest.fixture
def dataset(tmp_path, make_episode):
    root = tmp_path / "ds"
    write_lerobot_dataset(root, [make_episode(6, index=0), make_episode(4, index=1, task=1)])
    return root


def test_stats_stored_once_and_round_trip(dataset):
    stats = load_or_compute_stats(dataset)
    path = dataset / STATS_FILE
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    again = load_or_compute_stats(dataset)
    assert path.stat().st_mtime_ns == mtime and again.to_dict() == stats.to_dict()
    assert NormalizationStats.load(path).to_dict() == stats.to_dict()  # the shared loader reads our file
    low = read_low_dim(dataset)
    action = torch.from_numpy(low["action"])  # (N, 7)
    normed = stats.normalize("action", action)
    np.testing.assert_array_equal(
        normed[:, -1].numpy(), low["action"][:, -1]
    )  # gripper passthrough: +-1 kept
    lo, hi = np.array(stats.features["action"].q01), np.array(stats.features["action"].q99)
    inside = ((low["action"] >= lo) & (low["action"] <= hi)).all(1)
    back = stats.unnormalize("action", normed)
    torch.testing.assert_close(back[inside], action[inside], atol=1e-5, rtol=1e-5)
    assert normed.abs().max() <= 1.0


def test_stats_recomputed_when_dataset_changes(dataset):
    load_or_compute_stats(dataset)
    path = dataset / STATS_FILE
    data = json.loads(path.read_text())
    data["dataset"]["num_frames"] = 999
    path.write_text(json.dumps(data))
    load_or_compute_stats(dataset)
    assert json.loads(path.read_text())["dataset"]["num_frames"] == 10


def test_stats_refuse_non_finite():
    low = {
        "state": np.zeros((3, 8)),
        "action": np.zeros((3, 7)),
        "episode_index": np.array([0, 0, 1]),
        "frame_index": np.array([0, 1, 0]),
    }
    low["action"][2, 1] = np.nan
    with pytest.raises(LaraUserError, match="episode 1, frame 0"):
        compute_stats(low)


def test_sample_shapes_and_padding_at_episode_end(dataset, make_episode):
    cfg = SampleConfig(chunk_size=4, foresight_offset=2, image_size=8, foresight_image_size=4)
    ds = LaraSampleDataset(dataset, cfg)
    assert len(ds) == 10
    s = ds[4]  # episode 0 (6 frames), frame 4
    assert s["image.agentview"].shape == (3, 8, 8) and s["image.wrist"].shape == (3, 8, 8)
    assert s["next_image.agentview"].shape == (3, 4, 4)
    assert s["state"].shape == (8,) and s["action"].shape == (4, 7)
    assert s["action_is_pad"].tolist() == [False, False, True, True]
    torch.testing.assert_close(s["action"][2], s["action"][1])  # padded by repeating the last action
    assert (s["episode_index"], s["frame_index"], s["instruction"], s["cot"]) == (
        0,
        4,
        "pick up object 0",
        None,
    )
    ep0 = make_episode(6, index=0)
    expected = ds.stats.normalize("action", torch.from_numpy(ep0.action[4:6]))
    torch.testing.assert_close(s["action"][:2], expected)
    # foresight target clamps to the last frame of the episode; never crosses into episode 1
    full = LaraSampleDataset(
        dataset, SampleConfig(chunk_size=4, foresight_offset=2, image_size=16, foresight_image_size=16)
    )
    last = torch.from_numpy(ep0.images["agentview"][5]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(full[4]["next_image.agentview"], last)
    torch.testing.assert_close(full[5]["next_image.agentview"], last)
    assert full[6]["episode_index"] == 1 and full[6]["action_is_pad"].sum() == 0
    # frames 4, 5 of the 6-frame episode have no real frame t + 2: the visual loss masks them out
    assert [bool(full[i]["next_image_is_pad"]) for i in range(7)] == [False] * 4 + [True, True, False]


def test_episode_selection_keeps_only_those_episodes(dataset):
    cfg = SampleConfig(chunk_size=4, image_size=8, foresight_image_size=8)
    only_1 = LaraSampleDataset(dataset, cfg, episodes=[1])
    assert len(only_1) == 4
    assert {only_1[i]["episode_index"] for i in range(4)} == {1}
    assert only_1[3]["action_is_pad"].tolist() == [False, True, True, True]  # episode end still respected
    with pytest.raises(LaraUserError, match="selected episodes"):
        LaraSampleDataset(dataset, cfg, episodes=[7])


def test_collate_and_dataloader_with_workers(dataset):
    ds = LaraSampleDataset(dataset, SampleConfig(chunk_size=3, image_size=8, foresight_image_size=8))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    b = batches[0]
    assert b["image.agentview"].shape == (4, 3, 8, 8) and b["action"].shape == (4, 3, 7)
    assert b["action_is_pad"].dtype == torch.bool and b["episode_index"].dtype == torch.long
    assert isinstance(b["instruction"], list) and len(b["cot"]) == 4
    assert sum(len(x["state"]) for x in batches) == 10


def test_cot_comes_from_the_annotation_sidecar(dataset):
    run = annotation_dir(dataset, "v1")
    frames = [[("SUBTASK", f"step {t}"), ("GRIPPER", "open")] for t in range(4)]
    write_episode(run, EpisodeAnnotation(episode=1, status="ok", num_frames=4, frames=frames))
    ds = LaraSampleDataset(dataset, SampleConfig(annotation="v1", image_size=8, foresight_image_size=8))
    assert ds[8]["cot"] == [("SUBTASK", "step 2"), ("GRIPPER", "open")]  # episode 1, frame 2
    assert ds[0]["cot"] is None  # episode 0 not annotated
    with pytest.raises(LaraUserError, match="no annotation run 'v2'"):
        LaraSampleDataset(dataset, SampleConfig(annotation="v2"))


def test_bad_sample_config():
    with pytest.raises(LaraUserError, match="chunk_size"):
        SampleConfig(chunk_size=0)
