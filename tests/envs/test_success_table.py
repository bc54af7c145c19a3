"""The one success-table writer (envs.report.success_table): every report's table of successes with
95% Wilson intervals comes from it (the evaluation, multi-suite and demo reports, the
generalization benchmark's comparison cells)."""

from envs.report import success_cells, success_table, wilson_interval


def test_cells_are_count_rate_and_wilson_interval_in_percent():
    low, high = wilson_interval(3, 7)
    assert success_cells(3, 7) == ["3/7", "42.9%", f"[{100 * low:.1f}, {100 * high:.1f}]"]
    assert success_cells(0, 0, digits=0) == ["0/0", "0%", "[0, 100]"]  # no episodes: nothing known


def test_table_has_a_header_a_rule_and_one_row_each_with_extra_cells():
    lines = success_table([("task 0", 5, 5, "12"), ("task 1", 0, 4, "30")], first="task", extra=("steps",))
    assert lines[0] == "| task | success | rate | 95% CI | steps |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == f"| task 0 | 5/5 | 100.0% | [{100 * wilson_interval(5, 5)[0]:.1f}, 100.0] | 12 |"
    assert lines[3].startswith("| task 1 | 0/4 | 0.0% | [0.0, ") and len(lines) == 4
    assert success_table([], labels=("successes", "rate", "95% Wilson CI"))[0] == (
        "| | successes | rate | 95% Wilson CI |"
    )
