"""Broken and differently laid-out checkpoints (issue 14, cases 1 and 6): checked once, up front,
one line naming the file, exit 2, nothing written; `RUN/final` and the model folder both load."""

import json
import shutil

import pytest

from lara.checkpoint import check_checkpoint, resolve_checkpoint_dir
from lara.scripts.cli import main as lara_main
from lara.utils.errors import LaraUserError


@pytest.fixture()
def run_dir(tiny_checkpoint, tmp_path):
    """A training run's layout: RUN/final/model/ is the save_pretrained folder."""
    shutil.copytree(tiny_checkpoint, tmp_path / "run" / "final" / "model")
    return tmp_path / "run"


def _truncate(path, keep: float = 0.5) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(int(path.stat().st_size * keep))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_every_layout_resolves_to_the_model_folder(run_dir):
    model = run_dir / "final" / "model"
    for spec in (run_dir, run_dir / "final", model):
        assert resolve_checkpoint_dir(spec) == model
    with pytest.raises(LaraUserError, match="not a LaRA checkpoint: no such folder"):
        resolve_checkpoint_dir(run_dir / "nothing")


def test_load_pretrained_accepts_a_run_final_folder(run_dir):
    from lara.modeling_lara import LaraPolicy

    policy = LaraPolicy.from_pretrained(run_dir / "final")
    assert policy.stats is not None and policy.fast is not None


def test_truncated_weights_fail_the_check_naming_the_file(run_dir):
    weights = run_dir / "final" / "model" / "model.safetensors"
    assert check_checkpoint(weights.parent) == weights.parent
    _truncate(weights)
    with pytest.raises(LaraUserError, match=r"model\.safetensors is corrupt or truncated"):
        check_checkpoint(weights.parent)
    config = json.loads((weights.parent / "config.json").read_text())
    (weights.parent / "config.json").write_text(json.dumps({**config, "bogus": 1}))  # another version's field
    with pytest.raises(LaraUserError, match=r"config\.json is unreadable.*bogus"):
        check_checkpoint(weights.parent)
    (weights.parent / "config.json").write_text("{")
    with pytest.raises(LaraUserError, match=r"config\.json is unreadable"):
        check_checkpoint(weights.parent)


def test_eval_with_a_truncated_checkpoint_writes_nothing(run_dir, tmp_path, capsys):
    _truncate(run_dir / "final" / "model" / "model.safetensors")
    out = tmp_path / "eval"
    rc = lara_main(
        ["eval", "--policy", str(run_dir / "final"), "--tasks", "0", "--episodes", "1", "--out", str(out)]
    )
    assert rc == 2
    assert "model.safetensors is corrupt or truncated" in _one_line(capsys)
    assert not out.exists()  # no run.json, no episodes.jsonl: nothing to poison a later run


def test_eval_offline_checks_the_checkpoint_before_the_dataset(run_dir, tmp_path, capsys):
    missing_data = tmp_path / "no_dataset"
    # RUN/final is accepted: the error is about the dataset, which comes second
    assert (
        lara_main(
            [
                "eval-offline",
                "--policy",
                str(run_dir / "final"),
                "--dataset",
                str(missing_data),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "not a LeRobot dataset" in _one_line(capsys)
    _truncate(run_dir / "final" / "model" / "model.safetensors")
    assert (
        lara_main(
            [
                "eval-offline",
                "--policy",
                str(run_dir),
                "--dataset",
                str(missing_data),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = _one_line(capsys)
    assert "model.safetensors is corrupt or truncated" in err and "no_dataset" not in err
    nope = str(tmp_path / "nope")
    assert lara_main(["eval-offline", "--policy", nope, "--dataset", str(missing_data)]) == 2
    assert "not a LaRA checkpoint: no such folder" in _one_line(capsys)


def test_episodes_that_never_started_are_not_results(tmp_path, monkeypatch):
    """A policy that cannot load in a worker gives no record; records older versions wrote for
    such episodes (error, no step, no task name) are dropped on resume, so the episode re-runs."""
    from envs import episode_worker, evaluator

    cfg = evaluator.EvalConfig(policy="noop", tasks="0", episodes=2, out=tmp_path)
    monkeypatch.setitem(episode_worker._WORKER, "cfg", cfg)

    def broken(task):
        raise RuntimeError("SafetensorError: incomplete metadata")

    monkeypatch.setattr(episode_worker, "_worker_env", broken)
    record = episode_worker.run_episode(episode_worker.EpisodeUnit(0, 0))
    assert record["error"] and evaluator._never_started(record)

    poisoned = {**record, "suite": "libero_object"}
    good = {**poisoned, "episode": 1, "task_name": "t", "steps": 5, "error": None}
    (tmp_path / "episodes.jsonl").write_text(json.dumps(poisoned) + "\n" + json.dumps(good) + "\n")
    kept = evaluator._read_episodes(tmp_path / "episodes.jsonl", "libero_object")
    assert [r["episode"] for r in kept] == [1]
