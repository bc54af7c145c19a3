"""`lara bench train`: the CPU path runs; the GPU target (qwen3vl-2b, bf16, batch 16, stage III
under 40 GB with gradient checkpointing) is a `gpu` test for a machine that has one."""

import json

import pytest
import torch

from lara.scripts.bench_train_cli import main as bench_main


@pytest.mark.slow
def test_bench_train_tiny_cpu(tmp_path, capsys):
    assert (
        bench_main(
            ["--preset", "tiny", "--batch_size", "4", "--steps", "2", "--warmup", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    rows = json.loads((tmp_path / "train.json").read_text())["results"]
    assert [r["stage"] for r in rows] == [1, 2, 3]
    assert all(r["samples_per_s"] > 0 and r["peak_memory_gib"] > 0 for r in rows)
    assert "samples/s" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bench_train_qwen3vl_2b_stage3_fits_40gb(tmp_path):
    assert (
        bench_main(
            [
                "--preset",
                "qwen3vl-2b",
                "--batch_size",
                "16",
                "--steps",
                "3",
                "--warmup",
                "2",
                "--gradient_checkpointing",
                "true",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = {r["stage"]: r for r in json.loads((tmp_path / "train.json").read_text())["results"]}
    print(json.dumps(rows, indent=1))
    assert rows[3]["peak_memory_gib"] < 40
