"""`lara probe`: what the latent thoughts and the `<img_next>` slots of a checkpoint hold.

1. Probes. On the probed episodes (the dataset's held-out split, `data_pipeline.splits`, shared with
   `lara eval-offline`), the final hidden state of every latent slot and every `<img_next>` slot
   (`probe_features`) feeds linear probes (`probe_fit`) fit on some EPISODES and scored on the others
   (frames of one episode are near-duplicates: a frame split would score memory, not readability):
   the tag's own latent slot(s), all latent slots, and the mean `<img_next>` slot, to what the
   annotation says at that frame (SUBTASK phase text, OBJECTS target name and box, MOVE direction,
   GRIPPER open/closed). Controls, so that a number means something: the same probes on a randomly
   initialized model of the same configuration (what the input alone makes readable through a random
   network), on shuffled train labels, and the majority class (mean box for IoU).
2. Decoding. The top-k tokens the stage-I LM head would emit from each latent slot, beside the
   annotation's text, for a few frames; over every probed frame, how often the top-k holds a token of
   that tag's annotation text (trained model and random init).
3. Foresight. L1 and cosine of the `<img_next>` predictions against the EMA target of the true next
   frame, next to the trivial predictor "the next frame looks like this one", along the episode.
Outputs (`write_probe_outputs`): probe.json, probe.md, probes.png, decoding.png, foresight.png.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from curriculum.offline import probe_fit as pf
from curriculum.offline.probe_config import ProbeConfig
from curriculum.offline.probe_features import Features, collect, frame_labels, slot_layout, top_tokens
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
TARGETS = ("SUBTASK", "OBJECTS", "BOX", "MOVE", "GRIPPER")  # BOX: the OBJECTS target's box (IoU)
SOURCE_TAG = {"BOX": "OBJECTS"}  # the latent slot whose tag a target belongs to


def random_twin(policy, seed: int):
    """A randomly initialized model of the same configuration, tokenizer and output vocabulary (the
    backbone built from the checkpoint's architecture, never from pretrained weights)."""
    from lara.modeling_lara import LaraPolicy

    torch.manual_seed(seed)
    twin = LaraPolicy(
        policy.cfg,
        tokenizer=policy.tokenizer,
        fast=policy.fast,
        stats=policy.stats,
        qwen_cfg=policy.vlm.config,
        output_vocab=policy.output_vocab,
    )
    return twin.to(policy.device).eval()


def probe_split(episodes: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit episodes, score episodes): a seeded permutation, at least one episode on each side."""
    order = np.random.default_rng(seed).permutation(len(episodes))  # (n,)
    n_fit = min(len(episodes) - 1, max(1, int(round(fraction * len(episodes)))))
    return sorted(episodes[i] for i in order[:n_fit]), sorted(episodes[i] for i in order[n_fit:])


def _episodes(cfg: ProbeConfig, root: Path, checkpoint: Path, dataset, low) -> tuple[list[int], dict]:
    from curriculum.offline.evaluate import trained_episodes
    from data_pipeline.bridge import episodes_without_language
    from data_pipeline.splits import make_split

    no_language = episodes_without_language(root, dataset)
    if cfg.split == "all":
        chosen = sorted(set(int(e) for e in np.unique(low["episode_index"])) - set(no_language))
        info = {"split": "all", "note": "every episode with language: the policy may have trained on them"}
    else:
        split = make_split(
            root,
            cfg.heldout_fraction,
            cfg.split_seed,
            exclude={"no_language": no_language},
            overwrite=cfg.overwrite_split,
            dataset=dataset,
            trained=trained_episodes(checkpoint, root),
            trained_by=str(checkpoint),
        )
        chosen = list(split.heldout)
        info = {
            "split": "heldout",
            "train_episodes": len(split.train),
            "heldout_episodes": len(split.heldout),
        }
    chosen = chosen[: cfg.episodes] if cfg.episodes else chosen
    if len(chosen) < 2:
        raise LaraUserError(
            f"{root}: {len(chosen)} probed episode(s) ({cfg.split} split); probes are fit on some "
            "episodes and scored on others, so they need at least 2: raise --heldout_fraction (with "
            "--overwrite_split) or use --split all"
        )
    return chosen, info


def _features(
    cfg, root, mapping, policy, twin, annotation, frames
) -> tuple[dict, dict | None, list, np.ndarray]:
    from tqdm.auto import tqdm

    from curriculum.offline.evaluate import _probe_samples

    samples = _probe_samples(root, mapping, policy, annotation)
    feats, twin_feats, cots, pads = Features(), Features(), [], []
    bar = tqdm(total=len(frames), desc="probe: hidden states", unit="frame", disable=not cfg.progress)
    for b0 in range(0, len(frames), cfg.batch_size):
        batch = samples(frames[b0 : b0 + cfg.batch_size])
        cots += list(batch["cot"])
        pads.append(np.asarray(batch["next_image_is_pad"], bool))
        collect(policy, batch, feats, foresight=True)
        if twin is not None:
            collect(twin, batch, twin_feats, foresight=False)
        bar.update(len(batch["cot"]))
    bar.close()
    return feats.stacked(), (twin_feats.stacked() if twin is not None else None), cots, np.concatenate(pads)


def _feature_sets(feats: dict, layout: dict[str, slice], target: str) -> dict[str, np.ndarray]:
    """Named (N, F) feature matrices a target is probed from."""
    lat = feats["latent"]  # (N, S, D)
    out = {}
    tag = SOURCE_TAG.get(target, target)
    if tag in layout:
        out[f"{tag} slot"] = lat[:, layout[tag]].reshape(len(lat), -1)  # (N, k * D)
    out["all latent slots"] = lat.reshape(len(lat), -1)  # (N, S * D)
    if feats["img_next"].shape[1]:
        out["<img_next> (mean)"] = feats["img_next"]  # (N, D)
    return out


def _scorer(cfg, target: str, y: list, tr: np.ndarray, te: np.ndarray, episodes: np.ndarray):
    """(score(features, shuffle_seed=None) -> result, floor result) of one target on one split."""
    if target == "BOX":
        b = np.array([v if v is not None else (0, 0, 0, 0) for v in y], np.float64)  # (N, 4)
        floor = pf.mean_box(b[tr], b[te], episodes[te], cfg.bootstrap, cfg.seed)
        return (
            lambda x, shuffle=None: pf.regress_boxes(
                x[tr], b[tr], x[te], b[te], episodes[te], cfg.l2, cfg.bootstrap, cfg.seed, shuffle
            ),
            floor,
        )
    ytr, yte = [y[i] for i in np.flatnonzero(tr)], [y[i] for i in np.flatnonzero(te)]
    return (
        lambda x, shuffle=None: pf.classify(x[tr], ytr, x[te], yte, cfg.l2, cfg.probe_steps, shuffle),
        pf.majority(ytr, yte),
    )


def fit_probes(
    cfg, feats, twin_feats, labels: list[dict], episodes: np.ndarray, fit_eps, layout
) -> list[dict]:
    """One row per (target, feature set): trained model, random init, shuffled labels, floor."""
    fit = np.isin(episodes, fit_eps)
    rows = []
    for target in TARGETS:
        have = np.array([lab[target] is not None for lab in labels])
        tr, te = fit & have, ~fit & have
        if tr.sum() == 0 or te.sum() == 0:
            rows.append(
                {"target": target, "features": None, "note": "no labelled frame on one side of the split"}
            )
            continue
        score, floor = _scorer(cfg, target, [lab[target] for lab in labels], tr, te, episodes)
        twin_sets = _feature_sets(twin_feats, layout, target) if twin_feats is not None else {}
        for name, x in _feature_sets(feats, layout, target).items():
            rows.append(
                {
                    "target": target,
                    "features": name,
                    "dims": int(x.shape[1]),
                    "floor": floor,
                    "model": score(x),
                    "random_init": score(twin_sets[name]) if name in twin_sets else None,
                    "shuffled_labels": score(x, shuffle=cfg.seed + 1),
                }
            )
    return rows


def _segment_ids(policy, tag: str, text: str) -> set[int]:
    """Token ids of a segment's text as training tokenizes it, without the tag prefix and newline
    (which every frame shares: a slot emitting "SUBTASK" says nothing about the frame)."""
    tok = policy.tokenizer
    return set(tok.encode(f"{tag}: {text.strip()}\n")) - set(tok.encode(f"{tag}:")) - set(tok.encode("\n"))


def decoding(cfg, policy, twin, feats, twin_feats, cots, episodes, frames_idx, test_eps, layout) -> dict:
    """Top-k tokens per latent slot for a few frames, and the top-k hit rate per tag over all frames."""
    lat = feats["latent"]  # (N, S, D)
    n, s, d = lat.shape
    ids, probs = top_tokens(policy, lat.reshape(n * s, d), cfg.top_k)  # (N * S, k)
    ids, probs = ids.reshape(n, s, -1), probs.reshape(n, s, -1)
    twin_ids = None
    if twin_feats is not None:
        twin_ids = top_tokens(twin, twin_feats["latent"].reshape(n * s, d), cfg.top_k)[0].reshape(n, s, -1)
    hits: dict[str, dict] = {}
    words: dict[tuple[str, str], set[int]] = {}  # (tag, text) -> token ids: texts repeat across frames

    def word_ids(tag: str, text: str) -> set[int]:
        if (tag, text) not in words:
            words[(tag, text)] = _segment_ids(policy, tag, text)
        return words[(tag, text)]

    for tag, cols in layout.items():
        texts = [dict(c or []).get(tag) for c in cots]
        rows = [i for i, t in enumerate(texts) if t is not None]
        if not rows:
            continue
        entry = {}
        for key, table in (("model", ids), ("random_init", twin_ids)):
            if table is None:
                continue
            ok = np.array(
                [bool(set(table[i, cols].ravel().tolist()) & word_ids(tag, texts[i])) for i in rows]
            )
            entry[key] = pf.accuracy_with_interval(ok)
        hits[tag] = entry
    examples = []
    for ep in test_eps[: cfg.decode_episodes]:
        rows = np.flatnonzero(episodes == ep)
        if cfg.decode_frames == 0 or len(rows) == 0:
            continue
        pick = rows[np.unique(np.linspace(0, len(rows) - 1, cfg.decode_frames).round().astype(int))]
        for i in pick:
            cot = dict(cots[i] or [])
            for tag, cols in layout.items():
                slots = [
                    [
                        (policy.tokenizer.decode([int(t)], skip_special_tokens=False), float(p))
                        for t, p in zip(ti, pi)
                    ]
                    for ti, pi in zip(ids[i, cols], probs[i, cols])
                ]
                examples.append(
                    {
                        "episode": int(ep),
                        "frame": int(frames_idx[i]),
                        "tag": tag,
                        "annotation": cot.get(tag),
                        "top_k": slots,
                    }
                )
    return {"top_k": cfg.top_k, "hit_rate": hits, "examples": examples}


def foresight(cfg, feats, pads, episodes, frames_idx, lengths) -> dict | None:
    """Mean L1 / cosine (episode-bootstrap intervals) of model and copy-current-frame, per time bin."""
    if "l1" not in feats:
        return None
    keep = ~pads
    if not keep.any():
        return {"frames": 0}
    summary = {"frames": int(keep.sum())}
    for key in ("l1", "cos", "copy_l1", "copy_cos"):
        mean, low, high = pf.bootstrap_mean(feats[key][keep], episodes[keep], cfg.bootstrap, cfg.seed)
        summary[key] = {"mean": mean, "low": low, "high": high}
    summary["model_beats_copy_l1"] = float((feats["l1"][keep] < feats["copy_l1"][keep]).mean())
    tau = frames_idx / np.maximum(lengths - 1, 1)  # (N,) normalized episode time
    bins = np.minimum((tau * cfg.time_bins).astype(int), cfg.time_bins - 1)
    along = {k: [] for k in ("l1", "cos", "copy_l1", "copy_cos", "frames")}
    for b in range(cfg.time_bins):
        m = keep & (bins == b)
        along["frames"].append(int(m.sum()))
        for k in ("l1", "cos", "copy_l1", "copy_cos"):
            along[k].append(float(feats[k][m].mean()) if m.any() else None)
    summary["along_episode"] = along
    return summary


def probe(cfg: ProbeConfig) -> dict:
    """Everything `lara probe` computes (see the module docstring), as a JSON-ready dict."""
    from curriculum.offline.evaluate import _newest_annotation, resolve_mapping
    from curriculum.offline.probes import check_compatible
    from data_pipeline.bridge import check_bridge_dataset
    from data_pipeline.lerobot_io import image_hw, open_lerobot_dataset
    from data_pipeline.stats import compute_stats, read_low_dim
    from lara.checkpoint import check_checkpoint, resolve_checkpoint_dir
    from lara.modeling_lara import LaraPolicy

    t0 = time.perf_counter()
    root = Path(cfg.dataset)
    checkpoint = check_checkpoint(resolve_checkpoint_dir(cfg.policy))
    dataset = open_lerobot_dataset(root)
    annotation = cfg.annotation or _newest_annotation(root)
    if annotation is None:
        raise LaraUserError(
            f"{root} has no CoT annotation run: the probes need labels (lara annotate {root} ...)"
        )
    policy = LaraPolicy.from_pretrained(checkpoint, device=cfg.device).eval()
    mapping = resolve_mapping(cfg, list(policy.cfg.vision.cameras))
    if mapping.name.startswith("bridge"):
        check_bridge_dataset(root, mapping, action_dim=policy.cfg.action_dim, dataset=dataset)
    low = read_low_dim(root, mapping)
    mode = policy.stats.mode if policy.stats is not None else "quantile"
    compat = check_compatible(
        policy,
        mapping,
        dict(dataset.meta.features),
        compute_stats(low, mode),
        cfg.policy,
        str(root),
        cfg.allow_stats_mismatch,
    )
    chosen, split_info = _episodes(cfg, root, checkpoint, dataset, low)
    fit_eps, test_eps = probe_split(chosen, cfg.probe_train_fraction, cfg.seed)
    ep_col, fr_col = low["episode_index"].astype(int), low["frame_index"].astype(int)
    length = {int(e): int((ep_col == e).sum()) for e in chosen}
    sel = np.isin(ep_col, chosen) & (fr_col % cfg.stride == 0)
    frames = [(int(e), int(f)) for e, f in zip(ep_col[sel], fr_col[sel])]
    twin = random_twin(policy, cfg.seed + 12345) if cfg.random_control else None
    log.info("probing %d frames of %d episodes (%s split)", len(frames), len(chosen), cfg.split)
    feats, twin_feats, cots, pads = _features(cfg, root, mapping, policy, twin, annotation, frames)
    episodes = np.array([e for e, _ in frames])  # (N,)
    frames_idx = np.array([f for _, f in frames])  # (N,)
    lengths = np.array([length[e] for e in episodes])  # (N,)
    hw = image_hw(dataset, mapping.cameras[policy.cfg.foresight.camera])
    labels = [frame_labels(c, hw) for c in cots]
    layout = slot_layout(policy.cfg)
    result = {
        "config": {**asdict(cfg), "annotation": annotation},
        "checkpoint": {
            "path": str(checkpoint),
            "inference_stage": policy.cfg.inference.stage,
            "slot_input": policy.cfg.latent.slot_input,
            "slots_per_segment": policy.cfg.latent.slots_per_segment,
            "tags": list(layout),
            "img_next_slots": policy.cfg.foresight.num_slots,
            "hidden_size": policy.cfg.backbone.hidden_size,
        },
        "data": {
            "root": str(root),
            "mapping": mapping.name,
            **split_info,
            "probed_episodes": chosen,
            "fit_episodes": fit_eps,
            "score_episodes": test_eps,
            "frames": len(frames),
            "labelled_frames": {t: int(sum(lab[t] is not None for lab in labels)) for t in TARGETS},
        },
        "warnings": compat.warnings,
        "probes": fit_probes(cfg, feats, twin_feats, labels, episodes, fit_eps, layout),
        "decoding": decoding(
            cfg, policy, twin, feats, twin_feats, cots, episodes, frames_idx, test_eps, layout
        ),
        "foresight": foresight(cfg, feats, pads, episodes, frames_idx, lengths),
    }
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def write_probe_outputs(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """probe.json, probe.md and one PNG per part in `out_dir`; returns their paths."""
    from curriculum.offline.probe_report import (
        plot_decoding,
        plot_foresight,
        plot_probes,
        render_probe_report,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "probe.json",
        "report": out / "probe.md",
        "probes_plot": out / "probes.png",
        "decoding_plot": out / "decoding.png",
        "foresight_plot": out / "foresight.png",
    }
    paths["json"].write_text(json.dumps(result, indent=1, default=str))
    plot_probes(result, paths["probes_plot"])
    plot_decoding(result, paths["decoding_plot"])
    plot_foresight(result, paths["foresight_plot"])
    paths["report"].write_text(render_probe_report(result))
    return paths


def run_probe(cfg: ProbeConfig) -> tuple[dict, dict[str, Path]]:
    result = probe(cfg)
    return result, write_probe_outputs(result, cfg.out)
