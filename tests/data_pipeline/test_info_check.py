"""Issue 29 (also weak): meta/info.json figures that disagree with the data (image size,
total_frames) are reported when a run reads the dataset, one warning per figure naming the file."""

import json

import numpy as np

from data_pipeline.info_check import info_mismatches
from data_pipeline.lerobot_io import write_lerobot_dataset
from data_pipeline.samples import LaraSampleDataset, SampleConfig


def test_info_json_disagreeing_with_the_data_is_reported(tmp_path, make_episode, caplog):
    root = tmp_path / "ds"
    write_lerobot_dataset(root, [make_episode(5, index=i) for i in range(2)])  # 16x16 frames, 10 rows
    LaraSampleDataset(root, SampleConfig(image_size=8, foresight_image_size=8))
    assert "info.json" not in caplog.text  # a consistent dataset: nothing to say
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    key = next(k for k, f in info["features"].items() if f.get("dtype") in ("image", "video"))
    names = info["features"][key]["names"]
    info["features"][key]["shape"] = [128 if n in ("height", "width") else 3 for n in names]
    info["total_frames"] = 1000
    path.write_text(json.dumps(info))
    LaraSampleDataset(root, SampleConfig(image_size=8, foresight_image_size=8))
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert any("total_frames is 1000 but the data files hold 10 frames" in m for m in warned)
    assert any(
        f"features.{key} declares height x width 128x128 but its frames are 16x16" in m for m in warned
    )


def test_info_mismatches_ignores_figures_it_cannot_read():
    info = {"total_frames": "many", "features": {"cam": {"shape": [3], "names": None}}}
    assert info_mismatches(info, 10, {"cam": np.zeros((4, 4, 3))}) == []
