"""`lara eval-offline`: metrics and baselines (exact values on hand-made arrays), the whole run on a
tiny Bridge checkpoint (report, JSON, PNG, split), and bad input (dims, cameras, statistics)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from curriculum.offline.evaluate import chunk_metrics, last_action_baseline, recorded_chunks
from curriculum.offline.probes import check_compatible, stats_differences
from data_pipeline.key_mapping import load_key_mapping
from data_pipeline.lerobot_io import read_lerobot_dataset
from lara.normalization import NormalizationStats
from lara.presets import load_config
from lara.utils.errors import LaraUserError


# ------------------------------------------------------------------ pure metrics
def test_chunk_metrics_exact_values():
    rec = np.zeros((2, 3, 3), np.float32)  # N=2 chunks, H=3, A=3 (2 arm dims + gripper)
    rec[..., -1] = [[-1, -1, 1], [1, 1, 1]]
    pred = rec.copy()
    pred[0, :, 0] = 0.5  # arm dim 0 off by 0.5 in chunk 0
    pred[1, 2, -1] = -1  # one gripper mistake, at a step that is padding
    valid = np.array([[True, True, True], [True, True, False]])
    m = chunk_metrics(pred, rec, valid, scale=np.array([0.25, 1.0, 1.0]))
    assert m["num_actions"] == 5
    np.testing.assert_allclose(m["l1"], [1.5 / 5, 0.0, 0.0])
    np.testing.assert_allclose(m["mse"], [0.75 / 5, 0.0, 0.0])
    assert m["arm_l1"] == pytest.approx(0.15) and m["arm_l1_normalized"] == pytest.approx(
        (0.3 / 0.25 + 0) / 2
    )
    np.testing.assert_allclose(m["l1_per_step"], [0.125, 0.125, 0.25])
    assert m["gripper_accuracy"] == 1.0  # the wrong gripper is past the episode end: not counted
    pred[1, 0, -1] = -1
    assert chunk_metrics(pred, rec, valid)["gripper_accuracy"] == pytest.approx(4 / 5)
    assert chunk_metrics(rec, rec, valid)["arm_l1"] == 0.0


def test_recorded_chunks_and_last_action_baseline():
    actions = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)  # (T=5, A=2)
    starts = np.array([0, 3])
    rec, valid = recorded_chunks(actions, starts, 4)
    np.testing.assert_array_equal(rec[1], actions[[3, 4, 4, 4]])
    np.testing.assert_array_equal(valid, [[True] * 4, [True, True, False, False]])
    last = last_action_baseline(actions, starts, 4)
    np.testing.assert_array_equal(last[0], np.tile([0.0, -1.0], (4, 1)))  # no-op at t = 0: gripper open
    np.testing.assert_array_equal(last[1], np.tile(actions[2], (4, 1)))


# ------------------------------------------------------------------ the whole run
@pytest.fixture(scope="module")
def bridge_setup(tmp_path_factory, write_bridge_dataset, tiny_bridge_checkpoint):
    base = tmp_path_factory.mktemp("offline")
    data = write_bridge_dataset(base / "bridge")
    ckpt = tiny_bridge_checkpoint(data, base / "ckpt")
    return data, ckpt


def test_eval_offline_cli_on_bridge(bridge_setup, tmp_path, capsys):
    from lara.scripts.cli import main as lara_main

    data, ckpt = bridge_setup
    data = Path(shutil.copytree(data, tmp_path / "data"))
    out = tmp_path / "out"
    args = [
        "eval-offline",
        "--policy",
        str(ckpt),
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--heldout_fraction",
        "0.4",
        "--probe_frames",
        "4",
        "--stride",
        "8",
    ]
    assert lara_main(args) == 0
    assert "baseline_last_action" in capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())
    split = json.loads((data / "meta/lara_split.json").read_text())
    d = result["dataset"]
    assert d["evaluated_episodes"] == split["heldout"] and len(split["heldout"]) == 2
    assert not set(split["heldout"]) & set(split["train"]) and split["excluded"] == {"no_language": [2]}
    assert d["mapping"] == "bridge" and d["chunk_size"] == 16 and d["stats_match"] is True
    # the baselines, recomputed here from the recorded episodes
    episodes = list(read_lerobot_dataset(data, "bridge", episodes=split["heldout"]))
    recs, valids, lasts = [], [], []
    for ep in episodes:
        starts = np.arange(0, ep.length, 8)
        rec, valid = recorded_chunks(ep.action, starts, 16)
        recs.append(rec), valids.append(valid), lasts.append(last_action_baseline(ep.action, starts, 16))
    rec, valid, last = np.concatenate(recs), np.concatenate(valids), np.concatenate(lasts)
    expect = chunk_metrics(last, rec, valid)
    got = result["metrics"]["baseline_last_action"]
    assert got["arm_l1"] == pytest.approx(expect["arm_l1"]) and got["num_actions"] == int(valid.sum())
    assert d["chunks"] == rec.shape[0]
    model = result["metrics"]["model"]
    assert len(model["l1"]) == 7 and len(model["l1_per_step"]) == 16
    assert np.isfinite(model["l1"]).all() and model["arm_l1"] > 0 and 0.0 <= model["gripper_accuracy"] <= 1.0
    fs = result["probes"]["foresight"]
    assert fs["foresight_l1"] > 0 and fs["copy_current_frame_l1"] >= 0
    assert result["probes"]["cot"] is None and "stage 3" in result["probes"]["cot_note"]
    report = (out / "report.md").read_text()
    assert (
        "| repeat last action |" in report
        and "| dataset mean |" in report
        and "visual-foresight L1" in report
    )
    png = (out / "trajectories.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # a second run reuses the recorded split and gives the same numbers (seeded flow-matching noise)
    assert lara_main([*args[:5], "--out", str(tmp_path / "out2"), *args[7:]]) == 0
    again = json.loads((tmp_path / "out2/metrics.json").read_text())
    assert again["metrics"]["model"]["l1"] == pytest.approx(model["l1"])


def test_cot_accuracy_for_stage1_inference(bridge_setup, tmp_path):
    from curriculum.offline.evaluate import OfflineEvalConfig, evaluate_offline
    from lara.scripts.annotate_cli import main as annotate_main

    data, ckpt = bridge_setup
    data = Path(shutil.copytree(data, tmp_path / "data"))
    assert (
        annotate_main(
            ["--dataset", str(data), "--backend", "instruction", "--name", "v1", "--progress", "false"]
        )
        == 0
    )
    cfg = OfflineEvalConfig(
        str(ckpt),
        str(data),
        out=str(tmp_path / "o"),
        stage=1,
        episodes=1,
        probe_frames=2,
        heldout_fraction=0.4,
    )
    result = evaluate_offline(cfg)
    cot = result.probes["cot"]
    assert set(cot) == {"SUBTASK", "OBJECTS", "MOVE", "GRIPPER", "END"}
    assert cot["END"]["tokens"] == 2 and all(
        v["tokens"] > 0 and 0.0 <= v["accuracy"] <= 1.0 for v in cot.values()
    )
    assert result.probes["annotation"] == "v1"


# ------------------------------------------------------------------ bad input
def test_cli_errors_name_what_differs(bridge_setup, tmp_path, capsys, write_bridge_dataset):
    from lara.scripts.cli import main as lara_main

    data, ckpt = bridge_setup
    no_stats = Path(shutil.copytree(ckpt, tmp_path / "no_stats"))
    (no_stats / "normalization.json").unlink()
    out = ["--out", str(tmp_path / "o")]
    assert lara_main(["eval-offline", "--policy", str(no_stats), "--dataset", str(data), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error:")
        and "no action normalization statistics" in err
        and len(err.splitlines()) == 1
    )
    wide = write_bridge_dataset(
        tmp_path / "wide",
        lengths=[12, 12],
        instructions=["put the carrot on the plate"] * 2,
        action_dim=10,
        cameras=1,
    )
    wide_run = ["eval-offline", "--policy", str(ckpt), "--dataset", str(wide), *out]
    assert lara_main([*wide_run, "--mapping", "libero"]) == 2
    assert "has 10 dims" in capsys.readouterr().err
    assert not (wide / "meta/lara_split.json").exists()  # nothing written on bad input


def _fake_policy(cameras: list[str], stats: NormalizationStats | None, action_dim: int = 7):
    cfg = load_config("tiny", [f"--vision.cameras=[{','.join(cameras)}]", f"--action_dim={action_dim}"])
    return SimpleNamespace(cfg=cfg, stats=stats)


def _stats(offset: float = 0.0) -> NormalizationStats:
    rng = np.random.default_rng(0)
    act = rng.normal(offset, 0.1, (400, 7))
    act[:, -1] = np.sign(act[:, -1])
    return NormalizationStats.from_arrays(
        {"action": act, "state": rng.normal(0, 1, (400, 8))}, passthrough_dims={"action": [6]}
    )


def test_check_compatible_cameras_and_statistics():
    features = {
        "observation.images.image_0": {"shape": (32, 32, 3)},
        "observation.state": {"shape": (8,)},
        "action": {"shape": (7,)},
    }
    bridge = load_key_mapping("bridge")
    with pytest.raises(LaraUserError, match=r"maps only \['agentview'\] \(missing \['wrist'\]\)"):
        check_compatible(
            _fake_policy(["agentview", "wrist"], _stats()), bridge, features, _stats(), "ck", "ds"
        )
    from data_pipeline.bridge import bridge_mapping

    with pytest.raises(LaraUserError, match=r"observation\.images\.image_1'\] missing"):
        check_compatible(
            _fake_policy(["agentview", "image_1"], _stats()),
            bridge_mapping((0, 1)),
            features,
            _stats(),
            "ck",
            "ds",
        )
    with pytest.raises(LaraUserError, match="action .* has 7 dims, checkpoint ck was trained for 8"):
        check_compatible(
            _fake_policy(["agentview"], _stats(), action_dim=8), bridge, features, _stats(), "ck", "ds"
        )
    assert check_compatible(
        _fake_policy(["agentview"], _stats()), bridge, features, _stats(), "ck", "ds"
    ).stats_match
    with pytest.raises(LaraUserError, match=r"differ from ds's .*action\[0\]"):
        check_compatible(_fake_policy(["agentview"], _stats(5.0)), bridge, features, _stats(), "ck", "ds")
    res = check_compatible(
        _fake_policy(["agentview"], _stats(5.0)),
        bridge,
        features,
        _stats(),
        "ck",
        "ds",
        allow_stats_mismatch=True,
    )
    assert not res.stats_match and "action[0]" in res.warnings[0]
    assert stats_differences(_stats(), _stats()) == []


def test_eval_offline_on_a_libero_dataset(tmp_path):
    """The LIBERO path: two cameras (agentview + wrist), 8-action chunks, the libero mapping (auto)."""
    import torch

    from curriculum.offline.evaluate import OfflineEvalConfig, run_offline_eval
    from data_pipeline.episode import Episode
    from data_pipeline.lerobot_io import write_lerobot_dataset
    from data_pipeline.stats import load_or_compute_stats
    from lara.modeling_lara import LaraPolicy

    rng = np.random.default_rng(0)
    episodes = []
    for i in range(4):
        T = 14
        action = rng.uniform(-0.5, 0.5, (T, 7)).astype(np.float32)
        action[:, -1] = np.where(np.arange(T) < T // 2, -1.0, 1.0)
        state = rng.normal(size=(T, 8)).astype(np.float32)
        episodes.append(
            Episode(
                images={
                    c: rng.integers(0, 256, (T, 32, 32, 3), dtype=np.uint8) for c in ("agentview", "wrist")
                },
                state=state,
                action=action,
                gripper=action[:, -1].copy(),
                ee_pos=state[:, :3].copy(),
                ee_ori=state[:, 3:6].copy(),
                instruction="pick up the black bowl and place it on the plate",
                episode_index=i,
            )
        )
    data = write_lerobot_dataset(tmp_path / "libero", episodes, "libero")
    torch.manual_seed(0)
    policy = LaraPolicy(load_config("tiny"))
    policy.set_normalization(load_or_compute_stats(data, "libero"))
    policy.save_pretrained(tmp_path / "ckpt")
    result, paths = run_offline_eval(
        OfflineEvalConfig(
            str(tmp_path / "ckpt"),
            str(data),
            out=str(tmp_path / "out"),
            heldout_fraction=0.25,
            probe_frames=2,
        )
    )
    d = result.dataset
    assert d["mapping"] == "libero" and d["chunk_size"] == 8 and d["no_language_episodes"] == 0
    assert d["train_episodes"] == 3 and len(d["evaluated_episodes"]) == 1 and d["chunks"] == 2
    assert result.metrics["model"]["num_actions"] == 14
    # LIBERO's gripper is exactly +-1 and the model's output is binarized: accuracy is a multiple of 1/14
    assert round(result.metrics["model"]["gripper_accuracy"] * 14, 6) % 1 == 0
    assert all(p.is_file() for p in paths.values())
