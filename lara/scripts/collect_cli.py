"""`lara collect --suite libero_object --tasks all --episodes_per_task N --out DIR [--workers W]`.

Thin main over `data_pipeline.collect`: the flags are the fields of `CollectConfig`
(`lara.utils.config_parsing`: `--config_path` YAML plus `--field value`).
"""

from __future__ import annotations

from data_pipeline.collect import CollectConfig, collect, summary
from lara.utils.config_parsing import parse_config


def main(argv: list[str]) -> int:
    result = collect(parse_config(CollectConfig, argv, prog="lara collect"))
    print(summary(result))
    return 0
