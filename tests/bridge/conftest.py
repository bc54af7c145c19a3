"""Fixtures for the Bridge tests: one small BridgeData V2-layout dataset per session (written with
lerobot by the `write_bridge_dataset` fixture of tests/conftest.py), copied for tests that write
into it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bridge_dataset(tmp_path_factory, write_bridge_dataset) -> Path:
    """Read-only: 6 episodes (episode 2 has no language), 4 cameras (image_2/3 blank), 32 px."""
    return write_bridge_dataset(tmp_path_factory.mktemp("bridge") / "bridge")


@pytest.fixture()
def bridge_copy(bridge_dataset, tmp_path) -> Path:
    """A private copy for tests that write splits or annotations into the dataset."""
    return Path(shutil.copytree(bridge_dataset, tmp_path / "bridge"))
