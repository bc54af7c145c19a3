"""Name -> `module:function(argv) -> int` dispatch, shared by `lara` and `lara bench`.

Modules are imported only when their entry runs, so `lara eval` never imports the model stack
and `lara train` never imports MuJoCo.
"""

from __future__ import annotations

import importlib
import sys

Registry = dict[str, tuple[str, str]]  # name -> ("module:function", one-line help)


def usage(registry: Registry, header: str, section: str) -> str:
    width = max(len(name) for name in registry)
    lines = [header, "", f"{section}:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in registry.items()]
    return "\n".join(lines)


def dispatch(registry: Registry, argv: list[str], header: str, section: str, prog: str) -> int:
    """Run `registry[argv[0]]` with the remaining arguments; help or an unknown name prints usage."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(registry, header, section))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in registry:
        print(
            f"error: unknown {section[:-1]} {name!r}\n\n{usage(registry, header, section)}", file=sys.stderr
        )
        return 2
    module_name, func_name = registry[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(
                f"error: `{prog} {name}` is not available in this build ({module_name} is missing)",
                file=sys.stderr,
            )
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)
