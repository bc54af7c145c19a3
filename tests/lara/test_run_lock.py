"""One owner per output folder (issue 29, case 1): `lara.utils.run_lock`, the lock every command that
writes a shared folder takes (eval --out, collect --out, the annotation run folder, train --out)."""

import json
import logging
import os
import socket

import pytest

from lara.utils.errors import LaraUserError
from lara.utils.run_lock import LOCK_NAME, run_lock


def test_a_second_live_process_is_refused_naming_the_holder(tmp_path, held_by_another_process):
    out = tmp_path / "out"
    with held_by_another_process(out) as holder:
        with pytest.raises(LaraUserError) as err:
            with run_lock(out, "lara eval"):
                pytest.fail("took a lock another live process holds")
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert f"PID {holder.pid} on {socket.gethostname()}" in message and "in use by lara eval" in message


def test_the_lock_of_a_killed_process_is_taken_over_with_a_message(tmp_path, caplog, held_by_another_process):
    out = tmp_path / "out"
    with held_by_another_process(out) as holder:
        pass  # SIGKILLed on exit: its lock file stays behind
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    with caplog.at_level(logging.WARNING), run_lock(out, "lara eval") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"PID {holder.pid}" in caplog.text and "no longer runs" in caplog.text
    assert not (out / LOCK_NAME).exists()  # released


def test_a_lock_written_on_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "lara train"}))
    with pytest.raises(LaraUserError, match="PID 1 on elsewhere.*another host"):
        with run_lock(tmp_path, "lara train"):
            pass


def test_nested_holds_and_cleanup(tmp_path):
    new = tmp_path / "new"
    with run_lock(new, "lara eval"), run_lock(new, "lara eval"):  # one process may hold it twice
        assert (new / LOCK_NAME).is_file()
    assert not new.exists()  # created by the lock and left empty: removed
    kept = tmp_path / "kept"
    kept.mkdir()
    with run_lock(kept, "lara eval"):
        (kept / "results.json").write_text("{}")
    assert sorted(p.name for p in kept.iterdir()) == ["results.json"]


def test_a_file_or_an_unwritable_folder_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LaraUserError, match="is a file, not a folder"):
        with run_lock(tmp_path / "file", "lara eval"):
            pass
    with pytest.raises(LaraUserError, match="cannot create the output folder"):
        with run_lock(tmp_path / "file" / "sub", "lara eval"):
            pass
    real_open = os.open

    def read_only(path, *args, **kwargs):  # root ignores chmod: a read-only mount, simulated
        if str(path).endswith(LOCK_NAME):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(LaraUserError, match="cannot write to the output folder .*Read-only file system"):
        with run_lock(tmp_path / "ro", "lara eval"):
            pass
