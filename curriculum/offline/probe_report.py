"""probe.md and its three plots (curriculum/offline/probe_run.py computes the numbers).

Why every probe number sits beside its controls: a linear probe on any hidden state of a network
that sees the image reads something; only the gap to the same probe on a random network of the same
shape, to shuffled labels and to the majority class says what training put into the slot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = (("model", "trained model"), ("random_init", "random init"), ("shuffled_labels", "shuffled labels"))


def _cell(r: dict | None) -> str:
    if r is None:
        return "n/a"
    if "iou" in r:
        return f"{r['iou']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
    return f"{100 * r['accuracy']:.1f}% [{100 * r['low']:.0f}, {100 * r['high']:.0f}]"


def _label(target: str) -> str:
    return "OBJECTS box (IoU)" if target == "BOX" else f"{target} (accuracy)"


def own_slot_rows(result: dict) -> list[dict]:
    """The headline rows: each target probed from its own tag's latent slot (or all slots if absent)."""
    rows: dict[str, dict] = {}
    for r in result["probes"]:
        if r.get("features") is None:
            continue
        if r["features"].endswith(" slot") or (
            r["features"] == "all latent slots" and r["target"] not in rows
        ):
            rows[r["target"]] = r
    return list(rows.values())


def probe_table(rows: list[dict]) -> list[str]:
    lines = [
        "| target | features | trained model | random init | shuffled labels | floor (majority / mean box) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = " | ".join(_cell(r.get(k)) for k, _ in COLUMNS)
        lines.append(f"| {_label(r['target'])} | {r['features']} | {cells} | {_cell(r['floor'])} |")
    return lines


def render_probe_report(result: dict) -> str:
    c, d, ck = result["config"], result["data"], result["checkpoint"]
    lines = [
        "# Latent probes",
        "",
        f"- checkpoint: `{ck['path']}` (inference stage {ck['inference_stage']}, latent slots "
        f"`{ck['slot_input']}`, {ck['slots_per_segment']} per tag {ck['tags']}, {ck['img_next_slots']} "
        f"`<img_next>` slots, hidden {ck['hidden_size']})",
        f"- dataset: `{d['root']}` (mapping `{d['mapping']}`), annotation `{c['annotation']}`",
        f"- probed: {len(d['probed_episodes'])} episodes of the **{d['split']}** split, every "
        f"{c['stride']} frame(s): {d['frames']} frames; probes fit on episodes {d['fit_episodes']} and "
        f"scored on episodes {d['score_episodes']}",
        f"- linear probes on standardized features (logistic, L2 {c['l2']}; ridge for boxes); 95% Wilson "
        "intervals for accuracies (frames counted as independent: too narrow when frames of an episode "
        f"are alike), episode-bootstrap intervals ({c['bootstrap']} resamples) for IoU; took "
        f"{result['seconds']} s",
    ]
    if d["split"] == "all":
        lines.append(f"- **not held out**: {d['note']}")
    lines += [f"- warning: {w}" for w in result["warnings"]]
    lines += ["", "## 1. Probes", "", "Each CoT target from its own tag's latent slot:", ""]
    lines += probe_table(own_slot_rows(result))
    lines += ["", "All feature sets:", ""]
    lines += probe_table([r for r in result["probes"] if r.get("features")])
    missing = [r["target"] for r in result["probes"] if r.get("features") is None]
    if missing:
        lines += ["", f"Not probed (no labelled frame on one side of the split): {', '.join(missing)}"]
    lines += ["", "![probes](probes.png)", ""]
    lines += _decoding_section(result["decoding"])
    lines += _foresight_section(result["foresight"])
    return "\n".join(lines) + "\n"


def _decoding_section(dec: dict) -> list[str]:
    lines = [
        "## 2. Decoding the latent slots",
        "",
        f"How often the top-{dec['top_k']} tokens the LM head would emit from a tag's latent slot include a "
        "token of that tag's annotated text (its words, not the tag name; all probed frames). The head "
        "is the one stages I-II trained to write the CoT; stage III does not train it:",
        "",
        "| tag | trained model | random init |",
        "|---|---|---|",
    ]
    for tag, h in dec["hit_rate"].items():
        lines.append(f"| {tag} | {_cell(h.get('model'))} | {_cell(h.get('random_init'))} |")
    lines += ["", "Examples (score episodes; token probabilities in parentheses):", ""]
    lines += ["| episode | frame | tag | annotation | top tokens |", "|---|---|---|---|---|"]
    for e in dec["examples"]:
        # one group per slot; tokens in code spans, pipes escaped (special tokens are <|...|>)
        slots = " / ".join(", ".join(f"`{t!r}` ({p:.2f})" for t, p in s) for s in e["top_k"])
        slots = slots.replace("|", "\\|")
        lines.append(f"| {e['episode']} | {e['frame']} | {e['tag']} | {e['annotation']} | {slots} |")
    return [*lines, "", "![decoding](decoding.png)", ""]


def _foresight_section(fs: dict | None) -> list[str]:
    lines = ["## 3. Visual foresight", ""]
    if fs is None:
        return [*lines, "The checkpoint has no `<img_next>` slots (foresight.num_slots 0).", ""]
    if not fs.get("frames"):
        return [*lines, "No probed frame has a real next frame.", ""]

    def cell(k: str) -> str:
        v = fs[k]
        return f"{v['mean']:.4f} [{v['low']:.4f}, {v['high']:.4f}]"

    return [
        *lines,
        f"`<img_next>` predictions against the EMA target of the true next frame on {fs['frames']} frames "
        "(episode-bootstrap intervals):",
        "",
        "| predictor | L1 (lower is better) | cosine (higher is better) |",
        "|---|---|---|",
        f"| `<img_next>` slots | {cell('l1')} | {cell('cos')} |",
        f"| next frame = this frame | {cell('copy_l1')} | {cell('copy_cos')} |",
        "",
        f"The slots beat the copy predictor's L1 on {100 * fs['model_beats_copy_l1']:.1f}% of the frames.",
        "",
        "![foresight](foresight.png)",
        "",
    ]


# ------------------------------------------------------------------ plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_probes(result: dict, path: str | Path) -> Path:
    """Grouped bars: each target from its own slot, trained / random / shuffled, floor as a line."""
    plt = _plt()
    rows = own_slot_rows(result)
    fig, ax = plt.subplots(figsize=(1.9 * max(len(rows), 2) + 1, 3.2))
    width = 0.26
    for j, (key, name) in enumerate(COLUMNS):
        vals, errs = [], [[], []]
        for r in rows:
            v = r.get(key)
            m = np.nan if v is None else v.get("accuracy", v.get("iou"))
            vals.append(m)
            errs[0].append(0 if v is None else m - v["low"])
            errs[1].append(0 if v is None else v["high"] - m)
        ax.bar(np.arange(len(rows)) + (j - 1) * width, vals, width, yerr=errs, capsize=2, label=name)
    for i, r in enumerate(rows):
        f = r["floor"]
        ax.hlines(
            f.get("accuracy", f.get("iou")), i - 1.5 * width, i + 1.5 * width, colors="black", linestyles="--"
        )
    ticks = [_label(r["target"]).replace(" (", "\n(") for r in rows]
    title = "linear probes of the latent slots (dashed: majority / mean box)"
    return _save_bars(fig, ax, ticks, 7, "accuracy / IoU (score episodes)", title, path)


def plot_decoding(result: dict, path: str | Path) -> Path:
    """Bars per tag: top-k hit rate of the trained model and of the random init."""
    plt = _plt()
    dec = result["decoding"]
    tags = list(dec["hit_rate"])
    fig, ax = plt.subplots(figsize=(1.4 * max(len(tags), 2) + 1, 3.0))
    for j, key in enumerate(("model", "random_init")):
        vals = [dec["hit_rate"][t].get(key, {}).get("accuracy", np.nan) for t in tags]
        ax.bar(np.arange(len(tags)) + (j - 0.5) * 0.38, vals, 0.38, label=key.replace("_", " "))
    ylabel = f"top-{dec['top_k']} holds an annotated token"
    return _save_bars(fig, ax, tags, 8, ylabel, "LM head on each latent slot", path)


def _save_bars(fig, ax, ticks: list[str], tick_size: int, ylabel: str, title: str, path) -> Path:
    """Label a bar chart of rates in [0, 1] and write it to `path`."""
    ax.set_xticks(np.arange(len(ticks)), ticks, fontsize=tick_size)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return Path(path)


def plot_foresight(result: dict, path: str | Path) -> Path:
    """L1 and cosine along normalized episode time: `<img_next>` slots vs copy-current-frame."""
    plt = _plt()
    fs = result["foresight"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0))
    if not fs or not fs.get("frames"):
        for ax in axes:
            ax.text(0.5, 0.5, "no foresight frames", ha="center")
    else:
        along = fs["along_episode"]
        n = len(along["l1"])
        x = (np.arange(n) + 0.5) / n
        for ax, key, name in ((axes[0], "l1", "L1"), (axes[1], "cos", "cosine")):
            for k, label, style in (
                (key, "<img_next> slots", "-o"),
                (f"copy_{key}", "next = this frame", "--s"),
            ):
                y = np.array([np.nan if v is None else v for v in along[k]], float)
                ax.plot(x, y, style, ms=3, label=label)
            ax.set_xlabel("episode time (fraction)")
            ax.set_ylabel(f"{name} to EMA target of t+k")
        axes[0].legend(fontsize=7)
    fig.suptitle("visual foresight along the episode", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))  # keep the title clear of the panels
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
