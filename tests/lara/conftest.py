"""Fixtures for tests/lara (the shared tiny-model factories are in tests/conftest.py)."""

import pytest


@pytest.fixture()
def policy(tiny_checkpoint):
    from lara.modeling_lara import LaraPolicy

    return LaraPolicy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    """One tiny policy shared by a test module's tests (they set train/eval mode themselves)."""
    from lara.modeling_lara import LaraPolicy

    return LaraPolicy.from_pretrained(tiny_checkpoint)
