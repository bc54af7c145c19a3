"""Training samples (docs/interfaces.md, "Training sample"): a torch Dataset over a LeRobot dataset.

Per frame t of an episode of T frames it yields both cameras at frame t resized to S x S, the
future agentview frame min(t + k, T - 1) at S_f x S_f (visual-foresight target; `next_image_is_pad`
is True when t + k is past the episode's end, and the visual loss skips that sample), the normalized
8-dim state, the normalized action chunk a[t : t + H] (padded past the episode end by repeating
the last action, with `action_is_pad` True there), the instruction, and the CoT of (episode, t)
when an annotation run is named (else None).

Why this shape of implementation: low-dimensional columns (state, action, indices) are read once
into memory (a few MB even for all of LIBERO), so chunks and padding are numpy slicing; images
stay in lerobot's memory-mapped arrow files and only the 3 PNGs a sample needs are decoded, which
keeps DataLoader workers light and lets the dataset be far larger than RAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from data_pipeline.lerobot_io import image_hw, open_lerobot_dataset
from data_pipeline.stats import load_or_compute_stats, read_low_dim
from lara.normalization import NormalizationStats
from lara.pixels import resize_uint8
from lara.utils.errors import LaraUserError

FORESIGHT_CAMERA = "agentview"


@dataclass
class SampleConfig:
    """How samples are built; embedded in the training configs (draccus)."""

    mapping: str = "auto"  # key-mapping preset (configs/data/) or YAML path; auto: detected from the dataset
    chunk_size: int = 8  # H: actions per sample
    foresight_offset: int = 1  # k: the foresight target is frame t + k (clamped to the episode end)
    image_size: int = 128  # S: both cameras are resized to S x S
    foresight_image_size: int = 112  # S_f: the future frame's size
    # no foresight target where the future frame equals the current one pixel for pixel (the
    # reference drops those: a still scene teaches the slots to copy the present)
    mask_unchanged_future: bool = False
    norm_mode: str = "quantile"  # "quantile" (q01/q99), "min_max" or "mean_std"
    annotation: str | None = None  # annotation run name (data_pipeline.annotation); None = no CoT
    include_plan: bool = False  # prepend the episode PLAN segment to each frame's CoT

    def __post_init__(self) -> None:
        for name in ("chunk_size", "image_size", "foresight_image_size"):
            if getattr(self, name) < 1:
                raise LaraUserError(f"data config: {name} must be >= 1, got {getattr(self, name)}")
        if self.foresight_offset < 0:
            raise LaraUserError(f"data config: foresight_offset must be >= 0, got {self.foresight_offset}")


def resize_image(image: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) float32 in [0, 1].

    Resizing is `lara.pixels.resize_uint8` (PIL bicubic on uint8: Qwen3-VL's own processor rule, and
    the one inference uses, so training and inference frames are identical); the float conversion
    is numpy, several times cheaper per image than torch ops in a DataLoader worker on a small CPU.
    """
    image = resize_uint8(image, size, size)
    x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) * np.float32(1.0 / 255.0)  # (3, size, size)
    return torch.from_numpy(np.ascontiguousarray(x))


def load_cot(
    root: str | Path,
    name: str | None,
    include_plan: bool = False,
    episode_index: np.ndarray | None = None,
    hw: tuple[int, int] | None = None,
) -> dict[tuple[int, int], list] | None:
    """(episode, frame) -> [(tag, text)] from the annotation sidecar, or None without a run name.
    Given the dataset's `episode_index` column (N,) and image (H, W), each annotation file is checked
    against its episode (frame count, tags, boxes): a damaged one is one error line, not training data."""
    if name is None:
        return None
    from data_pipeline.annotation.sidecar import load_annotations

    lengths = None
    if episode_index is not None:
        episodes, counts = np.unique(episode_index, return_counts=True)
        lengths = {int(e): int(n) for e, n in zip(episodes, counts)}
    return load_annotations(root, name, include_plan=include_plan, episode_lengths=lengths, image_hw=hw)


