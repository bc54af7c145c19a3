"""`lara annotate` end to end on a small LeRobot dataset written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipeline.annotation import sidecar
from lara.scripts.annotate_cli import main, parse_episodes
from lara.utils.errors import LaraUserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from annotation_fixtures import synthetic_episode

    from data_pipeline.lerobot_io import write_lerobot_dataset

    eps = []
    for i in range(3):
        ep = synthetic_episode(i, noise=0.0005)
        ep.images["wrist"] = ep.images["agentview"].copy()
        eps.append(ep)
    return write_lerobot_dataset(tmp_path_factory.mktemp("ds") / "demo", eps)


def _run_bytes(root, name):
    run = sidecar.annotation_dir(root, name)
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*.json*"))}


def test_cli_end_to_end(dataset, capsys):
    assert (
        main(
            [
                "--dataset",
                str(dataset),
                "--backend",
                "instruction",
                "--name",
                "v1",
                "--workers",
                "2",
                "--progress",
                "false",
                "--preview",
                "1",
                "--preview_format",
                "png",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3/3 episodes annotated" in out and "grasp the black bowl" in out and "preview:" in out
    assert (sidecar.annotation_dir(dataset, "v1") / "preview" / "episode_000000.png").is_file()
    cot = sidecar.load_annotations(dataset, "v1")
    assert len(cot) == 3 * 92 and cot[(2, 31)][0] == ("SUBTASK", "grasp the black bowl")
    first = _run_bytes(dataset, "v1")
    # idempotent: a fresh run under another name produces the same episode files
    run = ["--dataset", str(dataset), "--backend", "instruction", "--progress", "false"]
    assert main([*run, "--name", "v1b"]) == 0
    second = _run_bytes(dataset, "v1b")
    assert {k: v for k, v in first.items() if k != "meta.json"} == {
        k: v for k, v in second.items() if k != "meta.json"
    }
    assert main([*run, "--name", "v1"]) == 0
    assert "(0 this run)" in capsys.readouterr().out
    assert _run_bytes(dataset, "v1") == first  # resumed run with nothing to do: byte-identical


def test_cli_errors(dataset, tmp_path):
    with pytest.raises(LaraUserError, match="unknown annotation backend 'nope'"):
        main(["--dataset", str(dataset), "--backend", "nope", "--name", "x"])
    with pytest.raises(LaraUserError, match="does not exist"):
        main(["--dataset", str(tmp_path / "missing"), "--backend", "instruction", "--name", "x"])
    with pytest.raises(LaraUserError, match="choose a backend"):
        main(["--dataset", str(dataset), "--name", "x"])
    with pytest.raises(LaraUserError, match="unrecognized arguments: --bogus 1"):
        main(["--dataset", str(dataset), "--backend", "instruction", "--name", "x", "--bogus", "1"])
    with pytest.raises(LaraUserError, match="takes no positional arguments"):
        main([str(dataset), "--backend", "instruction", "--name", "x"])
    # sim backend on a dataset without LIBERO scene information: every episode skipped -> error
    with pytest.raises(LaraUserError, match="all 3 episodes were skipped"):
        main(["--dataset", str(dataset), "--backend", "sim", "--name", "sim1", "--progress", "false"])
    meta = sidecar.read_meta(sidecar.annotation_dir(dataset, "sim1"))
    assert meta["counts"]["skipped"] == 3


def test_lara_dispatcher_prints_user_errors(tmp_path, capsys):
    from lara.scripts.cli import main as lara_main

    missing = str(tmp_path / "missing")
    assert lara_main(["annotate", "--dataset", missing, "--backend", "instruction", "--name", "v1"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["sim", "instruction", "vlm"])
def test_presets_are_the_defaults_of_their_backend(backend):
    """`--config_path configs/annotation/<backend>.yaml` annotates exactly as `--backend <backend>`."""
    from data_pipeline.annotation.config import AnnotationConfig
    from lara.scripts.annotate_cli import AnnotateConfig
    from lara.utils.config_parsing import parse_config

    path = Path(__file__).resolve().parents[3] / "configs" / "annotation" / f"{backend}.yaml"
    preset = ["--config_path", str(path), "--dataset", "d", "--name", "n"]
    cfg = parse_config(AnnotateConfig, preset).annotation_config()
    assert cfg.config_hash() == AnnotationConfig(backend=backend).config_hash()
    tuned = parse_config(AnnotateConfig, [*preset, "--motion_dead_zone", "0.01"]).annotation_config()
    assert tuned.motion_dead_zone == 0.01 and tuned.backend == backend


def test_parse_episodes():
    assert parse_episodes("0-2,5") == [0, 1, 2, 5]
    assert parse_episodes(None) is None
    with pytest.raises(LaraUserError):
        parse_episodes("a-b")


def test_preview_mp4_draws_boxes(tmp_path):
    from annotation_fixtures import synthetic_episode

    from data_pipeline.annotation.preview import parse_objects, render_frame, render_previews
    from data_pipeline.annotation.sidecar import EpisodeAnnotation, write_episode
    from data_pipeline.annotation.source import InMemorySource

    assert parse_objects("bowl [1, 2, 5, 6]; plate") == [("bowl", [1, 2, 5, 6]), ("plate", None)]
    ep = synthetic_episode(0, size=16)
    ep.images["agentview"][:] = 0
    cot = [
        ("SUBTASK", "grasp the bowl"),
        ("OBJECTS", "bowl [2, 2, 10, 10]"),
        ("MOVE", "stop"),
        ("GRIPPER", "open"),
    ]
    frame = render_frame(ep.images["agentview"][0], cot, scale=3)
    assert frame.shape[1] == 48 and frame.shape[0] > 48
    assert frame[6, 6:30].max() > 0 and frame[20, 20].max() == 0  # box outline drawn, inside left alone
    ann = EpisodeAnnotation(episode=0, status="ok", num_frames=ep.length, frames=[cot] * ep.length)
    src = InMemorySource(tmp_path, [ep])
    write_episode(sidecar.annotation_dir(tmp_path, "v1"), ann)
    (path,) = render_previews(src, "v1", 1, tmp_path / "prev", fmt="mp4")
    assert path.suffix == ".mp4" and path.stat().st_size > 1000
