"""`lara bench train`: training throughput (samples/s) and peak memory per curriculum stage; the
measurement is `curriculum.bench_train.bench`, this module parses and prints."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from curriculum.bench_train import RESULTS_FILE, TrainBenchConfig, _device, bench
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    cfg = parse_config(TrainBenchConfig, argv, prog="lara bench train")
    with tempfile.TemporaryDirectory(prefix="lara-bench-train-") as tmp:
        workdir = cfg.workdir or Path(tmp)
        rows = bench(
            cfg.preset,
            cfg.stages,
            cfg.batch_size,
            cfg.steps,
            cfg.warmup,
            cfg.gradient_checkpointing,
            workdir,
            cfg.overrides,
        )
    device = _device()
    print(
        f"lara bench train: preset {cfg.preset}, batch {cfg.batch_size}, {cfg.steps} measured steps "
        f"(+{cfg.warmup} warmup) per stage, on {device}"
    )
    print(
        f"{'stage':>5} {'samples/s':>10} {'s/step':>8} {'median s/step':>13} {'median CPU s':>12} "
        f"{'peak GiB':>9} {'growth GiB':>10} {'precision':>9}"
    )
    for r in rows:
        print(
            f"{r['stage']:>5} {r['samples_per_s']:>10.2f} {r['s_per_step']:>8.3f} "
            f"{r['median_s_per_step']:>13.3f} {r['median_cpu_s_per_step']:>12.3f} "
            f"{r['peak_memory_gib']:>9.2f} {r['peak_memory_growth_gib']:>10.2f} {r['mixed_precision']:>9}"
        )
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        path = cfg.out / RESULTS_FILE
        path.write_text(json.dumps({"device": device, "argv": argv, "results": rows}, indent=1))
        print(f"wrote {path}")
    return 0
