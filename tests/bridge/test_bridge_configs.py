"""The Bridge training presets: every model size x stage, composed with the Bridge data overlay,
gives 16-action chunks, the bridge key mapping, and model cameras the mapping provides."""

from __future__ import annotations

from pathlib import Path

import pytest

from curriculum.presets import load_train_config
from data_pipeline.key_mapping import load_key_mapping

BRIDGE = Path(__file__).resolve().parents[2] / "configs" / "train" / "data" / "bridge.yaml"


@pytest.mark.parametrize("size", ["tiny", "small", "qwen3vl-2b", "qwen3vl-4b"])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_bridge_overlay_on_every_size_and_stage(size, stage):
    cfg = load_train_config([BRIDGE], preset=size, stage=stage)
    assert cfg.stage == stage and cfg.output_dir.endswith(f"/{size}/stage{stage}")
    assert cfg.data.mapping == "bridge" and cfg.data.norm_mode == "quantile"
    model = cfg.model  # the LaraConfig the trainer builds (validated, no weights)
    assert model.chunk_size == 16 and model.action_dim == 7 and model.state_dim == 8
    mapping = load_key_mapping(cfg.data.mapping)
    assert set(model.vision.cameras) <= set(mapping.cameras), (model.vision.cameras, mapping.cameras)
    assert model.foresight.camera in mapping.cameras
    assert (model.action_dim, model.state_dim) == (mapping.action_dim, mapping.state_dim)
