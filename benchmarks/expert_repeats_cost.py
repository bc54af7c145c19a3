"""What the flow-matching loss's repeats cost: each sample's context K/V projected once and shared by
its `flow_repeats` draws (`ActionExpert.loss`) vs the context itself repeated (the same loss and
gradients, tests/lara/test_expert_reference_head.py), forward + backward on this machine.

    python benchmarks/expert_repeats_cost.py --preset qwen3vl-2b --batch 2 --context 300 --iters 10

Prints the median seconds of the last iterations (the first ones pay for memory growth) of both
ways, alternated, and their ratio. CPU float32 here; on a GPU the ratio is what to compare.
Measured 2026-12-08 (2 cores, quiet): qwen3vl-2b's expert (16 layers, hidden 1024), batch 2,
context 300: 2.425 vs 3.156 s, 1.30x; `--preset small --context 120 --batch 8`: 0.473 vs 0.467 s,
0.99x (a 256-wide expert's context projection is too small a part of its step to matter).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from lara.action_expert import ActionExpert
from lara.configuration_lara import ExpertConfig
from lara.presets import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="qwen3vl-2b")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--context", type=int, default=300, help="context tokens (the backbone's sequence)")
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset).expert
    r = cfg.flow_repeats
    shared = ActionExpert(cfg, 1024, 7, args.chunk, 8).float()
    repeated = copy.deepcopy(shared)
    repeated.cfg = ExpertConfig(**{**vars(cfg), "flow_repeats": 1})
    b = args.batch
    ctx = torch.randn(b, args.context, cfg.hidden_size)
    mask = torch.ones(b, args.context, dtype=torch.bool)
    actions = torch.rand(b, args.chunk, 7) * 2 - 1
    state = torch.randn(b, 8) if cfg.use_state else None
    inputs = {
        "shared K/V": (shared, (actions, ctx, mask, state)),
        "context repeated": (
            repeated,
            tuple(None if x is None else x.repeat_interleave(r, 0) for x in (actions, ctx, mask, state)),
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in inputs}
    for _ in range(args.iters):
        for name, (expert, xs) in inputs.items():
            t0 = time.perf_counter()
            expert.loss(*xs).backward()
            times[name].append(time.perf_counter() - t0)
    keep = max(1, args.iters // 2)
    med = {k: statistics.median(v[-keep:]) for k, v in times.items()}
    print(
        f"{args.preset} expert ({cfg.num_layers} layers, hidden {cfg.hidden_size}), {r} repeats, "
        f"batch {b}, context {args.context}, {torch.get_num_threads()} threads; "
        f"median of the last {keep} of {args.iters}:"
    )
    for k, v in med.items():
        print(f"  {k:17s} {v:.3f} s forward + backward")
    print(f"  ratio {med['context repeated'] / med['shared K/V']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
