"""The micro-batches of an optimizer step: an endless resumable loader, and their preparation.

`MicroBatches` walks the dataset with a `ResumableSampler`, so the loader position (epoch, samples
consumed) is checkpointed and a resumed run sees the very batches it would have seen.
`prepare_step` prepares all micro-batches of a step before their forwards, so loss terms summed
over a varying number of items are divided by the step-wide count (`step_loss_norm`).
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from curriculum.config import TrainConfig
from curriculum.sampler import ResumableSampler
from lara.utils.errors import LaraUserError


def to_device(batch, device):
    """Tensors of a (nested dict) batch moved to `device`; other values as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


class MicroBatches:
    """Endless micro-batches with the data-loader position (epoch, samples consumed) alongside."""

    def __init__(self, dataset, collate, cfg: TrainConfig, accelerator: Accelerator, epoch: int, start: int):
        self.dataset, self.collate, self.cfg = dataset, collate, cfg
        order = getattr(dataset, "epoch_order", None)  # a weighted mixture draws its own epochs
        self.sampler = ResumableSampler(
            dataset.epoch_length if order is not None else len(dataset),
            seed=cfg.seed,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            order=order,
        )
        if self.sampler.per_rank < cfg.batch_size:
            raise LaraUserError(
                f"dataset has {len(dataset)} samples, fewer than batch_size {cfg.batch_size} x "
                f"{accelerator.num_processes} processes; lower --batch_size or use more data"
            )
        self.epoch, self.start = epoch, start
        self._iter = None

    def _loader(self) -> DataLoader:
        self.sampler.set_position(self.epoch, self.start)
        # A private generator: workers' seeds never come from (and never consume) the global RNG.
        generator = torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.batch_size,
            sampler=self.sampler,
            drop_last=True,  # equal micro-batches: accumulation and DDP stay exact averages
            collate_fn=self.collate,
            num_workers=self.cfg.data.num_workers,
            generator=generator,
        )

    def next(self):
        while True:
            if self._iter is None:
                self._iter = iter(self._loader())
            try:
                batch = next(self._iter)
            except StopIteration:
                self._iter, self.epoch, self.start = None, self.epoch + 1, 0
                continue
            self.start += self.cfg.batch_size
            return batch


def prepare_step(policy, micro_batches: list, stage: int, accelerator: Accelerator) -> tuple[list, dict]:
    """All micro-batches of one optimizer step, prepared in order, and the forward kwargs that make
    their accumulated gradient the gradient of one big batch over every rank.

    A policy with `prepare_batch(batch, stage) -> (batch, loss_items)` (builds its sequences and
    draws its random latent segments in the order of one big batch, and counts each term's loss
    items) gets `loss_norm` = `step_loss_norm(...)`; one without keeps its own micro-batch means.
    """
    prepare = getattr(policy, "prepare_batch", None)
    if not callable(prepare):
        return micro_batches, {}
    prepared, items = zip(*(prepare(batch, stage) for batch in micro_batches))
    return list(prepared), {"loss_norm": step_loss_norm(list(items), accelerator)}


def step_loss_norm(items: list[dict[str, int]], accelerator: Accelerator) -> dict[str, float]:
    """term -> the step's average number of loss items per micro-batch, C / (N W).

    The algebra. N micro-batches per rank, W ranks; S_rm the item-summed loss of micro-batch m on
    rank r (e.g. CE summed over its CoT tokens), n_rm its item count, C = sum_rm n_rm (summed over
    ranks with `accelerator.reduce`). The update we want is that of one batch of all of them:
        grad L,   L = sum_rm S_rm / C.
    What the trainer applies: `accelerator.backward` divides each micro-batch loss l_rm by N
    (DeepSpeed's engine does the same), gradients add up over the N micro-batches, and DDP (FSDP
    alike) averages them over the W ranks:
        g = (1 / W) sum_r sum_m (1 / N) grad l_rm.
    With l_rm = S_rm / d and d = C / (N W):  g = sum_rm grad S_rm / (W N d) = grad L.  So every
    micro-batch divides its sum by the same d; with equal counts d = n_rm and l_rm is the plain
    micro-batch mean (what a policy without counts computes). A count of 0 everywhere (e.g. every
    CoT segment latent) has all S_rm = 0; d is then clamped to 1 / (N W) so the term stays 0.
    """
    names = sorted(items[0])
    local = torch.tensor([[it[k] for k in names] for it in items], dtype=torch.long).sum(0)  # (n_terms,)
    total = accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()  # over ranks
    n = len(items) * accelerator.num_processes
    return {k: max(int(c), 1) / n for k, c in zip(names, total.tolist())}
