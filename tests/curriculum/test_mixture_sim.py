"""One model on two LIBERO suites, end to end as a user runs it: scripted demonstrations collected
in libero_object and libero_spatial, each annotated, one tiny stage-I run over both
(`lara train --dataset A,B`), and one `lara eval --suite libero_spatial,libero_object` of its
checkpoint (a smoke-length rollout: the table, not the success rate, is what is checked)."""

import os
import tempfile

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))

import json

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_collect_two_suites_train_one_model_and_score_it_on_both(tmp_path, capsys):
    from lara.modeling_lara import LaraPolicy
    from lara.scripts.annotate_cli import main as annotate_main
    from lara.scripts.collect_cli import main as collect_main
    from lara.scripts.eval_cli import main as eval_main
    from lara.scripts.train_cli import main as train_main

    roots = {}
    for suite in ("libero_object", "libero_spatial"):
        root = roots[suite] = tmp_path / suite
        collect = ["--suite", suite, "--tasks", "0", "--episodes_per_task", "1", "--camera_size", "64"]
        assert collect_main([*collect, "--out", str(root)]) == 0
        assert annotate_main(["--dataset", str(root), "--backend", "instruction", "--name", "v1"]) == 0

    run = tmp_path / "run"
    train = [
        "--preset",
        "tiny",
        "--stage",
        "1",
        "--dataset",
        f"{roots['libero_object']},{roots['libero_spatial']}",
    ]
    train += ["--out", str(run), "--steps", "2", "--batch_size", "2", "--progress", "false"]
    train += ["--data.split", "all"]  # one episode per suite: nothing to hold out
    assert train_main(train) == 0
    model = run / "final" / "model"
    stats = json.loads((model / "normalization.json").read_text())["features"]["action"]
    assert stats["count"] == sum(
        json.loads((r / "meta" / "info.json").read_text())["total_frames"] for r in roots.values()
    )  # joint statistics: every frame of both suites
    assert LaraPolicy.from_pretrained(model).fast is not None

    capsys.readouterr()
    out = tmp_path / "eval"
    argv = ["--policy", str(model), "--suite", "libero_spatial,libero_object", "--tasks", "0"]
    argv += ["--episodes", "1", "--max_steps", "3", "--camera_size", "64", "--out", str(out)]
    assert eval_main(argv) == 0
    printed = capsys.readouterr().out
    assert "libero_spatial: " in printed and "libero_object: " in printed and "average over 2" in printed
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["suite"] for r in records) == ["libero_object", "libero_spatial"]
    assert all(r["error"] is None and r["steps"] == 3 for r in records)
    report = (out / "report.md").read_text()
    assert "| policy | Spatial | Object | avg |" in report and "smoke-test step limit of 3" in report