class LaraSampleDataset(torch.utils.data.Dataset):
    """Map-style dataset of training samples; one item per frame of the selected episodes.

    `episodes` restricts the items to those episodes (e.g. a split's train episodes, so training
    never sees held-out ones); None means every episode.
    """

    def __init__(
        self,
        root: str | Path,
        config: SampleConfig | None = None,
        stats: NormalizationStats | None = None,
        episodes: list[int] | None = None,
    ):
        self.root = Path(root)
        self.config = config or SampleConfig()
        self.mapping: KeyMapping = load_key_mapping(self.config.mapping, self.root)
        if FORESIGHT_CAMERA not in self.mapping.cameras:
            raise LaraUserError(
                f"key mapping {self.mapping.name!r} maps no {FORESIGHT_CAMERA!r} camera "
                "(needed for samples and the foresight target); add it to the mapping"
            )
        dataset = open_lerobot_dataset(self.root)
        low = read_low_dim(self.root, self.mapping)
        self.stats = stats or load_or_compute_stats(
            self.root, self.mapping, self.config.norm_mode, low_dim=low
        )
        self.state, self.action = low["state"], low["action"]  # (N, S), (N, A)
        self.episode_index, self.frame_index = low["episode_index"], low["frame_index"]  # (N,)
        self.task_index = low["task_index"]
        # row -> one past the last row of its episode (episodes are contiguous rows)
        starts = np.flatnonzero(np.r_[True, self.episode_index[1:] != self.episode_index[:-1]])
        ends = np.r_[starts[1:], len(self.episode_index)]
        self.episode_end = np.repeat(ends, ends - starts)  # (N,)
        # item -> dataset row, restricted to the selected episodes
        self.rows = (
            np.arange(len(self.episode_index))
            if episodes is None
            else np.flatnonzero(np.isin(self.episode_index, np.asarray(episodes, dtype=np.int64)))
        )  # (N',)
        if len(self.rows) == 0:
            raise LaraUserError(
                f"{self.root}: none of the selected episodes {list(episodes or [])[:10]} has frames"
            )
        tasks = dataset.meta.tasks
        self.instructions = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"])}
        cams = list(self.mapping.cameras.values())
        self._rows = dataset.hf_dataset.with_format("numpy", columns=cams)
        self._future_rows = dataset.hf_dataset.with_format(
            "numpy", columns=[self.mapping.cameras[FORESIGHT_CAMERA]]
        )
        from data_pipeline.info_check import report_info_mismatches  # meta/info.json vs the data: warned

        report_info_mismatches(self.root, len(self.episode_index), self._rows[0])
        hw = image_hw(dataset, self.mapping.cameras[FORESIGHT_CAMERA])  # (H, W): annotation boxes' range
        self.cot = load_cot(
            self.root, self.config.annotation, self.config.include_plan, self.episode_index, hw
        )

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, row: dict, camera: str, size: int) -> torch.Tensor:
        img = row[self.mapping.cameras[camera]]  # (H, W, 3) uint8
        if self.mapping.flip_images:
            img = img[::-1, ::-1]
        return resize_image(img, size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg = self.config
        t_row = int(self.rows[index])
        end = int(self.episode_end[t_row])
        chunk_rows = np.minimum(
            np.arange(t_row, t_row + cfg.chunk_size), end - 1
        )  # (H,) repeat last past the end
        action_is_pad = np.arange(t_row, t_row + cfg.chunk_size) >= end  # (H,)
        future_row = min(t_row + cfg.foresight_offset, end - 1)
        next_image_is_pad = t_row + cfg.foresight_offset > end - 1  # clamped: no real future frame
        row = self._rows[t_row]
        future = self._future_rows[future_row]
        if cfg.mask_unchanged_future and not next_image_is_pad:
            key = self.mapping.cameras[FORESIGHT_CAMERA]
            next_image_is_pad = bool(np.array_equal(future[key], row[key]))  # a still frame: no target
        sample: dict[str, Any] = {
            f"image.{cam}": self._image(row, cam, cfg.image_size) for cam in self.mapping.cameras
        }
        sample[f"next_image.{FORESIGHT_CAMERA}"] = self._image(
            future, FORESIGHT_CAMERA, cfg.foresight_image_size
        )
        state = torch.from_numpy(self.state[t_row])
        action = torch.from_numpy(self.action[chunk_rows])  # (H, A)
        episode, frame = int(self.episode_index[t_row]), int(self.frame_index[t_row])
        sample.update(
            state=self.stats.normalize("state", state).float(),
            action=self.stats.normalize("action", action).float(),
            action_is_pad=torch.from_numpy(action_is_pad),
            next_image_is_pad=torch.tensor(next_image_is_pad),
            instruction=self.instructions.get(int(self.task_index[t_row]), ""),
            cot=None if self.cot is None else self.cot.get((episode, frame)),
            episode_index=episode,
            frame_index=frame,
            task_index=int(self.task_index[t_row]),
        )
        return sample


class MixtureSampleDataset(torch.utils.data.Dataset):
    """Several sample datasets trained as one (e.g. the four LIBERO suites), with sampling weights.

    Items are the parts' items one after the other (item j of part i is `offsets[i] + j`); each
    sample also carries `dataset_index` (its part; `episode_index` stays the part's own). The parts
    must share one `NormalizationStats` object (joint statistics, data_pipeline.stats.joint_stats)
    and one chunk size. For the helpers that read a dataset without decoding images (the FAST fit,
    the CoT vocabulary: curriculum.lara_adapter) the mixture exposes the parts' low-dimensional
    arrays concatenated, with row indices shifted by each part's row offset and episode ids shifted
    so that they are unique across parts (`cot` is keyed by those shifted ids).

    Weights: an epoch holds round(w_i * N_i) items of part i (N_i its items): weight 1 everywhere is
    the plain concatenation, 2 shows a part's every frame twice per epoch, 0.5 a different random
    half each epoch. `epoch_order(seed, epoch)` draws the epoch from (seed, epoch) alone, so a
    resumed run rebuilds the same order (curriculum.sampler); with every weight 1 it is exactly the
    permutation a plain dataset of the same items gets.
    """

    def __init__(self, parts: list[LaraSampleDataset], weights: list[float] | None = None, names=()):
        if not parts:
            raise LaraUserError("a dataset mixture needs at least one dataset")
        weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
        self.names = [str(n) for n in names] or [str(p.root) for p in parts]
        if len(weights) != len(parts) or len(self.names) != len(parts):
            raise ValueError(f"{len(parts)} datasets, {len(weights)} weights, {len(self.names)} names")
        if any(p.stats is not parts[0].stats for p in parts):
            raise ValueError("the parts of a mixture must share one NormalizationStats (joint_stats)")
        chunks = {p.config.chunk_size for p in parts}
        if len(chunks) > 1:
            raise ValueError(f"the parts of a mixture must share one chunk size, got {sorted(chunks)}")
        self.parts, self.weights = parts, weights
        self.stats = parts[0].stats
        self.config = parts[0].config  # chunk_size (shared); mapping/annotation are each part's own
        sizes = np.array([len(p) for p in parts])
        self.offsets = np.r_[0, np.cumsum(sizes)[:-1]]  # (P,) first item of each part
        self.counts = [int(round(w * n)) for w, n in zip(weights, sizes)]  # items per epoch, per part
        for name, w, k in zip(self.names, weights, self.counts):
            if w <= 0 or k < 1:
                raise LaraUserError(
                    f"mixture weight {w} of {name} draws no sample per epoch; use a weight > 0"
                )
        self.epoch_length = int(sum(self.counts))
        row_off = np.r_[0, np.cumsum([len(p.action) for p in parts])[:-1]]  # (P,) first row of each part
        ep_off = np.r_[0, np.cumsum([int(p.episode_index.max()) + 1 for p in parts])[:-1]]  # (P,)
        self.action = np.concatenate([p.action for p in parts])  # (sum N, A)
        self.state = np.concatenate([p.state for p in parts])  # (sum N, S)
        self.episode_end = np.concatenate([p.episode_end + o for p, o in zip(parts, row_off)])  # (sum N,)
        self.rows = np.concatenate([p.rows + o for p, o in zip(parts, row_off)])  # (sum N',)
        self.episode_index = np.concatenate([p.episode_index + o for p, o in zip(parts, ep_off)])  # (sum N,)
        self.frame_index = np.concatenate([p.frame_index for p in parts])  # (sum N,)
        cots = [p.cot for p in parts]
        if all(c is None for c in cots):
            self.cot = None
        elif any(c is None for c in cots):
            raise ValueError("either every part of a mixture has an annotation run or none has")
        else:
            self.cot = {(e + int(o), f): v for c, o in zip(cots, ep_off) for (e, f), v in c.items()}

    def __len__(self) -> int:
        return int(self.offsets[-1] + len(self.parts[-1]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        sample = self.parts[part][int(index - self.offsets[part])]
        sample["dataset_index"] = part
        return sample

    def epoch_order(self, seed: int, epoch: int) -> list[int]:
        """The items of epoch `epoch` in training order (length `epoch_length`)."""
        picks = []
        for i, (offset, k) in enumerate(zip(self.offsets, self.counts)):
            n = len(self.parts[i])
            full, rest = divmod(k, n)
            idx = [np.tile(np.arange(n), full)]
            if rest:  # a fractional pass: a random subset, a different one every epoch
                idx.append(np.random.default_rng([seed, epoch, i]).permutation(n)[:rest])
            picks.append(np.concatenate(idx) + offset)
        items = np.concatenate(picks)  # (epoch_length,)
        # the same permutation rule as curriculum.sampler.epoch_permutation (data cannot import it)
        perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed + epoch))
        return items[perm.numpy()].tolist()


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors (B, ...), ints -> LongTensor (B,), strings and CoT stay lists of length B."""
    if not samples:
        raise ValueError("collate_samples needs at least one sample")
    batch: dict[str, Any] = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.long)
        else:
            batch[key] = values
    return batch
