"""One run over several LeRobot datasets: `--dataset A,B` and `data.mixture` (curriculum.mixture,
data_pipeline.samples.MixtureSampleDataset): joint statistics, one FAST tokenizer and one CoT
vocabulary over both, each dataset's own annotation run, weighted resumable epochs."""

import os
import tempfile

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="lara-test-hf-datasets-"))

import json

import numpy as np
import pytest
import torch

from curriculum.builders import build_dataset
from curriculum.presets import load_train_config
from curriculum.sampler import ResumableSampler, epoch_permutation
from lara.utils.errors import LaraUserError

T = 12  # frames per episode


def _episode(index: int, suite: str, scale: float, offset: float):
    from data_pipeline.episode import Episode

    rng = np.random.default_rng(index + (100 if suite == "libero_spatial" else 0))
    action = (scale * np.clip(rng.normal(0, 0.3, (T, 7)), -1, 1) + offset).astype(np.float32)
    action[:, -1] = np.where(np.arange(T) < T // 2, -1.0, 1.0)
    state = (scale * rng.normal(size=(T, 8)) + offset).astype(np.float32)
    return Episode(
        images={c: rng.integers(0, 256, (T, 32, 32, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction=f"{suite} task",
        task_index=0,
        task_name="task_0",
        suite=suite,
        episode_index=index,
    )


def _write(root, suite, episodes, scale, offset, run, subtask):
    """A dataset of `episodes` episodes whose only annotation run is `run` (SUBTASK text `subtask`)."""
    from data_pipeline.annotation.sidecar import EpisodeAnnotation, annotation_dir, write_episode, write_meta
    from data_pipeline.lerobot_io import write_lerobot_dataset

    eps = [_episode(i, suite, scale, offset) for i in range(episodes)]
    write_lerobot_dataset(root, eps)
    run_dir = annotation_dir(root, run)
    for ep in eps:
        frames = [[("SUBTASK", subtask), ("GRIPPER", "open" if t < 6 else "close")] for t in range(T)]
        write_episode(
            run_dir, EpisodeAnnotation(episode=ep.episode_index, status="ok", num_frames=T, frames=frames)
        )
    write_meta(run_dir, {"complete": True})
    return root


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two datasets with different action ranges, from two suites, each with its own run name."""
    base = tmp_path_factory.mktemp("mix")
    a = _write(base / "object", "libero_object", 3, 1.0, 0.0, "v1", "grasp the bowl")
    b = _write(base / "spatial", "libero_spatial", 2, 3.0, 0.5, "v2", "open the zebra drawer")
    return a, b


def _cfg(out, *extra):
    return load_train_config(
        [],
        preset="tiny",
        stage=1,
        overrides=["--output_dir", str(out), "--batch_size", "4", "--progress", "false", *extra],
    )


def _mixture_yaml(path, a, b, wa=1.0, wb=1.0):
    path.write_text(
        f"data:\n  mixture:\n    - {{root: {a}, weight: {wa}, annotation: v1}}\n"
        f"    - {{root: {b}, weight: {wb}, annotation: v2}}\n"
    )
    return path


def test_config_names_every_dataset_in_the_run_identity(two, tmp_path):
    a, b = two
    plain = _cfg(tmp_path, "--data.root", f"{a},{b}")
    assert [e.root for e in plain.data.datasets()] == [str(a), str(b)]
    assert {e.annotation for e in plain.data.datasets()} == {"latest"}
    mixed = load_train_config([_mixture_yaml(tmp_path / "m.yaml", a, b, 2.0, 0.5)], preset="tiny", stage=1)
    assert [(e.weight, e.annotation, e.mapping) for e in mixed.data.datasets()] == [
        (2.0, "v1", "auto"),
        (0.5, "v2", "auto"),
    ]
    # every dataset is part of what a resumed run must match
    assert _cfg(tmp_path, "--data.root", str(a)).fingerprint() != plain.fingerprint()
    other = load_train_config([_mixture_yaml(tmp_path / "n.yaml", a, b, 2.0, 1.0)], preset="tiny", stage=1)
    assert other.fingerprint() != mixed.fingerprint()
    with pytest.raises(LaraUserError, match="data.root and data.mixture both"):
        load_train_config([tmp_path / "m.yaml"], ["--data.root", str(a)], preset="tiny", stage=1)
    with pytest.raises(LaraUserError, match="named twice"):
        _cfg(tmp_path, "--data.root", f"{a},{a}")
    with pytest.raises(LaraUserError, match="weight .* must be > 0"):
        load_train_config([_mixture_yaml(tmp_path / "z.yaml", a, b, 0.0)], preset="tiny", stage=1)


def test_libero_four_overlay_names_the_four_official_datasets():
    cfg = load_train_config(["configs/train/data/libero_four.yaml"], preset="tiny", stage=1)
    assert [e.root for e in cfg.data.datasets()] == [
        f"data/{s}_no_noops" for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10")
    ]
    assert cfg.data.norm_mode == "min_max" and cfg.model.chunk_size == 8 and cfg.data.mapping == "libero"


def test_joint_statistics_and_each_datasets_own_annotation(two, tmp_path):
    from curriculum.lara_adapter import action_chunks, served_cots
    from data_pipeline.stats import read_low_dim

    a, b = two
    dataset, collate = build_dataset(_cfg(tmp_path, "--data.root", f"{a},{b}"))  # "latest" of each
    assert len(dataset) == 5 * T and dataset.epoch_length == 5 * T
    raw = np.concatenate([read_low_dim(a)["action"], read_low_dim(b)["action"]])  # (5T, 7)
    act = dataset.stats.features["action"]
    np.testing.assert_allclose(act.max, raw.max(0), rtol=1e-6)  # joint: spans both datasets
    np.testing.assert_allclose(act.q01[:6], np.quantile(raw, 0.01, axis=0)[:6], rtol=1e-5)
    assert act.max[0] > read_low_dim(a)["action"][:, 0].max() + 0.5  # not the first dataset's own
    # a sample of the second dataset is normalized with the joint statistics
    item = dataset[3 * T + 4]
    assert item["dataset_index"] == 1 and item["instruction"] == "libero_spatial task"
    expect = dataset.stats.normalize("action", torch.from_numpy(read_low_dim(b)["action"][4 : 4 + 8]))
    torch.testing.assert_close(item["action"], expect.float())
    assert item["cot"][0] == ("SUBTASK", "open the zebra drawer")  # dataset B's own run v2
    assert dataset[0]["cot"][0] == ("SUBTASK", "grasp the bowl")  # dataset A's own run v1
    # the helpers the policy builder uses see both datasets (CoT vocabulary, FAST fit)
    texts = {cot[0][1] for cot in served_cots(dataset)}
    assert texts == {"grasp the bowl", "open the zebra drawer"}
    chunks = action_chunks(dataset, 1000)  # (N, H, A) normalized
    assert chunks.shape == (5 * T, 8, 7)
    np.testing.assert_allclose(chunks[3 * T + 4], expect.numpy(), atol=1e-6)
    batch = collate([dataset[0], dataset[3 * T]])
    assert batch["dataset_index"].tolist() == [0, 1]


def test_weighted_epochs_are_resumable(two, tmp_path):
    a, b = two
    equal, _ = build_dataset(
        load_train_config([_mixture_yaml(tmp_path / "e.yaml", a, b)], preset="tiny", stage=1)
    )
    # weight 1 everywhere: exactly the permutation a plain dataset of the same items gets
    assert equal.epoch_order(7, 3) == epoch_permutation(5 * T, 7, 3)
    cfg = load_train_config([_mixture_yaml(tmp_path / "w.yaml", a, b, 2.0, 0.5)], preset="tiny", stage=1)
    dataset, _ = build_dataset(cfg)
    assert dataset.epoch_length == 2 * 3 * T + T
    orders = [dataset.epoch_order(7, e) for e in (0, 1)]
    for order in orders:
        counts = np.bincount(order, minlength=len(dataset))
        assert (counts[: 3 * T] == 2).all()  # A: every frame twice
        assert counts[3 * T :].sum() == T and counts[3 * T :].max() == 1  # B: half its frames, once
    assert set(orders[0][i] for i in range(len(orders[0])) if orders[0][i] >= 3 * T) != {
        x for x in orders[1] if x >= 3 * T
    }  # a different half of B each epoch
    assert dataset.epoch_order(7, 1) == orders[1]  # from (seed, epoch) alone
    # the trainer's sampler: a resumed position yields the rest of the very same epoch
    sampler = ResumableSampler(dataset.epoch_length, seed=7, order=dataset.epoch_order)
    sampler.set_position(1, 10)
    assert list(sampler) == orders[1][10:]
    ranks = [
        ResumableSampler(dataset.epoch_length, seed=7, rank=r, world_size=2, order=dataset.epoch_order)
        for r in (0, 1)
    ]
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(orders[0])


def test_two_dataset_run_trains_with_joint_stats_and_one_fast_tokenizer(two, tmp_path):
    """`lara train --dataset A,B` (tiny preset, 2 steps): the checkpoint holds the joint statistics,
    the FAST tokenizer and a CoT vocabulary that covers both datasets' annotation runs."""
    from lara.modeling_lara import LaraPolicy
    from lara.scripts.train_cli import main

    a, b = two
    out = tmp_path / "run"
    args = ["--preset", "tiny", "--stage", "1", "--dataset", f"{a},{b}", "--out", str(out)]
    assert main([*args, "--steps", "2", "--batch_size", "4", "--progress", "false"]) == 0
    model = out / "final" / "model"
    assert (model / "fast_tokenizer.json").is_file()
    dataset, _ = build_dataset(_cfg(tmp_path, "--data.root", f"{a},{b}"))
    saved = json.loads((model / "normalization.json").read_text())
    np.testing.assert_allclose(saved["features"]["action"]["max"], dataset.stats.features["action"].max)
    policy = LaraPolicy.from_pretrained(model)
    ids = set(policy.output_vocab.ids)
    for text in ("SUBTASK: grasp the bowl\n", "SUBTASK: open the zebra drawer\n"):
        assert set(policy.tokenizer.encode(text)) <= ids
    # the FAST tokenizer encodes both datasets' chunks (fit on all of them, round trip within its error)
    chunk = dataset[3 * T]["action"].numpy()  # (H, A) of dataset B
    err = np.abs(policy.fast.decode(policy.fast.encode(chunk)) - chunk).max()
    assert err < 0.1


@pytest.mark.slow
def test_weighted_mixture_resumes_bit_exact(two, tmp_path):
    """Weights 0.25 / 0.25 make an epoch 15 items (3 batches of 4), so 6 steps cross into a second
    epoch with a different random subset; a run resumed from its step-2 checkpoint ends with the
    weights of the uninterrupted run."""
    import shutil

    from curriculum_testing import assert_same_weights, weights

    from curriculum.trainer import train

    a, b = two
    mix = _mixture_yaml(tmp_path / "q.yaml", a, b, 0.25, 0.25)
    args = ["--steps", "6", "--save_every", "2", "--keep_last", "5", "--batch_size", "4"]
    args += ["--progress", "false"]
    out = tmp_path / "run"
    cfg = load_train_config([mix], ["--output_dir", str(out), *args], preset="tiny", stage=1)
    result = train(cfg)
    assert result.step == 6
    full = weights(out)
    state = json.loads((out / "final" / "trainer_state.json").read_text())
    assert (state["epoch"], state["epoch_samples"]) == (1, 12)  # 3 batches per epoch (drop_last): 2 epochs
    shutil.rmtree(out / "final")
    shutil.rmtree(out / "checkpoints" / "step_000004")  # the newest left is step 2's
    again = ["--output_dir", str(out), *args, "--resume", "true"]
    resumed = train(load_train_config([mix], again, preset="tiny", stage=1))
    assert [r["step"] for r in resumed.history] == [3, 4, 5, 6]  # it did continue from step 2
    assert_same_weights(full, weights(out), atol=0.0)
