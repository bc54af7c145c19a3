"""`lara bench memory`: training memory per GPU by formula (curriculum.memory_model), parsed and
printed here."""

from __future__ import annotations

from curriculum.memory_model import GIB, MemoryBenchConfig, estimate, table
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    bench = parse_config(MemoryBenchConfig, argv, prog="lara bench memory")
    if bench.table:
        print(table(bench))
        return 0
    result = estimate(bench)
    parts = result["bytes"]
    print(
        f"lara bench memory: {bench.preset} stage {bench.stage}, {bench.engine} on {bench.gpus} GPU(s), "
        f"batch "
        f"{bench.batch_size} per GPU, {result['seq_len']} tokens per sample, gradient checkpointing "
        f"{'on' if bench.gradient_checkpointing else 'off'}, compute {bench.compute}"
    )
    print(f"  parameters: {result['params'] / 1e9:.2f}B ({result['trainable'] / 1e9:.2f}B trainable)")
    for name, value in parts.items():
        print(f"  {name:<17} {value / GIB:8.1f} GiB per GPU")
    verdict = "fits" if parts["total"] <= bench.gpu_gib * GIB else "does NOT fit"
    print(
        f"  {verdict} a {bench.gpu_gib:g} GiB GPU (formula; allocator overhead and fragmentation "
        "not included)"
    )
    return 0
