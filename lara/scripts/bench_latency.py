"""`lara bench latency`: ms per action chunk, explicit-CoT inference vs latent inference (the
measurement; flags and entry point in lara/scripts/bench_latency_cli.py).

Same process, same machine, same random-weight model:
- explicit (stage 1 path): prefill, greedy generation of a CoT of `--cot_tokens` tokens (80 by
  default, the length of a structured CoT), the forced `<img_next>` slots, then the FAST action
  tokens (as many as the FAST tokenizer spends on a chunk on average), with a KV cache;
- latent (stage 3 path): one prefill over image + instruction + latent slots + `<img_next>` slots
  and the expert's Euler steps (`--steps`, 8 by default for the target), no token generation.
Random weights cannot decide when to stop, so both generated lengths are fixed (`fixed_lengths`).
When the preset decodes over its observed output vocabulary (`backbone.output_vocab: observed`,
the tiny preset), the explicit path is also timed over the full 151,936-way LM head that a real
Qwen3-VL decodes with (`explicit_full_vocab_ms`, `ratio_full_vocab`).
Each figure is the median over `--reps` timed runs after `--warmup` runs of `predict_action_chunk`
(pre-processing and un-normalization included). The FAST tokenizer and the normalization
statistics are fitted on synthetic smooth chunks (only their sizes matter here).

Targets: ratio latent/explicit <= 0.05 for the tiny preset on CPU; <= 20 ms per 8-step chunk for
`qwen3vl-2b` (random weights, bf16) on an H100-class GPU (`--preset qwen3vl-2b --device cuda
--dtype bfloat16 --stage3_only`). Writes `latency.json` under `--out` when given.

`--breakdown` adds where a stage-III chunk's time goes (table and `breakdown` in the JSON), through
the policy's public parts (`processor.to_device`, `engine.latent_prefill`, `processor.expert_state`
+ `engine.sample_actions`, `processor.unnormalize`); targets for the tiny preset on CPU: end to end
<= 1.5x the prefill, the Euler steps <= 0.5x. The inference switches are config overrides, e.g.
`--overrides '[--inference.compile=true, --inference.cuda_graph=true]'` (and
`--inference.cache=false` for the reference path without the prompt cache).
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time

import numpy as np
import torch

from lara.utils.errors import LaraUserError

# What a trained model's output vocabulary holds for its CoT (the demo's annotation of libero_object task 0).
BENCH_COT = [
    ("SUBTASK", "carry the alphabet soup to the basket"),
    ("OBJECTS", "alphabet soup [38, 38, 50, 54]; basket [9, 53, 41, 83]"),
    ("MOVE", "move forward and left"),
    ("GRIPPER", "hold"),
]


def _synthetic(cfg, seed: int = 0):
    from lara.normalization import NormalizationStats

    rng = np.random.default_rng(seed)
    h, a = cfg.chunk_size, cfg.action_dim
    t = np.linspace(0, 1, h)[None, :, None]
    chunks = np.sin(2 * np.pi * (t * rng.uniform(0.1, 0.8, (512, 1, a)) + rng.uniform(0, 1, (512, 1, a))))
    chunks = (chunks * rng.uniform(0.2, 0.9, (512, 1, a))).astype(np.float32)  # (N, H, A)
    stats = NormalizationStats.from_arrays(
        {"action": chunks.reshape(-1, a), "state": rng.normal(size=(512, cfg.state_dim))},
        passthrough_dims={"action": [a - 1]},
    )
    return chunks, stats


def random_policy(cfg, seed: int = 0):
    """A random-weight LaraPolicy ready for both inference paths (eval mode, CPU) and the FAST
    fit report: FAST tokenizer and normalization from synthetic chunks, and the output
    vocabulary seeded with a CoT (an `observed` vocabulary needs CoT ids to generate a CoT from)."""
    from lara.modeling_lara import LaraPolicy

    torch.manual_seed(seed)
    policy = LaraPolicy(cfg)
    chunks, stats = _synthetic(cfg, seed)
    fast_report = policy.train_fast_tokenizer(chunks)
    policy.set_normalization(stats)
    policy.seed_output_vocab([BENCH_COT])
    return policy.eval(), fast_report


def _obs(cfg, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    side = 256  # LIBERO renders 256 x 256; the model resizes
    return {
        "images": {c: rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for c in cfg.vision.cameras},
        "state": rng.normal(size=cfg.state_dim).astype(np.float32),
        "instruction": "put the black bowl in the bottom drawer of the cabinet and close it",
    }


def _time(fn, reps: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def expert_gflop_per_step(cfg, context_len: int) -> float:
    """Multiply-add work (GFLOP, 2 per MAC) of one Euler step of the expert as `lara.expert_runtime`
    runs it: the state/future/action tokens through every block, the per-token tail trimmed, the
    future tokens' first-block Q/K/V cached."""
    from lara.action_expert import token_count

    e, h = cfg.expert, cfg.chunk_size
    d, ff = e.hidden_size, e.hidden_size * e.ff_mult
    tokens = token_count(e, h)  # lara.action_expert.order_tokens
    kinds = ["cross" if i % 2 == 1 else "self" for i in range(e.num_layers)]
    trim = max((j + 1 for j, k in enumerate(kinds) if k == "self"), default=0)
    macs = h * cfg.action_dim * d + h * d * cfg.action_dim  # action in / out
    for j, kind in enumerate(kinds):
        t = h if j >= trim else tokens
        if kind == "self":
            fixed = e.num_future_tokens if j == 0 else 0  # cached with the timestep conditioning
            macs += (t - fixed) * d * 3 * d + 2 * t * t * d
        else:
            macs += t * d * d + 2 * t * context_len * d
        macs += t * d * d + 2 * t * d * ff  # attention output, MLP
    return 2 * macs / 1e9


