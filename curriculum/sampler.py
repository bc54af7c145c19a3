"""A resumable, rank-sharded sampler: the data-loader position is two integers.

The order of epoch `e` is a permutation drawn from `seed + e` alone, so a resumed run rebuilds
exactly the same order and skips the samples it already consumed (`start`). Rank r of W takes
positions r, r + W, ... of the permutation, truncated so every rank yields the same count; with
`drop_last` batches this makes one DDP step over W x B samples see the same samples as a single
process with batch W x B (the DDP equivalence test relies on it).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_samples, generator=generator).tolist()


class ResumableSampler(Sampler[int]):
    """`order(seed, epoch)`, when given, returns the epoch's `num_samples` item indices in training
    order (a weighted dataset mixture's own epoch, data_pipeline.samples.MixtureSampleDataset); it
    must depend on (seed, epoch) alone, as `epoch_permutation` does."""

    def __init__(
        self, num_samples: int, *, seed: int, rank: int = 0, world_size: int = 1, order=None
    ) -> None:
        self.num_samples = num_samples
        self.order = order
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.per_rank = num_samples // world_size
        self.epoch = 0
        self.start = 0  # samples of this epoch (on this rank) already consumed

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        order = (self.order or (lambda seed, epoch: epoch_permutation(self.num_samples, seed, epoch)))(
            self.seed, self.epoch
        )
        mine = order[self.rank :: self.world_size][: self.per_rank]
        return iter(mine[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start
