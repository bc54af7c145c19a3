"""Atomic, complete training checkpoints.

Layout of a run (`output_dir`):
    config.yaml                      the resolved TrainConfig of the run
    checkpoints/step_000050/         one complete checkpoint
        model/                       policy.save_pretrained (safetensors + JSON; EMA encoder included)
        state/                       accelerator.save_state: model, optimizer, LR scheduler,
                                     RNG states per rank (python, numpy, torch, cuda)
        trainer_state.json           global step, stage, data-loader position, config fingerprint
    final/                           the last checkpoint, the input of the next stage
    tensorboard/

Atomicity: everything is written into `checkpoints/.tmp-<name>` and renamed with `os.replace`
only once complete (and after every rank has written its part), so a run killed at any moment
leaves either the previous checkpoint or the new one, never a half-written one. Leftover
`.tmp-*` folders are ignored and deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
STEP_DIR = re.compile(r"^step_(\d{6,})$")


@dataclass
class TrainerState:
    """What, beyond model/optimizer/scheduler/RNG, is needed to continue exactly."""

    step: int  # optimizer steps done
    stage: int
    epoch: int  # data-loader epoch
    epoch_samples: int  # samples of that epoch consumed (per rank)
    fingerprint: str  # TrainConfig.fingerprint() of the run that wrote it
    identity: dict  # the config identity, to name the differing keys on mismatch
    samples_seen: int  # all ranks, all epochs


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def final_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "final"


def step_name(step: int) -> str:
    return f"step_{step:06d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete periodic checkpoints, oldest first (tmp folders are not complete)."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / TRAINER_STATE).is_file()
    ]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint: `final/` if the run finished, else the newest step."""
    if (final_dir(output_dir) / TRAINER_STATE).is_file():
        return final_dir(output_dir)
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def read_trainer_state(ckpt: Path) -> TrainerState:
    return TrainerState(**json.loads((ckpt / TRAINER_STATE).read_text()))


def tmp_path(target: Path) -> Path:
    return target.parent / f".tmp-{target.name}"


def begin(target: Path, is_main: bool) -> Path:
    """Prepare an empty tmp folder for `target` (main process; the caller adds a barrier)."""
    tmp = tmp_path(target)
    if is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    return tmp


def write_trainer_state(tmp: Path, state: TrainerState) -> None:
    (tmp / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=1, sort_keys=True))


def commit(tmp: Path, target: Path) -> None:
    """Publish `tmp` as `target` atomically (main process, after all ranks wrote)."""
    _fsync_tree(tmp)
    if target.exists():  # e.g. a `final/` from an earlier attempt: move away, then swap
        trash = target.parent / f".old-{target.name}"
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, target)
    _fsync_dir(target.parent)


def prune(output_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` periodic checkpoints, and stale tmp folders."""
    root = checkpoints_dir(output_dir)
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    if root.is_dir():
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def check_resumable(ckpt: Path, fingerprint: str, identity: dict, stage: int) -> TrainerState:
    """The checkpoint's state, or a user error if it was written by a different config."""
    from curriculum.config import config_diff

    state = read_trainer_state(ckpt)
    if state.fingerprint != fingerprint or state.stage != stage:
        diff = config_diff(state.identity, identity)
        shown = "; ".join(diff[:4]) + (f"; ... ({len(diff)} keys)" if len(diff) > 4 else "")
        raise LaraUserError(
            f"{ckpt} was written by a different config (checkpoint vs now: "
            f"{shown or f'stage {state.stage}'}); "
            "resume with the original config, or train into a new --output_dir"
        )
    return state


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
