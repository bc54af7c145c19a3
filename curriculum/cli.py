"""`lara train`: one curriculum stage, or all three in order.

    lara train --config configs/train/tiny/stage1.yaml [--config overlay.yaml ...] [--steps 200 ...]
    lara train --curriculum configs/train/tiny [--output_root outputs/tiny] [--config overlay.yaml] [...]

`--config` files are merged in order (a stage preset, then overlays such as a dataset preset);
remaining `--key value` flags override single fields (`--optim.head_lr 2e-4`). With
`--curriculum`, the folder's stage1.yaml, stage2.yaml, stage3.yaml run in order into
`<output_root>/stage{1,2,3}`, each starting from the previous stage's `final/`; a stage whose
`final/` exists is skipped, an interrupted one is resumed, so the same command can be re-run.
Under `accelerate launch --num_processes N -m lara.scripts.cli train ...` every process runs this.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from curriculum import checkpointing as ckpt
from curriculum.config import load_train_config
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lara train", description=__doc__.split("\n\n")[0],
        epilog="Any TrainConfig field can follow as --a.b value (e.g. --steps 500 --optim.head_lr 2e-4 "
        "--data.root DIR --resume true); see curriculum/config.py and configs/train/.")
    p.add_argument("--config", action="append", default=[], help="stage YAML (repeatable: later files override)")
    p.add_argument("--curriculum", help="folder with stage1.yaml, stage2.yaml, stage3.yaml: run all three")
    p.add_argument("--output_root", help="with --curriculum: stage k trains into <output_root>/stage<k>")
    p.add_argument("--stages", default="1,2,3", help="with --curriculum: which stages to run (default 1,2,3)")
    return p


def run_curriculum(folder: str | Path, overlays: list[str], overrides: list[str], output_root: str | None,
                   stages: list[int]):
    from curriculum.trainer import train

    folder = Path(folder)
    missing = [f"stage{k}.yaml" for k in stages if not (folder / f"stage{k}.yaml").is_file()]
    if missing:
        raise LaraUserError(f"--curriculum {folder} lacks {missing}; presets live in configs/train/<size>/")
    root = Path(output_root) if output_root else None
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
                prev = Path(load_train_config([folder / f"stage{k - 1}.yaml", *overlays], overrides).output_dir)
            extra += ["--init_from", str(ckpt.final_dir(prev))]
        cfg = load_train_config([folder / f"stage{k}.yaml", *overlays], [*overrides, *extra, "--resume", "true"])
        if (ckpt.final_dir(cfg.output_dir) / ckpt.TRAINER_STATE).is_file():
            log.info("stage %d: %s exists, skipping", k, ckpt.final_dir(cfg.output_dir))
            continue
        results.append(train(cfg))
    return results


def main(argv: list[str]) -> int:
    args, overrides = _parser().parse_known_args(argv)
    if args.curriculum:
        stages = [int(s) for s in args.stages.split(",") if s.strip()]
        if not stages or any(s not in (1, 2, 3) for s in stages):
            raise LaraUserError(f"--stages {args.stages!r}: a comma list of 1, 2, 3")
        run_curriculum(args.curriculum, args.config, overrides, args.output_root, stages)
        return 0
    if not args.config:
        raise LaraUserError("give --config <stage yaml> (presets in configs/train/) or --curriculum <preset dir>")
    if args.output_root:
        raise LaraUserError("--output_root goes with --curriculum; for one stage use --output_dir")
    from curriculum.trainer import train

    cfg = load_train_config(args.config, overrides)
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # logging on rank 0 only
        log.info("stage %d done: %d steps, %.1f samples/s, checkpoint %s", cfg.stage, result.step,
                 result.samples_per_s, result.final_dir)
    return 0
