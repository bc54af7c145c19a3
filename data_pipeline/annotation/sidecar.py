"""The CoT annotation sidecar: on-disk format, atomic writers and the readers the trainer uses.

Why a sidecar (and not columns in the dataset): one dataset carries several annotation runs
(different backends, annotator versions, configs) and the trainer picks one by name; an
annotation run can be redone or deleted without touching the (large) dataset.

Layout, under the dataset folder::

    <dataset>/annotations/<name>/
        meta.json                        # annotator version, config + its hash, backend, counts
        episodes/episode_000042.jsonl    # one file per episode (resume = skip existing files)

An episode file is JSON lines. Line 1 is the episode header::

    {"type": "episode", "episode": 42, "status": "ok" | "skipped", "reason": "...",
     "num_frames": T, "instruction": "...", "plan": ["grasp the black bowl", ...],
     "segments": [{"start": 0, "end": 37, "phase": "move_to_object", "subtask": "..."}, ...],
     "objects": [...], "quality_flags": ["grasp_count_mismatch: ..."], "config_hash": "..."}

and lines 2..T+1 are frames, in frame order::

    {"type": "frame", "frame": 0, "cot": [["SUBTASK", "..."], ["OBJECTS", "..."],
                                          ["MOVE", "..."], ["GRIPPER", "open"]]}

Which tags are per frame: SUBTASK, OBJECTS, MOVE, GRIPPER, in that order (`FRAME_TAGS`); these
are the segments fed to the model (and the units of latent replacement). PLAN is per episode
(it does not change within an episode); `load_annotations(..., include_plan=True)` prepends it
to every frame as a `("PLAN", "a; b; c")` segment for trainers that want it.

Byte-identical re-runs: every JSON object is written with sorted keys, fixed separators and no
floats that depend on the platform (boxes are integers, numbers are rounded before writing), and
meta.json holds no timestamps. Writes go to a temp file in the same folder, then `os.replace`, so
a killed run never leaves a half-written episode behind.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError

ANNOTATIONS_DIR = "annotations"
EPISODES_DIR = "episodes"
META_FILE = "meta.json"
FRAME_TAGS: tuple[str, ...] = ("SUBTASK", "OBJECTS", "MOVE", "GRIPPER")
EPISODE_TAGS: tuple[str, ...] = ("PLAN",)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EPISODE_RE = re.compile(r"^episode_(\d{6,})\.jsonl$")

Segments = list[tuple[str, str]]


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, compact separators, UTF-8 text): the byte-identity guarantee."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_name(name: str) -> str:
    """Annotation run names become folder names: letters, digits, `.`, `_`, `-` only."""
    if not _NAME_RE.match(name or ""):
        raise LaraUserError(
            f"invalid annotation name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (e.g. 'v1', "
            "'sim-v2')"
        )
    return name


def annotation_dir(dataset_dir: str | os.PathLike, name: str) -> Path:
    return Path(dataset_dir) / ANNOTATIONS_DIR / check_name(name)


def episode_path(run_dir: Path, episode: int) -> Path:
    return run_dir / EPISODES_DIR / f"episode_{episode:06d}.jsonl"


@dataclass
class EpisodeAnnotation:
    """The annotation of one episode: header fields + the per-frame CoT segments."""

    episode: int
    status: str  # "ok" or "skipped"
    num_frames: int
    instruction: str = ""
    reason: str = ""  # why skipped
    plan: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)  # phase segments (start, end exclusive)
    objects: list[dict[str, Any]] = field(default_factory=list)  # the semantic anchors used
    quality_flags: list[str] = field(default_factory=list)
    frames: list[Segments] = field(default_factory=list)  # frames[t] = [(tag, text), ...]
    config_hash: str = ""

    def header(self) -> dict[str, Any]:
        return {
            "type": "episode",
            "episode": int(self.episode),
            "status": self.status,
            "reason": self.reason,
            "num_frames": int(self.num_frames),
            "instruction": self.instruction,
            "plan": list(self.plan),
            "segments": self.segments,
            "objects": self.objects,
            "quality_flags": list(self.quality_flags),
            "config_hash": self.config_hash,
        }

    def to_jsonl(self) -> str:
        lines = [dumps(self.header())]
        for t, cot in enumerate(self.frames):
            lines.append(dumps({"type": "frame", "frame": t, "cot": [[tag, text] for tag, text in cot]}))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_jsonl(cls, text: str, source: str = "") -> EpisodeAnnotation:
        lines = [ln for ln in text.split("\n") if ln]
        if not lines:
            raise LaraUserError(f"{source}: empty annotation file; delete it and re-run `lara annotate`")
        try:
            head = json.loads(lines[0])
            frames_raw = [json.loads(ln) for ln in lines[1:]]
        except ValueError as err:
            raise LaraUserError(f"{source}: corrupt annotation file ({err}); delete it and re-run") from err
        if head.get("type") != "episode":
            raise LaraUserError(f"{source}: first line is not an episode header")
        frames: list[Segments] = []
        for i, fr in enumerate(frames_raw):
            if fr.get("type") != "frame" or fr.get("frame") != i:
                raise LaraUserError(f"{source}: frame lines out of order at line {i + 2}")
            try:
                frames.append([(str(tag), str(text)) for tag, text in fr["cot"]])
            except (KeyError, TypeError, ValueError):
                raise _damaged(source, f"frame {i}: 'cot' is not a list of [tag, text] pairs") from None
        try:
            ann = cls(
                episode=int(head["episode"]),
                status=head["status"],
                num_frames=int(head["num_frames"]),
                instruction=head.get("instruction", ""),
                reason=head.get("reason", ""),
                plan=list(head.get("plan", [])),
                segments=list(head.get("segments", [])),
                objects=list(head.get("objects", [])),
                quality_flags=list(head.get("quality_flags", [])),
                frames=frames,
                config_hash=head.get("config_hash", ""),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise _damaged(source, f"bad episode header ({type(err).__name__}: {err})") from None
        ann.check(source)
        return ann

    def check(
        self, source: str = "", num_frames: int | None = None, image_hw: tuple[int, int] | None = None
    ) -> None:
        """Refuse a damaged annotation with one line naming the file and the frame: frames missing or
        extra (against the header's num_frames and, given, the episode's real `num_frames`), a frame
        without CoT, tags other than `FRAME_TAGS` in their order, and (given the image's (H, W)) an
        OBJECTS box outside the image. Training on such a file would learn from the damage."""
        if num_frames is not None and self.num_frames != num_frames:
            raise _damaged(
                source,
                f"the header says num_frames {self.num_frames}, episode {self.episode} of the dataset "
                f"has {num_frames}",
            )
        if self.status != "ok":
            return
        if len(self.frames) != self.num_frames:
            first = min(len(self.frames), self.num_frames)
            raise _damaged(
                source,
                f"frame {first}: {len(self.frames)} frame lines for num_frames {self.num_frames} in its "
                "header (a cut or padded file)",
            )
        for t, cot in enumerate(self.frames):
            if not cot:
                raise _damaged(source, f"frame {t}: empty cot (no segment)")
            tags = [tag for tag, _ in cot]
            if [tag for tag in FRAME_TAGS if tag in tags] != tags:
                raise _damaged(
                    source, f"frame {t}: tags {tags}, expected some of {list(FRAME_TAGS)} in that order"
                )
            if image_hw is not None:
                for tag, text in cot:
                    if tag == "OBJECTS":
                        _check_boxes(source, t, text, image_hw)


_BOX_RE = re.compile(r"\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")


def _check_boxes(source: str, frame: int, text: str, image_hw: tuple[int, int]) -> None:
    """Boxes `[x1, y1, x2, y2]` are pixels of the dataset image (x2, y2 exclusive): inside it."""
    h, w = image_hw
    for match in _BOX_RE.finditer(text):
        x1, y1, x2, y2 = (int(v) for v in match.groups())
        if not (0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h):
            raise _damaged(
                source, f"frame {frame}: box [{x1}, {y1}, {x2}, {y2}] is outside the {w}x{h} image"
            )


def _damaged(source: str, what: str) -> LaraUserError:
    return LaraUserError(
        f"{source}: damaged annotation, {what}; delete the file and re-run the same `lara annotate` command "
        "(it annotates the missing episodes)"
    )


def write_episode(run_dir: Path, ann: EpisodeAnnotation) -> Path:
    """Atomically write one episode's annotation file; returns its path."""
    if ann.status == "ok" and len(ann.frames) != ann.num_frames:
        raise ValueError(
            f"episode {ann.episode}: {len(ann.frames)} frame annotations for {ann.num_frames} frames"
        )
    if ann.status == "ok" and any(not cot for cot in ann.frames):
        raise ValueError(
            f"episode {ann.episode}: a frame has no CoT segments (never write empty annotations)"
        )
    path = episode_path(run_dir, ann.episode)
    atomic_write_text(path, ann.to_jsonl())
    return path


def read_episode(path: Path) -> EpisodeAnnotation:
    return EpisodeAnnotation.from_jsonl(path.read_text(encoding="utf-8"), source=str(path))


def finished_episodes(run_dir: Path) -> list[int]:
    """Episode indices that already have a file (ok or skipped): what a resumed run does not redo."""
    folder = run_dir / EPISODES_DIR
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _EPISODE_RE.match(p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(
        run_dir / META_FILE, json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    )


def read_meta(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise LaraUserError(f"{path}: corrupt meta.json ({err}); delete the run folder and re-run") from err


def list_annotations(dataset_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All annotation runs of a dataset, sorted by name: each run's meta.json plus `name` and `complete`.

    A run without meta.json (never started its first write of meta) is listed with `complete=False`.
    """
    root = Path(dataset_dir) / ANNOTATIONS_DIR
    if not root.is_dir():
        return []
    runs = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        meta = read_meta(run_dir) or {}
        info = dict(meta)
        info["name"] = run_dir.name
        info["complete"] = bool(meta.get("complete", False))
        info["path"] = str(run_dir)
        runs.append(info)
    return runs


def _resolve_run(dataset_dir: str | os.PathLike, name: str) -> Path:
    run_dir = annotation_dir(dataset_dir, name)
    if not run_dir.is_dir():
        have = [r["name"] for r in list_annotations(dataset_dir)]
        raise LaraUserError(
            f"no annotation run {name!r} in {dataset_dir} (available: {', '.join(have) or 'none'}); "
            f"create it with `lara annotate --dataset {dataset_dir} --backend sim --name {name}` "
            "(or --backend instruction | vlm)"
        )
    return run_dir


def iter_episode_annotations(dataset_dir: str | os.PathLike, name: str) -> Iterable[EpisodeAnnotation]:
    """Every episode file of a run (ok and skipped), in episode order."""
    run_dir = _resolve_run(dataset_dir, name)
    for ep in finished_episodes(run_dir):
        yield read_episode(episode_path(run_dir, ep))


def load_annotations(
    dataset_dir: str | os.PathLike,
    name: str,
    include_plan: bool = False,
    require_complete: bool = False,
    episode_lengths: dict[int, int] | None = None,
    image_hw: tuple[int, int] | None = None,
) -> dict[tuple[int, int], Segments]:
    """CoT of a run: `{(episode, frame): [(tag, text), ...]}` for every annotated frame.

    Per-frame tags are `FRAME_TAGS` (SUBTASK, OBJECTS, MOVE, GRIPPER), in that order. With
    `include_plan`, the episode's PLAN is prepended as `("PLAN", "step 1; step 2; ...")`. Skipped
    episodes (quality failures, see meta.json) have no keys: a trainer treats a missing key as "no
    CoT for this frame". `require_complete` raises when the run was interrupted before the end.
    Given the dataset's `episode_lengths` ({episode: frames}) and image `(H, W)`, every file is also
    checked against its episode (`EpisodeAnnotation.check`): a damaged one is one error line.
    """
    run_dir = _resolve_run(dataset_dir, name)
    if require_complete and not (read_meta(run_dir) or {}).get("complete", False):
        raise LaraUserError(f"annotation run {name!r} is incomplete; re-run `lara annotate` to finish it")
    out: dict[tuple[int, int], Segments] = {}
    for ann in iter_episode_annotations(dataset_dir, name):
        if episode_lengths is not None or image_hw is not None:
            length = (episode_lengths or {}).get(ann.episode)
            ann.check(str(episode_path(run_dir, ann.episode)), num_frames=length, image_hw=image_hw)
        if ann.status != "ok":
            continue
        plan_seg = [("PLAN", "; ".join(ann.plan))] if include_plan and ann.plan else []
        for t, cot in enumerate(ann.frames):
            out[(ann.episode, t)] = plan_seg + list(cot)
    return out


def missing_episodes(dataset_dir: str | os.PathLike, name: str, episodes: Iterable[int]) -> list[int]:
    """Which of `episodes` have no file (ok or skipped) in the run `name`: what an interrupted run lacks."""
    done = set(finished_episodes(_resolve_run(dataset_dir, name)))
    return sorted(int(e) for e in set(episodes) if int(e) not in done)


def load_plans(dataset_dir: str | os.PathLike, name: str) -> dict[int, list[str]]:
    """Per-episode PLAN (ordered subtasks) of a run, for annotated episodes."""
    return {a.episode: list(a.plan) for a in iter_episode_annotations(dataset_dir, name) if a.status == "ok"}
