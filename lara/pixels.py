"""Qwen3-VL pixel inputs with torch ops and PIL (no torchvision, no HF image processor at run time).

What Qwen3-VL saw in pre-training is defined by its published image processor
(`preprocessor_config.json` of Qwen3-VL-2B-Instruct, a copy in benchmarks/qwen3vl-2b-instruct/):
`smart_resize` to a multiple of patch*merge (32) within [shortest_edge, longest_edge] pixels,
PIL bicubic on the uint8 frame, /255, (x - mean) / std, patches grouped by merge window and a
still image repeated `temporal_patch_size` times. This module reproduces that, value for value
(tests/lara/test_qwen_pixels.py compares it with transformers' PIL processor):

- `resize_uint8(frame, h, w)`: PIL bicubic on uint8, exactly the processor's resampling and rounding.
- `to_float_images(images, size)`: uint8 (H, W, 3) frames -> float (N, 3, S, S) in [0, 1],
  resized to S x S through `resize_uint8` when they are not already that size.
- `patchify(images, size, ...)`: float (N, 3, H, W) -> Qwen's flattened `pixel_values`
  (N * gh * gw, 3 * tp * p * p) and `image_grid_thw` (N, 3) = [1, gh, gw]. `size=None` keeps
  each image's own (H, W) (multiples of patch*merge, e.g. non-square frames); a float image of
  another size is resized with torch (bilinear, antialiased): not Qwen's rule, used only for
  inputs that arrive as floats (tests, synthetic data), never for camera frames.
- `smart_resize` / `qwen_preprocess`: the processor's size rule and whole pipeline, for any frame
  (non-square included), so callers that keep aspect ratio (the `vlm` annotation backend) match it.
- `check_preprocessor(path, image_size, mean, std)`: compares a checkpoint's
  `preprocessor_config.json` with a model config (mean/std must match; a size Qwen would resize is
  reported).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

RESAMPLE = Image.BICUBIC  # Qwen2VLImageProcessor's `resample` (3 = PIL bicubic)


@dataclass(frozen=True)
class QwenImageSpec:
    """The fields of a Qwen3-VL `preprocessor_config.json` that decide the pixels."""

    patch_size: int = 16
    merge_size: int = 2
    temporal_patch_size: int = 2
    min_pixels: int = 65536  # size.shortest_edge (a pixel count, not a side)
    max_pixels: int = 16777216  # size.longest_edge
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def from_file(cls, path: str | Path) -> QwenImageSpec:
        d = json.loads(Path(path).read_text())
        size = d.get("size") or {}
        return cls(
            patch_size=int(d.get("patch_size", cls.patch_size)),
            merge_size=int(d.get("merge_size", cls.merge_size)),
            temporal_patch_size=int(d.get("temporal_patch_size", cls.temporal_patch_size)),
            min_pixels=int(d.get("min_pixels") or size.get("shortest_edge", cls.min_pixels)),
            max_pixels=int(d.get("max_pixels") or size.get("longest_edge", cls.max_pixels)),
            image_mean=tuple(float(x) for x in d.get("image_mean", cls.image_mean)),
            image_std=tuple(float(x) for x in d.get("image_std", cls.image_std)),
        )


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's target (height, width): multiples of `factor`, pixel count in [min, max], aspect kept.
    Same arithmetic (round, then floor/ceil by the area ratio) as the published processor."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of a {height}x{width} image exceeds 200")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8 with PIL bicubic (Qwen's resampling and rounding)."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), RESAMPLE))


def _uint8_batch(images: list[np.ndarray] | np.ndarray) -> np.ndarray:
    arr = np.stack(list(images)) if isinstance(images, list) else np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (H, W, 3) or (N, H, W, 3), got {arr.shape}")
    return arr


def to_float_images(images: list[np.ndarray] | np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) arrays (or (N, H, W, 3)) -> float32 (N, 3, S, S) in [0, 1]; with `size`, frames
    of another size are first resized on uint8 exactly as Qwen's processor does (`resize_uint8`)."""
    arr = _uint8_batch(images)
    if size is not None and arr.shape[1:3] != (size, size):
        if arr.dtype != np.uint8:
            raise ValueError(f"camera frames must be uint8 to be resized as Qwen does, got {arr.dtype}")
        arr = np.stack([resize_uint8(a, size, size) for a in arr])  # (N, S, S, 3)
    x = torch.from_numpy(arr.astype(np.float32)).div_(
        255.0
    )  # (N, H, W, 3), a copy (PIL arrays are read-only)
    return rearrange(x, "n h w c -> n c h w")


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 3, size, size), bilinear with antialiasing (float inputs only)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def patchify(
    images: torch.Tensor,
    size: int | None,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    mean,
    std,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) float in [0, 1] -> pixel_values (N*gh*gw, 3*tp*p*p), image_grid_thw (N, 3).
    `size=None` keeps (H, W), which must then be multiples of patch_size * merge_size."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    x = images.float() if size is None else resize(images.float(), size)  # (N, 3, H, W)
    unit = patch_size * merge_size
    if x.shape[-2] % unit or x.shape[-1] % unit:
        raise ValueError(f"image sides {tuple(x.shape[-2:])} must be multiples of patch*merge = {unit}")
    m = torch.tensor(list(mean), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    x = x.unsqueeze(1).expand(-1, temporal_patch_size, -1, -1, -1)  # (N, tp, 3, H, W): still image repeated
    gh, gw = x.shape[-2] // patch_size, x.shape[-1] // patch_size
    pixel_values = rearrange(
        x,
        "n tp c (gh m1 p1) (gw m2 p2) -> (n gh gw m1 m2) (c tp p1 p2)",
        m1=merge_size,
        m2=merge_size,
        p1=patch_size,
        p2=patch_size,
    )  # (N * gh * gw, 3 * tp * p * p), grouped by merge window as Qwen's processor does
    n = images.shape[0]
    grid = (
        torch.tensor([[1, gh, gw]], dtype=torch.long, device=images.device).expand(n, 3).contiguous()
    )  # (N, 3)
    return pixel_values, grid


def qwen_preprocess(frames: list[np.ndarray], spec: QwenImageSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen's whole image pipeline for uint8 (H, W, 3) frames of any sizes: smart_resize, bicubic,
    normalize, patchify. Returns (pixel_values, image_grid_thw) concatenated over the frames."""
    values, grids = [], []
    for frame in frames:
        frame = _uint8_batch(frame)[0]
        h, w = smart_resize(frame.shape[0], frame.shape[1], spec.factor, spec.min_pixels, spec.max_pixels)
        x = to_float_images(resize_uint8(frame, h, w))  # (1, 3, h, w)
        pv, grid = patchify(
            x,
            None,
            spec.patch_size,
            spec.merge_size,
            spec.temporal_patch_size,
            spec.image_mean,
            spec.image_std,
        )
        values.append(pv)
        grids.append(grid)
    return torch.cat(values), torch.cat(grids)


def check_preprocessor(
    path: str | Path, image_size: int, mean, std, patch_size: int, merge_size: int
) -> str | None:
    """Compare a checkpoint's preprocessor_config.json with the model's vision config. Raises ValueError
    when normalization or patching differ (the weights would see other inputs); returns a note when
    Qwen's processor would resize an `image_size` square frame (LaRA feeds it as is), else None."""
    spec = QwenImageSpec.from_file(path)
    if not (np.allclose(spec.image_mean, mean) and np.allclose(spec.image_std, std)):
        raise ValueError(
            f"{path}: image_mean/std {spec.image_mean}/{spec.image_std} differ from the model "
            f"config's vision.image_mean/std {list(mean)}/{list(std)}"
        )
    if (spec.patch_size, spec.merge_size) != (patch_size, merge_size):
        raise ValueError(
            f"{path}: patch/merge {spec.patch_size}/{spec.merge_size} differ from the model "
            f"config's {patch_size}/{merge_size}"
        )
    target = smart_resize(image_size, image_size, spec.factor, spec.min_pixels, spec.max_pixels)
    if target != (image_size, image_size):
        return (
            f"Qwen's processor resizes a {image_size} px frame to {target[0]}x{target[1]} "
            f"(pixel range [{spec.min_pixels}, {spec.max_pixels}]); vision.image_size={image_size} "
            "feeds fewer or more tokens than the checkpoint saw for such frames"
        )
    return None
