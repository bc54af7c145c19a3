"""`lara eval-offline --policy CHECKPOINT --dataset DIR [--out DIR] [--episodes N] [--mapping auto]`.

Thin: `parse_config` reads an `OfflineEvalConfig` (curriculum/offline/config.py), `run_offline_eval`
(curriculum/offline/evaluate.py, imported only when the command runs) computes, then a short
summary goes to stdout. Bad input raises `LaraUserError` (the `lara` dispatcher prints one line,
exit 2).
"""

from __future__ import annotations

from curriculum.offline.config import OfflineEvalConfig
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    cfg = parse_config(OfflineEvalConfig, argv, prog="lara eval-offline")
    from curriculum.offline.evaluate import run_offline_eval

    result, paths = run_offline_eval(cfg)
    data, m = result.dataset, result.metrics
    print(f"evaluated {len(data['evaluated_episodes'])} held-out episodes, {data['chunks']} chunks")
    for key in ("model", "baseline_last_action", "baseline_dataset_mean"):
        accuracy = 100 * m[key]["gripper_accuracy"]
        print(f"  {key:<22} arm L1 {m[key]['arm_l1']:.4f}  gripper accuracy {accuracy:.1f}%")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
