"""`lara eval` output folders and config files (issue 29, cases 1 and 6): a second run into an --out
another live run holds is refused, and a bad --out or --config_path is one line naming it."""

import os

import pytest

from lara.scripts.cli import main as lara_main
from lara.utils.run_lock import LOCK_NAME

EVAL = [
    "eval",
    "--policy",
    "noop",
    "--suite",
    "libero_object",
    "--tasks",
    "0",
    "--episodes",
    "1",
    "--max_steps",
    "1",
]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: ")
    return err


def test_a_second_eval_into_a_held_out_is_refused(tmp_path, capsys, held_by_another_process):
    out = tmp_path / "eval"
    with held_by_another_process(out) as holder:
        assert lara_main([*EVAL, "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert f"in use by lara eval (PID {holder.pid}" in err
    assert not (out / "episodes.jsonl").exists() and not (out / "run.json").exists()


def test_out_naming_a_file_or_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "results.txt").write_text("not a folder")
    assert lara_main([*EVAL, "--out", str(tmp_path / "results.txt")]) == 2
    assert "results.txt is a file, not a folder" in _one_error_line(capsys)
    assert lara_main([*EVAL, "--out", str(tmp_path / "results.txt" / "x")]) == 2
    assert "cannot create the output folder" in _one_error_line(capsys)

    real_open = os.open

    def immutable(path, *args, **kwargs):  # root ignores chmod: an immutable folder, simulated
        if str(path).endswith(LOCK_NAME):
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", immutable)
    assert lara_main([*EVAL, "--out", str(tmp_path / "ro")]) == 2
    assert "cannot write to the output folder" in _one_error_line(capsys)


@pytest.mark.parametrize("command", ["eval", "annotate", "rl"])
def test_a_missing_config_path_is_one_line(command, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert lara_main([command, "--config_path", str(missing)]) == 2
    err = _one_error_line(capsys)
    assert str(missing) in err and "does not exist" in err


def test_a_broken_or_list_eval_yaml_names_the_file(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("policy: noop\nepisodes: [1, 2\nsuite: libero_object\n")
    assert lara_main(["eval", "--config_path", str(broken)]) == 2
    err = _one_error_line(capsys)
    assert str(broken) in err and "not valid YAML at line" in err
    listed = tmp_path / "list.yaml"
    listed.write_text("- policy: noop\n- episodes: 2\n")
    assert lara_main(["eval", "--config_path", str(listed)]) == 2
    err = _one_error_line(capsys)
    assert str(listed) in err and "holds a list" in err
