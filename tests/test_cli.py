"""The `lara` entry point: usage, unknown commands, and user errors as one line (no traceback)."""

import pytest

from lara.scripts.cli import main


def test_usage_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("eval", "eval-offline", "collect", "convert", "annotate", "train", "bench", "rl", "demo"):
        assert f"  {name} " in out


def test_subcommand_help_names_the_subcommand(capsys):
    for name in ("eval", "rl"):
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: lara {name} ")


def test_unknown_command_and_user_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err
    assert main(["eval", "--suite", "libero_nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown LIBERO suite 'libero_nope'") and "Traceback" not in err
