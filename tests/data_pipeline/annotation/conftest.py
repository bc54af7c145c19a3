"""Fixtures of the annotation tests (helpers live in annotation_fixtures.py)."""

from __future__ import annotations

import pytest
from annotation_fixtures import synthetic_episode


@pytest.fixture
def pick_place_episode():
    return synthetic_episode
