"""The few torchvision names lerobot's Diffusion Policy modules use, as an in-process `torchvision`.

torchvision cannot be installed here (docs/platform.md: no CPU build for torch 2.13; the CUDA wheel's
import fails with "operator torchvision::nms does not exist"). lerobot's diffusion code needs, from
it: `transforms.Resize`, `transforms.CenterCrop`, `transforms.RandomCrop` (on float (B, C, H, W)
tensors, in `DiffusionRgbEncoder`) and `models.resnet18` (its backbone; `lara.peer.tv_resnet` is
torchvision's own ResNet code). Its import chain (lerobot.processor.hil_processor) also imports
`torchvision.transforms.functional` (human-in-the-loop crop/resize steps) and lerobot.configs.default
imports `torchvision.transforms.v2` (`Transform`, to subclass, and `functional`) for dataset image
augmentations: none of these runs for the diffusion policy, so any other name of these modules is a
function that raises if called, and `v2.Transform` is a module that raises if run.
`lara.peer.lerobot_diffusion` registers these modules only while lerobot's modules are imported,
then removes them (transformers checks whether torchvision is installed, and must keep seeing that
it is not).
"""

from __future__ import annotations

import importlib.machinery
import types
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812

from lara.peer import tv_resnet

SHIM_DOC = "lara-peer-torchvision-shim"


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) == 1:
        return int(size[0]), int(size[0])
    return int(size[0]), int(size[1])


class Resize(torch.nn.Module):
    """torchvision.transforms.Resize for a (H, W) size on float tensors: bilinear, antialiased
    (torchvision's tensor default since 0.17)."""

    def __init__(self, size: int | Sequence[int]):
        super().__init__()
        if isinstance(size, int):
            raise ValueError("this Resize takes an (H, W) size (lerobot passes config.resize_shape)")
        self.size = _pair(size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lead = img.shape[:-3]
        x = img.reshape(-1, *img.shape[-3:])  # (..., C, H, W) -> (N, C, H, W)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x.reshape(*lead, *x.shape[-3:])  # (N, C, h, w) -> (..., C, h, w)


def _check_fits(img: torch.Tensor, th: int, tw: int) -> tuple[int, int]:
    h, w = img.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"crop size {(th, tw)} is larger than the image {(h, w)}")
    return h, w


class CenterCrop(torch.nn.Module):
    """torchvision.transforms.CenterCrop (no padding case): top = round((H - h) / 2), likewise left."""

    def __init__(self, size: int | Sequence[int]):
        super().__init__()
        self.size = _pair(size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        th, tw = self.size
        h, w = _check_fits(img, th, tw)
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return img[..., top : top + th, left : left + tw]


class RandomCrop(torch.nn.Module):
    """torchvision.transforms.RandomCrop (no padding): one offset drawn with torch.randint for the
    whole tensor, as torchvision does for a batch."""

    def __init__(self, size: int | Sequence[int]):
        super().__init__()
        self.size = _pair(size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        th, tw = self.size
        h, w = _check_fits(img, th, tw)
        i = int(torch.randint(0, h - th + 1, size=(1,)).item())
        j = int(torch.randint(0, w - tw + 1, size=(1,)).item())
        return img[..., i : i + th, j : j + tw]


def _unavailable(name: str):
    def fail(*_args, **_kwargs):
        raise RuntimeError(
            f"torchvision.{name} is not available: the peer arm's torchvision stand-in "
            "(lara.peer.torchvision_shim) provides only what lerobot's Diffusion Policy uses"
        )

    return fail


class Transform(torch.nn.Module):
    """torchvision.transforms.v2.Transform, only to be subclassed at import time."""

    def forward(self, *_args, **_kwargs):
        raise RuntimeError("torchvision.transforms.v2 is not available (lara.peer.torchvision_shim)")


def _module(name: str, package: bool = False) -> types.ModuleType:
    module = types.ModuleType(name, doc=f"{SHIM_DOC} (lara.peer.torchvision_shim)")

    def missing(attr: str):  # `from torchvision.x import anything` succeeds; calling it raises
        if attr.startswith("__"):  # the import system probes dunders (__path__, __file__)
            raise AttributeError(attr)
        return _unavailable(f"{name.removeprefix('torchvision.')}.{attr}")

    module.__getattr__ = missing  # type: ignore[method-assign]
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        module.__path__ = []  # type: ignore[attr-defined]
    return module


def make_modules() -> dict[str, types.ModuleType]:
    """sys.modules entries: torchvision, its transforms (.functional, .v2, .v2.functional) and models."""
    tv = _module("torchvision", package=True)
    transforms = _module("torchvision.transforms", package=True)
    functional = _module("torchvision.transforms.functional")
    models = _module("torchvision.models", package=True)
    v2 = _module("torchvision.transforms.v2", package=True)
    v2_functional = _module("torchvision.transforms.v2.functional")
    transforms.Resize, transforms.CenterCrop, transforms.RandomCrop = Resize, CenterCrop, RandomCrop
    transforms.functional, transforms.v2 = functional, v2
    v2.Transform, v2.functional = Transform, v2_functional
    for name in ("resnet18", "resnet34", "resnet50"):
        setattr(models, name, getattr(tv_resnet, name))
    tv.transforms, tv.models = transforms, models
    return {
        "torchvision": tv,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
        "torchvision.transforms.v2": v2,
        "torchvision.transforms.v2.functional": v2_functional,
        "torchvision.models": models,
    }
