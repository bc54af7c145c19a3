"""Observation in, environment actions out: what surrounds the model at inference.

- `to_device(obs)`: an `Observation` (or a batched dict: uint8 images (B, H, W, 3) per camera,
  state (B, S), a list of instructions) -> `ObsOnDevice`: the camera images as floats (B * n_cam,
  3, S, S) and the raw state, moved in ONE host-to-device copy (state float32 bytes and uint8 pixels
  packed into one pinned buffer, split on the device; on the CPU the arrays are only wrapped).
  Frames of another size are first resized on uint8 by `lara.pixels.resize_uint8` (PIL bicubic,
  Qwen3-VL's processor rule), and the floats equal `lara.pixels.to_float_images`: the model sees
  the same pixels at inference as in training.
- `stack_observations(observations)`: B `Observation`s -> that batched dict.
- `expert_state(state)`: the state the expert reads (checked against `expert.use_state` and
  `state_dim`), normalized with the checkpoint's statistics.
- `unnormalize(normalized)`: predicted chunks (B, H, A), normalized, -> numpy actions in the
  environment's units: clipped to [-1, 1] first (bounded modes; flow integration and FAST decoding
  may overshoot, as the reference clips), the affine map inverted, each gripper (passthrough)
  dimension set to the env convention -1 = open / +1 = close. One device-to-host copy.
The normalization offsets and scales are kept on the device per statistics object, so an
episode's calls copy nothing but the observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from lara.pixels import resize_uint8
from lara.utils.errors import LaraUserError


def stack_observations(observations) -> dict:
    """B Observations -> the batched dict `to_device` takes: images (B, H, W, 3) per camera, state
    (B, S), B instructions."""
    first = observations[0]
    return {
        "images": {cam: np.stack([o.images[cam] for o in observations]) for cam in first.images},
        "state": None if first.state is None else np.stack([o.state for o in observations]),
        "instruction": [o.instruction for o in observations],
    }


@dataclass
class ObsOnDevice:
    images: torch.Tensor  # (B * n_cam, 3, H, W) float in [0, 1]
    state: torch.Tensor | None  # (B, S) float32, raw (not normalized)
    instructions: tuple[str, ...]
    batched: bool

    def sample_images(self, i: int) -> torch.Tensor:
        """(n_cam, 3, H, W): the camera images of sample i."""
        n_cam = self.images.shape[0] // len(self.instructions)
        return self.images[i * n_cam : (i + 1) * n_cam]


def transfer(obs, cameras: list[str], device: torch.device, size: int | None = None) -> ObsOnDevice:
    """Observation (or batched dict) -> images and state on `device`, in one host-to-device copy."""
    if isinstance(obs, dict):
        images, state, instr = obs["images"], obs.get("state"), obs["instruction"]
    else:
        images, state, instr = obs.images, getattr(obs, "state", None), obs.instruction
    batched = isinstance(instr, (list, tuple))
    instructions = tuple(instr) if batched else (instr,)
    b = len(instructions)
    arrays = []
    for cam in cameras:
        if cam not in images:
            raise LaraUserError(f"observation lacks camera {cam!r}; has {sorted(images)}")
        arr = np.asarray(images[cam])
        arrays.append(arr if batched else arr[None])  # (B, H, W, 3)
    if any(a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 for a in arrays):
        raise LaraUserError(
            f"camera images must be uint8 (H, W, 3), got {[(a.dtype, a.shape) for a in arrays]}"
        )
    if size is not None:  # each camera to S x S (cameras may differ in size)
        arrays = [
            a if a.shape[1:3] == (size, size) else np.stack([resize_uint8(frame, size, size) for frame in a])
            for a in arrays
        ]  # (B, S, S, 3) each
    if any(a.shape != arrays[0].shape for a in arrays):
        raise LaraUserError(f"camera images must be of one size, got {[a.shape for a in arrays]}")
    imgs = np.stack(arrays, axis=1)  # (B, n_cam, H, W, 3)
    st = None if state is None else np.ascontiguousarray(np.asarray(state, dtype=np.float32).reshape(b, -1))
    if device.type == "cpu":  # nothing to transfer: no packing copy
        state_t = None if st is None else torch.from_numpy(st)  # (B, S)
        pix = torch.from_numpy(imgs).view(b * len(cameras), *imgs.shape[2:])  # (B * n_cam, H, W, 3)
    else:  # state first: its float32 bytes stay 4-byte aligned at offset 0 of the buffer
        parts = ([st.reshape(-1).view(np.uint8)] if st is not None else []) + [imgs.reshape(-1)]
        host = torch.from_numpy(np.concatenate(parts))  # (n_bytes,) uint8
        buf = (host.pin_memory() if device.type == "cuda" else host).to(device, non_blocking=True)
        n_state = 0 if st is None else st.size * 4
        state_t = None if st is None else buf[:n_state].view(torch.float32).view(b, -1)  # (B, S)
        pix = buf[n_state:].view(b * len(cameras), *imgs.shape[2:])  # (B * n_cam, H, W, 3)
    x = torch.div(pix, 255.0)  # float32 in one pass, the same values as to_float_images' float().div_(255)
    return ObsOnDevice(rearrange(x, "n h w c -> n c h w"), state_t, instructions, batched)


class LaraProcessor:
    """Pre- and post-processing of one model: reads its config, statistics and device when called
    (`set_normalization` and `.to(device)` on the model are seen at once)."""

    def __init__(self, model) -> None:
        self.model = model
        self._affine: tuple | None = None  # (stats, {(feature, device): (offset, scale)})

    def to_device(self, obs) -> ObsOnDevice:
        """Pre-processing: the observation's images (as floats) and raw state on the device, one copy."""
        cfg = self.model.cfg
        return transfer(obs, cfg.vision.cameras, self.model.device, cfg.vision.image_size)

    def affine(self, feature: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(offset, scale) (dim,) of `feature` on `device` (normalized = (x - offset) / scale), None
        without statistics for it. Built once per statistics object and device."""
        stats = self.model.stats
        if stats is None or feature not in stats.features:
            return None
        if self._affine is None or self._affine[0] is not stats:
            self._affine = (stats, {})
        table = self._affine[1]
        if (feature, device) not in table:
            like = torch.zeros(stats.features[feature].dim, device=device)
            table[feature, device] = stats._affine(feature, like)  # (dim,) offset, scale
        return table[feature, device]

    def expert_state(self, state: torch.Tensor | None) -> torch.Tensor | None:
        """Raw state (B, S) on the device -> normalized (as `NormalizationStats.normalize`), or None
        when the expert reads no state; raises if it does and the state is missing or mis-sized."""
        cfg = self.model.cfg
        if not cfg.expert.use_state:
            return None
        if state is None:
            raise LaraUserError(
                "this model reads the robot state (expert.use_state) but the observation has none"
            )
        if state.shape[-1] != cfg.state_dim:
            raise LaraUserError(f"state has {state.shape[-1]} dims, the model expects {cfg.state_dim}")
        affine = self.affine("state", state.device)
        if affine is None:
            return state
        offset, scale = affine
        return self.model.stats.clip((state - offset) / scale)

    def unnormalize(self, normalized: torch.Tensor | np.ndarray) -> np.ndarray:
        """Normalized chunk(s) (..., H, A), a tensor on any device or an array -> float32 numpy actions
        in the environment's units (clipped first, gripper dims to the env's -1 / +1)."""
        norm = torch.as_tensor(normalized)
        affine = self.affine("action", norm.device)
        if affine is None:
            raise LaraUserError(
                "no action normalization statistics in the policy; call set_normalization(stats)"
            )
        stats = self.model.stats
        offset, scale = affine
        out = stats.clip(norm.float()) * scale + offset  # (..., H, A)
        for d in stats.features["action"].passthrough_dims:
            out[..., d] = torch.where(out[..., d] >= 0, 1.0, -1.0)
        return out.cpu().numpy()
