"""`mask_unchanged_future`: a sample whose future frame equals its current frame pixel for pixel has
no foresight target (the reference's `image_next_fallback`); off, only the episode end masks."""

from __future__ import annotations

from data_pipeline.lerobot_io import write_lerobot_dataset
from data_pipeline.samples import LaraSampleDataset, SampleConfig


def test_a_still_next_frame_is_masked_only_when_asked(tmp_path, make_episode):
    episode = make_episode(5)
    episode.images["agentview"][2] = episode.images["agentview"][1]  # frame 1 -> 2: nothing moves
    episode.images["wrist"][3] = episode.images["wrist"][2]  # the wrist camera is not the target's
    root = tmp_path / "ds"
    write_lerobot_dataset(root, [episode])
    common = dict(chunk_size=2, image_size=16, foresight_image_size=16)
    masked = LaraSampleDataset(root, SampleConfig(**common, mask_unchanged_future=True))
    plain = LaraSampleDataset(root, SampleConfig(**common))
    assert [bool(masked[i]["next_image_is_pad"]) for i in range(5)] == [False, True, False, False, True]
    assert [bool(plain[i]["next_image_is_pad"]) for i in range(5)] == [False, False, False, False, True]
