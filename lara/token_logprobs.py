"""Sampled FAST action tokens and their exact log-probabilities (the stage-II policy as an RL policy).

Stage-II inference prefills the latent prompt (latent slots, `<img_next>` slots, `<act_start>`)
and decodes FAST tokens greedily (`LaraPolicy._predict_tokens`). For RL the decoding samples
instead: at each position the distribution is softmax(logits / temperature) over the tokens the
policy may emit there (the FAST action tokens and `<act_end>`; everything else is masked out, as in
greedy decoding), so a chunk's log-probability is the sum of its tokens' log-probabilities.

`token_log_probs` re-scores recorded tokens by teacher forcing: one prefill, then all tokens but
the last fed at once through the KV cache, logits at every position, differentiable. It reads
the same logits as sampling (the model's LM head over its output vocabulary), which the tests
check token by token. One sample at a time, as the model's own generation code runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache


@dataclass
class TokenSample:
    tokens: list[int]  # global ids: FAST action tokens, then `<act_end>` unless the limit was hit
    log_probs: torch.Tensor  # (n,) per token, at the sampling temperature
    log_prob: float  # their sum


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampled tokens with a density, got {temperature}")


def allowed_columns(policy) -> torch.Tensor:
    """(V_out,) bool over the output vocabulary: FAST action tokens and `<act_end>`."""
    tok = policy.tokenizer
    cols = policy.output_vocab.global_ids(policy.device)  # (V_out,) global id per column
    off = tok.action_token_offset
    return ((cols >= off) & (cols < off + tok.num_action_tokens)) | (cols == tok.act_end_id)


def _prefill(policy, imgs: torch.Tensor, instruction: str):
    """Latent stage-II prompt through the backbone with a fresh KV cache -> (cache, h_last (1, D), next_pos)."""
    cache = DynamicCache(config=policy.vlm.config.text_config)
    seq = policy.builder.build_prompt(instruction, latent=True, img_next=True, act_start=True)
    t = {k: v.to(policy.device) for k, v in policy.builder.collate([seq]).items()}
    hidden = policy._hidden(t, imgs.to(policy.device), cache)  # (1, L, D)
    return cache, hidden[:, -1], int(policy._last_pos.max()) + 1  # text positions continue after the largest M-RoPE index


def _log_softmax(policy, hidden: torch.Tensor, allowed: torch.Tensor, temperature: float) -> torch.Tensor:
    """(n, D) hidden states -> (n, V_out) log-probabilities over the allowed columns."""
    logits = policy.output_vocab.logits(hidden, policy.vlm.lm_head).float()
    return torch.log_softmax(logits.masked_fill(~allowed, float("-inf")) / temperature, dim=-1)


@torch.no_grad()
def sample_tokens(policy, imgs: torch.Tensor, instruction: str, temperature: float,
                  generator: torch.Generator | None = None, max_tokens: int | None = None) -> TokenSample:
    """Sample one chunk's FAST tokens for one observation; imgs (n_cam, 3, H, W)."""
    _check_temperature(temperature)
    tok = policy.tokenizer
    allowed = allowed_columns(policy)
    cols = policy.output_vocab.global_ids(policy.device)
    emb = policy.vlm.get_input_embeddings()
    cache, h_last, next_pos = _prefill(policy, imgs, instruction)
    tokens, logps = [], []
    for _ in range(max_tokens or policy.cfg.inference.max_action_tokens):
        logp = _log_softmax(policy, h_last, allowed, temperature)[0]  # (V_out,)
        col = int(torch.multinomial(logp.exp().cpu(), 1, generator=generator))
        tokens.append(int(cols[col]))
        logps.append(logp[col])
        if tokens[-1] == tok.act_end_id:
            break
        h_last = policy._step(cache, emb(torch.tensor([[tokens[-1]]], device=policy.device)), next_pos)[:, -1]
        next_pos += 1
    lp = torch.stack(logps)
    return TokenSample(tokens=tokens, log_probs=lp, log_prob=float(lp.sum()))


def token_log_probs(policy, imgs: torch.Tensor, instruction: str, tokens: list[int], temperature: float) -> torch.Tensor:
    """(n,) log-probabilities of recorded `tokens` under the current weights (teacher forcing)."""
    _check_temperature(temperature)
    cache, h_last, next_pos = _prefill(policy, imgs, instruction)
    hidden = [h_last]  # (1, D): predicts tokens[0]
    if len(tokens) > 1:
        ids = torch.tensor([tokens[:-1]], device=policy.device)  # (1, n - 1)
        hidden.append(policy._step(cache, policy.vlm.get_input_embeddings()(ids), next_pos)[0])  # (n - 1, D)
    logp = _log_softmax(policy, torch.cat(hidden, 0), allowed_columns(policy), temperature)  # (n, V_out)
    cols = policy.output_vocab.targets(torch.tensor(tokens, device=policy.device))  # (n,) column of each token
    return logp.gather(1, cols[:, None])[:, 0]


def decode_actions(policy, tokens: list[int]) -> np.ndarray:
    """FAST tokens -> un-normalized (H, A) actions for the environment (as `predict_action_chunk`)."""
    tok = policy.tokenizer
    fast_ids = [i - tok.action_token_offset for i in tokens if tok.is_action_token(i)]
    return policy._unnormalize(policy.fast.decode(fast_ids)[None])[0]
