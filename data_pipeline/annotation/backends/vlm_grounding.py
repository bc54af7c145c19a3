"""Object boxes from Qwen3-VL in its native grounding format, parsed defensively.

Why this format: Qwen3-VL was trained to answer grounding requests with a JSON list of
`{"bbox_2d": [x1, y1, x2, y2], "label": "..."}` in relative coordinates 0..1000 of the image it
was shown (whatever its pixel size after the processor's resize). Asking in that format gets the
model's best boxes; converting relative coordinates to the dataset frame's pixels is then a plain
scale by W/1000 and H/1000, independent of the processor's resize.

Model output is not trusted: fenced code blocks, prose around the JSON, a single object instead of
a list, truncated generations (the complete objects before the cut are kept), non-numeric or
out-of-range coordinates (clipped to 0..1000), inverted corners, degenerate boxes, labels that name
no task object, duplicates: each case is counted in a `BoxParseStats` and the box dropped; a frame
whose answer yields no box at all falls back to no box (the caller flags it).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

Box = list[int]
GROUNDING_PROMPT = (
    "Locate each of these objects in the image: {names}. Report their bounding boxes in JSON format as a "
    "list "
    'of {{"bbox_2d": [x1, y1, x2, y2], "label": "<object name>"}}, one entry per object that is visible, '
    "using the object names given."
)
_OBJECT = re.compile(r"\{[^{}]*\}")  # one flat JSON object (bbox entries contain no nested braces)
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)


def grounding_prompt(names: list[str]) -> str:
    return GROUNDING_PROMPT.format(names=", ".join(f'"{n}"' for n in names))


@dataclass
class BoxParseStats:
    """How the answers of one run were used: boxes kept and, per reason, entries or answers dropped."""

    answers: int = 0
    answers_without_box: int = 0
    boxes: int = 0
    dropped: Counter = field(default_factory=Counter)

    def add(self, other: BoxParseStats) -> None:
        self.answers += other.answers
        self.answers_without_box += other.answers_without_box
        self.boxes += other.boxes
        self.dropped.update(other.dropped)

    def summary(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (
            f"{self.answers} grounding answers, {self.boxes} boxes kept, "
            f"{self.answers_without_box} answers without a usable box; dropped: {drops}"
        )


def _entries(text: str, stats: BoxParseStats) -> list[dict]:
    """The JSON objects in an answer: a whole list/object if it parses, else every complete flat object."""
    body = _FENCE.sub("", text)
    start = min([i for i in (body.find("["), body.find("{")) if i >= 0], default=-1)
    if start < 0:
        stats.dropped["no_json"] += 1
        return []
    try:
        data = json.loads(body[start : body.rfind("]" if body[start] == "[" else "}") + 1])
        items = data if isinstance(data, list) else [data]
    except ValueError:  # truncated or otherwise broken JSON: salvage the complete objects
        items = []
        for m in _OBJECT.finditer(body[start:]):
            try:
                items.append(json.loads(m.group(0)))
            except ValueError:
                stats.dropped["bad_json_object"] += 1
        if not items:
            stats.dropped["no_json"] += 1
        else:
            stats.dropped["salvaged_answer"] += 1
    return [it for it in items if isinstance(it, dict)] if items else []


def _relative_box(raw, stats: BoxParseStats) -> list[float] | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        stats.dropped["bad_bbox"] += 1
        return None
    try:
        vals = [float(v) for v in raw]
    except (TypeError, ValueError):
        stats.dropped["bad_bbox"] += 1
        return None
    if any(v != v for v in vals):  # NaN
        stats.dropped["bad_bbox"] += 1
        return None
    if any(v < 0 or v > 1000 for v in vals):
        stats.dropped["clipped_coordinates"] += 1  # counted, the box is kept after clipping
        vals = [min(max(v, 0.0), 1000.0) for v in vals]
    x1, y1, x2, y2 = vals
    if x2 <= x1 or y2 <= y1:
        stats.dropped["inverted_or_empty"] += 1
        return None
    return vals


def _match(label, names: list[str]) -> str | None:
    """The task object a label names: exact (case/article-insensitive), else the unique name it contains
    or that contains it."""
    if not isinstance(label, str):
        return None
    lab = re.sub(r"^(the|a|an)\s+", "", re.sub(r"\s+", " ", label.strip().lower()))
    if lab in names:
        return lab
    hits = [n for n in names if n in lab or lab in n]
    return hits[0] if len(hits) == 1 else None


def parse_boxes(
    text: str, names: list[str], width: int, height: int, min_pixels: int = 2
) -> tuple[dict[str, Box], BoxParseStats]:
    """name -> [x1, y1, x2, y2] pixels of a width x height frame, from one grounding answer."""
    stats = BoxParseStats(answers=1)
    boxes: dict[str, Box] = {}
    for item in _entries(text, stats):
        name = _match(item.get("label"), names)
        if name is None:
            stats.dropped["unknown_label"] += 1
            continue
        rel = _relative_box(item.get("bbox_2d", item.get("bbox")), stats)
        if rel is None:
            continue
        if name in boxes:
            stats.dropped["duplicate_label"] += 1
            continue
        x1, y1, x2, y2 = rel
        px = [
            round(x1 / 1000 * width),
            round(y1 / 1000 * height),
            round(x2 / 1000 * width),
            round(y2 / 1000 * height),
        ]
        if px[2] - px[0] < min_pixels or px[3] - px[1] < min_pixels:
            stats.dropped["too_small"] += 1
            continue
        boxes[name] = px
    stats.boxes = len(boxes)
    stats.answers_without_box = int(not boxes)
    return boxes, stats
