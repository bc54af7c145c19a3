"""Fixtures of the annotation tests (helpers live in annotation_fixtures.py)."""

from __future__ import annotations

import pytest
from annotation_fixtures import synthetic_episode


@pytest.fixture
def pick_place_episode():
    return synthetic_episode


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny random Qwen3-VL checkpoint (with the LaRA tokenizer) saved to a temporary folder."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from lara.tokenizer import build_tokenizer

    tok = build_tokenizer(num_action_tokens=1)
    text = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [6, 5, 5],
            "mrope_interleaved": True,
        },
    )
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=64,
        num_position_embeddings=64,
        deepstack_visual_indexes=[0],
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(Qwen3VLConfig(text_config=text, vision_config=vision))
    path = tmp_path_factory.mktemp("tiny_qwen3vl")
    model.save_pretrained(path)
    tok.tok.save(str(path / "tokenizer.json"))
    return path
