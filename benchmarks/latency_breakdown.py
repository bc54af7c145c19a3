"""Where the time of one action chunk goes (tiny preset, CPU): the floor of the latency ratio.

Times, in one process on one random-weight model (the same set-up as `lara bench latency`):
- prefill: pixels + vision tower + backbone over the stage-III prompt (image, instruction,
  latent slots, `<img_next>` slots); both paths pay a prefill of about this size,
- expert: the DiT's Euler integration with 1 and with N steps (per step = the difference / (N-1)),
- one decode step of the explicit path (one token through the cached backbone + output head).
The ratio latent / explicit can be no lower than prefill / (prefill + tokens x decode step) even
with a free expert; this prints that floor for the CoT lengths the benchmark and the demo use.

    .venv/bin/python benchmarks/latency_breakdown.py --threads 1 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import DynamicCache

from lara.bench_latency import _obs, random_policy
from lara.configuration_lara import load_config


def median_ms(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=4, help="Euler steps of the latent path")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, [])
    policy, _ = random_policy(cfg)
    obs = _obs(cfg)

    with torch.inference_mode():
        imgs, state, instructions, _ = policy._parse_obs(obs)
        seqs = [policy.builder.build_prompt(s, latent=True, img_next=True, act_start=False) for s in instructions]
        t = policy.builder.collate(seqs, "left")
        prefill = median_ms(lambda: policy._hidden(t, imgs), args.reps)
        hidden = policy._hidden(t, imgs)  # (1, L, D)
        mask = policy._context_mask(t)
        ctx = policy.expert.project_context(hidden.masked_fill(~mask[..., None], 0.0))
        st = policy._norm_state(state, 1)
        one = median_ms(lambda: policy.expert.sample(ctx, mask, st, 1), args.reps)
        many = median_ms(lambda: policy.expert.sample(ctx, mask, st, args.steps), args.reps)
        latent = median_ms(lambda: policy.predict_action_chunk(obs, stage=3, num_steps=args.steps), args.reps)

        cache = DynamicCache(config=policy.vlm.config.text_config)
        prompt = policy.builder.collate([policy.builder.build_prompt(instructions[0], latent=False, img_next=False,
                                                                     act_start=False)])  # fmt: skip
        h = policy._hidden(prompt, imgs, cache)[:, -1]  # (1, D)
        pos = int(policy._last_pos.max()) + 1
        emb = policy.vlm.get_input_embeddings()
        token = torch.tensor([[int(policy.output_vocab.global_ids("cpu")[0])]])

        def decode_step():
            nonlocal pos
            policy.output_vocab.logits(h, policy.vlm.lm_head).argmax(-1)
            policy._step(cache, emb(token), pos)
            pos += 1

        decode = median_ms(decode_step, args.reps)

    per_step = (many - one) / max(args.steps - 1, 1)
    print(f"preset {args.preset}, {torch.get_num_threads()} torch thread(s), median of {args.reps}")
    print("| part | ms |")
    print("|---|---|")
    print(f"| prefill (pixels + vision tower + backbone, {t['input_ids'].shape[1]} tokens) | {prefill:.1f} |")
    print(f"| expert, 1 Euler step (incl. per-chunk K/V + AdaLN set-up) | {one:.1f} |")
    print(f"| expert, each further Euler step | {per_step:.1f} |")
    print(f"| latent path end to end ({args.steps} steps, with pre/post-processing) | {latent:.1f} |")
    print(f"| one explicit decode step (token through the cached backbone + output head) | {decode:.2f} |")
    for n_tokens in (102, 160):
        floor = prefill / (prefill + n_tokens * decode)
        print(f"ratio floor with a free expert, {n_tokens} generated tokens: {floor:.3f}")


if __name__ == "__main__":
    main()
