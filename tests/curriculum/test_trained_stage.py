"""Issue 29: a checkpoint records the stage that trained it and acts with what that stage trained
(case 2); a run's identity covers the episodes it reads, and a split made after a checkpoint does not
call its training episodes held-out (case 3); an interrupted save's tmp folder is removed on the next
start. Tiny preset on a 3-episode annotated dataset (test_curriculum_lara's), 1-2 steps per stage."""

import json
import shutil

import numpy as np
import pytest
import torch
from test_curriculum_lara import _cfg, _cot_frames

from curriculum import checkpointing as ckpt
from curriculum.trainer import train
from lara.utils.errors import LaraUserError


def _dataset(write_annotated_dataset, base):
    return write_annotated_dataset(
        base, "v1", _cot_frames(lambda e, t: "grasp the bowl" if t < 6 else "place the bowl")
    )


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, write_annotated_dataset):
    """A finished 2-step stage-I run (a step_000001 checkpoint and final/) on its own dataset."""
    base = tmp_path_factory.mktemp("stage1")
    data = _dataset(write_annotated_dataset, base / "data")
    run = base / "s1"
    train(_cfg(1, run, data, "--steps", "2", "--save_every", "1", "--keep_last", "5"))
    return data, run


def _obs(seed: int = 0):
    from envs.protocol import Observation

    rng = np.random.default_rng(seed)
    return Observation(
        images={c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
        state=rng.normal(size=8).astype(np.float32),
        instruction="put bowl 0 on the plate",
        sim_state=None,
    )


# ------------------------------------------------------------------ case 2
def test_stage1_checkpoint_records_stage_1_and_acts_through_cot_and_fast_tokens(stage1_run):
    data, run = stage1_run
    saved = json.loads((run / "final" / "model" / "config.json").read_text())
    assert saved["inference"]["stage"] == 1  # main saved 3: the untrained expert acted
    from envs.evaluator import EvalConfig
    from envs.policies import checkpoint_inference
    from lara.checkpoint import read_training_data
    from lara.scripts.eval_policies import policy_builder

    assert checkpoint_inference(str(run)) == {
        "stage": 1,
        "inference": "stage 1: explicit CoT + FAST action tokens",
    }
    policy = policy_builder(EvalConfig(policy=str(run)))()
    assert policy.cfg.inference.stage == 1
    expert_calls = []
    policy.engine.sample_actions = lambda *a, **k: expert_calls.append(a)  # the expert never acts
    action = policy.select_action(_obs())
    assert action.shape == (7,) and np.isfinite(action).all()
    assert policy.engine.num_generated_tokens > 0 and not expert_calls
    torch.manual_seed(0)
    again = policy.predict_action_chunk(_obs(), stage=1)  # greedy: the same chunk as select_action's
    np.testing.assert_allclose(again[0], action, atol=1e-5)
    # the episodes it trained on, recorded for eval-offline
    assert read_training_data(run / "final" / "model") == {str(data.resolve()): [0, 1, 2]}


def test_checkpoint_saved_before_stages_were_recorded_acts_as_its_trainer_state_says(stage1_run, tmp_path):
    from lara.checkpoint import checkpoint_config

    _, run = stage1_run
    old = shutil.copytree(run / "final", tmp_path / "final")
    cfg = json.loads((old / "model" / "config.json").read_text())
    cfg["inference"]["stage"] = 3  # what main wrote for every stage
    (old / "model" / "config.json").write_text(json.dumps(cfg))
    assert checkpoint_config(old / "model").inference.stage == 1  # trainer_state.json beside it


def test_rl_refuses_a_stage1_checkpoint_in_one_line(stage1_run, tmp_path):
    from curriculum.rl.config import RLConfig
    from curriculum.rl.loop import train_rl

    data, run = stage1_run
    for kind, match in (("flow", "action expert never trained"), ("tokens", "end of stage II")):
        with pytest.raises(LaraUserError, match=match):
            train_rl(RLConfig(policy=str(run), dataset=str(data), out=str(tmp_path / kind), kind=kind))
        assert not (tmp_path / kind).exists()


@pytest.mark.slow  # ~50 s on the shared 2-core machine: a second stage trained
def test_mid_stage2_checkpoint_is_partly_latent_and_stage3_from_stage1_gets_a_note(
    stage1_run, tmp_path, caplog
):
    data, s1 = stage1_run
    run = tmp_path / "s2"
    train(_cfg(2, run, data, "--init_from", str(s1), "--steps", "2", "--save_every", "1", "--keep_last", "5"))
    mid = run / "checkpoints" / "step_000001"
    saved = json.loads((mid / "model" / "config.json").read_text())["inference"]
    assert (saved["stage"], saved.get("latent_tags")) == (2, ["SUBTASK"])  # tag order, first level (p = 1/4)
    from envs.evaluator import EvalConfig
    from envs.policies import checkpoint_inference
    from lara.checkpoint import read_training_data
    from lara.scripts.eval_policies import policy_builder

    assert checkpoint_inference(str(mid))["inference"] == (
        "stage 2: partly latent CoT (latent SUBTASK; explicit OBJECTS, MOVE, GRIPPER) + FAST action tokens"
    )
    policy = policy_builder(EvalConfig(policy=str(mid)))()
    prefills = []
    prefill = policy.engine.prefill_tokens
    policy.engine.prefill_tokens = lambda *a: prefills.append(a[2:]) or prefill(*a)
    assert policy.select_action(_obs()).shape == (7,)
    assert prefills == [(False, ["SUBTASK"])]  # SUBTASK's latent slots in the prompt, the rest written
    assert policy.engine.num_generated_tokens > 0
    assert read_training_data(mid / "model") == {str(data.resolve()): [0, 1, 2]}

    caplog.set_level("WARNING", logger="curriculum.builders")
    train(_cfg(3, tmp_path / "s3", data, "--init_from", str(s1), "--steps", "1"))
    assert "stage II skipped" in caplog.text


# ------------------------------------------------------------------ case 3
@pytest.mark.slow  # ~45 s on the shared 2-core machine: a run, eval-offline, two resumes
def test_split_after_a_checkpoint_is_refused_by_eval_offline_and_by_resume(tmp_path, write_annotated_dataset):
    from curriculum.offline.config import OfflineEvalConfig
    from curriculum.offline.evaluate import run_offline_eval
    from data_pipeline.splits import make_split, split_path

    data = _dataset(write_annotated_dataset, tmp_path / "data")
    run = tmp_path / "run"
    train(_cfg(1, run, data, "--steps", "2", "--save_every", "1", "--keep_last", "5"))
    shutil.rmtree(run / "final")  # as if killed after step_000001
    step = run / "checkpoints" / "step_000001"
    # eval-offline would hold out an episode the checkpoint trained on: refused, no split written
    offline = OfflineEvalConfig(
        policy=str(step), dataset=str(data), out=str(tmp_path / "off"), heldout_fraction=0.34
    )
    with pytest.raises(LaraUserError, match=r"trained on episode\(s\) \d of .*holds out"):
        run_offline_eval(offline)
    assert not split_path(data).exists()
    # a split written anyway (main's eval-offline wrote it): the resume is refused, naming it
    split = make_split(data, heldout_fraction=0.34, seed=0)
    resume = _cfg(1, run, data, "--steps", "2", "--save_every", "1", "--keep_last", "5", "--resume", "true")
    gone = ", ".join(map(str, split.heldout))
    with pytest.raises(
        LaraUserError, match=rf"3 episodes then, 2 now; no longer read: \[{gone}\].*lara_split"
    ):
        train(resume)
    split_path(data).unlink()  # the data as it was: the resume runs
    assert train(resume).step == 2


def test_interrupted_save_tmp_is_removed_on_the_next_start(tmp_path, caplog):
    tmp = ckpt.tmp_path(ckpt.checkpoints_dir(tmp_path) / ckpt.step_name(4))
    tmp.mkdir(parents=True)
    (tmp / "model.safetensors").write_bytes(b"\0" * 1024)  # a save cut short by a full disk
    assert ckpt.latest_checkpoint(tmp_path) is None
    assert not tmp.exists() and "did not complete" in caplog.text


def test_a_checkpoint_from_before_runs_recorded_their_episodes_still_resumes(tmp_path):
    from curriculum.config import DATA_EPISODES

    identity = {"stage": 1, "steps": 4}
    state = ckpt.TrainerState(2, 1, 0, 0, "old-fingerprint", identity, 8)
    ckpt.write_trainer_state(tmp_path, state)
    now = {**identity, DATA_EPISODES: {"data": [0, 1]}}
    assert ckpt.check_resumable(tmp_path, "new-fingerprint", now, 1).step == 2
    with pytest.raises(LaraUserError, match="different config.*steps: 4 there vs 5 now"):
        ckpt.check_resumable(tmp_path, "new-fingerprint", {**now, "steps": 5}, 1)


def test_inference_paths_in_words_and_latent_tags_that_cannot_lead_the_cot():
    from lara.inference_plan import describe, token_latent_tags
    from lara.presets import load_config

    cfg = load_config("tiny", ["--inference.stage=2", "--inference.latent_tags=[SUBTASK,OBJECTS]"])
    assert token_latent_tags(cfg) == ["SUBTASK", "OBJECTS"]
    assert describe(cfg, 1) == "stage 1: explicit CoT + FAST action tokens"
    assert describe(cfg) == (
        "stage 2: partly latent CoT (latent SUBTASK, OBJECTS; explicit MOVE, GRIPPER) + FAST action tokens"
    )
    cfg.inference.latent_tags = None
    assert describe(cfg) == "stage 2: latent CoT (SUBTASK, OBJECTS, MOVE, GRIPPER) + FAST action tokens"
    assert describe(cfg, 3).startswith("stage 3: latent CoT + flow-matching action expert")
    cfg.inference.latent_tags = ["MOVE"]  # latent between explicit tags: not where training put it
    with pytest.raises(LaraUserError, match="latent tags must lead the CoT"):
        describe(cfg)
    with pytest.raises(LaraUserError, match="not CoT tags"):
        load_config("tiny", ["--inference.latent_tags=[PLANET]"])
