"""The one way the single-file benchmarks publish a measurement: a markdown table printed and written
to `OUT/results.md`, beside `OUT/results.json` with the rows and the arguments that produced them.

Imported as `from results_table import ...`: a benchmark runs as `python benchmarks/NAME.py`, which
puts this folder first on sys.path.
"""

from __future__ import annotations

import json
from pathlib import Path


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def publish(table: str, out: Path | None, payload: dict) -> None:
    """Print `table`; with `out`, write it and `payload` (paths as strings) there."""
    print(table)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / "results.md").write_text(table + "\n")
