"""`lara eval-offline CHECKPOINT DATASET [--out DIR] [--episodes N] [--mapping libero|bridge]`.

Thin: flags -> `OfflineEvalConfig` -> `run_offline_eval` (curriculum/offline/evaluate.py), then a short
summary on stdout. Bad input raises `LaraUserError` (the `lara` dispatcher prints one line, exit 2).
"""

from __future__ import annotations

import argparse

from curriculum.offline.evaluate import OfflineEvalConfig, run_offline_eval
from lara.utils.errors import LaraUserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lara eval-offline",
                                description="open-loop action metrics of a checkpoint on held-out episodes of a dataset")
    p.add_argument("checkpoint", help="LaRA checkpoint: the save_pretrained folder, or a training run's final/ folder")
    p.add_argument("dataset", help="LeRobot dataset folder (LIBERO or Bridge)")
    p.add_argument("--out", default="outputs/eval_offline", help="output folder (metrics.json, report.md, trajectories.png)")
    p.add_argument("--episodes", type=int, help="evaluate at most N held-out episodes (default: all)")
    p.add_argument("--mapping", default="auto", help="key mapping: libero | bridge | bridge_state7 | YAML path | auto")
    p.add_argument("--cameras", help="Bridge cameras as indices, e.g. '0' or '0,1' (default: what the checkpoint reads)")
    p.add_argument("--heldout-fraction", type=float, default=0.1, help="fraction of episodes held out (new splits)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split (new splits)")
    p.add_argument("--overwrite-split", action="store_true", help="replace a recorded split made with other settings")
    p.add_argument("--stride", type=int, help="frames between evaluated chunks (default: the chunk size)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--stage", type=int, choices=(1, 2, 3), help="inference path (default: the checkpoint's)")
    p.add_argument("--num-steps", type=int, help="expert integration steps (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--annotation", help="CoT annotation run for token accuracy (default: the newest)")
    p.add_argument("--probe-frames", type=int, default=64, help="frames for foresight L1 / CoT accuracy (0: off)")
    p.add_argument("--plot-episodes", type=int, default=3)
    p.add_argument("--allow-stats-mismatch", action="store_true",
                   help="evaluate although the checkpoint's normalization statistics differ from the dataset's")
    p.add_argument("--device", help="torch device (default: CPU)")
    return p


def _cameras(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError as err:
        raise LaraUserError(f"--cameras {spec!r}: expected comma-separated indices such as '0,1'") from err


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    cfg = OfflineEvalConfig(
        checkpoint=args.checkpoint, dataset=args.dataset, out=args.out, mapping=args.mapping,
        cameras=_cameras(args.cameras), episodes=args.episodes, heldout_fraction=args.heldout_fraction,
        split_seed=args.split_seed, overwrite_split=args.overwrite_split, stride=args.stride,
        batch_size=args.batch_size, stage=args.stage, num_steps=args.num_steps, seed=args.seed,
        annotation=args.annotation, probe_frames=args.probe_frames, plot_episodes=args.plot_episodes,
        allow_stats_mismatch=args.allow_stats_mismatch, device=args.device,
    )
    result, paths = run_offline_eval(cfg)
    m = result.metrics
    print(f"evaluated {len(result.dataset['evaluated_episodes'])} held-out episodes, {result.dataset['chunks']} chunks")
    for key in ("model", "baseline_last_action", "baseline_dataset_mean"):
        print(f"  {key:<22} arm L1 {m[key]['arm_l1']:.4f}  gripper accuracy {100 * m[key]['gripper_accuracy']:.1f}%")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
