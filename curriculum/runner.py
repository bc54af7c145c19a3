"""Running the curriculum: stages in order, each from the previous one's final checkpoint, each in
its own folder under the run's lock (`lara train --curriculum SIZE`, the pipeline, the examples).

    run_curriculum("tiny", overlays=[], overrides=["--data.root", DIR], out="runs/x", stages=[1, 2, 3])

A finished stage (its `final/` holds a trainer state) is skipped and an interrupted one resumes, so
the same call continues a killed run. `train_lock` is the run folder's lock, taken by rank 0 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from curriculum import checkpointing as ckpt
from curriculum.config import TrainConfig
from curriculum.presets import load_train_config

log = logging.getLogger(__name__)


def train_lock(output_dir) -> contextlib.AbstractContextManager:
    """The run folder's lock (lara.utils.run_lock), taken by rank 0 only: the ranks of one
    distributed run share the folder; a second run into it is refused."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    from lara.utils.run_lock import run_lock

    return run_lock(output_dir, "lara train")


def run_curriculum(
    size: str,
    overlays: list[str],
    overrides: list[str],
    out: str | None,
    stages: list[int],
    edit: Callable[[int, TrainConfig], TrainConfig] | None = None,
):
    """Stages `stages` of `size`'s presets in order, each from the previous one's final/; finished
    stages are skipped, an interrupted one resumes. `overlays` / `overrides` are the command line's
    YAML files and `--a.b value` flags; `edit(stage, cfg)` changes a stage's typed config after them.
    Returns the TrainResults of the stages that ran."""
    from curriculum.trainer import train

    root = Path(out) if out else None
    results = []
    for k in stages:
        extra = []
        out = None
        if root is not None:
            out = root / f"stage{k}"
            extra += ["--output_dir", str(out)]
        if k > 1:
            prev = (root / f"stage{k - 1}") if root is not None else None
            if prev is None:
                prev = Path(load_train_config(overlays, overrides, preset=size, stage=k - 1).output_dir)
            extra += ["--init_from", str(ckpt.final_dir(prev))]
        cfg = load_train_config(overlays, [*overrides, *extra, "--resume", "true"], preset=size, stage=k)
        if edit is not None:  # a typed change of the stage's config (the pipeline: its data and steps)
            cfg = edit(k, cfg)
        if (ckpt.final_dir(cfg.output_dir) / ckpt.TRAINER_STATE).is_file():
            log.info("stage %d: %s exists, skipping", k, ckpt.final_dir(cfg.output_dir))
            continue
        with train_lock(cfg.output_dir):
            results.append(train(cfg))
    return results
