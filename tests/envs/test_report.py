import json

import pytest

from envs.report import read_records, summarize, wilson_interval, write_report


def test_wilson_interval_known_values():
    # Reference values of the Wilson score interval (z = 1.96).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and low == pytest.approx(0.9287, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and 0.4 < high < 0.5


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


def _rec(task, episode, success, steps=10, error=None):
    return {
        "suite": "libero_object",
        "task": task,
        "task_name": f"t{task}",
        "episode": episode,
        "success": success,
        "steps": steps,
        "policy_latency_ms": 1.0,
        "error": error,
    }


def test_summarize_counts_per_task_and_suite():
    records = [
        _rec(0, 0, True),
        _rec(0, 1, False),
        _rec(1, 0, True, error=None),
        _rec(1, 1, False, error="boom"),
    ]
    tasks, suites = summarize(records)
    assert [(r.successes, r.episodes) for r in tasks] == [(1, 2), (1, 2)]
    assert suites[0].successes == 2 and suites[0].episodes == 4 and suites[0].errors == 1


def test_read_records_skips_torn_last_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text(json.dumps(_rec(0, 0, True)) + "\n" + '{"suite": "libero_obj')
    assert len(read_records(path)) == 1


def test_write_report_files(tmp_path):
    info = {"policy": "noop", "suite": "libero_object", "episodes_per_task": 2, "seed": 7, "camera_size": 256}
    results = write_report(tmp_path, info, [_rec(0, 0, True), _rec(0, 1, False)])
    assert results["suites"][0]["success_rate"] == 0.5
    text = (tmp_path / "report.md").read_text()
    assert "1/2" in text and "2 episodes per task" in text
    assert (tmp_path / "success.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["tasks"][0]["episodes"] == 2


def test_wilson_interval_contains_the_rate_exactly_at_the_ends(tmp_path):
    """0/n and n/n once gave bounds a rounding error past the rate, and the bar chart crashed."""
    from envs.report import SuccessRow, plot_success

    for n in range(1, 60):
        assert wilson_interval(0, n)[0] == 0.0
        assert wilson_interval(n, n)[1] == 1.0
    rows = [
        SuccessRow(
            name=f"libero_object  {i}: t",
            successes=k,
            episodes=n,
            errors=0,
            mean_steps=1.0,
            mean_latency_ms=0.0,
        )
        for i, (k, n) in enumerate([(0, 3), (3, 3), (1, 3)])
    ]
    plot_success(rows, tmp_path / "success.png")
    assert (tmp_path / "success.png").stat().st_size > 1000
