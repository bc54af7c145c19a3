"""The closed-loop learning check (examples/memorize_libero.py) as a test: slow (~20-40 min on 2 cores)."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sim]


def test_memorize_one_libero_object_task(tmp_path, load_example):
    status = load_example("memorize_libero")(["--out", str(tmp_path / "memorize")])
    summary = json.loads((tmp_path / "memorize" / "memorize.json").read_text())
    assert summary["episodes"] == 10
    assert summary["success_rate"] >= 0.8, summary
    assert status == 0
