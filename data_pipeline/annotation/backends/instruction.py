"""`instruction` backend: objects parsed from the instruction, no boxes (any dataset, offline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_pipeline.annotation.backends.base import ObjectAnchor, SemanticAnchors, SkipEpisode
from data_pipeline.annotation.instruction_parser import parse_instruction
from data_pipeline.annotation.segmentation import TemporalAnchors
from data_pipeline.episode import Episode

if TYPE_CHECKING:
    from data_pipeline.annotation.config import AnnotationConfig


def anchors_from_instruction(instruction: str) -> SemanticAnchors:
    """Objects (manipulated first, then targets) and steps from the parsed instruction."""
    if not instruction or not instruction.strip():
        raise SkipEpisode("no instruction")
    parsed = parse_instruction(instruction)
    if not parsed.steps:
        raise SkipEpisode(f"instruction not understood: {instruction!r}")
    objects: list[ObjectAnchor] = []
    seen: set[str] = set()
    for role in ("object", "target"):
        for st in parsed.steps:
            name = st.obj if role == "object" else st.target
            if name and name != "it" and name not in seen:
                seen.add(name)
                objects.append(ObjectAnchor(name=name, role=role, key=name))
    return SemanticAnchors(objects=objects, steps=parsed.steps)


class InstructionBackend:
    name = "instruction"

    def __init__(self, config: AnnotationConfig | None = None) -> None:
        self.config = config

    def anchors(self, episode: Episode, temporal: TemporalAnchors) -> SemanticAnchors:
        return anchors_from_instruction(episode.instruction)

    def close(self) -> None:
        return None
