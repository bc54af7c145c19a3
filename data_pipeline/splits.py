"""A deterministic train / held-out split of a dataset's episodes, recorded inside the dataset.

Why recorded in the dataset (`meta/lara_split.json`) and not recomputed by each tool: the trainer
and `lara eval-offline` must agree on which episodes are held out, across machines, library
versions and runs. A file written once, next to lerobot's own metadata, is the one source of truth:
`train_episodes(root)` is what training reads, `heldout_episodes(root)` what evaluation reads, and
a held-out episode can only reach training if someone edits that file.

How episodes are chosen: the eligible episode indices (sorted; episodes excluded for a recorded
reason, e.g. no language instruction, are neither trained on nor evaluated) are permuted by
`numpy.random.default_rng(seed)` and the first `round(fraction * n)` (at least 1) are held out.
The same dataset, fraction and seed always give the same split. The file also records a
fingerprint of the dataset (episode and frame counts): a split made for another version of the
dataset is an error, never silently reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
SPLIT_FILE = "meta/lara_split.json"
SPLIT_VERSION = 1


@dataclass
class Split:
    """One recorded split. Episode lists are sorted episode indices of the LeRobot dataset."""

    seed: int
    heldout_fraction: float
    num_episodes: int  # episodes in the dataset when the split was made (fingerprint)
    num_frames: int  # frames in the dataset when the split was made (fingerprint)
    train: list[int]
    heldout: list[int]
    excluded: dict[str, list[int]] = field(default_factory=dict)  # reason -> episodes in neither list
    version: int = SPLIT_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str) -> Split:
        try:
            split = cls(**data)
        except TypeError as err:
            raise LaraUserError(
                f"{where}: malformed split file ({err}); delete it and make the split again"
            ) from err
        if split.version != SPLIT_VERSION:
            raise LaraUserError(
                f"{where}: split format version {split.version}, this LaRA reads {SPLIT_VERSION}"
            )
        overlap = set(split.train) & set(split.heldout)
        if overlap:
            raise LaraUserError(
                f"{where}: episodes {sorted(overlap)[:10]} are both train and held-out; "
                "the file was edited by hand, make the split again"
            )
        return split


def _dataset_counts(root: Path, dataset=None) -> tuple[list[int], int]:
    """(sorted episode indices, number of frames) of a LeRobot dataset, read from its parquet index."""
    from data_pipeline.lerobot_io import episode_bounds, open_lerobot_dataset

    bounds = episode_bounds(dataset if dataset is not None else open_lerobot_dataset(root))
    if not bounds:
        raise LaraUserError(f"{root}: the dataset has no frames; it is empty")
    return sorted({ep for ep, _, _ in bounds}), int(sum(stop - start for _, start, stop in bounds))


def choose_heldout(episodes: list[int], fraction: float, seed: int) -> list[int]:
    """The held-out subset of `episodes` (sorted), a pure function of (episodes, fraction, seed)."""
    if not 0.0 < fraction < 1.0:
        raise LaraUserError(f"held-out fraction must be in (0, 1), got {fraction}")
    eligible = sorted(int(e) for e in episodes)
    if len(eligible) < 2:
        raise LaraUserError(
            f"a train/held-out split needs at least 2 usable episodes, the dataset has {len(eligible)}"
        )
    n_heldout = min(len(eligible) - 1, max(1, int(round(fraction * len(eligible)))))
    order = np.random.default_rng(seed).permutation(len(eligible))  # (n,)
    return sorted(eligible[i] for i in order[:n_heldout])


def split_path(root: str | Path) -> Path:
    return Path(root) / SPLIT_FILE


def make_split(
    root: str | Path,
    heldout_fraction: float = 0.1,
    seed: int = 0,
    exclude: dict[str, list[int]] | None = None,
    overwrite: bool = False,
    dataset=None,
    trained: list[int] | None = None,
    trained_by: str = "the checkpoint",
) -> Split:
    """Make (or return the identical existing) split of `root` and record it in meta/lara_split.json.

    `exclude` maps a reason to episodes that must be in neither list (e.g. {"no_language": [...]}).
    An existing split made with other settings is an error unless `overwrite` (a changed split
    would put episodes a model was trained on into the held-out set). `trained`: the episodes
    `trained_by` (a checkpoint) trained on; a split holding any of them out is an error and nothing
    is written (`check_not_trained_on`).
    """
    root = Path(root)
    episodes, num_frames = _dataset_counts(root)
    exclude = {reason: sorted(int(e) for e in eps) for reason, eps in (exclude or {}).items() if eps}
    excluded_all = {e for eps in exclude.values() for e in eps}
    eligible = [e for e in episodes if e not in excluded_all]
    heldout = choose_heldout(eligible, heldout_fraction, seed)
    held = set(heldout)
    split = Split(
        seed=int(seed),
        heldout_fraction=float(heldout_fraction),
        num_episodes=len(episodes),
        num_frames=num_frames,
        train=[e for e in eligible if e not in held],
        heldout=heldout,
        excluded=exclude,
    )
    path = split_path(root)
    if path.is_file() and not overwrite:
        existing = load_split(root, check_dataset=False)  # same counts as `split` or it differs below
        if existing == split:
            check_not_trained_on(existing.heldout, trained, str(root), trained_by)
            return existing
        raise LaraUserError(
            f"{path} already records a split (seed {existing.seed}, fraction {existing.heldout_fraction}, "
            f"{len(existing.heldout)} held out) that differs from the requested one (seed {seed}, fraction "
            f"{heldout_fraction}, {len(heldout)} held out); models trained on the old split may have seen "
            "the new "
            "held-out episodes: keep it, or pass overwrite (--overwrite-split) deliberately"
        )
    check_not_trained_on(split.heldout, trained, str(root), trained_by)
    atomic_write_text(path, json.dumps(split.to_json(), indent=1, sort_keys=True))
    return split


def load_split(root: str | Path, check_dataset: bool = True) -> Split:
    """The recorded split; LaraUserError when there is none or it belongs to another dataset version."""
    root = Path(root)
    path = split_path(root)
    if not path.is_file():
        raise LaraUserError(
            f"{root}: no train/held-out split recorded ({SPLIT_FILE} missing); make one with "
            "`lara eval-offline --policy CHECKPOINT --dataset DATASET` or "
            "data_pipeline.splits.make_split"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise LaraUserError(f"{path}: not valid JSON ({err}); delete it and make the split again") from err
    split = Split.from_json(data, str(path))
    if check_dataset:
        episodes, num_frames = _dataset_counts(root)
        if (len(episodes), num_frames) != (split.num_episodes, split.num_frames):
            raise LaraUserError(
                f"{path}: the split was made for {split.num_episodes} episodes / {split.num_frames} "
                "frames, the "
                f"dataset now has {len(episodes)} / {num_frames}; the dataset changed, make the split again "
                "(--overwrite-split) and retrain"
            )
    return split


def train_episodes(root: str | Path) -> list[int]:
    """Episodes training may use (never a held-out or excluded one)."""
    return list(load_split(root).train)


def training_episodes(root: str | Path) -> list[int]:
    """What a trainer should read: the recorded split's train episodes when there is a split, else
    every episode that has a language instruction (no held-out set is then reserved; logged)."""
    if split_path(root).is_file():
        return train_episodes(root)
    from data_pipeline.bridge import language_by_episode

    language = language_by_episode(root)
    keep = sorted(e for e, text in language.items() if text)
    log.warning(
        "%s: no train/held-out split recorded; training on all %d episodes with language (%d without "
        "skipped); make a split first to keep episodes for `lara eval-offline`",
        root,
        len(keep),
        len(language) - len(keep),
    )
    return keep


def heldout_episodes(root: str | Path) -> list[int]:
    """Episodes kept for offline evaluation."""
    return list(load_split(root).heldout)


_READ_CACHE: dict[tuple, list[int]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def episodes_read_by_training(root: str | Path, split: str = "train") -> list[int]:
    """The episodes a training run reads from `root` under `data.split` (train: `training_episodes`;
    all: every episode), without logging: the run's identity (`curriculum.config.training_identity`)
    holds them, so a resume whose data changed (a split written after the checkpoint, episodes
    added) is refused. Cached per process while the split file and meta/info.json are unchanged
    (opening a dataset costs seconds, and the identity is asked for several times)."""
    root = Path(root)
    key = (str(root.resolve()), split, _stamp(split_path(root)), _stamp(root / "meta" / "info.json"))
    if key not in _READ_CACHE:
        if split == "train" and split_path(root).is_file():
            episodes = train_episodes(root)
        else:
            from data_pipeline.bridge import language_by_episode

            language = language_by_episode(root)
            episodes = sorted(e for e, text in language.items() if text or split == "all")
        _READ_CACHE[key] = [int(e) for e in episodes]
    return list(_READ_CACHE[key])


def check_not_trained_on(heldout: list[int], trained: list[int] | None, where: str, checkpoint: str) -> None:
    """A split must not call episodes a checkpoint trained on held-out (a split made after the
    checkpoint, e.g. by `lara eval-offline`, would): one line naming them."""
    seen = sorted(set(heldout) & set(trained or ()))
    if seen:
        shown = ", ".join(map(str, seen[:10])) + (f", ... ({len(seen)})" if len(seen) > 10 else "")
        raise LaraUserError(
            f"{checkpoint} trained on episode(s) {shown} of {where}, which the split holds out (a split "
            f"made after that training, or another one): their scores would not be held-out scores. "
            f"Make the split before training (data_pipeline.splits.make_split, or `lara eval-offline` on "
            f"the dataset first) and retrain, or evaluate a checkpoint that did not train on them"
        )
