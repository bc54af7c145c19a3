"""`lara train` takes `--config_path` like every other lara command (issue 28 part 2), and keeps
the documented `--config`; both append to the same list of YAML files, in order."""

import pytest

from lara.scripts.train_cli import _parser, main
from lara.utils.errors import LaraUserError


def test_both_spellings_append_to_one_list_in_order():
    args, rest = _parser().parse_known_args(["--config_path", "a.yaml", "--config", "b.yaml", "--steps", "3"])
    assert args.config == ["a.yaml", "b.yaml"] and rest == ["--steps", "3"]


def test_config_path_reaches_the_training_config(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(LaraUserError, match=f"config file {missing} not found"):
        main(["--preset", "tiny", "--stage", "1", "--config_path", str(missing)])
