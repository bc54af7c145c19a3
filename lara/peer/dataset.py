"""lerobot's `LeRobotDataset` for the peer arm's training, with its frame queries read column by column.

Why: with `delta_timestamps`, each item queries n_obs_steps frames of every observation key and
`horizon` frames of the action. lerobot 0.4.4 (`_query_hf_dataset`, with datasets 4.x) ends up
decoding whole rows for those queries, so every item decoded the two camera images of all 16 action
frames too: 46 PNG decodes per item instead of 6. Measured on runs/demo/data (128 px, two cameras):
0.85 CPU s per item through lerobot's path, 0.18 through per-key column views, with identical tensors
(tests/lara/test_peer_diffusion.py compares them item by item). Nothing else of lerobot's dataset
changes: the same indices, padding (`*_is_pad`), transforms and stats.
"""

from __future__ import annotations

import torch

from data_pipeline.lerobot_compat import LeRobotDataset


class ColumnQueryDataset(LeRobotDataset):
    """`LeRobotDataset` whose `_query_hf_dataset` reads each key from a one-column view."""

    def _query_hf_dataset(self, query_indices: dict[str, list[int]]) -> dict:
        views = self.__dict__.setdefault("_peer_column_views", {})
        result: dict = {}
        for key, q_idx in query_indices.items():
            if key in self.meta.video_keys:
                continue
            rows = q_idx
            if self._absolute_to_relative_idx is not None:
                rows = [self._absolute_to_relative_idx[idx] for idx in q_idx]
            if key not in views:
                views[key] = self.hf_dataset.select_columns([key])  # keeps the dataset's torch transform
            result[key] = torch.stack(views[key][rows][key])  # (len(q_idx), *feature shape)
        return result
