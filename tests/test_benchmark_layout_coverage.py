"""benchmarks/generalization/layout_coverage.py: the statistics on hand-made episodes (no simulator)."""

import json

import numpy as np
import pytest

from benchmarks.generalization.layout_coverage import demo_start_states, distance_bins, within_task_gap
from lara.utils.errors import LaraUserError


def _rows(task: int, distances_m: list[float], successes: list[bool]) -> list[dict]:
    return [
        {"task": task, "layout": d, "success": s, "init_state_index": i}
        for i, (d, s) in enumerate(zip(distances_m, successes))
    ]


def test_within_task_gap_sees_failures_far_from_demos():
    # task 0: failures 3 cm out, successes 1 cm; task 1: 4 cm vs 2 cm; task 2 all failures (left out)
    rows = (
        _rows(0, [0.01, 0.01, 0.03, 0.03], [True, True, False, False])
        + _rows(1, [0.02, 0.04, 0.04], [True, False, False])
        + _rows(2, [0.0, 0.05], [False, False])
    )
    gap = within_task_gap(rows, "layout", np.random.default_rng(0))
    assert gap["tasks_with_both_outcomes"] == 2
    assert gap["gap_cm"] == pytest.approx(2.0)
    # a shuffle reaches a 2 cm mean gap only with both tasks' labels as observed: 1/6 (task 0: 2 of
    # 4 successes) x 1/3 (task 1: 1 of 3) = 1/18
    assert gap["p_value"] == pytest.approx(1 / 18, abs=0.01)


def test_within_task_gap_is_null_when_distance_does_not_matter():
    rows = _rows(0, [0.01, 0.03, 0.01, 0.03], [True, True, False, False])
    gap = within_task_gap(rows, "layout", np.random.default_rng(0))
    assert gap["gap_cm"] == pytest.approx(0.0)
    assert gap["p_value"] > 0.5
    assert within_task_gap(_rows(0, [0.01], [True]), "layout", np.random.default_rng(0))["gap_cm"] is None


def test_distance_bins_count_successes_per_half_centimetre():
    rows = _rows(0, [0.001, 0.004, 0.006, 0.012], [True, False, True, True])
    bins = distance_bins(rows, "layout", [0.0, 0.5, 1.0, 1.5])
    assert [(b["successes"], b["episodes"]) for b in bins] == [(1, 2), (1, 1), (1, 1)]
    low, high = bins[0]["ci95"]
    assert 0 < low < 0.5 < high < 1


def test_demo_start_states_groups_the_sidecars_by_task(tmp_path):
    episodes = tmp_path / "lara" / "episodes"
    episodes.mkdir(parents=True)
    for index, task in enumerate([3, 1, 3]):
        np.savez(
            episodes / f"episode_{index:06d}.npz",
            info=np.array(json.dumps({"task_index": task})),
            init_state=np.full(5, float(index)),
        )
    starts = demo_start_states(tmp_path)
    assert sorted(starts) == [1, 3]
    assert [s[0] for s in starts[3]] == [0.0, 2.0]
    with pytest.raises(LaraUserError, match="lara collect"):
        demo_start_states(tmp_path / "empty")
