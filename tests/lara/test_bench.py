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
    # the explicit path really generates the CoT and the action tokens (an unseeded observed
    # vocabulary once stopped it after one token and made explicit inference look 4x cheaper)
    assert r["explicit_tokens_generated"] == r["cot_tokens"] + r["action_tokens"]


def test_bench_registry(capsys):
    assert bench_cli.main(["--help"]) == 0
    assert "latency" in capsys.readouterr().out
    assert bench_cli.main(["no-such-benchmark"]) == 2
