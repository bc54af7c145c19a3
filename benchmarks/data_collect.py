"""Benchmark: scripted demos per minute with 1 and 2 worker processes (`lara collect`).

Runs the real collection (expert + rendering + atomic dataset write) into temporary folders and
reports wall-clock demos per minute for the collection phase (env build included, dataset
assembly excluded), plus the failures. Usage:

    python benchmarks/data_collect.py --suite libero_object --tasks 0,1 --episodes-per-task 2 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="0,1")
    parser.add_argument("--episodes-per-task", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--camera-size", type=int, default=128)
    parser.add_argument("--keep", default=None, help="copy the last dataset here (for the samples benchmark)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    from data_pipeline.collect import CollectConfig, collect

    rows = []
    for workers in args.workers:
        tmp = Path(tempfile.mkdtemp(prefix="lara-bench-collect-"))
        cfg = CollectConfig(
            suite=args.suite,
            tasks=args.tasks,
            episodes_per_task=args.episodes_per_task,
            out=str(tmp / "ds"),
            workers=workers,
            camera_size=args.camera_size,
        )
        start = time.perf_counter()
        result = collect(cfg)
        total = time.perf_counter() - start
        rows.append(
            {
                "workers": workers,
                "demos": result.collected_now,
                "failed": len(result.failed),
                "frames": result.frames,
                "collect_s": round(result.seconds, 1),
                "total_s": round(total, 1),
                "demos_per_min": round(result.demos_per_minute, 2),
                "frames_per_s": round(result.frames / result.seconds, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if args.keep and workers == args.workers[-1]:
            shutil.copytree(tmp / "ds", args.keep, dirs_exist_ok=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "suite": args.suite,
                "tasks": args.tasks,
                "camera_size": args.camera_size,
                "cpus": os.cpu_count(),
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
