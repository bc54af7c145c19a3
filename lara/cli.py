"""The `lara` command: one entry point, thin subcommands.

Each subcommand lives in its own module as `main(argv: list[str]) -> int`, imported only when
that subcommand runs (so `lara eval` never imports the model stack and `lara train` never imports
MuJoCo). User errors (`LaraUserError`) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

from lara.errors import run_main
from lara.registry import dispatch

USAGE = "usage: lara <command> [options]   (lara <command> --help for its options)"

# subcommand -> ("module:function", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("envs.eval_cli:main", "closed-loop evaluation in LIBERO (success table, videos, report)"),
    "eval-offline": ("envs.offline_cli:main", "open-loop action metrics on held-out episodes of a dataset"),
    "collect": ("data_pipeline.collect_cli:main", "collect scripted demonstrations into a LeRobot dataset"),
    "convert": ("data_pipeline.convert_cli:main", "convert a LIBERO HDF5 file/folder into a LeRobot dataset"),
    "annotate": ("data_pipeline.annotation.cli:main", "auto-annotate a dataset with a structured chain of thought"),
    "train": ("curriculum.cli:main", "train one curriculum stage, or all three (--curriculum)"),
    "rl": ("lara.rl_cli:main", "GRPO fine-tuning of a trained policy in LIBERO with success rewards"),
    "bench": ("lara.bench_cli:main", "benchmarks: latency, train"),
    "demo": ("lara.demo:main", "the whole pipeline on the tiny default, with a report"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("LARA_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_main(dispatch, SUBCOMMANDS, argv, USAGE, "commands", "lara")


if __name__ == "__main__":
    raise SystemExit(main())
