"""LaRA checkpoints: safetensors weights + JSON everywhere; loading never unpickles.

A checkpoint directory holds:
    config.json            LaraConfig (JSON)
    backbone_config.json   the Qwen3VLConfig actually built (incl. a resized vocabulary), so a model
                           whose backbone came from a local Qwen3-VL directory reloads without it
    model.safetensors      all weights: backbone, EMA vision tower, foresight head, latent slots, expert
    tokenizer/             tokenizer.json + lara_tokens.json (Qwen BPE, Qwen specials, LaRA tokens)
    normalization.json     NormalizationStats (if set)
    fast_tokenizer.json    FAST action tokenizer (if trained)
    output_vocab.json      the LM head's output vocabulary (full, or the observed id set)
    training_data.json     the episodes of each dataset this model (and the models it was initialized
                           from) trained on (written by the trainer; `read_training_data`)
config.json's `inference.stage` is the stage that trained the model (the trainer writes it; a
checkpoint saved before it did says 3 whatever trained it, so `checkpoint_config` takes the stage from
the `trainer_state.json` beside a trainer checkpoint's `model/` when that is lower).
Writes go to a temporary sibling directory first and are renamed into place (atomic for readers).
Every loader accepts that folder or a training run's folder holding it (`RUN/final`, `RUN/final/model`,
`RUN/checkpoints/step_N`): `resolve_checkpoint_dir`. `check_checkpoint` verifies a folder without
building the model (seconds before a dataset is opened or workers start, not after).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from transformers import Qwen3VLConfig

from lara.configuration_lara import LaraConfig
from lara.fast_tokenizer import FastActionTokenizer
from lara.normalization import NormalizationStats
from lara.output_vocab import OutputVocab
from lara.tokenizer import load_tokenizer
from lara.utils.errors import LaraUserError

FILES = ("config.json", "backbone_config.json", "model.safetensors")
log = logging.getLogger(__name__)


def save_pretrained(policy, directory: str | Path) -> Path:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp-save")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.cfg.save(tmp / "config.json")
    (tmp / "backbone_config.json").write_text(policy.vlm.config.to_json_string())
    save_model(policy, str(tmp / "model.safetensors"))  # de-duplicates tied embeddings
    policy.tokenizer.save(tmp / "tokenizer")
    if policy.stats is not None:
        policy.stats.save(tmp / "normalization.json")
    if policy.fast is not None:
        policy.fast.save(tmp / "fast_tokenizer.json")
    policy.output_vocab.save(tmp / "output_vocab.json")
    if directory.exists():
        old = directory.with_name(directory.name + ".tmp-old")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(directory)
    return directory


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """The `save_pretrained` folder at `path` or inside it (`model/`, `final/model/`): both the
    model folder and a training run's `final/` (or `checkpoints/step_N/`) name a checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise LaraUserError(
            f"{path} is not a LaRA checkpoint: no such folder; pass the folder save_pretrained "
            "wrote, or a training run's final/ folder"
        )
    for candidate in (path, path / "model", path / "final" / "model"):
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").exists():
            return candidate
    for candidate in (path, path / "model", path / "final" / "model"):
        if (candidate / "config.json").is_file():
            return candidate  # incomplete: check_checkpoint names what is missing
    raise LaraUserError(
        f"{path} is not a LaRA checkpoint (no config.json in it, in model/ or in final/model/); pass the "
        "folder save_pretrained wrote, or a training run's final/ folder"
    )


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


TRAINING_DATA = "training_data.json"


def run_stage(directory: Path) -> int | None:
    """The stage in the `trainer_state.json` beside a trainer checkpoint's `model/` folder
    (`RUN/final/model`, `RUN/checkpoints/step_N/model`); None for a bare `save_pretrained` folder.
    RL's iterations (stage 4) train the stage-III model: 3."""
    state = directory.parent / "trainer_state.json"
    if directory.name != "model" or not state.is_file():
        return None
    try:
        return min(int(_read_json(state)["stage"]), 3)
    except (ValueError, KeyError, TypeError):
        return None


