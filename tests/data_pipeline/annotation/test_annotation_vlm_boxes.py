"""`vlm` boxes: Qwen3-VL grounding answers (`bbox_2d`, 0..1000) -> sidecar pixel boxes, robust to
malformed output (counted, dropped, fallback to no box), on canned answers; and the fallbacks of the
backend when key frames yield no box."""

from __future__ import annotations

import pytest

from data_pipeline.annotation.annotate import annotate_episode
from data_pipeline.annotation.backends.vlm_grounding import BoxParseStats, grounding_prompt, parse_boxes
from data_pipeline.annotation.config import AnnotationConfig

NAMES = ["black bowl", "plate"]


def test_native_format_converts_to_pixels():
    text = (
        '```json\n[\n  {"bbox_2d": [100, 200, 500, 750], "label": "black bowl"},\n'
        '  {"bbox_2d": [0, 0, 1000, 1000], "label": "The Plate"}\n]\n```'
    )
    boxes, stats = parse_boxes(text, NAMES, width=320, height=240)
    assert boxes == {"black bowl": [32, 48, 160, 180], "plate": [0, 0, 320, 240]}
    assert stats.boxes == 2 and not stats.dropped and stats.answers_without_box == 0


@pytest.mark.parametrize(
    "text, kept, reason",
    [
        ("I cannot see any objects.", {}, "no_json"),
        (
            '[{"bbox_2d": [100, 200, 500, 750], "label": "black bowl"}, {"bbox_2d": [10, 20, 3',
            ["black bowl"],
            "salvaged_answer",
        ),  # truncated generation: the complete entry before the cut is kept
        ('[{"bbox_2d": [500, 200, 100, 750], "label": "black bowl"}]', {}, "inverted_or_empty"),
        ('[{"bbox_2d": [1, 2, 3], "label": "black bowl"}]', {}, "bad_bbox"),
        ('[{"bbox_2d": ["a", 2, 3, 4], "label": "black bowl"}]', {}, "bad_bbox"),
        ('[{"bbox_2d": [100, 200, 500, 750], "label": "robot arm"}]', {}, "unknown_label"),
        (
            '[{"bbox_2d": [100, 200, 500, 750], "label": "black bowl"}, {"bbox_2d": [0, 0, 50, 50], '
            '"label": "bowl"}]',
            ["black bowl"],
            "duplicate_label",
        ),
        ('[{"bbox_2d": [-40, 200, 1200, 750], "label": "plate"}]', ["plate"], "clipped_coordinates"),
        ('[{"bbox_2d": [100, 200, 101, 750], "label": "plate"}]', {}, "too_small"),
        ('{"bbox_2d": [100, 200, 500, 750], "label": "plate"}', ["plate"], None),  # one object, not a list
    ],
)
def test_malformed_answers_are_counted(text, kept, reason):
    boxes, stats = parse_boxes(text, NAMES, width=320, height=240)
    assert sorted(boxes) == sorted(kept)
    if reason:
        assert stats.dropped[reason] >= 1
    assert stats.answers_without_box == int(not kept)


def test_stats_accumulate_and_summarize():
    total = BoxParseStats()
    for text in ("nothing", '[{"bbox_2d": [1, 2, 300, 400], "label": "plate"}]'):
        total.add(parse_boxes(text, NAMES, 100, 100)[1])
    assert (total.answers, total.boxes, total.answers_without_box) == (2, 1, 1)
    assert "no_json 1" in total.summary()
    assert '"black bowl", "plate"' in grounding_prompt(NAMES) and "bbox_2d" in grounding_prompt(NAMES)


@pytest.fixture()
def backend(tiny_vlm_dir):
    from data_pipeline.annotation.backends.vlm import VlmBackend

    return VlmBackend(
        AnnotationConfig(
            backend="vlm",
            vlm_model_dir=str(tiny_vlm_dir),
            vlm_max_new_tokens=4,
            vlm_image_size=64,
            vlm_device="cpu",
        )
    )


OBJECTS = '{"objects": ["black bowl", "plate"], "subtasks": {}}'


def test_unusable_boxes_fall_back_to_names(backend, pick_place_episode, monkeypatch):
    monkeypatch.setattr(backend, "generate", lambda image, q: OBJECTS if "robot's task" in q else "no idea")
    ann = annotate_episode(pick_place_episode(0, size=64), backend.config, backend)
    assert dict(ann.frames[10])["OBJECTS"] == "black bowl; plate"
    assert any(f.startswith("vlm_box_fallback") for f in ann.quality_flags)


def test_partial_boxes_use_the_nearest_key_frame(backend, pick_place_episode, monkeypatch):
    calls = []

    def answer(image, q):
        if "robot's task" in q:
            return OBJECTS
        calls.append(q)  # only the first key frame gets a usable answer
        return '[{"bbox_2d": [0, 0, 500, 500], "label": "plate"}]' if len(calls) == 1 else "```json\n[{"

    monkeypatch.setattr(backend, "generate", answer)
    ep = pick_place_episode(0, size=64)
    ann = annotate_episode(ep, backend.config, backend)
    assert len(calls) >= 2
    assert all(dict(f)["OBJECTS"] == "plate [0, 0, 32, 32]" for f in ann.frames)
    assert any(f.startswith("vlm_box_partial") for f in ann.quality_flags)
    assert backend.box_stats.answers == len(calls) and backend.box_stats.answers_without_box == len(calls) - 1
