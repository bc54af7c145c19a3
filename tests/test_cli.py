"""The `lara` entry point: usage, unknown commands, user errors as one line (no traceback), and one
flag style for every subcommand (typed config, `--field value`, instant `--help`)."""

import subprocess
import sys

import pytest

from lara.scripts.bench_cli import BENCHMARKS
from lara.scripts.cli import SUBCOMMANDS, main

# every command line that parses flags: the subcommands, with `bench` split into its benchmarks
COMMANDS = [name for name in SUBCOMMANDS if name != "bench"] + [f"bench {name}" for name in BENCHMARKS]
HEAVY = ("torch", "transformers", "lerobot", "h5py", "datasets", "mujoco", "robosuite")


def test_usage_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("eval", "eval-offline", "collect", "convert", "annotate", "train", "bench", "rl", "demo"):
        assert f"  {name} " in out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_instant_and_names_the_command(command):
    """`lara collect --help` once took 3.9 s: a subcommand's heavy modules load only when it runs."""
    argv = [*command.split(), "--help"]
    code = (
        f"import sys\nfrom lara.scripts.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n"
        f"    pass\nprint('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"usage: lara {command} ") and "HEAVY []" in out, out


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "train"])  # train: curriculum's parser
def test_no_positional_arguments_and_underscored_flags(command, capsys):
    assert main([*command.split(), "data/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: unexpected argument 'data/x': `lara {command}` takes no positional")
    assert main([*command.split(), "--no-such-flag", "1"]) == 2
    assert "unrecognized arguments: --no-such-flag 1" in capsys.readouterr().err


def test_unknown_command_and_user_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err
    assert main(["eval", "--suite", "libero_nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown LIBERO suite 'libero_nope'") and "Traceback" not in err
    assert main(["eval", "--policy", "replay"]) == 2
    assert "--policy replay needs --dataset DIR" in capsys.readouterr().err
    assert main(["collect", "--episodes-per-task", "2"]) == 2
    assert "write --episodes_per_task" in capsys.readouterr().err
