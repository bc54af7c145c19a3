"""Instruction parsing (objects, targets, expected grasps) on LIBERO and Bridge phrasings."""

from __future__ import annotations

import pytest

from data_pipeline.annotation.instruction_parser import parse_instruction

CASES = [
    (
        "pick up the black bowl between the plate and the ramekin and place it on the plate",
        [("put", "black bowl", "on", "plate")],
        1,
    ),
    ("pick up the alphabet soup and place it in the basket", [("put", "alphabet soup", "in", "basket")], 1),
    ("put the wine bottle on top of the cabinet", [("put", "wine bottle", "on top of", "cabinet")], 1),
    ("open the middle drawer of the cabinet", [("open", "middle drawer of the cabinet", "", "")], None),
    (
        "turn on the stove and put the moka pot on it",
        [("turn_on", "stove", "", ""), ("put", "moka pot", "on", "stove")],
        None,
    ),
    (
        "put both the alphabet soup and the tomato sauce in the basket",
        [("put", "alphabet soup", "in", "basket"), ("put", "tomato sauce", "in", "basket")],
        2,
    ),
    (
        "put the white mug on the left plate and put the yellow and white mug on the right plate",
        [("put", "white mug", "on", "left plate"), ("put", "yellow and white mug", "on", "right plate")],
        2,
    ),
    (
        "put the black bowl in the bottom drawer of the cabinet and close it",
        [
            ("put", "black bowl", "in", "bottom drawer of the cabinet"),
            ("close", "bottom drawer of the cabinet", "", ""),
        ],
        None,
    ),
    ("put eggplant into yellow basket", [("put", "eggplant", "into", "yellow basket")], 1),
    (
        "LIVING ROOM SCENE2 put both moka pots on the stove.",
        [("put", "moka pot", "on", "stove"), ("put", "moka pot", "on", "stove")],
        2,
    ),
]


@pytest.mark.parametrize("text,steps,grasps", CASES)
def test_parse(text, steps, grasps):
    parsed = parse_instruction(text)
    assert [(s.verb, s.obj, s.relation, s.target) for s in parsed.steps] == steps
    assert parsed.expected_grasps == grasps


def test_qualifier_kept_and_objects_ordered():
    parsed = parse_instruction("pick up the black bowl next to the cookie box and place it on the plate")
    assert parsed.steps[0].qualifier == "next to the cookie box"
    assert parsed.objects == ["black bowl", "plate"]
