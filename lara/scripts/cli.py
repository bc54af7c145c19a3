"""The `lara` command: one entry point, thin subcommands.

Each subcommand lives in its own module as `main(argv: list[str]) -> int`, imported only when
that subcommand runs (so `lara eval` never imports the model stack and `lara train` never imports
MuJoCo). User errors (`LaraUserError`) print one line and exit 2, without a traceback.

Logging: this project's own loggers at INFO; third-party libraries only from WARNING, minus known
warnings a user cannot act on (`QUIET`). `lara --verbose <command>` (or `LARA_LOG_LEVEL=DEBUG`)
shows everything.
"""

from __future__ import annotations

import logging
import os
import sys

from lara.utils import verbosity
from lara.utils.errors import run_main
from lara.utils.registry import dispatch

USAGE = "usage: lara [--verbose] <command> [options]   (lara <command> --help for its options)"
OWN_LOGGERS = ("lara", "envs", "data_pipeline", "curriculum", "benchmarks", "__main__")
# Third-party messages that say nothing a user can act on, hidden unless --verbose.
QUIET = (
    "Removed shared tensor",  # accelerate at every save of tied weights: safetensors de-duplicates them
    "is not available in your platform, falling back to 'pyav'",  # lerobot: we read image datasets
)

# subcommand -> ("module:function", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "eval": (
        "lara.scripts.eval_cli:main",
        "closed-loop evaluation in LIBERO (success table, videos, report)",
    ),
    "eval-offline": (
        "lara.scripts.eval_offline_cli:main",
        "open-loop action metrics on held-out episodes of a dataset",
    ),
    "collect": ("lara.scripts.collect_cli:main", "collect scripted demonstrations into a LeRobot dataset"),
    "convert": ("lara.scripts.convert_cli:main", "convert a LIBERO HDF5 file/folder into a LeRobot dataset"),
    "annotate": (
        "lara.scripts.annotate_cli:main",
        "auto-annotate a dataset with a structured chain of thought",
    ),
    "train": ("lara.scripts.train_cli:main", "train one curriculum stage, or all three (--curriculum)"),
    "peer-train": (
        "lara.scripts.peer_train_cli:main",
        "train a peer policy (lerobot's Diffusion Policy) on a dataset; evaluate with --policy peer:DIR",
    ),
    "rl": ("lara.scripts.rl_cli:main", "GRPO fine-tuning of a trained policy in LIBERO with success rewards"),
    "bench": ("lara.scripts.bench_cli:main", "benchmarks: latency, train"),
    "probe": (
        "lara.scripts.probe_cli:main",
        "linear probes of the latent and <img_next> slots on held-out episodes, against controls",
    ),
    "demo": ("lara.scripts.demo:main", "the whole pipeline on the tiny default, with a report"),
}


def _quiet_filter(record: logging.LogRecord) -> bool:
    if record.name.split(".")[0] in OWN_LOGGERS:
        return True
    return record.levelno >= logging.WARNING and not any(q in record.getMessage() for q in QUIET)


def configure_logging(verbose: bool | None = None) -> None:
    """basicConfig, plus `_quiet_filter` on the handler unless verbose; a process that already has
    handlers (a test runner, an embedding application) keeps its own set-up. `verbose=None` asks
    `lara.utils.verbosity` (LARA_VERBOSE / LARA_LOG_LEVEL=DEBUG), the one place that decides it."""
    root = logging.getLogger()
    if root.handlers:
        return
    if verbose is None:
        verbose = verbosity.verbose()
    level = os.environ.get("LARA_LOG_LEVEL", "DEBUG" if verbose else "INFO")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_quiet_filter)
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv[:1] or "-v" in argv[:1]
    if verbose:
        argv = argv[1:]
        verbosity.set_verbose()  # worker processes inherit it
    configure_logging()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_main(dispatch, SUBCOMMANDS, argv, USAGE, "commands", "lara")


if __name__ == "__main__":
    raise SystemExit(main())
