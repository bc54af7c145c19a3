"""`lara probe` settings: one typed dataclass (draccus), every field a `--field value` flag.

Apart from the computation (curriculum/offline/probe_run.py: torch, the model) so that
`lara probe --help` imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from lara.utils.errors import LaraUserError

SPLITS = ("heldout", "all")


@dataclass
class ProbeConfig:
    policy: str = ""  # LaRA checkpoint: a save_pretrained folder, or a training run (RUN, RUN/final)
    dataset: str = ""  # LeRobot dataset folder with a CoT annotation run
    annotation: str | None = None  # annotation run the probes read their labels from (None: the newest)
    out: str = "outputs/probe"  # output folder: probe.json, probe.md, three PNG plots
    mapping: str = "auto"  # key mapping: a configs/data/ preset, a YAML path, or auto
    cameras: list[int] | None = None  # Bridge: image_<i> cameras (default: the checkpoint's)
    # heldout: the dataset's recorded validation split (data_pipeline.splits; made if missing).
    # all: every episode with language, training ones included (a policy trained on all of them, as
    # `lara demo`'s; the report says the probed episodes were seen in training)
    split: str = "heldout"
    heldout_fraction: float = 0.1  # fraction of episodes held out (new splits)
    split_seed: int = 0  # seed of the split (new splits)
    overwrite_split: bool = False  # replace a recorded split made with other settings
    episodes: int | None = None  # probe at most this many of those episodes (None: all)
    stride: int = 1  # frames between probed frames of an episode
    probe_train_fraction: float = 0.5  # of the probed EPISODES, the fraction the probes are fit on
    batch_size: int = 8
    l2: float = 1e-2  # L2 penalty of the probes (standardized features)
    probe_steps: int = 300  # gradient steps of a logistic probe
    random_control: bool = True  # also probe a randomly initialized model of the same preset
    top_k: int = 5  # decoding: tokens shown per latent slot
    decode_episodes: int = 2  # decoding: probe-test episodes shown
    decode_frames: int = 3  # decoding: frames shown per episode (evenly spaced)
    time_bins: int = 10  # foresight: bins of normalized episode time
    bootstrap: int = 1000  # bootstrap resamples of the IoU interval
    seed: int = 0
    # probe although the checkpoint's normalization statistics differ from the dataset's
    allow_stats_mismatch: bool = False
    device: str | None = None  # torch device (None: CPU)
    progress: bool = True  # a progress bar over the hidden-state pass (false: logs only)

    def __post_init__(self) -> None:
        if not self.policy or not self.dataset:
            raise LaraUserError(
                "give --policy (a LaRA checkpoint) and --dataset (an annotated LeRobot dataset)"
            )
        if self.split not in SPLITS:
            raise LaraUserError(f"--split must be one of {SPLITS}, got {self.split!r}")
        if self.episodes is not None and self.episodes < 2:
            raise LaraUserError(
                f"--episodes must be >= 2 (probes are fit and scored on different episodes), "
                f"got {self.episodes}"
            )
        if self.stride < 1 or self.batch_size < 1 or self.top_k < 1 or self.time_bins < 1:
            raise LaraUserError("--stride, --batch_size, --top_k and --time_bins must be >= 1")
        if not 0.0 < self.probe_train_fraction < 1.0:
            raise LaraUserError(f"--probe_train_fraction must be in (0, 1), got {self.probe_train_fraction}")
        if self.l2 < 0 or self.probe_steps < 1 or self.bootstrap < 0:
            raise LaraUserError("--l2 and --bootstrap must be >= 0, --probe_steps >= 1")
        if self.decode_episodes < 0 or self.decode_frames < 0:
            raise LaraUserError("--decode_episodes and --decode_frames must be >= 0")
