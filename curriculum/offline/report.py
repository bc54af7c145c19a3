"""report.md and trajectories.png of `lara eval-offline` (curriculum/offline/evaluate.py computes the
numbers).

Why the baselines sit in the same table as the model: an action L1 of 0.03 says nothing until one
sees that repeating the last action scores 0.02 on the same frames. The plot shows, per action
dimension, the recorded trajectory of a few held-out episodes with each predicted chunk drawn from
the frame it was predicted at, so drift along the horizon and gripper timing are visible at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curriculum.offline.results import EpisodeTrace, OfflineResult

METHODS = (
    ("model", "model"),
    ("baseline_last_action", "repeat last action"),
    ("baseline_dataset_mean", "dataset mean"),
)
DIM_NAMES_7 = ["dx", "dy", "dz", "droll/dax", "dpitch/day", "dyaw/daz", "gripper"]


def _dim_names(a: int) -> list[str]:
    return DIM_NAMES_7 if a == 7 else [f"a{i}" for i in range(a - 1)] + ["gripper"]


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def render_report(result: OfflineResult, plot_name: str = "trajectories.png") -> str:
    """The markdown report: header (what was evaluated), summary table, per-dimension table, probes."""
    d, c, m = result.dataset, result.config, result.metrics
    lines = [
        "# Offline (open-loop) evaluation",
        "",
        f"- checkpoint: `{c['policy']}` (inference stage {c['inference_stage']}: {c.get('inference', '?')})",
        f"- dataset: `{d['root']}` (mapping `{d['mapping']}`, cameras {d['cameras']})",
        f"- split: {d['train_episodes']} train / {d['heldout_episodes']} held-out episodes (seed "
        f"{d['split_seed']}, "
        f"fraction {d['heldout_fraction']}); {d['no_language_episodes']} episodes without language excluded",
        f"- evaluated: {len(d['evaluated_episodes'])} held-out episodes {d['evaluated_episodes']}, "
        f"{d['chunks']} chunks "
        f"of {d['chunk_size']} actions, one every {d['stride']} frames; {m['model']['num_actions']} "
        "actions compared",
        f"- normalization statistics match the dataset: {'yes' if d['stats_match'] else 'NO'}; took "
        f"{d['seconds']} s",
    ]
    if len(d["evaluated_episodes"]) < d["heldout_episodes"]:
        lines.append(
            f"- **partial run**: {len(d['evaluated_episodes'])} of {d['heldout_episodes']} held-out episodes"
        )
    lines += [f"- warning: {w}" for w in result.warnings]
    lines += [
        "",
        "## Actions (held-out chunks vs recorded)",
        "",
        "| method | arm L1 | arm MSE | arm L1 (normalized) | gripper accuracy |",
        "|---|---|---|---|---|",
    ]
    for key, label in METHODS:
        r = m[key]
        lines.append(
            f"| {label} | {_fmt(r['arm_l1'])} | {_fmt(r['arm_mse'])} | {_fmt(r.get('arm_l1_normalized'))} | "
            f"{100 * r['gripper_accuracy']:.1f}% |"
        )
    names = _dim_names(len(m["model"]["l1"]))
    lines += [
        "",
        "### Per dimension (L1 / MSE, environment units)",
        "",
        "| dim | " + " | ".join(label for _, label in METHODS) + " |",
        "|---" * (len(METHODS) + 1) + "|",
    ]
    for i, name in enumerate(names):
        cells = [f"{_fmt(m[k]['l1'][i])} / {_fmt(m[k]['mse'][i])}" for k, _ in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    steps = m["model"]["l1_per_step"]
    lines += [
        "",
        "### Arm L1 along the chunk (model)",
        "",
        "| step | " + " | ".join(str(i) for i in range(len(steps))) + " |",
        "|---" * (len(steps) + 1) + "|",
        "| L1 | " + " | ".join(_fmt(s, 3) for s in steps) + " |",
    ]
    p = result.probes
    lines += ["", "## Visual foresight and CoT", ""]
    fs = p.get("foresight")
    if fs:
        lines.append(
            f"- visual-foresight L1 on {p['probe_frames']} held-out frames: {_fmt(fs['foresight_l1'])} "
            f"(copy-current-frame reference: {_fmt(fs['copy_current_frame_l1'])})"
        )
    else:
        lines.append("- visual-foresight L1: not computed")
    if p.get("cot"):
        lines += [
            f"- CoT token accuracy ({p['cot_note']}, annotation `{p['annotation']}`):",
            "",
            "| tag | accuracy | tokens |",
            "|---|---|---|",
        ]
        lines += [f"| {tag} | {100 * v['accuracy']:.1f}% | {v['tokens']} |" for tag, v in p["cot"].items()]
    else:
        lines.append(f"- CoT token accuracy: not computed ({p.get('cot_note', '')})")
    lines += ["", f"![predicted vs recorded]({plot_name})", ""]
    return "\n".join(lines)


def plot_trajectories(traces: list[EpisodeTrace], path: str | Path) -> Path:
    """One row per episode, one column per action dim: recorded line, predicted chunks overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not traces:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no episodes", ha="center")
        fig.savefig(path)
        plt.close(fig)
        return path
    a = traces[0].actions.shape[1]
    names = _dim_names(a)
    fig, axes = plt.subplots(len(traces), a, figsize=(2.4 * a, 2.0 * len(traces)), squeeze=False)
    for row, tr in enumerate(traces):
        T, H = tr.actions.shape[0], tr.pred.shape[1]
        for dim in range(a):
            ax = axes[row, dim]
            ax.plot(np.arange(T), tr.actions[:, dim], color="black", lw=1.2, label="recorded")
            for i, t in enumerate(tr.starts):
                steps = np.arange(t, min(t + H, T))  # (h,) frames the chunk covers inside the episode
                ax.plot(
                    steps,
                    tr.pred[i, : len(steps), dim],
                    color="tab:red",
                    lw=0.9,
                    alpha=0.8,
                    label="predicted" if i == 0 else None,
                )
            if row == 0:
                ax.set_title(names[dim], fontsize=8)
            if dim == 0:
                ax.set_ylabel(f"ep {tr.episode}", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
