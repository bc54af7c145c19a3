"""Parse a typed dataclass config from YAML + command line (draccus), with one-line errors.

`parse_config(EvalConfig, argv)` accepts `--config_path file.yaml` plus `--field value`
overrides (draccus), and two conveniences draccus lacks:
- a bare boolean flag (`--video`) means `--video true`;
- a bad key or value becomes a `LaraUserError` naming it, not an argparse exit or a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import typing
from typing import TypeVar

import draccus

from lara.utils.errors import LaraUserError

T = TypeVar("T")


def _bool_fields(config_class: type) -> set[str]:
    hints = typing.get_type_hints(config_class)
    return {f.name for f in dataclasses.fields(config_class) if hints.get(f.name) is bool}


def expand_bare_flags(config_class: type, argv: list[str]) -> list[str]:
    """`--video` (followed by nothing or by another option) -> `--video true`."""
    flags = {f"--{name}" for name in _bool_fields(config_class)}
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in flags and (nxt is None or nxt.startswith("--")):
            out.append("true")
    return out


def parse_config(config_class: type[T], argv: list[str], prog: str | None = None) -> T:
    argv = expand_bare_flags(config_class, list(argv))
    if any(a in ("-h", "--help") for a in argv):
        draccus.parse(config_class=config_class, args=argv, prog=prog)  # prints help and exits 0
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return draccus.parse(config_class=config_class, args=argv, prog=prog)
    except SystemExit as err:  # argparse: unknown option or missing value
        message = [line for line in stderr.getvalue().splitlines() if "error:" in line]
        detail = message[-1].split("error:", 1)[1].strip() if message else f"exit {err.code}"
        raise LaraUserError(f"{detail} (see `{prog or 'lara'} --help`)") from None
    except draccus.utils.DecodingError as err:
        raise LaraUserError(f"bad config value: {err}") from None
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
        return draccus.parse(config_class=config_class, config_path=path, args=list(args),
                             exit_on_error=False)
