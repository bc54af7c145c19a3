"""Qwen3-VL pixel inputs with torch ops (no torchvision, no HF image processor).

`patchify(images, ...)` turns float images (N, 3, H, W) in [0, 1] into Qwen's flattened
`pixel_values` (N * gh * gw, 3 * tp * p * p) and `image_grid_thw` (N, 3) = [1, gh, gw], in the
exact patch order of Qwen's image processor (patches grouped by spatial-merge window, a still
image repeated `temporal_patch_size` times). `to_float_images` converts uint8 (H, W, 3) numpy
observations into (N, 3, H, W) float tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange


def to_float_images(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) arrays (or (N, H, W, 3)) -> float32 (N, 3, H, W) in [0, 1]."""
    arr = np.stack(list(images)) if isinstance(images, list) else np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (H, W, 3) or (N, H, W, 3), got {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)  # (N, H, W, 3)
    return rearrange(x, "n h w c -> n c h w")


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size), bilinear with antialiasing when shrinking."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def patchify(
    images: torch.Tensor,
    size: int,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    mean: list[float],
    std: list[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) float in [0, 1] -> pixel_values (N*gh*gw, 3*tp*p*p), image_grid_thw (N, 3)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    x = resize(images.float(), size)  # (N, 3, S, S)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    x = x.unsqueeze(1).expand(-1, temporal_patch_size, -1, -1, -1)  # (N, tp, 3, S, S): still image repeated
    gh = gw = size // patch_size
    pixel_values = rearrange(
        x,
        "n tp c (gh m1 p1) (gw m2 p2) -> (n gh gw m1 m2) (c tp p1 p2)",
        m1=merge_size, m2=merge_size, p1=patch_size, p2=patch_size,
    )  # (N * gh * gw, 3 * tp * p * p), grouped by merge window as Qwen's processor does  # fmt: skip
    n = images.shape[0]
    grid = torch.tensor([[1, gh, gw]], dtype=torch.long, device=images.device).expand(n, 3).contiguous()  # (N, 3)
    return pixel_values, grid
