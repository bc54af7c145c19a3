"""Typed configuration of an annotation run, its hash, and the annotator version.

Why a hash: the sidecar must say exactly how it was made, and a resumed run must not mix episodes
annotated under two configurations. Every field that changes the output is in the dataclass (and
the hash); how the run is executed (workers, preview, progress bar) is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from data_pipeline.annotation.motion import MotionParams
from data_pipeline.annotation.segmentation import SegmentationParams
from data_pipeline.annotation.sidecar import dumps
from lara.utils.errors import LaraUserError

# Bump when the output for the same input and config changes (wording, phases, format).
ANNOTATOR_VERSION = "1.0.0"
BACKEND_NAMES = ("sim", "instruction", "vlm")


@dataclass
class AnnotationConfig:
    backend: str = "instruction"
    camera: str = "agentview"  # boxes are in this camera's upright image, at the dataset's resolution
    # temporal anchors (segmentation.SegmentationParams)
    smooth_window: int = 5
    close_threshold: float = 0.5
    open_threshold: float = -0.5
    min_closed_frames: int = 3
    min_open_frames: int = 3
    settle_speed: float = 0.004
    settle_dist: float = 0.015
    max_settle_frames: int = 20
    # motion words (motion.MotionParams)
    motion_window: int = 4
    motion_dead_zone: float = 0.008
    # sim backend
    sim_distractors: bool = False  # also list (and box) objects that are not in the task
    min_box_pixels: int = 2  # boxes thinner than this (after clipping to the image) are dropped
    # vlm backend
    vlm_model_dir: str = ""
    vlm_max_new_tokens: int = 128
    vlm_image_size: int = 224
    vlm_device: str = "auto"  # "auto" = cuda when available

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise LaraUserError(
                f"unknown annotation backend {self.backend!r}; choose one of: {', '.join(BACKEND_NAMES)}"
            )
        if self.min_box_pixels < 0 or self.vlm_max_new_tokens < 1 or self.vlm_image_size < 32:
            raise LaraUserError("min_box_pixels must be >= 0, vlm_max_new_tokens >= 1, vlm_image_size >= 32")
        try:
            self.segmentation_params()
            self.motion_params()
        except ValueError as err:
            raise LaraUserError(f"invalid annotation config: {err}") from err

    def segmentation_params(self) -> SegmentationParams:
        return SegmentationParams(
            smooth_window=self.smooth_window,
            close_threshold=self.close_threshold,
            open_threshold=self.open_threshold,
            min_closed_frames=self.min_closed_frames,
            min_open_frames=self.min_open_frames,
            settle_speed=self.settle_speed,
            settle_dist=self.settle_dist,
            max_settle_frames=self.max_settle_frames,
        )

    def motion_params(self) -> MotionParams:
        return MotionParams(window=self.motion_window, dead_zone=self.motion_dead_zone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config_hash(self) -> str:
        """sha256 over the annotator version and every field (16 hex digits)."""
        payload = dumps({"annotator_version": ANNOTATOR_VERSION, "config": self.to_dict()})
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnotationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LaraUserError(
                f"unknown annotation config keys: {', '.join(unknown)} (valid: {', '.join(sorted(names))})"
            )
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> AnnotationConfig:
        p = Path(path)
        if not p.is_file():
            raise LaraUserError(f"annotation config {p} not found (presets live in configs/annotation/)")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise LaraUserError(f"{p}: expected a mapping of config keys")
        data.update(overrides or {})
        return cls.from_dict(data)
