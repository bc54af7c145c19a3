"""`lara bench <name> ...`: a small registry of benchmarks, each `module:function(argv) -> int`.

Add a benchmark by adding a line to BENCHMARKS; its module is imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys

# name -> ("module:function", one-line help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "latency": ("lara.bench_latency:main", "ms per action chunk: explicit-CoT (stage 1) vs latent (stage 3) inference"),
    "train": ("curriculum.bench_train:main", "training samples/s and peak memory per curriculum stage"),
}


def _usage() -> str:
    lines = ["usage: lara bench <benchmark> [options]", "", "benchmarks:"]
    lines += [f"  {name:<10}  {help_}" for name, (_, help_) in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"error: unknown benchmark {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func = BENCHMARKS[name][0].split(":")
    return int(getattr(importlib.import_module(module_name), func)(rest) or 0)
