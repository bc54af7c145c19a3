"""`parse_config`, the one way every `lara` subcommand reads its flags: YAML + `--field value`,
bare booleans, comma lists, and one-line errors for positional words and dashed spellings."""

from dataclasses import dataclass, field

import pytest

from lara.utils.config_parsing import normalize_args, parse_config
from lara.utils.errors import LaraUserError


@dataclass
class Inner:
    enabled: bool = False
    rank: int = 4


@dataclass
class Settings:
    dataset: str = ""
    episodes_per_task: int = 1
    video: bool = False
    stage_steps: tuple[int, int, int] = (1, 2, 3)
    cameras: list[int] | None = None
    lora: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1:
            raise ValueError(f"--episodes_per_task must be >= 1, got {self.episodes_per_task}")


def test_flags_yaml_and_conveniences(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("dataset: data/x\nepisodes_per_task: 5\nlora:\n  rank: 8\n")
    cfg = parse_config(
        Settings,
        [
            "--config_path",
            str(preset),
            "--video",
            "--stage_steps",
            "4,5,6",
            "--cameras=0,1",
            "--lora.enabled",
            "--episodes_per_task",
            "7",
        ],
    )
    assert cfg == Settings(
        dataset="data/x",
        episodes_per_task=7,
        video=True,
        stage_steps=(4, 5, 6),
        cameras=[0, 1],
        lora=Inner(enabled=True, rank=8),
    )
    assert parse_config(Settings, ["--stage_steps", "[7, 8, 9]", "--cameras", "null"]).stage_steps == (
        7,
        8,
        9,
    )
    assert normalize_args(Settings, ["--video", "--lora.enabled", "false"], "x") == [
        "--video",
        "true",
        "--lora.enabled",
        "false",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data/x"], "unexpected argument 'data/x': `lara x` takes no positional arguments"),
        (["--dataset", "d", "extra"], "unexpected argument 'extra'"),
        (
            ["--episodes-per-task", "3"],
            "--episodes-per-task: options are spelled with underscores, write --episodes_per_task",
        ),
        (["--dataset"], "--dataset needs a value"),
        (["--bogus", "1"], "unrecognized arguments: --bogus 1 (see `lara x --help`)"),
        (["--episodes_per_task", "0"], "--episodes_per_task must be >= 1, got 0"),
        (["--episodes_per_task", "many"], "bad config value"),
    ],
)
def test_bad_command_lines_are_one_line_user_errors(argv, message):
    with pytest.raises(LaraUserError) as err:
        parse_config(Settings, argv, prog="lara x")
    assert message in str(err.value)
