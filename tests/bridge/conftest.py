"""Fixtures for the Bridge tests: one small BridgeData V2-layout dataset per session (written with
lerobot by `bridge_data.write_bridge_dataset`), copied for tests that write into it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))

import pytest  # noqa: E402
from bridge_data import write_bridge_dataset  # noqa: E402


@pytest.fixture(scope="session")
def bridge_dataset(tmp_path_factory) -> Path:
    """Read-only: 6 episodes (episode 2 has no language), 4 cameras (image_2/3 blank), 32 px."""
    return write_bridge_dataset(tmp_path_factory.mktemp("bridge") / "bridge")


@pytest.fixture()
def bridge_copy(bridge_dataset, tmp_path) -> Path:
    """A private copy for tests that write splits or annotations into the dataset."""
    return Path(shutil.copytree(bridge_dataset, tmp_path / "bridge"))
