"""Issue 29 case 2, closed loop: `lara eval --policy STAGE1_RUN` acts through the explicit CoT and
FAST tokens stage I trained (not the untrained action expert), and run.json and report.md name the
stage and the inference path. One LIBERO episode of 8 policy steps (one chunk) from a 2-step tiny
stage-I run."""

import json

import pytest
from test_curriculum_lara import _cfg, _cot_frames

from curriculum.trainer import train

pytestmark = [pytest.mark.sim, pytest.mark.slow]  # ~1 min: a stage-I run, then one episode


def test_eval_of_a_stage1_run_acts_through_tokens_and_names_its_stage(
    tmp_path, monkeypatch, write_annotated_dataset
):
    from envs.evaluator import EvalConfig, evaluate
    from lara.generation import GenerationEngine
    from lara.scripts.eval_policies import policy_builder

    def untrained_expert(*args, **kwargs):  # main's path: the stage-III prefill and Euler steps
        raise AssertionError("the stage-I policy acted through its untrained action expert")

    monkeypatch.setattr(GenerationEngine, "predict_latent", untrained_expert)  # workers=1: in this process

    subtask = _cot_frames(lambda e, t: "grasp the bowl" if t < 6 else "place the bowl")
    data = write_annotated_dataset(tmp_path / "data", "v1", subtask)
    run = tmp_path / "s1"
    train(_cfg(1, run, data, "--steps", "2"))
    out = tmp_path / "eval"
    cfg = EvalConfig(
        policy=str(run), suite="libero_object", tasks="0", episodes=1, max_steps=8, camera_size=64, out=out
    )
    evaluate(cfg, policy_builder=policy_builder(cfg))
    path = "stage 1: explicit CoT + FAST action tokens"
    assert json.loads((out / "run.json").read_text())["policy_inference"] == {"stage": 1, "inference": path}
    assert f"Policy trained by stage 1; inference: {path}." in (out / "report.md").read_text()
    (record,) = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert record["error"] is None and record["steps"] == 8  # the expert was never asked
    assert record["chunk_latency_ms"] is not None  # a chunk was planned: through the tokens
