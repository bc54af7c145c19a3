"""Parse a typed dataclass config from YAML + command line (draccus), with one-line errors.

Every `lara` subcommand parses its settings this way: `parse_config(EvalConfig, argv)` accepts
`--config_path file.yaml` plus `--field value` overrides (nested fields as `--lora.enabled true`).
There are no positional arguments: every input is a flag, so each command reads the same way. On
top of draccus:
- a bare boolean flag (`--video`) means `--video true`;
- a list or tuple field takes `a,b,c` as well as YAML's `[a, b, c]` (`--stage_steps 200,200,3000`);
- a positional word, a dashed spelling (`--episodes-per-task`), a bad key or value becomes a
  `LaraUserError` that names it and says what to write instead, not an argparse exit or a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import typing
from typing import TypeVar

import draccus

from lara.utils.errors import LaraUserError

T = TypeVar("T")
CONFIG_PATH = "config_path"  # draccus' flag for a YAML file
NULLS = ("null", "None", "~")  # YAML's None: never wrapped into a list
_UnionType = type(int | None)


def field_type(config_class: type, dotted: str) -> object | None:
    """The annotated type of `a.b.c` in a (nested) dataclass, `Optional` unwrapped; None if no such field."""
    current: object = config_class
    for name in dotted.split("."):
        if not (isinstance(current, type) and dataclasses.is_dataclass(current)):
            return None
        hints = typing.get_type_hints(current)
        if name not in hints or name not in {f.name for f in dataclasses.fields(current)}:
            return None
        current = hints[name]
        args = [a for a in typing.get_args(current) if a is not type(None)]
        if typing.get_origin(current) in (typing.Union, _UnionType) and len(args) == 1:
            current = args[0]
    return current


def _split(arg: str) -> tuple[str, str | None]:
    """`--a.b=v` -> ("a.b", "v"); `--a.b` -> ("a.b", None)."""
    name, sep, value = arg[2:].partition("=")
    return name, (value if sep else None)


def _is_sequence(tp: object) -> bool:
    return typing.get_origin(tp) in (list, tuple) or tp in (list, tuple)


def normalize_args(config_class: type, argv: list[str], prog: str) -> list[str]:
    """Check the shape of the command line and apply the conveniences above; returns draccus' argv.

    After expansion every option is `--key value` or `--key=value`, so a word where a key belongs is
    a positional argument: refused with the hint to write it as a flag."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise LaraUserError(
                f"unexpected argument {arg!r}: `{prog}` takes no positional arguments, "
                f"every input is a `--field value` flag (see `{prog} --help`)"
            )
        name, value = _split(arg)
        tp = field_type(config_class, name)
        if tp is None and name != CONFIG_PATH:
            underscored = name.replace("-", "_")
            if underscored != name and field_type(config_class, underscored) is not None:
                raise LaraUserError(f"--{name}: options are spelled with underscores, write --{underscored}")
        if value is None:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if tp is bool and (nxt is None or nxt.startswith("--")):
                value, i = "true", i + 1  # a bare boolean flag
            elif nxt is None:
                raise LaraUserError(f"--{name} needs a value (see `{prog} --help`)")
            else:
                value, i = nxt, i + 2
        else:
            i += 1
        if tp is not None and _is_sequence(tp) and not value.lstrip().startswith("[") and value not in NULLS:
            value = f"[{value}]"
        out += [f"--{name}", value]
    return out


def check_config_file(path: str, prog: str = "lara") -> None:
    """A `--config_path` file that draccus can read: it exists, is YAML, and holds a mapping of
    `field: value` (or nothing). Otherwise one `LaraUserError` line naming the file and what is wrong
    (draccus would raise a traceback without the file's name)."""
    from pathlib import Path

    import yaml

    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a YAML file" if file.is_dir() else "does not exist"
        raise LaraUserError(f"--{CONFIG_PATH} {path}: the file {what} (configs/ holds the presets)")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise LaraUserError(f"{path}: not valid YAML{where} ({problem})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LaraUserError(f"{path}: cannot read the config file ({err})") from None
    if data is not None and not isinstance(data, dict):
        raise LaraUserError(
            f"{path}: holds a {type(data).__name__}, not a mapping of `field: value` lines "
            f"(see `{prog} --help` for the fields)"
        )


def parse_config(config_class: type[T], argv: list[str] | None = None, prog: str | None = None) -> T:
    """`config_class` from `argv` (default: the process's command line), or a `LaraUserError`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or "lara"
    if any(a in ("-h", "--help") for a in argv):
        draccus.parse(config_class=config_class, args=argv, prog=prog)  # prints help and exits 0
    args = normalize_args(config_class, argv, prog)
    for i, arg in enumerate(args[:-1]):
        if arg == f"--{CONFIG_PATH}":
            check_config_file(args[i + 1], prog)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return draccus.parse(config_class=config_class, args=args, prog=prog)
    except SystemExit as err:  # argparse: unknown option or missing value
        message = [line for line in stderr.getvalue().splitlines() if "error:" in line]
        detail = message[-1].split("error:", 1)[1].strip() if message else f"exit {err.code}"
        raise LaraUserError(f"{detail} (see `{prog} --help`)") from None
    except draccus.utils.DecodingError as err:
        raise LaraUserError(f"bad config value: {err}") from None
    except draccus.utils.ParsingError as err:  # wraps a ValueError / TypeError of a __post_init__ check
        raise LaraUserError(str(err.__cause__ or err)) from None
    except (ValueError, TypeError) as err:  # raised by a config's __post_init__ validation
        raise LaraUserError(str(err)) from None


def parse_over(config_class: type[T], defaults: dict, args: list[str]) -> T:
    """draccus.parse with `defaults` (a nested dict: a preset's encoding, YAML overlays merged on it)
    in place of a config file, then `--a.b value` overrides. Errors propagate (draccus wraps the
    configs' `__post_init__` ValueErrors); callers turn them into their own one-line message."""
    import tempfile
    from pathlib import Path

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "defaults.yaml"
        path.write_text(yaml.safe_dump(defaults) if defaults else "{}\n")
        return draccus.parse(
            config_class=config_class, config_path=path, args=list(args), exit_on_error=False
        )


def _flat(encoded: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(encoded, dict):
        return {prefix: encoded}
    out: dict[str, object] = {}
    for key, value in encoded.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _flag_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def flags_of(config: object, base: object) -> list[str]:
    """The `--field value` flags that turn the typed config `base` into `config` (nested fields as
    `--a.b`), in field order: how a caller that builds a typed config shows it as the command a
    user would type (`lara eval --config_path PRESET` + these flags)."""
    ours, theirs = _flat(draccus.encode(config)), _flat(draccus.encode(base))
    flags: list[str] = []
    for key, value in ours.items():
        if theirs.get(key) != value:
            flags += [f"--{key}", _flag_value(value)]
    return flags
