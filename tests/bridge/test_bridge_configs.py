"""The Bridge training presets: every model size x stage, composed with the Bridge data overlay,
gives 16-action chunks, the bridge key mapping, and model cameras the mapping provides."""

from __future__ import annotations

from pathlib import Path

import pytest

from curriculum.config import load_train_config
from curriculum.lara_adapter import lara_model_config
from data_pipeline.key_mapping import load_key_mapping

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("size", ["tiny", "qwen3vl-2b", "qwen3vl-4b"])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_bridge_overlay_on_every_size_and_stage(size, stage):
    cfg = load_train_config([CONFIGS / size / f"stage{stage}.yaml", CONFIGS / "data" / "bridge.yaml"])
    assert cfg.stage == stage and cfg.model.preset == size
    assert cfg.model.chunk_size == 16 and cfg.data.mapping == "bridge" and cfg.data.norm_mode == "quantile"
    model = lara_model_config(cfg)  # the LaraConfig the trainer would build (validated, no weights)
    assert model.chunk_size == 16 and model.action_dim == 7 and model.state_dim == 8
    mapping = load_key_mapping(cfg.data.mapping)
    assert set(model.vision.cameras) <= set(mapping.cameras), (model.vision.cameras, mapping.cameras)
    assert model.foresight.camera in mapping.cameras
    assert (model.action_dim, model.state_dim) == (mapping.action_dim, mapping.state_dim)
