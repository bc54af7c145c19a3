"""Atomic, complete training checkpoints.

Layout of a run (`output_dir`):
    config.yaml                      the resolved TrainConfig of the run
    checkpoints/step_000050/         one complete checkpoint
        model/                       policy.save_pretrained (safetensors + JSON; EMA encoder included);
                                     `record_training` writes the stage that trained it into its
                                     config and the episodes it read into training_data.json
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
from lara.utils.run_identity import check_same_run

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
    """The newest complete checkpoint: `final/` if the run finished, else the newest step. A start
    looks here first, so the `.tmp-*` folders of a save that never finished (disk full, killed;
    ~90 MB at the tiny preset) are deleted here, with a message, as collect does."""
    remove_interrupted_saves(output_dir)
    if (final_dir(output_dir) / TRAINER_STATE).is_file():
        return final_dir(output_dir)
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def remove_interrupted_saves(output_dir: str | Path) -> list[Path]:
    """Delete the tmp folders of saves that never completed (the previous checkpoint is intact)."""
    stale = sorted(checkpoints_dir(output_dir).glob(".tmp-step_*"))
    stale += [p for p in (tmp_path(final_dir(output_dir)),) if p.exists()]
    for path in stale:
        log.warning("removing %s: a checkpoint save that did not complete (disk full or killed)", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


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


def prune(output_dir: str | Path, keep_last: int, keep_steps: list[int] | tuple[int, ...] = ()) -> None:
    """Delete all but the newest `keep_last` periodic checkpoints (those of `keep_steps` are kept and
    not counted), and stale tmp folders."""
    root = checkpoints_dir(output_dir)
    kept = {step_name(k) for k in keep_steps}
    periodic = [p for p in list_checkpoints(output_dir) if p.name not in kept]
    for old in periodic[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    if root.is_dir():
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def check_resumable(ckpt: Path, fingerprint: str, identity: dict, stage: int) -> TrainerState:
    """The checkpoint's state, or a user error if it was written by a different config or trained on
    other episodes (`curriculum.config.DATA_EPISODES`: named, with the split file when it is newer
    than the checkpoint). A checkpoint from before runs recorded their episodes is compared on the
    rest of its identity."""
    from curriculum.config import DATA_EPISODES

    state = read_trainer_state(ckpt)
    if DATA_EPISODES in identity and DATA_EPISODES not in state.identity:
        now = {k: v for k, v in identity.items() if k != DATA_EPISODES}
        same = json.dumps(state.identity, sort_keys=True) == json.dumps(now, sort_keys=True)
    else:
        same = state.fingerprint == fingerprint
    if same and state.stage == stage:
        return state
    data = _data_changes(ckpt, state.identity.get(DATA_EPISODES), identity.get(DATA_EPISODES))
    if data:
        raise LaraUserError(
            f"{ckpt} trained on other episodes than this run would read now ({data}); resuming would "
            "silently train on other data: restore the data as it was (e.g. move the new split file "
            "away), or train into a new --output_dir"
        )
    recorded = {k: v for k, v in state.identity.items() if k != DATA_EPISODES} | {"stage": state.stage}
    asked = {k: v for k, v in identity.items() if k != DATA_EPISODES} | {"stage": stage}
    error = check_same_run(ckpt, recorded, asked, "a checkpoint of a different config")
    raise LaraUserError(
        f"{error or f'{ckpt} holds a checkpoint of a different config'}; resume with the original "
        "config, or train into a new --output_dir"
    )


def _episodes(eps: list[int]) -> str:
    return "[" + ", ".join(map(str, eps[:10])) + (f", ... ({len(eps)})" if len(eps) > 10 else "") + "]"


def _data_changes(ckpt: Path, before: dict | None, now: dict | None) -> str:
    """What changed between the episodes a checkpoint trained on and those the run reads now, per
    dataset; "" when nothing did (or the checkpoint does not say)."""
    if before is None or before == now:
        return ""
    now = now or {}
    out = []
    for root in sorted(set(before) | set(now)):
        old, new = set(before.get(root, ())), set(now.get(root, ()))
        if old == new:
            continue
        part = f"{root}: {len(old)} episodes then, {len(new)} now"
        if old - new:
            part += f"; no longer read: {_episodes(sorted(old - new))}"
        if new - old:
            part += f"; new: {_episodes(sorted(new - old))}"
        split = Path(root) / "meta" / "lara_split.json"
        written = ckpt / TRAINER_STATE
        if split.is_file() and split.stat().st_mtime > written.stat().st_mtime:
            part += f"; {split} was written after the checkpoint"
        out.append(part)
    return "; ".join(out)


def record_training(model_dir: Path, cfg, state: TrainerState) -> None:
    """Write into a checkpoint's `model/` (before it is published) what its files alone cannot say
    (lara.inference_plan, lara.checkpoint):
    - config.json's `inference.stage`: the stage that trained it (a stage-I model must not act through
      the action expert it never trained), and in stage II `inference.latent_tags`: the CoT tags
      latent at its last step (mid stage II acts partly latent);
    - training_data.json: the episodes of each dataset it read (the identity's `DATA_EPISODES`),
      merged with those of the checkpoint it was initialized from, so a split made later cannot call
      them held-out.
    Only for the LaRA model (`policy_type` lara): other registered policies keep their own files."""
    from curriculum.config import DATA_EPISODES
    from lara.checkpoint import read_training_data, write_training_data

    if cfg.policy_type != "lara" or not (model_dir / "config.json").is_file():
        return
    from curriculum.schedules import stage_latent_probability
    from lara.configuration_lara import LaraConfig

    model = LaraConfig.load(model_dir / "config.json")
    model.inference.stage = cfg.stage
    model.inference.latent_tags = None
    if cfg.stage == 2:
        lat = cfg.latent
        p = stage_latent_probability(  # the probability the last step trained with
            2,
            max(state.step - 1, 0),
            total_steps=cfg.steps,
            kind=lat.kind,
            start_fraction=lat.start_fraction,
            end_fraction=lat.end_fraction,
            num_segments=lat.num_segments,
        )
        if p < 1.0:  # tag_order's rule (lara.latent_cot.select_latent); random draws read the same way
            chosen = set(model.latent.order[: round(p * len(model.latent.order))])
            model.inference.latent_tags = [t for t in model.latent.canonical_tags if t in chosen]
    model.save(model_dir / "config.json")
    episodes = {str(Path(r).resolve()): list(v) for r, v in state.identity.get(DATA_EPISODES, {}).items()}
    if cfg.stage > 1 and cfg.init_from and not cfg.from_scratch:
        from lara.checkpoint import resolve_checkpoint_dir

        for root, eps in (read_training_data(resolve_checkpoint_dir(cfg.init_from)) or {}).items():
            episodes[root] = sorted(set(episodes.get(root, [])) | set(eps))
    if episodes:
        write_training_data(model_dir, episodes)


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
