"""One training run over several LeRobot datasets (`data.root A,B` or `data.mixture`).

Each dataset is built exactly as a single-dataset run builds it (curriculum.lara_adapter: its own
annotation run, resolved and checked for completeness, its own key mapping and train split), then
all of them share one set of normalization statistics computed over all their frames
(data_pipeline.stats.joint_stats; why joint and not per dataset: docs/method.md, "Several datasets").
The policy builder then sees one dataset whose `stats` are the joint ones and whose action chunks
span every dataset, so the FAST tokenizer is fit once over all of them and the checkpoint carries
the joint statistics that evaluation on any suite un-normalizes with.
"""

from __future__ import annotations

import copy
import logging

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


def build_mixture_dataset(cfg):
    """(MixtureSampleDataset, collate_fn) over the datasets `cfg.data.datasets()` names."""
    from curriculum.lara_adapter import build_lerobot_dataset
    from data_pipeline.samples import MixtureSampleDataset
    from data_pipeline.stats import joint_stats

    entries = cfg.data.datasets()
    if not entries:
        raise LaraUserError("no dataset: set --dataset DIR[,DIR...] or data.mixture in a data overlay config")
    parts, collate = [], None
    for entry in entries:
        one = copy.deepcopy(cfg)  # the run's config with this dataset's root, annotation and mapping
        one.data.root, one.data.annotation, one.data.mapping = entry.root, entry.annotation, entry.mapping
        one.data.mixture = []
        part, collate = build_lerobot_dataset(one)
        parts.append(part)
    # Every row of every dataset, as a single dataset's stored statistics use all its rows.
    low_dims = [
        {"state": p.state, "action": p.action, "episode_index": p.episode_index, "frame_index": p.frame_index}
        for p in parts
    ]
    stats = joint_stats(low_dims, cfg.data.norm_mode, sources=[e.root for e in entries])
    for part in parts:  # the samples are normalized with the joint statistics from here on
        part.stats = stats
    mixture = MixtureSampleDataset(parts, [e.weight for e in entries], [e.root for e in entries])
    log.info(
        "dataset mixture: %s; %d samples per epoch",
        ", ".join(f"{e.root} ({len(p)} samples, weight {e.weight:g})" for e, p in zip(entries, parts)),
        mixture.epoch_length,
    )
    return mixture, collate
