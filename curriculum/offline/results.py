"""What `lara eval-offline` computes, as data: the numbers (curriculum/offline/evaluate.py fills
them) and the traces the report plots (curriculum/offline/report.py). Their own module so that the
evaluation and the report both import it and neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EpisodeTrace:
    """Per held-out episode: recorded actions and the predicted chunks (for plots)."""

    episode: int
    instruction: str
    actions: np.ndarray  # (T, A)
    starts: np.ndarray  # (N,)
    pred: np.ndarray  # (N, H, A)


@dataclass
class OfflineResult:
    config: dict
    dataset: dict
    metrics: dict  # method -> chunk_metrics
    probes: dict
    warnings: list[str] = field(default_factory=list)
    traces: list[EpisodeTrace] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "probes": self.probes,
            "warnings": self.warnings,
        }
