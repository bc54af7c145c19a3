"""What a semantic backend returns for an episode, and the interface it implements.

Why an interface: the temporal anchors (gripper phases) and motion words are the same for every
dataset; only "which objects, where, and how to phrase the steps" depends on what is available
(a simulator, only the instruction, or a vision-language model). Backends fill `SemanticAnchors`
and `cot.py` turns anchors + phases + motion into text, so wording stays consistent across them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from data_pipeline.annotation.instruction_parser import Step
from data_pipeline.annotation.pushes import Push
from data_pipeline.annotation.segmentation import TemporalAnchors
from data_pipeline.episode import Episode

Box = list[int]  # [x1, y1, x2, y2], pixels of the upright image at the dataset's resolution


class SkipEpisode(Exception):
    """This episode cannot be annotated by this backend (e.g. no simulator state): record a skip.

    The message is the reason stored in the sidecar and counted in the summary; it is never
    silently turned into an empty annotation.
    """


@dataclass
class ObjectAnchor:
    name: str  # display name used in the CoT ("black bowl")
    role: str  # "object" (manipulated), "target" (goal), "other"
    key: str = ""  # backend identifier (BDDL object name for `sim`)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "key": self.key}


@dataclass
class SemanticAnchors:
    objects: list[ObjectAnchor]  # task-relevant objects, in the order the OBJECTS tag lists them
    steps: list[Step]  # ordered manipulation steps (one per grasp cycle for pick-and-place)
    boxes: list[dict[str, Box]] | None = (
        None  # per frame: object key -> box (only visible ones); None = no boxes
    )
    cycle_steps: list[int] | None = None  # step index of each grasp cycle (which object was grasped)
    phrases: dict[tuple[int, str], str] = field(default_factory=dict)  # (cycle, phase) -> subtask override
    pushes: dict[int, Push] = field(default_factory=dict)  # grasp cycles that pushed (annotation.pushes)
    flags: list[str] = field(default_factory=list)  # backend quality flags


class SemanticBackend(Protocol):
    name: str

    def anchors(self, episode: Episode, temporal: TemporalAnchors) -> SemanticAnchors:
        """Semantic anchors for one episode; raise SkipEpisode when it cannot be annotated."""
        ...

    def close(self) -> None:
        """Release simulators / models."""
        ...
