"""What a LeRobot dataset's meta/info.json declares against what its data holds.

Why: the declared figures are used as facts. The image height and width place the annotation's boxes
(`lerobot_io.image_hw`), and `total_frames` is what a reader of the dataset's card believes; a file
edited by hand or written by another tool can say 128x128 over 256x256 frames, or 1000 frames over
400, and nothing failed. Reading a dataset for training reports each disagreement as one warning
naming the file, the figure and both values (`report_info_mismatches`); it does not stop the run,
since the frames themselves are what trains.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def info_mismatches(info: dict, num_rows: int, first_frames: dict[str, np.ndarray]) -> list[str]:
    """Disagreements between `info` (meta/info.json) and the data: `num_rows` frames in the parquet
    files, `first_frames` {image feature key: its first frame (H, W, C)}."""
    out = []
    total = info.get("total_frames")
    if isinstance(total, int) and total != num_rows:
        out.append(f"total_frames is {total} but the data files hold {num_rows} frames")
    features = info.get("features") or {}
    for key, frame in first_frames.items():
        feature = features.get(key) or {}
        shape, names = list(feature.get("shape") or []), list(feature.get("names") or [])
        if len(shape) != 3 or not {"height", "width"} <= set(names):
            continue
        declared = tuple(int(shape[names.index(n)]) for n in ("height", "width"))
        actual = tuple(int(d) for d in np.asarray(frame).shape[:2])  # (H, W)
        if declared != actual:
            out.append(
                f"features.{key} declares height x width {declared[0]}x{declared[1]} but its frames "
                f"are {actual[0]}x{actual[1]} (annotation boxes are placed with the declared size)"
            )
    return out


def report_info_mismatches(root: str | Path, num_rows: int, first_frames: dict[str, np.ndarray]) -> list[str]:
    """Log one warning per disagreement of `root`'s meta/info.json with its data; returns them."""
    path = Path(root) / "meta" / "info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # unreadable: opening the dataset already said so
    found = info_mismatches(info, num_rows, first_frames) if isinstance(info, dict) else []
    for line in found:
        log.warning("%s: %s; fix the file (or write the dataset again)", path, line)
    return found
