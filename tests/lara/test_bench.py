"""`lara bench latency` on the tiny preset: runs, prints the table, writes the JSON figures."""

from __future__ import annotations

import json

from lara.scripts import bench_cli


def test_bench_latency_writes_figures(tmp_path, capsys):
    rc = bench_cli.main(
        [
            "latency",
            "--reps",
            "1",
            "--warmup",
            "0",
            "--cot_tokens",
            "6",
            "--steps",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
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


def test_bench_latency_breakdown(tmp_path, capsys):
    """`--breakdown`: the parts of a stage-III chunk, in the table and the JSON, through public methods
    only."""
    import inspect

    from lara.scripts import bench_latency

    rc = bench_cli.main(
        [
            "latency",
            "--stage3_only",
            "--breakdown",
            "--reps",
            "2",
            "--warmup",
            "0",
            "--steps",
            "3",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "prefill (pixels + vision tower + backbone" in out and "end to end / prefill" in out
    b = json.loads((tmp_path / "latency.json").read_text())["breakdown"]
    for key in (
        "preprocess_ms",
        "prefill_ms",
        "expert_1_step_ms",
        "expert_ms",
        "postprocess_ms",
        "end_to_end_ms",
    ):
        assert (
            b[key] > 0
            and b["cpu_ms"][key] >= 0
            and b["spread_ms"][key][0] <= b[key] <= b["spread_ms"][key][1]
        )
    assert b["ratio_end_to_end_to_prefill"] == round(b["end_to_end_ms"] / b["prefill_ms"], 3)
    assert b["prefill_tokens"] > 0 and b["expert_gflop_per_step"] > 0
    assert "policy._" not in inspect.getsource(bench_latency.breakdown)  # the policy's public API only
