"""Training reads only the recorded split's train episodes (held-out ones stay for eval-offline)."""

import numpy as np

from curriculum.lara_adapter import action_chunks, build_lerobot_dataset
from curriculum.presets import load_train_config
from data_pipeline.lerobot_io import write_lerobot_dataset
from data_pipeline.splits import heldout_episodes, make_split


def test_training_dataset_excludes_heldout_episodes(tmp_path, make_episode):
    root = tmp_path / "ds"
    write_lerobot_dataset(root, [make_episode(5, index=i) for i in range(6)])
    make_split(root, heldout_fraction=0.34, seed=0)
    held = set(heldout_episodes(root))
    assert held and len(held) < 6
    flags = [
        "--init_from",
        str(tmp_path),
        "--data.root",
        str(root),
        "--data.annotation",
        "null",
        "--data.image_size",
        "8",
        "--data.foresight_image_size",
        "8",
    ]
    cfg = load_train_config([], flags, preset="tiny", stage=3)
    dataset, _ = build_lerobot_dataset(cfg)
    seen = {int(dataset.episode_index[r]) for r in dataset.rows}
    assert seen == set(range(6)) - held
    assert len(dataset) == 5 * len(seen)
    chunks = action_chunks(dataset, 100)  # (N, H, A), read through the row map
    assert chunks.shape[1:] == (cfg.model.chunk_size, 7) and np.isfinite(chunks).all()
