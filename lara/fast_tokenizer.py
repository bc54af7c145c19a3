"""FAST action tokenizer (Pertsch et al. 2025): DCT over the chunk, scale + round, BPE.

Encoding one normalized chunk (H, A):
1. orthonormal DCT-II along time, per action dimension -> coefficients (H, A);
2. multiply by `scale`, round, clip to [-m, m];
3. flatten frequency-major (all dims of frequency 0, then frequency 1, ...) so that truncating the
   token string drops high frequencies first;
4. map each integer to one unicode character and apply a byte-pair encoding trained on the
   dataset's chunks (`tokenizers` BPE, vocabulary `vocab_size` >= base alphabet 2m+1).
Decoding inverts the BPE, pads/truncates to H*A integers (robust to generated garbage), divides
by `scale` and applies the inverse DCT.

Use: `fast = FastActionTokenizer.train(chunks, chunk_size, action_dim, cfg)` (the trainer calls it
before stage I on the dataset's normalized action chunks, (N, H, A)); `fast.encode(chunk) ->
list[int]` ids in [0, vocab_size); `fast.decode(ids) -> (H, A)`; `fast.round_trip_error(chunks)`;
`fast.save(path)` / `FastActionTokenizer.load(path)` (JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, trainers

from lara.configuration_lara import FastConfig
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError

_CHAR_OFFSET = 0x4E00  # CJK block: printable single characters, no whitespace/normalization surprises


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix D (n, n): coefficients = D @ x, x = D.T @ coefficients."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


@dataclass
class FastActionTokenizer:
    chunk_size: int
    action_dim: int
    scale: float
    max_abs_coefficient: int
    vocab_size: int
    bpe: Tokenizer

    # --- integer <-> text ---
    def _quantize(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape != (self.chunk_size, self.action_dim):
            raise LaraUserError(
                f"action chunk has shape {chunk.shape}, FAST expects ({self.chunk_size}, {self.action_dim})"
            )
        coef = dct_matrix(self.chunk_size) @ chunk  # (H, A): frequency x dimension
        q = np.clip(np.rint(coef * self.scale), -self.max_abs_coefficient, self.max_abs_coefficient)
        return q.astype(np.int64).reshape(-1)  # (H * A,) frequency-major

    def _to_text(self, ints: np.ndarray) -> str:
        return "".join(chr(_CHAR_OFFSET + int(v) + self.max_abs_coefficient) for v in ints)

    def _from_text(self, text: str) -> np.ndarray:
        vals = [ord(c) - _CHAR_OFFSET - self.max_abs_coefficient for c in text]
        vals = [v for v in vals if -self.max_abs_coefficient <= v <= self.max_abs_coefficient]
        out = np.zeros(self.chunk_size * self.action_dim, dtype=np.int64)
        n = min(len(vals), out.size)
        out[:n] = vals[:n]  # pad missing high frequencies with 0, drop extras
        return out

    # --- public ---
    def encode(self, chunk: np.ndarray) -> list[int]:
        return self.bpe.encode(self._to_text(self._quantize(chunk))).ids

    def decode(self, ids: list[int]) -> np.ndarray:
        ids = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        text = "".join(self.bpe.id_to_token(i) or "" for i in ids)
        q = self._from_text(text).reshape(self.chunk_size, self.action_dim).astype(np.float64)  # (H, A)
        return (dct_matrix(self.chunk_size).T @ (q / self.scale)).astype(np.float32)

    def round_trip_error(self, chunks: np.ndarray) -> dict[str, float]:
        """Max and mean absolute error of decode(encode(x)) over (N, H, A) chunks, and tokens/chunk."""
        chunks = np.asarray(chunks, dtype=np.float32)
        errs, lens = [], []
        for c in chunks:
            ids = self.encode(c)
            lens.append(len(ids))
            errs.append(np.abs(self.decode(ids) - c))
        e = np.stack(errs)
        return {
            "max_abs_error": float(e.max()),
            "mean_abs_error": float(e.mean()),
            "mean_tokens": float(np.mean(lens)),
        }

    @classmethod
    def train(
        cls, chunks: np.ndarray, chunk_size: int, action_dim: int, cfg: FastConfig
    ) -> FastActionTokenizer:
        """BPE trained on normalized action chunks (N, H, A)."""
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.ndim != 3 or chunks.shape[1:] != (chunk_size, action_dim) or len(chunks) == 0:
            raise LaraUserError(
                f"FAST training needs (N, {chunk_size}, {action_dim}) chunks, got {chunks.shape}"
            )
        if not np.isfinite(chunks).all():
            raise LaraUserError("FAST training chunks contain NaN/inf; clean or normalize the actions first")
        alphabet = [chr(_CHAR_OFFSET + v) for v in range(2 * cfg.max_abs_coefficient + 1)]
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            initial_alphabet=alphabet,
            limit_alphabet=len(alphabet),
            show_progress=False,
            special_tokens=[],
            max_token_length=None,
        )
        proto = cls(chunk_size, action_dim, cfg.scale, cfg.max_abs_coefficient, cfg.vocab_size, bpe)
        texts = [proto._to_text(proto._quantize(c)) for c in chunks]
        bpe.train_from_iterator(texts, trainer=trainer)
        if bpe.get_vocab_size() > cfg.vocab_size:
            raise RuntimeError(
                f"BPE produced {bpe.get_vocab_size()} tokens > fast.vocab_size {cfg.vocab_size}"
            )
        return proto

    # --- JSON persistence ---
    def to_dict(self) -> dict:
        return {
            "chunk_size": self.chunk_size,
            "action_dim": self.action_dim,
            "scale": self.scale,
            "max_abs_coefficient": self.max_abs_coefficient,
            "vocab_size": self.vocab_size,
            "bpe": json.loads(self.bpe.to_str()),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FastActionTokenizer:
        bpe = Tokenizer.from_str(json.dumps(data["bpe"]))
        return cls(
            data["chunk_size"],
            data["action_dim"],
            data["scale"],
            data["max_abs_coefficient"],
            data["vocab_size"],
            bpe,
        )

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> FastActionTokenizer:
        path = Path(path)
        if not path.exists():
            raise LaraUserError(f"no FAST tokenizer at {path}; train it with FastActionTokenizer.train first")
        return cls.from_dict(json.loads(path.read_text()))
