"""`lara collect --suite libero_object --tasks all --episodes_per_task N --out DIR [--workers W]`.

Thin main over `data_pipeline.collect`; flags are the fields of `CollectConfig` (draccus), and the
dashed spellings from the docs (`--episodes-per-task`, `--hdf5-dir`, ...) are accepted too.
"""

from __future__ import annotations

import draccus

from data_pipeline.collect import CollectConfig, collect, summary


def _undash(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + sep + value
        out.append(arg)
    return out


def main(argv: list[str]) -> int:
    cfg = draccus.parse(CollectConfig, args=_undash(list(argv)), prog="lara collect")
    result = collect(cfg)
    print(summary(result))
    return 0
