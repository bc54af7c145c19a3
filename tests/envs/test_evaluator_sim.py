"""The evaluator end to end in LIBERO: 2 workers, 2 short episodes, report, video, resume."""

import json

import pytest

from envs.evaluator import EvalConfig, evaluate

pytestmark = pytest.mark.sim


def test_two_workers_write_results_and_resume(tmp_path):
    cfg = EvalConfig(
        policy="noop",
        suite="libero_object",
        tasks="0",
        episodes=2,
        workers=2,
        out=tmp_path,
        video=True,
        camera_size=64,
        max_steps=4,
    )
    results = evaluate(cfg)
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["episode"] for r in records) == [0, 1]
    assert all(r["steps"] == 4 and r["error"] is None and not r["success"] for r in records)
    assert results["suites"][0]["episodes"] == 2
    assert "0/2" in (tmp_path / "report.md").read_text()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)

    # Same command again: nothing re-runs, the report is rebuilt from the same records.
    evaluate(EvalConfig(**{**cfg.__dict__}))
    assert (tmp_path / "episodes.jsonl").read_text().splitlines() == lines
