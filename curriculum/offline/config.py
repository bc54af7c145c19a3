"""`lara eval-offline` settings: one typed dataclass (draccus), every field a `--field value` flag.

Apart from `curriculum/offline/evaluate.py` (torch, the model) so that `lara eval-offline --help`
imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from lara.utils.errors import LaraUserError


@dataclass
class OfflineEvalConfig:
    policy: str = ""  # LaRA checkpoint: a save_pretrained folder, or a training run (RUN, RUN/final)
    dataset: str = ""  # LeRobot dataset folder (LIBERO or Bridge)
    out: str = "outputs/eval_offline"  # output folder: metrics.json, report.md, trajectories.png
    mapping: str = "auto"  # key mapping: a configs/data/ preset, a YAML path, or auto (the preset that fits)
    cameras: list[int] | None = None  # Bridge: image_<i> cameras, e.g. 0,1 (default: the checkpoint's)
    episodes: int | None = None  # evaluate at most this many held-out episodes (None: all)
    heldout_fraction: float = 0.1  # fraction of episodes held out (new splits)
    split_seed: int = 0  # seed of the split (new splits)
    overwrite_split: bool = False  # replace a recorded split made with other settings
    stride: int | None = None  # frames between evaluated chunks (None: the chunk size)
    batch_size: int = 8
    stage: int | None = None  # inference path (None: the checkpoint's inference.stage)
    num_steps: int | None = None  # expert Euler steps (None: the checkpoint's)
    seed: int = 0
    annotation: str | None = None  # CoT run for token accuracy (None: the newest run, if any)
    probe_frames: int = 64  # frames used for foresight L1 / CoT accuracy (0: off)
    plot_episodes: int = 3
    # evaluate although the checkpoint's normalization statistics differ from the dataset's
    allow_stats_mismatch: bool = False
    device: str | None = None  # torch device (None: CPU)

    def __post_init__(self) -> None:
        if not self.policy or not self.dataset:
            raise LaraUserError("give --policy (a LaRA checkpoint) and --dataset (a LeRobot dataset folder)")
        if self.episodes is not None and self.episodes < 1:
            raise LaraUserError(f"--episodes must be >= 1, got {self.episodes}")
        if self.stride is not None and self.stride < 1:
            raise LaraUserError(f"--stride must be >= 1, got {self.stride}")
        if self.batch_size < 1 or self.probe_frames < 0 or self.plot_episodes < 0:
            raise LaraUserError("--batch_size must be >= 1, --probe_frames and --plot_episodes >= 0")
        if self.stage is not None and self.stage not in (1, 2, 3):
            raise LaraUserError(f"--stage must be 1, 2 or 3, got {self.stage}")
