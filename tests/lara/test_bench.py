"""`lara bench latency` on the tiny preset: runs, prints the table, writes the JSON figures."""

from __future__ import annotations

import json

from lara import bench_cli


def test_bench_latency_writes_figures(tmp_path, capsys):
    rc = bench_cli.main(["latency", "--reps", "1", "--warmup", "0", "--cot-tokens", "6", "--steps", "2",
                         "--threads", "1", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "ratio latent / explicit" in out
    r = json.loads((tmp_path / "latency.json").read_text())
    assert r["latent_ms"] > 0 and r["explicit_ms"] > 0
    assert r["ratio"] == round(r["latent_ms"] / r["explicit_ms"], 4)
    assert r["cot_tokens"] == 6 and r["expert_steps"] == 2 and r["action_tokens"] >= 1


def test_bench_registry(capsys):
    assert bench_cli.main(["--help"]) == 0
    assert "latency" in capsys.readouterr().out
    assert bench_cli.main(["no-such-benchmark"]) == 2
