"""Offline (open-loop) evaluation of a LaRA checkpoint on held-out episodes of a LeRobot dataset.

Why open-loop metrics: closed-loop success needs a simulator (LIBERO here; SimplerEnv for Bridge
cannot run on these machines), while every dataset can say how far the predicted chunk is from the
recorded one. Those numbers mean little alone, so every metric is reported next to two trivial
baselines computed on the very same frames: "repeat the last action" (the previous recorded action
for the whole chunk; the no-op at t = 0) and "dataset mean" (the mean action of the training
episodes). A model that does not beat them has learned nothing useful about actions.

What is measured, on frames t = 0, s, 2s, ... (s = `stride`, default the chunk size) of each
held-out episode (`data_pipeline.splits`: deterministic, recorded in the dataset's meta/):
- per-dimension L1 and MSE of the predicted chunk a_hat[t : t + H] against the recorded actions
  (steps past the episode end are not counted), in the environment's units, and the arm L1 in
  normalized units (dimensions comparable); L1 per chunk step (error grows along the horizon);
- gripper open/close accuracy (sign of the gripper command, -1 open / +1 close);
- visual-foresight L1 and per-tag CoT token accuracy (`curriculum.offline.probes`).
Outputs: `metrics.json`, `report.md`, `trajectories.png` (predicted vs recorded, a few episodes).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from curriculum.offline.config import OfflineEvalConfig
from curriculum.offline.results import EpisodeTrace, OfflineResult
from data_pipeline.key_mapping import KeyMapping, load_key_mapping
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
ARM = slice(0, -1)  # every action dim but the gripper (last)


# ------------------------------------------------------------------ metrics (pure numpy)
def chunk_metrics(
    pred: np.ndarray, rec: np.ndarray, valid: np.ndarray, scale: np.ndarray | None = None
) -> dict:
    """Metrics of predicted chunks pred (N, H, A) against recorded rec (N, H, A) where valid (N, H).

    Returns per-dim `l1` / `mse` (A,), `arm_l1` / `arm_mse` (means over the arm dims), `l1_per_step`
    (H,) (arm mean), `gripper_accuracy` (sign agreement, recorded command > 0 = close) and, given
    the normalization half-ranges `scale` (A,), `arm_l1_normalized`.
    """
    if pred.shape != rec.shape or pred.shape[:2] != valid.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, rec {rec.shape}, valid {valid.shape}")
    w = valid[..., None].astype(np.float64)  # (N, H, 1)
    n = max(float(valid.sum()), 1.0)
    err = pred.astype(np.float64) - rec.astype(np.float64)  # (N, H, A)
    l1 = (np.abs(err) * w).sum((0, 1)) / n  # (A,)
    mse = (err**2 * w).sum((0, 1)) / n  # (A,)
    steps = np.maximum(valid.sum(0), 1)  # (H,)
    per_step = (np.abs(err[..., ARM]).mean(-1) * valid).sum(0) / steps  # (H,)
    grip_ok = (pred[..., -1] > 0) == (rec[..., -1] > 0)  # (N, H)
    out = {
        "l1": l1.tolist(),
        "mse": mse.tolist(),
        "arm_l1": float(l1[ARM].mean()),
        "arm_mse": float(mse[ARM].mean()),
        "l1_per_step": per_step.tolist(),
        "gripper_accuracy": float((grip_ok & valid).sum() / n),
        "num_actions": int(valid.sum()),
    }
    if scale is not None:
        out["arm_l1_normalized"] = float((l1[ARM] / np.asarray(scale, np.float64)[ARM]).mean())
    return out


def recorded_chunks(actions: np.ndarray, starts: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Recorded chunks (N, H, A) a[t : t + H] (last action repeated past the end) and valid (N, H)."""
    T = actions.shape[0]
    idx = starts[:, None] + np.arange(horizon)[None]  # (N, H)
    return actions[np.minimum(idx, T - 1)], idx < T


