"""`lara probe --policy RUN --dataset DIR [--annotation NAME] [--out DIR] [--split heldout|all]`.

Thin: `parse_config` reads a `ProbeConfig` (curriculum/offline/probe_config.py), `run_probe`
(curriculum/offline/probe_run.py, imported only when the command runs) computes and writes probe.json,
probe.md and three plots, then a short summary goes to stdout. Bad input raises `LaraUserError` (the
`lara` dispatcher prints one line, exit 2).
"""

from __future__ import annotations

from curriculum.offline.probe_config import ProbeConfig
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    cfg = parse_config(ProbeConfig, argv, prog="lara probe")
    from curriculum.offline.probe_report import own_slot_rows
    from curriculum.offline.probe_run import run_probe

    result, paths = run_probe(cfg)
    d = result["data"]
    print(f"probed {d['frames']} frames of {len(d['probed_episodes'])} episodes ({d['split']} split)")
    for r in own_slot_rows(result):
        m, rnd = r["model"], r["random_init"]
        key = "iou" if "iou" in m else "accuracy"
        other = "n/a" if rnd is None else f"{rnd[key]:.3f}"
        print(f"  {r['target']:<8} {key} {m[key]:.3f} (random init {other}, floor {r['floor'][key]:.3f})")
    fs = result["foresight"]
    if fs and fs.get("frames"):
        print(f"  foresight L1 {fs['l1']['mean']:.4f} vs copy-current-frame {fs['copy_l1']['mean']:.4f}")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
