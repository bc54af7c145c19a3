"""`lara demo`: the first thing a newcomer runs (`make demo`).

Today it evaluates the scripted expert closed loop on two libero_object tasks with videos and a
report; the full pipeline (collect -> annotate -> train I/II/III -> evaluate -> latency) replaces
it as those parts land. Resumable: finished episodes are kept; `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from envs.evaluator import EvalConfig, evaluate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lara demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fresh", action="store_true", help="delete --out first and start over")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    cfg = EvalConfig(policy="scripted", suite="libero_object", tasks="0,1", episodes=3, workers=args.workers,
                     out=args.out / "eval_scripted", video=True)
    results = evaluate(cfg)
    row = results["suites"][0]
    print(f"scripted expert on libero_object tasks 0,1: {row['successes']}/{row['episodes']} successes")
    print(f"report: {cfg.out / 'report.md'}")
    return 0