def last_action_baseline(actions: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """(N, H, A): the previous recorded action a[t-1] repeated; at t = 0 the no-op (arm 0, gripper open)."""
    noop = np.zeros(actions.shape[1], np.float32)
    noop[-1] = -1.0
    prev = np.where((starts > 0)[:, None], actions[np.maximum(starts - 1, 0)], noop)  # (N, A)
    return np.repeat(prev[:, None], horizon, axis=1)


# ------------------------------------------------------------------ data helpers
def resolve_mapping(cfg: OfflineEvalConfig, model_cameras: list[str]) -> KeyMapping:
    """The key mapping (`auto`: the preset that fits the dataset's features); Bridge cameras
    default to the ones the checkpoint reads (agentview = image_0, image_<i>)."""
    from data_pipeline.bridge import bridge_mapping

    mapping = load_key_mapping(cfg.mapping, cfg.dataset)
    if mapping.name.startswith("bridge"):
        cams = cfg.cameras
        if cams is None:
            cams = [0] + sorted(
                int(c.split("_")[1])
                for c in model_cameras
                if c.startswith("image_") and c.split("_")[1].isdigit()
            )
        mapping = bridge_mapping(cams, base=mapping)
    elif cfg.cameras is not None:
        raise LaraUserError(
            "--cameras selects Bridge cameras (image_0..3); this dataset's mapping is "
            f"{mapping.name!r}, whose cameras are {sorted(mapping.cameras)}"
        )
    return mapping


def _probe_samples(root: Path, mapping: KeyMapping, policy, annotation: str | None):
    """A function (episode, frame) pairs -> collated training-format samples (docs/interfaces.md)."""
    from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples

    cfg = policy.cfg
    sc = SampleConfig(
        mapping=mapping,
        chunk_size=cfg.chunk_size,
        image_size=cfg.vision.image_size,  # type: ignore[arg-type]
        foresight_image_size=cfg.foresight.image_size,
        norm_mode=policy.stats.mode,
        annotation=annotation,
    )
    ds = LaraSampleDataset(root, sc, stats=policy.stats)
    row = {(int(e), int(f)): i for i, (e, f) in enumerate(zip(ds.episode_index, ds.frame_index))}
    return lambda frames: collate_samples([ds[row[k]] for k in frames])


def _newest_annotation(root: Path) -> str | None:
    from data_pipeline.annotation.sidecar import list_annotations

    runs = list_annotations(root)
    return str(runs[-1]["name"]) if runs else None


def trained_episodes(checkpoint: Path, root: Path) -> list[int] | None:
    """The episodes of dataset `root` the checkpoint (and the stages before it) trained on, from its
    `training_data.json` (lara.checkpoint); None when it does not say."""
    from lara.checkpoint import read_training_data

    record = read_training_data(checkpoint)
    for folder, episodes in (record or {}).items():
        if Path(folder).resolve() == root.resolve():
            return episodes
    return None


# ------------------------------------------------------------------ the evaluation
def evaluate_offline(cfg: OfflineEvalConfig) -> OfflineResult:
    """Run the open-loop evaluation (see the module docstring); writes nothing (see `write_outputs`)."""
    from curriculum.offline.probes import check_compatible, cot_token_accuracy, foresight_l1
    from data_pipeline.bridge import check_bridge_dataset, episodes_without_language
    from data_pipeline.lerobot_io import open_lerobot_dataset, read_lerobot_dataset
    from data_pipeline.splits import make_split
    from data_pipeline.stats import compute_stats, read_low_dim
    from lara.checkpoint import check_checkpoint, resolve_checkpoint_dir
    from lara.inference_plan import describe
    from lara.modeling_lara import LaraPolicy

    root = Path(cfg.dataset)
    t0 = time.perf_counter()
    checkpoint = check_checkpoint(
        resolve_checkpoint_dir(cfg.policy)
    )  # before the dataset: seconds, not minutes
    dataset = open_lerobot_dataset(root)  # opened once: each opening costs seconds
    features = dict(dataset.meta.features)
    policy = LaraPolicy.from_pretrained(checkpoint, device=cfg.device)
    mapping = resolve_mapping(cfg, list(policy.cfg.vision.cameras))
    if mapping.name.startswith("bridge"):
        check_bridge_dataset(root, mapping, action_dim=policy.cfg.action_dim, dataset=dataset)
    low = read_low_dim(root, mapping)
    mode = policy.stats.mode if policy.stats is not None else "quantile"
    compat = check_compatible(
        policy, mapping, features, compute_stats(low, mode), cfg.policy, str(root), cfg.allow_stats_mismatch
    )
    no_language = episodes_without_language(root, dataset)
    trained = trained_episodes(checkpoint, root)
    if trained is None:
        compat.warnings.append(
            f"{checkpoint} does not record which episodes of {root} it trained on (saved before checkpoints "
            "recorded them, or trained on another copy of the dataset): held-out episodes are held out "
            "only if the split was made before that training"
        )
    split = make_split(
        root,
        cfg.heldout_fraction,
        cfg.split_seed,
        exclude={"no_language": no_language},
        overwrite=cfg.overwrite_split,
        dataset=dataset,
        trained=trained,
        trained_by=str(checkpoint),
    )
    chosen = split.heldout[: cfg.episodes] if cfg.episodes else list(split.heldout)
    horizon, stride = policy.cfg.chunk_size, cfg.stride or policy.cfg.chunk_size
    train_mask = np.isin(low["episode_index"], split.train)
    mean_action = low["action"][train_mask].mean(0).astype(np.float32)  # (A,)
    scale = np.asarray(policy.stats.features["action"].q99) - np.asarray(policy.stats.features["action"].q01)
    scale = (
        np.maximum(scale / 2.0, 1e-6)
        if mode == "quantile"
        else np.maximum(np.asarray(policy.stats.features["action"].std), 1e-6)
    )

    preds, recs, valids, lasts, traces, probe_frames = [], [], [], [], [], []
    for ep in read_lerobot_dataset(root, mapping, episodes=chosen):
        starts = np.arange(0, ep.length, stride)  # (N,)
        chunks = []
        for b0 in range(0, len(starts), cfg.batch_size):
            ts = starts[b0 : b0 + cfg.batch_size]
            obs = {
                "images": {c: ep.images[c][ts] for c in policy.cfg.vision.cameras},
                "state": ep.state[ts],
                "instruction": [ep.instruction] * len(ts),
            }
            torch.manual_seed(
                cfg.seed + 7919 * ep.episode_index + int(ts[0])
            )  # flow-matching noise: reproducible
            chunks.append(
                np.asarray(policy.predict_action_chunk(obs, stage=cfg.stage, num_steps=cfg.num_steps))
            )
        pred = np.concatenate(chunks)  # (N, H, A)
        rec, valid = recorded_chunks(ep.action, starts, horizon)
        preds.append(pred), recs.append(rec), valids.append(valid)
        lasts.append(last_action_baseline(ep.action, starts, horizon))
        traces.append(EpisodeTrace(ep.episode_index, ep.instruction, ep.action, starts, pred))
        probe_frames += [(ep.episode_index, int(t)) for t in starts]
    if not preds:
        raise LaraUserError(f"{root}: no held-out episode to evaluate")
    pred, rec, valid, last = (np.concatenate(x) for x in (preds, recs, valids, lasts))
    metrics = {
        "model": chunk_metrics(pred, rec, valid, scale),
        "baseline_last_action": chunk_metrics(last, rec, valid, scale),
        "baseline_dataset_mean": chunk_metrics(np.broadcast_to(mean_action, pred.shape), rec, valid, scale),
    }
    probes = _run_probes(cfg, root, mapping, policy, probe_frames, foresight_l1, cot_token_accuracy)
    dataset_info = {
        "root": str(root),
        "mapping": mapping.name,
        "cameras": mapping.cameras,
        "episodes": split.num_episodes,
        "train_episodes": len(split.train),
        "heldout_episodes": len(split.heldout),
        "evaluated_episodes": chosen,
        "no_language_episodes": len(no_language),
        "split_seed": split.seed,
        "heldout_fraction": split.heldout_fraction,
        "chunks": int(pred.shape[0]),
        "chunk_size": horizon,
        "stride": stride,
        "stats_match": compat.stats_match,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    conf = asdict(cfg)
    conf["inference_stage"] = cfg.stage or policy.cfg.inference.stage
    conf["inference"] = describe(policy.cfg, conf["inference_stage"])  # the path in words (report)
    return OfflineResult(conf, dataset_info, metrics, probes, compat.warnings, traces)


def _run_probes(cfg, root, mapping, policy, frames, foresight_fn, cot_fn) -> dict:
    """Foresight L1 (always) and CoT token accuracy (checkpoints that write CoT, with an annotation)."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.probe_frames == 0 or not frames:
        return {"foresight": None, "cot": None, "cot_note": "probes disabled (--probe-frames 0)"}
    pick = sorted(rng.choice(len(frames), min(cfg.probe_frames, len(frames)), replace=False))
    frames = [frames[i] for i in pick]
    stage = cfg.stage or policy.cfg.inference.stage
    writes_cot = stage in (1, 2) and policy.fast is not None
    annotation = cfg.annotation or (_newest_annotation(root) if writes_cot else None)
    out: dict = {"probe_frames": len(frames), "annotation": annotation}
    was_training = policy.training
    policy.eval()
    visual, cot, n = {"foresight_l1": 0.0, "copy_current_frame_l1": 0.0}, {}, 0
    samples = _probe_samples(root, mapping, policy, annotation if writes_cot else None)
    for b0 in range(0, len(frames), cfg.batch_size):
        part = frames[b0 : b0 + cfg.batch_size]
        batch = samples(part)
        torch.manual_seed(cfg.seed)
        v = foresight_fn(policy, batch)
        if v["foresight_l1"] is None:
            visual = None
        elif visual is not None:
            for k in visual:
                visual[k] += v[k] * len(part)
        n += len(part)
        if writes_cot and annotation:
            for tag, c in cot_fn(policy, batch).items():
                acc = cot.setdefault(tag, {"correct": 0.0, "total": 0.0})
                acc["correct"] += c["correct"]
                acc["total"] += c["total"]
    policy.train(was_training)
    out["foresight"] = None if visual is None else {k: v / n for k, v in visual.items()}
    if not writes_cot:
        out["cot"], out["cot_note"] = (
            None,
            f"inference stage {stage} writes no CoT text (latent or no FAST tokenizer)",
        )
    elif not annotation:
        out["cot"], out["cot_note"] = None, "no CoT annotation in the dataset (lara annotate ...)"
    else:
        out["cot"] = {
            tag: {"accuracy": c["correct"] / max(c["total"], 1), "tokens": int(c["total"])}
            for tag, c in cot.items()
        }
        out["cot_note"] = "teacher-forced next-token accuracy, every segment explicit"
    return out


def write_outputs(result: OfflineResult, out_dir: str | Path) -> dict[str, Path]:
    """metrics.json, report.md, trajectories.png in `out_dir`; returns their paths."""
    from curriculum.offline.report import plot_trajectories, render_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "report": out / "report.md", "plot": out / "trajectories.png"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=2, sort_keys=True, default=str))
    n_plot = int(result.config.get("plot_episodes", 3))
    plot_trajectories(result.traces[:n_plot], paths["plot"])
    paths["report"].write_text(render_report(result, plot_name=paths["plot"].name))
    return paths


def run_offline_eval(cfg: OfflineEvalConfig) -> tuple[OfflineResult, dict[str, Path]]:
    result = evaluate_offline(cfg)
    return result, write_outputs(result, cfg.out)
