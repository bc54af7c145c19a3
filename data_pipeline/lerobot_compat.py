"""The one place the project imports lerobot's dataset code; every other module imports from here.

Why this module exists: lerobot 0.4.4's dataset modules import torchvision at top level
(`lerobot.datasets.utils`: `from torchvision import transforms`, used only for
`transforms.ToTensor()` on PIL images in `hf_transform_to_torch`; `lerobot.datasets.video_utils`:
`import torchvision`, used only to decode videos with the torchvision backend). torchvision has no
CPU build for our torch (2.13): the only wheel is a CUDA build whose `import` fails on a CPU
machine (docs/platform.md). We use lerobot datasets in image mode only (`use_videos=False`), so the
only torchvision feature really needed is `ToTensor`.

What we do: if `import torchvision` works, nothing. Otherwise we register, *only while lerobot's
dataset modules are being imported*, a minimal in-process module named `torchvision` that provides
a real `transforms.ToTensor` (PIL image or HWC uint8 ndarray -> float32 CHW tensor / 255, the same
contract as torchvision's) and raises a clear error for anything else (e.g. video decoding via
`torchvision.io`). The module is removed from `sys.modules` right after the import, so no other
library (transformers checks whether torchvision is installed) ever sees a fake torchvision;
lerobot's modules keep their own reference to it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

import numpy as np
import torch

_SHIM_NAME = "lara-torchvision-shim"


class _ToTensor:
    """torchvision.transforms.ToTensor: PIL image / (H, W, C) uint8 array -> (C, H, W) float32 in [0, 1]."""

    def __call__(self, pic: Any) -> torch.Tensor:
        arr = np.array(pic)  # a writable copy, as torchvision does
        if arr.ndim == 2:
            arr = arr[:, :, None]  # (H, W) -> (H, W, 1)
        tensor = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()  # (C, H, W)
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.float32).div_(255.0)
        return tensor.to(torch.float32)

    def __repr__(self) -> str:
        return "ToTensor()"


def _unsupported(what: str):
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(
            f"torchvision.{what} is not available: torchvision cannot be installed next to torch 2.13 on "
            "CPU, and LaRA reads LeRobot datasets in image mode only (use_videos=False). Convert video "
            "datasets to image mode, or install torchcodec + ffmpeg and use video_backend='torchcodec'."
        )

    return fail


def _make_shim() -> tuple[types.ModuleType, types.ModuleType]:
    tv = types.ModuleType(
        "torchvision", doc=f"{_SHIM_NAME}: ToTensor only (see data_pipeline.lerobot_compat)"
    )
    tv.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
    transforms = types.ModuleType("torchvision.transforms")
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchvision.transforms", None)
    transforms.ToTensor = _ToTensor  # type: ignore[attr-defined]
    tv.transforms = transforms  # type: ignore[attr-defined]
    tv.set_video_backend = _unsupported("set_video_backend")  # type: ignore[attr-defined]
    tv.io = types.SimpleNamespace(VideoReader=_unsupported("io.VideoReader"))  # type: ignore[attr-defined]
    return tv, transforms


def _torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a CUDA-only build
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


def _import_lerobot() -> types.ModuleType:
    if "lerobot.datasets.lerobot_dataset" in sys.modules or _torchvision_importable():
        import lerobot.datasets.lerobot_dataset as module

        return module
    tv, transforms = _make_shim()
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, transforms
    try:
        import lerobot.datasets.lerobot_dataset as module
        import lerobot.datasets.utils  # noqa: F401
        import lerobot.datasets.video_utils  # noqa: F401
    finally:
        for name in ("torchvision", "torchvision.transforms"):
            if getattr(sys.modules.get(name), "__doc__", "") and _SHIM_NAME in sys.modules[name].__doc__:
                del sys.modules[name]
    return module


_lerobot_dataset = _import_lerobot()


def _video_backend(requested: str | None) -> str:
    """lerobot's own default, chosen here without its warning: every open of a dataset logged
    "'torchcodec' is not available ... falling back to 'pyav'", 2-3 times per command, about
    videos we never decode (image mode)."""
    if requested:
        return requested
    return "torchcodec" if importlib.util.find_spec("torchcodec") else "pyav"


class LeRobotDataset(_lerobot_dataset.LeRobotDataset):
    """lerobot's `LeRobotDataset` with the video backend chosen quietly (see `_video_backend`)."""

    def __init__(self, *args: Any, video_backend: str | None = None, **kwargs: Any):
        super().__init__(*args, video_backend=_video_backend(video_backend), **kwargs)

    @classmethod
    def create(cls, *args: Any, video_backend: str | None = None, **kwargs: Any):  # type: ignore[override]
        return super().create(*args, video_backend=_video_backend(video_backend), **kwargs)


LeRobotDatasetMetadata = _lerobot_dataset.LeRobotDatasetMetadata
CODEBASE_VERSION: str = _lerobot_dataset.CODEBASE_VERSION

__all__ = ["LeRobotDataset", "LeRobotDatasetMetadata", "CODEBASE_VERSION"]
