"""Fixtures for tests/curriculum; plain helpers live in curriculum_testing.py."""

import pytest
from curriculum_testing import REPO, assert_same_weights, toy_config, weights  # noqa: F401


@pytest.fixture
def toy():
    return toy_config
