"""Dry run of benchmarks/gpu_check.sh on CPU with the tiny preset: the script runs end to end and
writes one JSON with the latency and training-memory sections the GPU run reports. Marked slow
(about 20 s: a subprocess that builds a policy and fits its FAST tokenizer); `make test-slow` runs it."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": os.environ.get("PYTHON", "python"),
        "OMP_NUM_THREADS": "1",
    }
    args = [
        "--device",
        "cpu",
        "--preset",
        "tiny",
        "--batch",
        "2",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--cot-tokens",
        "4",
    ]
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["preset"] == "tiny" and r["device"] == "cpu" and r["dtype"] == "float32"
    lat = r["latency"]
    assert lat["stage3_ms"] > 0 and lat["explicit_ms"] > 0 and lat["explicit_cot_tokens"] == 4
    # the explicit path generated the forced CoT and action tokens; the stage-III path none
    assert lat["explicit_tokens_per_chunk"] == 4 + lat["explicit_action_tokens"]
    for stage in (1, 3):
        step = r[f"train_stage{stage}"]
        assert step["batch"] == 2 and math.isfinite(step["loss"]) and step["peak_rss_gib_process"] > 0
