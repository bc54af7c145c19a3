"""The peer arm's checkpoint folder: lerobot's own saved policy and processors, plus what LaRA needs.

<out>/checkpoint/ holds
- `config.json`, `model.safetensors`: `DiffusionPolicy.save_pretrained` (lerobot's layout);
- `policy_preprocessor*.json|safetensors`, `policy_postprocessor*`: lerobot's processor pipelines
  (normalization with the training dataset's stats), `save_pretrained` too;
- `lara.peer.json`: the camera -> dataset key map the adapter feeds, the image size trained on, the step,
  the training seconds so far and the dataset;
- `training_state.pt`: optimizer, LR scheduler and RNG states, to resume.
It is replaced atomically (written beside, then renamed), so a kill never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lara.utils.errors import LaraUserError

CHECKPOINT = "checkpoint"
META = "peer.json"
TRAINING_STATE = "training_state.pt"
PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"


def resolve(path: str | Path) -> Path:
    """A training run folder (its checkpoint/) or a checkpoint folder itself -> the checkpoint folder."""
    path = Path(path)
    for candidate in (path / CHECKPOINT, path):
        if (candidate / META).is_file() and (candidate / "model.safetensors").is_file():
            return candidate
    raise LaraUserError(
        f"{path} holds no peer checkpoint ({META} + model.safetensors): train one with "
        f"`lara peer-train --dataset DIR --out {path}`"
    )


def read_meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / META).read_text())


def recover(out: Path) -> None:
    """A kill between the two renames of `save` leaves only .checkpoint.old: make it the checkpoint."""
    final, old = out / CHECKPOINT, out / f".{CHECKPOINT}.old"
    if not final.exists() and old.exists():
        old.replace(final)


def save(out: Path, policy, preprocessor, postprocessor, meta: dict, training_state: dict) -> Path:
    """Write <out>/checkpoint atomically; returns its path."""
    import torch

    final, tmp, old = out / CHECKPOINT, out / f".{CHECKPOINT}.tmp", out / f".{CHECKPOINT}.old"
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    policy.save_pretrained(tmp)
    preprocessor.save_pretrained(tmp)
    postprocessor.save_pretrained(tmp)
    torch.save(training_state, tmp / TRAINING_STATE)
    (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        final.replace(old)
    tmp.replace(final)
    if old.exists():
        shutil.rmtree(old)
    return final
