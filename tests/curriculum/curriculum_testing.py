"""Helpers shared by tests/curriculum (a uniquely named module: `from conftest import` resolves to
whichever conftest.py pytest loaded first)."""

from pathlib import Path

import curriculum_toy  # noqa: F401  (registers the toy policy and dataset)
import torch
from safetensors.torch import load_file

from curriculum.presets import load_train_config

# The CI box has 2 cores shared with other jobs: one intra-op thread avoids spin contention that
# made each tiny backward ~100x slower. Subprocess tests set OMP_NUM_THREADS=1 for the same reason.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]


def toy_config(out: Path, stage: int = 1, *overrides: str):
    return load_train_config([], ["--output_dir", str(out), *overrides], preset="toy", stage=stage)


def weights(run_dir: Path) -> dict:
    return load_file(str(Path(run_dir) / "final" / "model" / "model.safetensors"))


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= atol, f"weights differ by {worst}"
