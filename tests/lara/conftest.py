"""Fixtures for tests/lara; plain helpers live in tests/lara_testing.py."""

import pytest

from lara_testing import COT, FakeObservation, INSTRUCTIONS, make_batch, make_obs, make_stats, smooth_chunks, tiny_policy  # noqa: F401


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random policy with a trained FAST tokenizer and stats, saved once per session."""
    path = tmp_path_factory.mktemp("lara") / "tiny"
    tiny_policy().save_pretrained(path)
    return path


@pytest.fixture()
def policy(tiny_checkpoint):
    from lara.modeling_lara import LaraPolicy

    return LaraPolicy.from_pretrained(tiny_checkpoint)


@pytest.fixture()
def batch():
    return make_batch()
