"""Sampled FAST action tokens and their exact log-probabilities (the stage-II policy as an RL policy).

Stage-II inference prefills the latent prompt (latent slots, `<img_next>` slots, `<act_start>`) and
decodes FAST tokens greedily (`lara.generation.GenerationEngine.predict_tokens`). For RL the
decoding samples instead: at each position the distribution is softmax(logits / temperature) over
the tokens the policy may emit there (the FAST action tokens and `<act_end>`; everything else is
masked out, as in greedy decoding), so a chunk's log-probability is the sum of its tokens'
log-probabilities.

`token_log_probs` re-scores recorded tokens by teacher forcing: one prefill, then all tokens but
the last fed at once through the KV cache, logits at every position, differentiable. It reads
the same logits as sampling (the model's LM head over its output vocabulary), which the tests
check token by token. One sample at a time, as the model's own generation code runs; the prefill,
the KV-cache steps, the allowed columns and the FAST decoding are the policy's engine's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TokenSample:
    tokens: list[int]  # global ids: FAST action tokens, then `<act_end>` unless the limit was hit
    log_probs: torch.Tensor  # (n,) per token, at the sampling temperature
    log_prob: float  # their sum


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampled tokens with a density, got {temperature}")


def _log_softmax(policy, hidden: torch.Tensor, allowed: torch.Tensor, temperature: float) -> torch.Tensor:
    """(n, D) hidden states -> (n, V_out) log-probabilities over the allowed columns."""
    logits = policy.output_vocab.logits(hidden, policy.vlm.lm_head).float()
    return torch.log_softmax(logits.masked_fill(~allowed, float("-inf")) / temperature, dim=-1)


@torch.no_grad()
def sample_tokens(
    policy,
    imgs: torch.Tensor,
    instruction: str,
    temperature: float,
    generator: torch.Generator | None = None,
    max_tokens: int | None = None,
) -> TokenSample:
    """Sample one chunk's FAST tokens for one observation; imgs (n_cam, 3, H, W)."""
    _check_temperature(temperature)
    tok, engine = policy.tokenizer, policy.engine
    allowed = engine.action_columns()
    cols = policy.output_vocab.global_ids(policy.device)
    emb = policy.vlm.get_input_embeddings()
    cache, h_last, next_pos = engine.prefill_tokens(imgs, instruction, latent=True)
    tokens, logps = [], []
    for _ in range(max_tokens or policy.cfg.inference.max_action_tokens):
        logp = _log_softmax(policy, h_last, allowed, temperature)[0]  # (V_out,)
        col = int(torch.multinomial(logp.exp().cpu(), 1, generator=generator))
        tokens.append(int(cols[col]))
        logps.append(logp[col])
        if tokens[-1] == tok.act_end_id:
            break
        h_last = engine.step(cache, emb(torch.tensor([[tokens[-1]]], device=policy.device)), next_pos)[:, -1]
        next_pos += 1
    lp = torch.stack(logps)
    return TokenSample(tokens=tokens, log_probs=lp, log_prob=float(lp.sum()))


def token_log_probs(
    policy, imgs: torch.Tensor, instruction: str, tokens: list[int], temperature: float
) -> torch.Tensor:
    """(n,) log-probabilities of recorded `tokens` under the current weights (teacher forcing)."""
    _check_temperature(temperature)
    cache, h_last, next_pos = policy.engine.prefill_tokens(imgs, instruction, latent=True)
    hidden = [h_last]  # (1, D): predicts tokens[0]
    if len(tokens) > 1:
        ids = torch.tensor([tokens[:-1]], device=policy.device)  # (1, n - 1)
        hidden.append(
            policy.engine.step(cache, policy.vlm.get_input_embeddings()(ids), next_pos)[0]
        )  # (n - 1, D)
    logp = _log_softmax(
        policy, torch.cat(hidden, 0), policy.engine.action_columns(), temperature
    )  # (n, V_out)
    cols = policy.output_vocab.targets(
        torch.tensor(tokens, device=policy.device)
    )  # (n,) column of each token
    return logp.gather(1, cols[:, None])[:, 0]


def decode_actions(policy, tokens: list[int]) -> np.ndarray:
    """FAST tokens -> un-normalized (H, A) actions for the environment (as `predict_action_chunk`)."""
    return policy.processor.unnormalize(policy.engine.decode_fast(tokens)[None])[0]