def breakdown(policy, obs, steps: int, reps: int, warmup: int, device: torch.device) -> dict:
    """Where one stage-III chunk's time goes, through the policy's public parts (ms, medians):
    pre-processing (`processor.to_device`), prefill (`engine.latent_prefill`: pixels, vision tower,
    backbone, context projection), the expert (state normalization and `engine.sample_actions`) with
    1 and with `steps` Euler steps, post-processing (`processor.unnormalize`), and
    `predict_action_chunk` end to end."""
    processor, engine = policy.processor, policy.engine

    def expert(n: int) -> torch.Tensor:
        return engine.sample_actions(context, mask, processor.expert_state(x.state), n)

    with torch.inference_mode():
        x = processor.to_device(obs)
        context, mask = engine.latent_prefill(x)
        norm = expert(steps)
        parts = {
            "preprocess_ms": lambda: processor.to_device(obs),
            "prefill_ms": lambda: engine.latent_prefill(x),
            "expert_1_step_ms": lambda: expert(1),
            "expert_ms": lambda: expert(steps),
            "postprocess_ms": lambda: processor.unnormalize(norm),
            "end_to_end_ms": lambda: policy.predict_action_chunk(obs, stage=3, num_steps=steps),
        }
        for fn in parts.values():
            _time(fn, 0, warmup, device)
        wall: dict[str, list[float]] = {k: [] for k in parts}
        cpu: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(reps):  # interleaved: a busy machine's slow moments hit every part alike
            for name, fn in parts.items():
                c0 = time.process_time()
                wall[name] += _time(fn, 1, 0, device)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    r = {name: round(statistics.median(ts), 3) for name, ts in wall.items()}
    # CPU time of this process: what the parts cost when the machine is shared (waits excluded)
    r["cpu_ms"] = {name: round(statistics.median(ts), 3) for name, ts in cpu.items()}
    r["spread_ms"] = {name: [round(min(ts), 3), round(max(ts), 3)] for name, ts in wall.items()}
    r["expert_further_step_ms"] = round((r["expert_ms"] - r["expert_1_step_ms"]) / max(steps - 1, 1), 3)
    r["prefill_tokens"] = int(mask.shape[1])
    r["expert_gflop_per_step"] = round(expert_gflop_per_step(policy.cfg, int(mask.shape[1])), 4)
    r["expert_gflops_achieved"] = round(steps * r["expert_gflop_per_step"] / (r["expert_ms"] / 1e3), 2)
    r["ratio_end_to_end_to_prefill"] = round(r["end_to_end_ms"] / r["prefill_ms"], 3)
    r["ratio_expert_to_prefill"] = round(r["expert_ms"] / r["prefill_ms"], 3)
    c = r["cpu_ms"]
    r["cpu_ratio_end_to_end_to_prefill"] = round(c["end_to_end_ms"] / c["prefill_ms"], 3)
    r["cpu_ratio_expert_to_prefill"] = round(c["expert_ms"] / c["prefill_ms"], 3)
    return r


