"""Per-dimension normalization statistics: one object normalizes in training and un-normalizes
at inference, so the two can never disagree (a pitfall of the reference implementation, which
normalized with q01/q99 and un-normalized with min/max).

Statistics are computed once per dataset (`from_arrays`), stored as JSON next to the dataset and
inside every checkpoint (`to_dict` / `from_dict`; plain numbers, never pickle).

Modes:
- `quantile` (default, as openpi/OpenVLA): x -> 2 * (x - q01) / (q99 - q01) - 1, clipped to [-1, 1]
  on the way in (un-normalizing inverts the affine map).
- `min_max` (the reference's LIBERO setting): the same with min/max instead of q01/q99.
- `mean_std`: x -> (x - mean) / std.
In the two bounded modes the model's normalized predictions are clipped to [-1, 1] before they are
un-normalized (`clip`), so an action never leaves the range the data spans.
Dimensions listed in `passthrough_dims` (the gripper) are never rescaled: the gripper command is
already in [-1, 1] (-1 open, +1 close) and a rescale could squash a rarely-used value away.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lara.utils.atomic import atomic_write_text

MODES = ("quantile", "min_max", "mean_std")


def _is_tensor(x) -> bool:
    """A torch tensor, without importing torch here: configs import MODES, and `lara <cmd> --help`
    must not pay torch's start-up (a tensor can only exist once something imported torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


BOUNDED_MODES = ("quantile", "min_max")  # normalized values live in [-1, 1]
_EPS = 1e-6


@dataclass
class FeatureStats:
    """Statistics of one feature (e.g. `action` or `state`), each a list of per-dimension values."""

    mean: list[float]
    std: list[float]
    q01: list[float]
    q99: list[float]
    min: list[float]
    max: list[float]
    count: int
    passthrough_dims: list[int] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def from_array(cls, values: np.ndarray, passthrough_dims: list[int] | None = None) -> FeatureStats:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise ValueError(f"statistics need a non-empty (N, D) array, got shape {values.shape}")
        if not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            raise ValueError(
                f"non-finite value at row {bad[0]}, dim {bad[1]}: clean the data before computing stats"
            )
        return cls(
            mean=values.mean(0).tolist(),
            std=values.std(0).tolist(),
            q01=np.quantile(values, 0.01, axis=0).tolist(),
            q99=np.quantile(values, 0.99, axis=0).tolist(),
            min=values.min(0).tolist(),
            max=values.max(0).tolist(),
            count=int(values.shape[0]),
            passthrough_dims=sorted(passthrough_dims or []),
        )


@dataclass
class NormalizationStats:
    """Statistics for several features plus the mode; callable on numpy arrays or torch tensors."""

    features: dict[str, FeatureStats]
    mode: str = "quantile"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown normalization mode {self.mode!r}; choose one of {MODES}")

    @classmethod
    def from_arrays(
        cls,
        arrays: dict[str, np.ndarray],
        mode: str = "quantile",
        passthrough_dims: dict[str, list[int]] | None = None,
    ) -> NormalizationStats:
        passthrough_dims = passthrough_dims or {}
        features = {k: FeatureStats.from_array(v, passthrough_dims.get(k)) for k, v in arrays.items()}
        return cls(features=features, mode=mode)

    # --- serialization (JSON only) ---
    def to_dict(self) -> dict:
        return {"mode": self.mode, "features": {k: vars(v) for k, v in self.features.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> NormalizationStats:
        try:
            features = {k: FeatureStats(**v) for k, v in data["features"].items()}
            return cls(features=features, mode=data["mode"])
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"malformed normalization statistics ({err}); recompute them for the dataset"
            ) from err

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> NormalizationStats:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"normalization statistics not found at {path}; compute them for the dataset first"
            )
        return cls.from_dict(json.loads(path.read_text()))

    # --- the one code path for both directions ---
    def _affine(self, key: str, like) -> tuple:
        """(offset, scale) with normalized = (x - offset) / scale, as arrays/tensors like `like`."""
        if key not in self.features:
            raise KeyError(f"no normalization statistics for {key!r}; have {sorted(self.features)}")
        stats = self.features[key]
        if like.shape[-1] != stats.dim:
            raise ValueError(
                f"{key}: last dimension is {like.shape[-1]}, statistics are for {stats.dim} dims"
            )
        if self.mode in BOUNDED_MODES:
            low, high = (stats.q01, stats.q99) if self.mode == "quantile" else (stats.min, stats.max)
            low, high = np.asarray(low), np.asarray(high)
            offset, scale = (high + low) / 2.0, np.maximum((high - low) / 2.0, _EPS)
        else:
            offset, scale = np.asarray(stats.mean), np.maximum(np.asarray(stats.std), _EPS)
        for d in stats.passthrough_dims:
            offset[d], scale[d] = 0.0, 1.0
        if _is_tensor(like):
            import torch

            kw = {"dtype": like.dtype if like.is_floating_point() else torch.float32, "device": like.device}
            return torch.as_tensor(offset, **kw), torch.as_tensor(scale, **kw)
        return offset.astype(np.float32), scale.astype(np.float32)

    def normalize(self, key: str, x):
        offset, scale = self._affine(key, x)
        return self.clip((x - offset) / scale)

    def clip(self, y):
        """Normalized values clipped to [-1, 1] in the bounded modes (unchanged for mean_std)."""
        if self.mode not in BOUNDED_MODES:
            return y
        return y.clamp(-1.0, 1.0) if _is_tensor(y) else np.clip(y, -1.0, 1.0)

    def unnormalize(self, key: str, y):
        offset, scale = self._affine(key, y)
        return y * scale + offset
