"""`lara bench <name> ...`: a small registry of benchmarks, each `module:function(argv) -> int`.

Add a benchmark by adding a line to BENCHMARKS; its module is imported only when it runs.
"""

from __future__ import annotations

from lara.utils.registry import dispatch

# name -> ("module:function", one-line help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "latency": (
        "lara.scripts.bench_latency_cli:main",
        "ms per action chunk: explicit-CoT (stage 1) vs latent (stage 3) inference",
    ),
    "train": ("lara.scripts.bench_train_cli:main", "training samples/s and peak memory per curriculum stage"),
    "memory": (
        "lara.scripts.bench_memory_cli:main",
        "training memory per GPU by formula (DDP, FSDP, ZeRO-2): weights, gradients, optimizer, activations",
    ),
}


def main(argv: list[str]) -> int:
    return dispatch(BENCHMARKS, argv, "usage: lara bench <benchmark> [options]", "benchmarks", "lara bench")
