"""What GRPO trains, as scorers of recorded action units (see curriculum.rl.update).

- `ExpertScorer`: the stage-III flow expert. A unit is one chunk: the backbone's context features
  (computed once per batch: the backbone is frozen), the normalized state and the sampled Euler
  path; its log-probability is `lara.flow_sampling.path_log_prob`. The reference is a frozen copy
  of the starting expert, scored on the same features.
- `BackboneFlowScorer`: the same with LoRA adapters on the backbone: units are the recorded
  observations, and the features are recomputed, with gradients, at every scoring.
- `TokenScorer`: the stage-II FAST-token policy. A unit is one chunk's sampled tokens with its
  observation; its log-probability is the sum of `lara.token_logprobs.token_log_probs`. The
  backbone's decoder is what learns here (the tied embedding table stays frozen, as in SFT); the
  reference is a frozen copy of the starting policy.
Both keep their networks in eval mode: dropout would make the re-scored log-probabilities differ
from the sampled ones, and every ratio would be noise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lara.flow_sampling import backbone_context, path_log_prob
from lara.token_logprobs import token_log_probs


@dataclass
class FlowUnits:
    hidden: torch.Tensor  # (U, L, Dc) backbone features at the context positions, padding zeroed
    mask: torch.Tensor  # (U, L) bool
    state: torch.Tensor | None  # (U, S) normalized
    path: torch.Tensor  # (U, N + 1, H, A)

    def __len__(self) -> int:
        return self.path.shape[0]

    def select(self, idx: torch.Tensor) -> FlowUnits:
        return FlowUnits(
            self.hidden[idx], self.mask[idx], None if self.state is None else self.state[idx], self.path[idx]
        )


class ExpertScorer:
    def __init__(self, expert: torch.nn.Module, noise_scale: float) -> None:
        self.expert, self.noise_scale = expert.eval(), noise_scale
        self.reference = copy.deepcopy(expert).requires_grad_(False).eval()

    def parameters(self):
        return self.expert.parameters()

    def _score(self, expert, u: FlowUnits) -> torch.Tensor:
        ctx = expert.project_context(u.hidden)
        return path_log_prob(expert, ctx, u.mask, u.state, u.path, self.noise_scale)

    def log_prob(self, units: FlowUnits) -> torch.Tensor:
        return self._score(self.expert, units)

    def ref_log_prob(self, units: FlowUnits) -> torch.Tensor:
        return self._score(self.reference, units)


def obs_batch(chunks: list[dict]) -> dict:
    """Recorded chunk observations -> the batched observation dict `LaraPolicy` reads."""
    cams = chunks[0]["images"].keys()
    return {
        "images": {c: np.stack([ch["images"][c] for ch in chunks]) for c in cams},  # (B, H, W, 3) each
        "state": np.stack([ch["state"] for ch in chunks]),  # (B, S)
        "instruction": [ch["instruction"] for ch in chunks],
    }


@torch.no_grad()
def flow_units(policy, chunks: list[dict], batch_size: int = 32) -> FlowUnits:
    """FlowUnits of recorded chunks (dicts with images, state, instruction, path), features from
    the policy's (frozen) backbone, left-padded to one length."""
    parts = [
        backbone_context(policy, obs_batch(chunks[lo : lo + batch_size]))
        for lo in range(0, len(chunks), batch_size)
    ]
    width = max(h.shape[1] for h, _, _ in parts)
    hidden = torch.cat(
        [F.pad(h, (0, 0, width - h.shape[1], 0)) for h, _, _ in parts]
    )  # (U, L, Dc) left padded
    mask = torch.cat([F.pad(m, (width - m.shape[1], 0), value=False) for _, m, _ in parts])  # (U, L)
    state = None if parts[0][2] is None else torch.cat([s for _, _, s in parts])
    path = torch.stack([torch.as_tensor(ch["path"]) for ch in chunks]).to(policy.device)  # (U, N + 1, H, A)
    return FlowUnits(hidden, mask, state, path)


@dataclass
class ChunkUnits:
    chunks: list[dict]  # images, state, instruction, and tokens (FAST) or path (flow)

    def __len__(self) -> int:
        return len(self.chunks)

    def select(self, idx: torch.Tensor) -> ChunkUnits:
        return ChunkUnits([self.chunks[i] for i in idx.tolist()])


class BackboneFlowScorer:
    def __init__(self, policy, noise_scale: float, batch_size: int = 32) -> None:
        self.policy, self.noise_scale, self.batch_size = policy.eval(), noise_scale, batch_size
        self.reference = copy.deepcopy(policy).requires_grad_(False).eval()

    def parameters(self):
        return self.policy.parameters()

    def _score(self, policy, units: ChunkUnits) -> torch.Tensor:
        out = []
        for lo in range(0, len(units), self.batch_size):
            chunks = units.chunks[lo : lo + self.batch_size]
            hidden, mask, state = backbone_context(policy, obs_batch(chunks))
            path = torch.stack([torch.as_tensor(ch["path"]) for ch in chunks]).to(
                policy.device
            )  # (b, N + 1, H, A)
            ctx = policy.expert.project_context(hidden)
            out.append(path_log_prob(policy.expert, ctx, mask, state, path, self.noise_scale))
        return torch.cat(out)

    def log_prob(self, units: ChunkUnits) -> torch.Tensor:
        return self._score(self.policy, units)

    def ref_log_prob(self, units: ChunkUnits) -> torch.Tensor:
        return self._score(self.reference, units)


class TokenScorer:
    def __init__(self, policy, temperature: float) -> None:
        self.policy, self.temperature = policy.eval(), temperature
        self.reference = copy.deepcopy(policy).requires_grad_(False).eval()

    def parameters(self):
        return self.policy.vlm.parameters()

    def _score(self, policy, units: ChunkUnits) -> torch.Tensor:
        out = []
        for ch in units.chunks:
            imgs = policy.processor.to_device(obs_batch([ch])).images  # (n_cam, 3, H, W)
            out.append(
                token_log_probs(policy, imgs, ch["instruction"], list(ch["tokens"]), self.temperature).sum()
            )
        return torch.stack(out)

    def log_prob(self, units: ChunkUnits) -> torch.Tensor:
        return self._score(self.policy, units)

    def ref_log_prob(self, units: ChunkUnits) -> torch.Tensor:
        return self._score(self.reference, units)
