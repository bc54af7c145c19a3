"""The closed-loop learning check (examples/memorize_libero.py) as a test: slow (~20-30 min on 2 cores)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sim]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "memorize_libero.py"


def test_memorize_one_libero_object_task(tmp_path):
    spec = importlib.util.spec_from_file_location("memorize_libero", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through the module
    spec.loader.exec_module(module)
    status = module.main(["--out", str(tmp_path / "memorize")])
    summary = json.loads((tmp_path / "memorize" / "memorize.json").read_text())
    assert summary["episodes"] == 10
    assert summary["success_rate"] >= 0.8, summary
    assert status == 0
