"""Output vocabulary of the LM head: the full Qwen vocabulary, or only the ids the data uses.

`backbone.output_vocab: full` (real checkpoints) computes logits over all rows. `observed` (the
tiny CPU preset) computes logits only over an id set: LaRA's generated tokens (`<|img_next|>`,
`<|act_end|>`, all action tokens) plus every CoT label id of the training data (saved in
checkpoints as `output_vocab.json`). The trainer seeds the set before training from the whole
annotation (`seed`, identically on every rank: the softmax columns must not differ between DDP
ranks, and the checkpoint written by rank 0 must hold every id any rank trained on); `update`
in `forward` stays a safety net that grows the set with unseen labels, and warns once when it
does so after seeding (the ranks may then diverge). Token ids stay
the real Qwen ids; only the softmax is restricted, at training and at generation alike. This
turns the ~150k-way softmax (about 90% of a tiny training step on CPU) into a few hundred ways.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class OutputVocab:
    def __init__(self, mode: str, vocab_rows: int, base_ids: list[int]) -> None:
        self.mode, self.rows = mode, vocab_rows
        self.ids: list[int] = sorted(set(base_ids))
        self._tensor: torch.Tensor | None = None
        self.seeded = False  # set by `seed`: later growth is unexpected
        self._warned = False

    @property
    def full(self) -> bool:
        return self.mode == "full"

    def _add(self, ids) -> set[int]:
        new = {int(i) for i in ids} - set(self.ids)
        if new:
            self.ids = sorted(set(self.ids) | new)
            self._tensor = None
        return new

    def seed(self, ids) -> int:
        """Add every label id the training data holds, before training; returns how many were new."""
        if self.full:
            return 0
        self.seeded = True
        return len(self._add(ids))

    def update(self, label_ids: torch.Tensor) -> None:
        """Add label ids (any shape; -100 ignored) to the observed set (safety net after `seed`)."""
        if self.full:
            return
        new = self._add(label_ids[label_ids >= 0].unique().tolist())
        if new and self.seeded and not self._warned:
            self._warned = True
            log.warning(
                "output vocabulary: %d label ids not in the seeded set appeared during training (e.g. %s); "
                "under DDP the ranks now softmax over different columns and the checkpoint may miss ids. "
                "Seed it from all the data the dataset serves (LaraPolicy.seed_output_vocab)",
                len(new),
                sorted(new)[:5],
            )

    def tensor(self, device) -> torch.Tensor:
        if self._tensor is None or self._tensor.device != torch.device(device):
            self._tensor = torch.tensor(self.ids, dtype=torch.long, device=device)
        return self._tensor

    def logits(self, hidden: torch.Tensor, lm_head: torch.nn.Linear) -> torch.Tensor:
        """(N, D) -> (N, V_out) logits over the output vocabulary (all rows when full)."""
        if self.full:
            return lm_head(hidden).float()
        w = lm_head.weight[self.tensor(hidden.device)]  # (V_out, D)
        return F.linear(hidden, w).float()

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Global ids (N,) -> indices into the output vocabulary (N,)."""
        if self.full:
            return labels
        return torch.searchsorted(self.tensor(labels.device), labels)

    def global_ids(self, device) -> torch.Tensor:
        """Global id of each output column (V_out,)."""
        return torch.arange(self.rows, device=device) if self.full else self.tensor(device)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"mode": self.mode, "rows": self.rows, "ids": self.ids}))

    @classmethod
    def load(cls, path: str | Path) -> OutputVocab:
        d = json.loads(Path(path).read_text())
        return cls(d["mode"], d["rows"], d["ids"])
