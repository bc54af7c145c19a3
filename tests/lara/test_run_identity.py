"""The one "is this the same run?" check (lara.utils.run_identity), which the evaluator, the
multi-suite evaluator and the collector use on resume."""

from lara.utils.run_identity import check_same_run, differing_keys


def test_the_same_run_passes():
    assert (
        check_same_run("runs/x", {"a": 1, "b": "p"}, {"b": "p", "a": 1}, "results of a different run") is None
    )


def test_a_different_run_is_one_line_naming_each_differing_key():
    error = check_same_run("runs/x", {"a": 1, "b": "p", "c": 3}, {"a": 2, "b": "p", "c": None}, "a run")
    assert error == "runs/x holds a run (differing: a: 1 there vs 2 now; c: 3 there vs None now)"
    assert "\n" not in error


def test_keys_limit_the_comparison_and_a_missing_key_is_none():
    assert differing_keys({"a": 1, "old": 5}, {"a": 1, "new": 7}) == {"new": (None, 7), "old": (5, None)}
    assert differing_keys({"a": 1, "old": 5}, {"a": 1}, keys=["a"]) == {}


def test_many_differences_are_counted_not_all_listed():
    error = check_same_run("d", {f"k{i}": i for i in range(9)}, {f"k{i}": -i - 1 for i in range(9)}, "x")
    assert error.endswith("; ... (9 keys))") and error.count(" there vs ") == 6
