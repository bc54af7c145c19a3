"""Training on an interrupted annotation run is refused with one line (issue 14, case 4)."""

import pytest
from test_curriculum_lara import _write_dataset

from data_pipeline.annotation.sidecar import annotation_dir, episode_path, write_meta
from lara.scripts.cli import main as lara_main


@pytest.fixture(scope="module")
def half_annotated(tmp_path_factory):
    """3 episodes; annotation run v1 was killed after episode 0 (meta.json: complete false)."""
    root = _write_dataset(tmp_path_factory.mktemp("data") / "half", lambda e, t: "grasp the bowl")
    run = annotation_dir(root, "v1")
    for ep in (1, 2):
        episode_path(run, ep).unlink()
    write_meta(run, {"complete": False, "backend": "parser"})
    return root


def _train(root, out, *extra) -> list[str]:
    return [
        "train",
        "--preset",
        "tiny",
        "--stage",
        "1",
        "--data.root",
        str(root),
        "--data.annotation",
        "v1",
        "--data.split",
        "all",
        "--output_dir",
        str(out),
        "--steps",
        "1",
        "--progress",
        "false",
        *extra,
    ]


def test_train_refuses_an_incomplete_annotation(half_annotated, tmp_path, capsys):
    assert lara_main(_train(half_annotated, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'v1'" in err and "2 of 3 episodes" in err and "[1, 2]" in err
    # the command that completes it, spelled as the CLI takes it (tests/test_command_hints.py)
    assert f"`lara annotate --dataset {half_annotated} --backend parser --name v1`" in err
    assert "--data.allow_incomplete_annotation true" in err
    assert not (tmp_path / "run" / "final").exists()


def test_allow_incomplete_annotation_trains_with_a_warning(half_annotated, tmp_path, caplog):
    from curriculum.lara_adapter import build_lerobot_dataset
    from curriculum.presets import load_train_config

    flags = _train(half_annotated, tmp_path / "run", "--data.allow_incomplete_annotation", "true")[5:]
    cfg = load_train_config([], flags, preset="tiny", stage=1)
    dataset, _ = build_lerobot_dataset(cfg)
    assert {e for e, _ in dataset.cot} == {0}
    assert "incomplete" in caplog.text and "training anyway" in caplog.text
