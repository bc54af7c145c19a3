"""Assemble the per-frame structured CoT (SUBTASK, OBJECTS, MOVE, GRIPPER) and the episode PLAN.

Why templates: the CoT is a training target; the same situation must always be written the same
way ("grasp the black bowl", "place it on the plate"), whatever backend found the objects, or
the model learns the annotator's noise. Backends may override a phase's phrasing (`vlm`), but the
tags, their order and the GRIPPER / MOVE vocabularies are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_pipeline.annotation.backends.base import SemanticAnchors
from data_pipeline.annotation.instruction_parser import Step
from data_pipeline.annotation.segmentation import (
    EXECUTE,
    GRASP,
    MOVE_TO_GOAL,
    MOVE_TO_OBJECT,
    PLACE,
    RETRACT,
    TemporalAnchors,
)
from data_pipeline.annotation.sidecar import Segments

VERB_TEXT: dict[str, str] = {
    "open": "open",
    "close": "close",
    "turn_on": "turn on",
    "turn_off": "turn off",
    "push": "push",
    "pull": "pull",
    "flip": "flip",
    "wipe": "wipe",
    "fold": "fold",
    "pick": "pick up",
    "put": "put",
}
GRIPPER_WORDS = ("open", "close", "hold")


def _the(name: str) -> str:
    return f"the {name}" if name else "the object"


def phase_text(phase: str, step: Step | None) -> str:
    """Subtask wording for a phase of a step ("grasp the black bowl", "place it on the plate")."""
    if step is None or step.verb == "do":
        generic = {
            MOVE_TO_OBJECT: "move to the object",
            GRASP: "grasp the object",
            MOVE_TO_GOAL: "move the object to the goal",
            PLACE: "release the object",
            RETRACT: "retract the arm",
        }
        if phase == EXECUTE:
            return step.text if step is not None and step.text else "complete the task"
        return generic[phase]
    obj, tgt, rel, verb = _the(step.obj), _the(step.target), step.relation, step.verb
    if phase == MOVE_TO_OBJECT:
        return f"move to {obj}"
    if phase == GRASP:
        return f"grasp {obj}"
    if phase == MOVE_TO_GOAL:
        if verb in ("put", "pick"):
            return f"carry {obj} to {tgt}" if step.target else f"lift {obj}"
        if verb in ("push", "pull") and step.target:
            return f"{verb} {obj} {rel} {tgt}"
        return f"{VERB_TEXT.get(verb, verb)} {obj}"
    if phase == PLACE:
        if verb in ("put", "pick") and step.target:
            return f"place it {rel} {tgt}"
        return f"release {obj}"
    if phase == RETRACT:
        return "retract the arm"
    if phase == EXECUTE:
        tail = f" {rel} {tgt}" if step.target else ""
        return f"{VERB_TEXT.get(verb, verb)} {obj}{tail}"
    raise ValueError(f"unknown phase {phase!r}")


def format_box(box: list[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in box) + "]"


def objects_text(anchors: SemanticAnchors, frame: int) -> str:
    """'black bowl [x1, y1, x2, y2]; plate [...]' (names only without boxes; unseen objects omitted)."""
    if anchors.boxes is None:
        return "; ".join(o.name for o in anchors.objects)
    boxes = anchors.boxes[frame]
    parts = [f"{o.name} {format_box(boxes[o.key])}" for o in anchors.objects if o.key in boxes]
    return "; ".join(parts) if parts else "none visible"


def gripper_word(phase: str, closed: bool) -> str:
    """close while grasping, open while releasing, otherwise hold (closed) or open."""
    if phase == GRASP:
        return "close"
    if phase == PLACE:
        return "open"
    return "hold" if closed else "open"


@dataclass
class EpisodeCot:
    frames: list[Segments]
    plan: list[str]
    segments: list[dict[str, object]]  # phase segments with their subtask text


def step_for_cycle(anchors: SemanticAnchors, cycle: int, phase: str) -> Step | None:
    """The step a grasp cycle works on: the backend's assignment, else instruction order."""
    if not anchors.steps:
        return None
    if anchors.cycle_steps is not None and cycle < len(anchors.cycle_steps):
        return anchors.steps[anchors.cycle_steps[cycle]]
    if phase == EXECUTE and len(anchors.steps) > 1:
        texts = list(dict.fromkeys(s.text for s in anchors.steps if s.text))  # "put both X and Y": one clause
        return Step(verb="do", obj="", text=" and ".join(texts))
    return anchors.steps[min(cycle, len(anchors.steps) - 1)]


def build_cot(temporal: TemporalAnchors, anchors: SemanticAnchors, moves: list[str]) -> EpisodeCot:
    """Per-frame CoT segments in `FRAME_TAGS` order, the PLAN, and the phase segments with text."""
    T = temporal.closed.shape[0]
    if len(moves) != T:
        raise ValueError(f"{len(moves)} motion words for {T} frames")
    if anchors.boxes is not None and len(anchors.boxes) != T:
        raise ValueError(f"{len(anchors.boxes)} box frames for {T} frames")
    seg_text: list[str] = []
    seg_json: list[dict[str, object]] = []
    for seg in temporal.segments:
        text = anchors.phrases.get((seg.cycle, seg.phase)) or phase_text(
            seg.phase, step_for_cycle(anchors, seg.cycle, seg.phase)
        )
        seg_text.append(text)
        seg_json.append({**seg.to_json(), "subtask": text})
    plan: list[str] = []
    for text in seg_text:
        if not plan or plan[-1] != text:
            plan.append(text)
    frames: list[Segments] = []
    seg_idx = temporal.segment_at()
    for t in range(T):
        seg = temporal.segments[seg_idx[t]]
        frames.append(
            [
                ("SUBTASK", seg_text[seg_idx[t]]),
                ("OBJECTS", objects_text(anchors, t)),
                ("MOVE", moves[t]),
                ("GRIPPER", gripper_word(seg.phase, bool(temporal.closed[t]))),
            ]
        )
    return EpisodeCot(frames=frames, plan=plan, segments=seg_json)
