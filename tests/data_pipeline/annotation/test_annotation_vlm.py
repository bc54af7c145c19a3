"""`vlm` backend plumbing with a tiny random Qwen3-VL (prompt, image tokens, generation, parsing, fallback).
Boxes (grounding answers) are tested in test_annotation_vlm_boxes.py.

The words of a random model are noise; what is tested is that the prompt and pixel inputs are
consistent, generation runs, valid answers are used and invalid ones fall back (with a flag).
"""

from __future__ import annotations

import pytest

from data_pipeline.annotation.annotate import annotate_episode
from data_pipeline.annotation.backends.vlm import VlmBackend, build_prompt, objects_prompt, parse_response
from data_pipeline.annotation.config import AnnotationConfig
from lara.utils.errors import LaraUserError


def test_parse_response():
    good = (
        'Sure. {"objects": ["The Black Bowl", "plate", "!!"], "subtasks": {"grasp": "grasp the bowl.", '
        '"place": "place it on the plate", "retract": 7}}'
    )
    objects, phrases = parse_response(good)
    assert objects == ["black bowl", "plate"]
    assert phrases == {"grasp": "grasp the bowl", "place": "place it on the plate"}
    assert parse_response("no json here") is None
    assert parse_response('{"objects": 3}') is None
    assert build_prompt("put the bowl", 4).count("<|image_pad|>") == 4


def test_tiny_model_plumbing_and_fallback(tiny_vlm_dir, pick_place_episode):
    cfg = AnnotationConfig(
        backend="vlm",
        vlm_model_dir=str(tiny_vlm_dir),
        vlm_max_new_tokens=8,
        vlm_image_size=64,
        vlm_device="cpu",
    )
    backend = VlmBackend(cfg)
    ep = pick_place_episode(0, size=64)
    answer = backend.generate(ep.images["agentview"][0], objects_prompt(ep.instruction))
    assert isinstance(answer, str) and backend.calls == 1
    ann = annotate_episode(ep, cfg, backend)
    # one objects prompt, then one grounding prompt per key frame (the first frame of each phase segment)
    assert backend.calls >= 3 and ann.status == "ok"
    assert any(f.startswith("vlm_box") for f in ann.quality_flags) or backend.box_stats.boxes > 0
    if parse_response(answer) is None:  # a random model's answer: the instruction parser takes over, flagged
        assert any(f.startswith("vlm_parse_fallback") for f in ann.quality_flags)
        assert dict(ann.frames[31])["SUBTASK"] == "grasp the black bowl"


def test_valid_answer_is_used(tiny_vlm_dir, pick_place_episode, monkeypatch):
    cfg = AnnotationConfig(
        backend="vlm",
        vlm_model_dir=str(tiny_vlm_dir),
        vlm_max_new_tokens=4,
        vlm_image_size=64,
        vlm_device="cpu",
    )
    backend = VlmBackend(cfg)
    monkeypatch.setattr(
        backend,
        "generate",
        lambda image, question: (
            '{"objects": ["dark bowl", "plate"], "subtasks": {"grasp": "pick up the dark bowl"}}'
            if "robot's task" in question
            else '[{"bbox_2d": [100, 200, 500, 750], "label": "dark bowl"}]'
        ),
    )
    ann = annotate_episode(pick_place_episode(0, size=64), cfg, backend)
    assert dict(ann.frames[31])["SUBTASK"] == "pick up the dark bowl"
    # 0..1000 relative -> 64 px frame: [6, 13, 32, 48]; the plate has no box (not visible per the model)
    assert dict(ann.frames[31])["OBJECTS"] == "dark bowl [6, 13, 32, 48]"
    assert dict(ann.frames[0])["SUBTASK"] == "move to the black bowl"  # phases it did not phrase: templates
    assert not ann.quality_flags


def test_missing_model_dir_is_a_user_error(tmp_path):
    with pytest.raises(LaraUserError, match="vlm_model_dir"):
        VlmBackend(AnnotationConfig(backend="vlm", vlm_model_dir=str(tmp_path)))