def breakdown_table(r: dict, steps: int) -> str:
    b, c = r["breakdown"], r["breakdown"]["cpu_ms"]
    further = (c["expert_ms"] - c["expert_1_step_ms"]) / max(steps - 1, 1)
    rows = [
        ("pre-processing (observation -> device, one copy)", "preprocess_ms"),
        (f"prefill (pixels + vision tower + backbone, {b['prefill_tokens']} tokens)", "prefill_ms"),
        ("expert, 1 Euler step (with per-chunk context K/V)", "expert_1_step_ms"),
        ("expert, each further Euler step", None),
        (f"expert, {steps} Euler steps ({b['expert_gflop_per_step']} GFLOP/step)", "expert_ms"),
        ("post-processing (un-normalize, device -> host)", "postprocess_ms"),
        (f"latent path end to end ({steps} steps)", "end_to_end_ms"),
    ]
    lines = ["| part | ms (wall) | ms (process CPU) |", "|---|---|---|"]
    for name, key in rows:
        wall, cpu = (b["expert_further_step_ms"], further) if key is None else (b[key], c[key])
        lines.append(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    lines.append(
        f"end to end / prefill = {b['ratio_end_to_end_to_prefill']:.2f} (CPU time "
        f"{b['cpu_ratio_end_to_end_to_prefill']:.2f}); {steps} Euler steps / prefill = "
        f"{b['ratio_expert_to_prefill']:.2f} (CPU time {b['cpu_ratio_expert_to_prefill']:.2f})"
    )
    return "\n".join(lines)


def _optimizations(cfg) -> str:
    inf = cfg.inference
    return (
        f"prompt cache {'on' if inf.cache else 'off'}, expert loop captured"
        f"{', torch.compile' if inf.compile else ''}{', CUDA graph (on CUDA)' if inf.cuda_graph else ''}; "
        "SDPA attention, KV cache"
    )


def run(args) -> dict:
    """Random-weight timings of both paths; `args` is a `bench_latency_cli.LatencyBenchConfig`."""
    from lara.presets import load_config

    overrides = [f"--backbone.dtype={args.torch_dtype}", f"--backbone.attn_implementation={args.attn}"]
    cfg = load_config(args.preset, overrides + list(args.overrides))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LaraUserError("--device cuda but torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    policy, fast_report = random_policy(cfg)
    policy.to(device)
    build_s = time.perf_counter() - t0
    obs = _obs(cfg)
    n_act = max(1, round(fast_report["mean_tokens"]))
    result = {
        "preset": args.preset,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": args.torch_dtype,
        "attn_implementation": args.attn,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "reps": args.reps,
        "warmup": args.warmup,
        "params_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
        "build_s": round(build_s, 2),
        "expert_steps": args.steps,
        "cot_tokens": args.cot_tokens,
        "action_tokens": n_act,
        "optimizations": _optimizations(cfg),
        "inference": dataclasses.asdict(cfg.inference),
    }
    if args.breakdown:
        result["breakdown"] = breakdown(policy, obs, args.steps, args.reps, args.warmup, device)
    with torch.inference_mode():
        before = policy.engine.num_generated_tokens
        lat = _time(
            lambda: policy.predict_action_chunk(obs, stage=3, num_steps=args.steps),
            args.reps,
            args.warmup,
            device,
        )
        if policy.engine.num_generated_tokens != before:
            raise RuntimeError("stage-3 inference generated tokens")
        result["latent_ms"] = round(statistics.median(lat), 3)
        result["latent_ms_all"] = [round(x, 3) for x in lat]
        if not args.stage3_only:
            fixed = (args.cot_tokens, n_act)
            before = policy.engine.num_generated_tokens
            exp = _time(
                lambda: policy.predict_action_chunk(obs, stage=1, fixed_lengths=fixed),
                args.reps,
                args.warmup,
                device,
            )
            result["explicit_tokens_generated"] = (policy.engine.num_generated_tokens - before) / (
                args.reps + args.warmup
            )
            result["explicit_ms"] = round(statistics.median(exp), 3)
            result["explicit_ms_all"] = [round(x, 3) for x in exp]
            result["ratio"] = round(result["latent_ms"] / result["explicit_ms"], 4)
            if not policy.output_vocab.full:  # also time decoding over the real 151,936-way LM head
                policy.output_vocab.mode = "full"
                exp = _time(
                    lambda: policy.predict_action_chunk(obs, stage=1, fixed_lengths=fixed),
                    args.reps,
                    args.warmup,
                    device,
                )
                policy.output_vocab.mode = cfg.backbone.output_vocab
                result["explicit_full_vocab_ms"] = round(statistics.median(exp), 3)
                result["ratio_full_vocab"] = round(result["latent_ms"] / result["explicit_full_vocab_ms"], 4)
    return result


def checkpoint_latency(
    explicit_dir, latent_dir, obs=None, reps: int = 5, warmup: int = 1, threads: int = 0
) -> dict:
    """Trained checkpoints, one observation: ms per chunk of the stage-1 checkpoint's explicit path
    (it generates its own CoT and action tokens until it stops, greedy, KV cache) and of the
    stage-3 checkpoint's latent path (one prefill + its configured Euler steps), and the ratio.
    `obs` defaults to a synthetic observation (random 256 px images) of the right cameras."""
    from envs.policies import resolve_checkpoint
    from lara.modeling_lara import LaraPolicy

    if threads:
        torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    explicit = LaraPolicy.from_pretrained(resolve_checkpoint(str(explicit_dir)), device="cpu").eval()
    latent = LaraPolicy.from_pretrained(resolve_checkpoint(str(latent_dir)), device="cpu").eval()
    obs = obs if obs is not None else _obs(latent.cfg)
    with torch.inference_mode():
        before = explicit.engine.num_generated_tokens
        exp = _time(lambda: explicit.predict_action_chunk(obs, stage=1), reps, warmup, cpu)
        generated = (explicit.engine.num_generated_tokens - before) / (reps + warmup)
        lat = _time(lambda: latent.predict_action_chunk(obs, stage=3), reps, warmup, cpu)
    result = {
        "explicit_checkpoint": str(explicit_dir),
        "latent_checkpoint": str(latent_dir),
        "explicit_ms": round(statistics.median(exp), 2),
        "latent_ms": round(statistics.median(lat), 2),
        "tokens_generated_per_chunk": round(generated, 1),
        "cot_text": explicit.engine.last_cot_text,
        "latent_tokens_generated": latent.engine.num_generated_tokens,
        "expert_steps": latent.cfg.expert.num_inference_steps,
        "reps": reps,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device_name": _device_name(cpu),
    }
    result["ratio"] = round(result["latent_ms"] / result["explicit_ms"], 4)
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def table(r: dict) -> str:
    rows = [
        ("preset / device / dtype", f"{r['preset']} / {r['device_name']} / {r['dtype']}"),
        ("parameters (M)", f"{r['params_m']}"),
        (
            f"explicit CoT ({r['cot_tokens']} CoT + {r['action_tokens']} action tokens)",
            f"{r['explicit_ms']:.1f} ms/chunk" if "explicit_ms" in r else "not run",
        ),
        (f"latent ({r['expert_steps']} Euler steps, no generation)", f"{r['latent_ms']:.1f} ms/chunk"),
        ("ratio latent / explicit", f"{r['ratio']:.4f}" if "ratio" in r else "n/a"),
    ]
    if "explicit_full_vocab_ms" in r:
        rows += [
            ("explicit CoT, full 151,936-way LM head", f"{r['explicit_full_vocab_ms']:.1f} ms/chunk"),
            ("ratio latent / explicit (full LM head)", f"{r['ratio_full_vocab']:.4f}"),
        ]
    w = max(len(a) for a, _ in rows)
    lines = [f"{'measure':<{w}}  value", f"{'-' * w}  {'-' * 24}"] + [f"{a:<{w}}  {b}" for a, b in rows]
    lines.append(
        f"(median of {r['reps']} runs after {r['warmup']} warm-up; {r['threads']} torch threads; "
        f"{r['optimizations']})"
    )
    return "\n".join(lines)


def checkpoint_table(r: dict) -> str:
    """Markdown table of `checkpoint_latency` figures."""
    rows = [
        (
            "explicit CoT (stage I)",
            r["explicit_checkpoint"],
            r["explicit_ms"],
            r["tokens_generated_per_chunk"],
        ),
        (
            f"latent (stage III, {r['expert_steps']} Euler steps)",
            r["latent_checkpoint"],
            r["latent_ms"],
            r["latent_tokens_generated"],
        ),
    ]
    return "\n".join(
        [
            "| path | checkpoint | ms per chunk | tokens generated per chunk |",
            "|---|---|---|---|",
            *[f"| {name} | `{ckpt}` | {ms:.1f} | {tokens:.0f} |" for name, ckpt, ms, tokens in rows],
            f"| **ratio latent / explicit** | | **{r['ratio']:.3f}** | |",
        ]
    )
