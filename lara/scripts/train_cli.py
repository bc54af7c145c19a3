"""`lara train`: one curriculum stage, or all three in order.

    lara train --preset tiny --stage 1 --dataset DIR [--out DIR] [--config overlay.yaml ...] [--steps 200 ...]
    lara train --curriculum tiny --dataset DIR [--out outputs/tiny] [--stages 1,2,3] [--config overlay.yaml]
    lara train --config outputs/train/tiny/stage1/config.yaml [...]    a complete config (a run's own)

`--preset SIZE --stage K` names a training preset (curriculum/presets.py: sizes tiny, small,
qwen3vl-2b, qwen3vl-4b; stages 1, 2, 3, baseline, no_curriculum); `--config_path` files (or
`--config`, the same flag under its first name) are merged on it in order
(overlays such as a dataset preset), remaining `--key value` flags override single fields
(`--optim.head_lr 2e-4`, `--model.expert.num_layers 6`). `--dataset` and `--out` are the names
every `lara` command uses: here they set `data.root` and `output_dir`. With `--curriculum SIZE`,
stages 1, 2, 3 run in order into `<out>/stage{1,2,3}`, each starting from the previous stage's `final/`;
a stage whose `final/` exists is skipped, an interrupted one is resumed, so the same command can
be re-run. Under `accelerate launch --num_processes N -m lara.scripts.cli train ...` every process
runs this.
"""

from __future__ import annotations

import argparse
import logging
import os

from curriculum.presets import load_train_config
from curriculum.runner import run_curriculum, train_lock
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lara train",
        description=__doc__.split("\n\n")[0],
        epilog="Any TrainConfig field can follow as --a.b value (e.g. --steps 500 --optim.head_lr 2e-4 "
        "--data.root DIR --resume true); see curriculum/config.py, curriculum/presets.py and configs/train/.",
    )
    p.add_argument(
        "--preset", help="training preset size (tiny, small, qwen3vl-2b, qwen3vl-4b); with --stage"
    )
    p.add_argument(
        "--stage",
        help="with --preset: 1, 2, 3, baseline (stage III alone, no reasoning) or no_curriculum "
        "(stage III alone with the latent and <img_next> slots)",
    )
    p.add_argument(  # --config_path as every other lara command spells it; --config kept (documented)
        "--config_path",
        "--config",
        dest="config",
        action="append",
        default=[],
        help="YAML merged on the preset (repeatable: later wins)",
    )
    p.add_argument("--curriculum", metavar="SIZE", help="run stages 1, 2, 3 of this size's presets")
    p.add_argument(
        "--dataset",
        help="the training dataset folder, or several comma-separated for one run (sets data.root)",
    )
    p.add_argument(
        "--out",
        help="the run's folder (sets output_dir); with --curriculum stage k trains into <out>/stage<k>",
    )
    p.add_argument("--stages", default="1,2,3", help="with --curriculum: which stages to run (default 1,2,3)")
    return p


def main(argv: list[str]) -> int:
    args, overrides = _parser().parse_known_args(argv)
    aliases = ((args.dataset, "--dataset", "--data.root"), (args.out, "--out", "--output_dir"))
    for given, flag, field in aliases:
        if given and field in overrides:
            raise LaraUserError(f"{flag} and {field} set the same thing: give one")
    if args.dataset:
        overrides = ["--data.root", args.dataset, *overrides]
    if args.curriculum:
        if args.preset or args.stage:
            raise LaraUserError(
                "--curriculum SIZE runs stages 1-3 of that size: drop --preset/--stage "
                "(choose stages with --stages)"
            )
        names = [s.strip() for s in args.stages.split(",") if s.strip()]
        stages = [int(s) for s in names if s in ("1", "2", "3")]
        if not stages or len(stages) != len(names):
            raise LaraUserError(f"--stages {args.stages!r}: a comma list of 1, 2, 3")
        run_curriculum(args.curriculum, args.config, overrides, args.out, stages)
        return 0
    if args.preset and not args.stage:
        raise LaraUserError(
            f"--preset {args.preset} needs --stage 1, 2, 3, baseline or no_curriculum "
            f"(or run all three: --curriculum {args.preset})"
        )
    if not args.preset and not args.config:
        raise LaraUserError(
            "give --preset <size> --stage <k> (curriculum/presets.py), --curriculum <size>, "
            "or --config <a complete training config yaml>"
        )
    if args.out:
        overrides = ["--output_dir", args.out, *overrides]
    stage = args.stage
    if not args.preset and stage:  # no preset: --stage is the plain field
        overrides, stage = ["--stage", stage, *overrides], None
    from curriculum.trainer import train

    cfg = load_train_config(args.config, overrides, preset=args.preset, stage=stage)
    with train_lock(cfg.output_dir):
        result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # logging on rank 0 only
        log.info(
            "stage %d done: %d steps, %.1f samples/s, checkpoint %s",
            cfg.stage,
            result.step,
            result.samples_per_s,
            result.final_dir,
        )
    return 0