def checkpoint_config(directory: str | Path) -> LaraConfig:
    """The checkpoint's LaraConfig, its `inference.stage` the stage that trained it: a checkpoint
    saved before the trainer recorded the stage says 3 even after stage I (whose action expert never
    trained); the trainer's own record beside it wins then."""
    directory = Path(directory)
    cfg = LaraConfig.load(directory / "config.json")
    trained = run_stage(directory)
    if trained is not None and trained < cfg.inference.stage:
        log.warning(
            "%s was trained by stage %d but its config says inference.stage %d (saved before checkpoints "
            "recorded their stage): acting as stage %d",
            directory,
            trained,
            cfg.inference.stage,
            trained,
        )
        cfg.inference.stage = trained
    return cfg


def read_training_data(directory: str | Path) -> dict[str, list[int]] | None:
    """{dataset folder (resolved): sorted episode indices} this checkpoint's training read, over the
    stages that led to it; None when the checkpoint does not say (saved before it was recorded, or
    not written by the trainer)."""
    path = Path(directory) / TRAINING_DATA
    if not path.is_file():
        return None
    try:
        data = _read_json(path)["episodes"]
        return {str(k): sorted(int(e) for e in v) for k, v in data.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise LaraUserError(
            f"{path} is unreadable ({type(err).__name__}: {err}); the checkpoint is corrupt: use another "
            "one or re-run the training that writes it"
        ) from None


def write_training_data(directory: str | Path, episodes: dict[str, list[int]]) -> None:
    (Path(directory) / TRAINING_DATA).write_text(
        json.dumps({"episodes": {k: sorted(set(v)) for k, v in sorted(episodes.items())}}, indent=1)
    )


def check_checkpoint(directory: str | Path) -> Path:
    """Check a checkpoint folder without building the model: the files exist, the configs parse,
    the safetensors header is whole (a truncated file fails here). One line naming the file if not."""
    from safetensors import safe_open

    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).exists()]
    if missing:
        raise LaraUserError(
            f"{directory} is not a LaRA checkpoint (missing {missing}); it was not written "
            "completely: use another checkpoint or re-run the training that writes it"
        )
    for name, parse in (("config.json", LaraConfig.load), ("backbone_config.json", _read_json)):
        try:
            parse(directory / name)
        except LaraUserError:
            raise
        except Exception as err:  # JSON syntax, or fields the model config rejects
            raise LaraUserError(
                f"{directory / name} is unreadable ({type(err).__name__}: {err}); the checkpoint is "
                "corrupt: use another one or re-run the training that writes it"
            ) from None
    weights = directory / "model.safetensors"
    try:
        with safe_open(str(weights), "pt") as fh:
            if not list(fh.keys()):
                raise ValueError("no tensors")
    except Exception as err:  # SafetensorError (truncated/corrupt), OSError
        raise LaraUserError(
            f"{weights} is corrupt or truncated ({type(err).__name__}: {err}); use another "
            "checkpoint, or re-run the training that writes it"
        ) from None
    return directory


def load_pretrained(directory: str | Path, device: str | torch.device | None, cls):
    """The checkpoint at `directory` built as `cls` (`LaraModel` or a subclass: `LaraPolicy`), in eval
    mode."""
    directory = check_checkpoint(resolve_checkpoint_dir(directory))
    cfg = checkpoint_config(directory)
    qwen_cfg = Qwen3VLConfig.from_dict(json.loads((directory / "backbone_config.json").read_text()))
    stats = (
        NormalizationStats.load(directory / "normalization.json")
        if (directory / "normalization.json").exists()
        else None
    )
    fast_path = directory / "fast_tokenizer.json"
    fast = FastActionTokenizer.load(fast_path) if fast_path.exists() else None
    vocab_path = directory / "output_vocab.json"
    out_vocab = OutputVocab.load(vocab_path) if vocab_path.exists() else None
    policy = cls(
        cfg,
        tokenizer=load_tokenizer(directory / "tokenizer"),
        fast=fast,
        stats=stats,
        qwen_cfg=qwen_cfg,
        output_vocab=out_vocab,
    )
    missing_keys, unexpected = load_model(policy, str(directory / "model.safetensors"), strict=True)
    if device is not None:
        policy.to(device)
    policy.eval()
    return policy
