"""lara.utils.jsonl: append-only logs survive a kill mid-write (issue 14, case 2)."""

import json
import logging

from lara.utils.jsonl import append_jsonl, read_jsonl, repair_jsonl


def test_missing_file_reads_empty(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl") == ([], 0)
    assert repair_jsonl(tmp_path / "none.jsonl") == 0


def test_read_counts_torn_and_invalid_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1, 2]\n{"a": 2}\n{"a": 3')  # torn tail: no newline
    records, dropped = read_jsonl(path)
    assert records == [{"a": 1}, {"a": 2}]
    assert dropped == 3  # "not json", a list (not a record), the torn tail


def test_repair_truncates_to_last_complete_line_and_says_so(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b":')
    with caplog.at_level(logging.WARNING, logger="lara.utils.jsonl"):
        assert repair_jsonl(path) == 1
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert str(path) in caplog.text and "dropped 1" in caplog.text
    assert repair_jsonl(path) == 0  # idempotent


def test_append_after_a_torn_line_keeps_the_next_record(tmp_path):
    """The bug of issue 14: a record appended after a torn fragment was glued to it and lost."""
    path = tmp_path / "episodes.jsonl"
    append_jsonl(path, {"episode": 0})
    with open(path, "a") as fh:
        fh.write('{"episode": 1, "succ')  # a run killed mid-write
    repair_jsonl(path)
    append_jsonl(path, {"episode": 1})
    append_jsonl(path, {"episode": 2})
    records, dropped = read_jsonl(path)
    assert [r["episode"] for r in records] == [0, 1, 2] and dropped == 0


def test_append_writes_one_complete_line(tmp_path):
    path = tmp_path / "x.jsonl"
    append_jsonl(path, {"text": "two\nlines", "n": 1})
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == {"text": "two\nlines", "n": 1}
