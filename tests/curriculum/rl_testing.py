"""Shared fixture of the RL tests: a tiny random LaRA checkpoint saved once per module."""

import pytest


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from lara_testing import tiny_policy

    path = tmp_path_factory.mktemp("rl") / "tiny"
    tiny_policy().save_pretrained(path)
    return path
