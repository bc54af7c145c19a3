"""Every command a message suggests is one the CLI accepts (issue 28 part 4, issue 29 case 8).

The packages' messages (string constants and f-strings outside docstrings) are scanned for
backtick-quoted `lara <command> ...` hints; each is parsed by that command's own parser (its
`parse_config`, or `lara train`'s argparse + `load_train_config`) without running the command.
Placeholders (a formatted value, an all-caps word such as DIR, `<size>`) become a dummy value of the
kind the flag takes; `...` (more flags may follow) is dropped.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from lara.scripts.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lara", "data_pipeline", "curriculum", "envs")
HOLE = "\x00"  # where an f-string's formatted value was
HINT = re.compile(r"`(lara [a-z][a-z-]*\b[^`]*)`")
# placeholders of flags whose value has a fixed vocabulary; any other placeholder is a path
DUMMY_BY_FLAG = {"--preset": "tiny", "--curriculum": "tiny", "--stage": "1", "--backend": "sim"}


class Parsed(Exception):
    """Raised by the hooks below once a command line has parsed: nothing runs."""


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def message_hints(path: Path) -> list[tuple[int, str]]:
    """(line, hint with HOLEs) for each `lara ...` hint in the module's non-docstring strings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)  # the f-string is read whole, not its parts
    hints = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
        else:
            continue
        hints += [(node.lineno, m.group(1)) for m in HINT.finditer(text)]
    return hints


def all_hints() -> list[tuple[str, int, str]]:
    return [
        (str(path.relative_to(REPO)), line, hint)
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line, hint in message_hints(path)
    ]


def is_placeholder(token: str) -> bool:
    return HOLE in token or bool(re.fullmatch(r"[A-Z][A-Z_]+|<[^>]+>", token))


def concrete_argv(hint: str, dummy_path: str) -> tuple[str, list[str]]:
    """(subcommand, argv) of a hint, placeholders replaced by dummy values."""
    words = shlex.split(hint.replace(HOLE, "HOLE"))[1:]  # drop "lara"
    command, argv = words[0], []
    for word in words[1:]:
        if word == "...":
            continue
        if is_placeholder(word.replace("HOLE", HOLE)):
            word = DUMMY_BY_FLAG.get(argv[-1] if argv else "", dummy_path)
        argv.append(word)
    return command, argv


def parse_only(command: str, argv: list[str], monkeypatch) -> None:
    """Parse `lara <command> argv` with the command's real parser; raises Parsed when it parsed."""
    module = importlib.import_module(SUBCOMMANDS[command][0].split(":")[0])
    if command == "train":  # argparse, then the typed config (presets, YAML, --a.b overrides)
        real_load = module.load_train_config

        def load(*args, **kwargs):
            real_load(*args, **kwargs)
            raise Parsed

        def curriculum(size, overlays, overrides, out, stages):
            load(overlays, overrides, preset=size, stage=stages[0])

        monkeypatch.setattr(module, "load_train_config", load)
        monkeypatch.setattr(module, "run_curriculum", curriculum)
    else:
        assert hasattr(module, "parse_config"), f"lara {command}: no parse_config to hook; add one here"
        real_parse = module.parse_config

        def parse(*args, **kwargs):
            real_parse(*args, **kwargs)
            raise Parsed

        monkeypatch.setattr(module, "parse_config", parse)
    module.main(argv)


def test_the_scan_finds_hints_and_placeholders(tmp_path):
    """The scanner itself: an f-string hint is found with its holes, a docstring's is not."""
    source = tmp_path / "m.py"
    source.write_text(
        '"""`lara eval --policy X` in a docstring."""\n'
        "def f(root):\n"
        '    raise ValueError(f"run `lara annotate --dataset {root} --name v1`, then train")\n'
    )
    assert message_hints(source) == [(3, f"lara annotate --dataset {HOLE} --name v1")]
    assert concrete_argv(f"lara train --preset <size> --stage {HOLE} --out DIR ...", "/d") == (
        "train",
        ["--preset", "tiny", "--stage", "1", "--out", "/d"],
    )


def test_a_positional_hint_is_refused(tmp_path, monkeypatch):
    """The rule catches what it is for: the old `lara annotate DIR --name v1` does not parse."""
    command, argv = concrete_argv("lara annotate DIR --name v1 --backend sim", str(tmp_path))
    with pytest.raises(Exception) as caught:
        parse_only(command, argv, monkeypatch)
    assert not isinstance(caught.value, Parsed)


def test_there_are_hints_to_check():
    hints = all_hints()
    assert len(hints) >= 5, hints
    assert any(path == "curriculum/lara_adapter.py" for path, _, _ in hints)


@pytest.mark.parametrize(
    "where,hint", [(f"{p}:{n}", h) for p, n, h in all_hints()], ids=lambda x: x.replace(HOLE, "{}")
)
def test_every_suggested_command_parses(where, hint, tmp_path, monkeypatch):
    command, argv = concrete_argv(hint, str(tmp_path))
    assert command in SUBCOMMANDS, f"{where}: `lara {command}` is no command (have {sorted(SUBCOMMANDS)})"
    if not argv:  # a command named, no command line suggested
        return
    try:
        parse_only(command, argv, monkeypatch)
    except Parsed:
        return
    except BaseException as err:  # LaraUserError, argparse's SystemExit, anything else
        pytest.fail(f"{where}: `{hint.replace(HOLE, '{...}')}` does not parse: {type(err).__name__}: {err}")
    pytest.fail(f"{where}: `lara {command}` returned without reaching its parser hook")
