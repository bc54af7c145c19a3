"""CoT auto-annotation (`lara annotate`): temporal anchors from the gripper signal, semantic
anchors (objects, boxes) from a pluggable backend, motion words from the end-effector, assembled
into per-frame structured CoT segments and written as a versioned sidecar next to the dataset.

The trainer only needs `load_annotations` / `list_annotations` (sidecar.py); nothing heavy is
imported here.
"""

from data_pipeline.annotation.sidecar import FRAME_TAGS, list_annotations, load_annotations, load_plans

__all__ = ["FRAME_TAGS", "list_annotations", "load_annotations", "load_plans"]
