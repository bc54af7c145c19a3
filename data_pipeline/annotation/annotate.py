"""The annotation runner: one episode -> CoT, and a whole dataset in parallel, resumable, idempotent.

Why per-episode files: a finished episode is one atomically renamed file, so a killed run loses at
most the episodes in flight and a re-run only does what is missing (`sidecar.finished_episodes`).
Idempotence: every output is a deterministic function of the episode and the config (no clocks,
no random numbers, sorted JSON), and meta.json's summary is recomputed from the episode files in
episode order, so worker scheduling cannot change a byte.

Bad input never becomes a silent empty annotation: an episode the annotator cannot handle (no
gripper signal, no instruction, no simulator state for `sim`) is written as a `skipped` record
with its reason, counted in the summary; a run where every episode is skipped is an error.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from data_pipeline.annotation import sidecar
from data_pipeline.annotation.backends import make_backend
from data_pipeline.annotation.backends.base import SemanticBackend, SkipEpisode
from data_pipeline.annotation.config import ANNOTATOR_VERSION, AnnotationConfig
from data_pipeline.annotation.cot import build_cot
from data_pipeline.annotation.instruction_parser import parse_instruction
from data_pipeline.annotation.motion import motion_words
from data_pipeline.annotation.pushes import with_pushes
from data_pipeline.annotation.segmentation import GripperSignalError, segment_episode
from data_pipeline.annotation.sidecar import EpisodeAnnotation
from data_pipeline.annotation.source import EpisodeSource
from data_pipeline.episode import Episode
from envs.worker_backends import check_backend, make_pool
from lara.utils.errors import LaraUserError
from lara.utils.run_identity import check_same_run
from lara.utils.run_lock import LOCK_NAME, run_lock

logger = logging.getLogger(__name__)


def annotate_episode(
    episode: Episode, config: AnnotationConfig, backend: SemanticBackend
) -> EpisodeAnnotation:
    """CoT for one episode, or a `skipped` record that says why (never an empty annotation)."""
    T = episode.length
    base = dict(
        episode=int(episode.episode_index),
        num_frames=T,
        instruction=episode.instruction or "",
        config_hash=config.config_hash(),
    )
    try:
        if not (episode.instruction or "").strip():
            raise SkipEpisode("no instruction")
        expected = parse_instruction(episode.instruction).expected_grasps
        try:
            temporal = segment_episode(
                episode.gripper,
                episode.ee_pos,
                episode.gripper_kind,
                config.segmentation_params(),
                expected_grasps=expected,
            )
        except GripperSignalError as err:
            raise SkipEpisode(f"no gripper signal: {err}") from err
        try:
            moves = motion_words(episode.ee_pos, config.motion_params())
        except ValueError as err:
            raise SkipEpisode(f"no end-effector positions: {err}") from err
        anchors = backend.anchors(episode, temporal)
        temporal = with_pushes(temporal, anchors.pushes)  # closed on nothing: a push, not a grasp
        cot = build_cot(temporal, anchors, moves)
    except SkipEpisode as err:
        return EpisodeAnnotation(status="skipped", reason=str(err), **base)
    return EpisodeAnnotation(
        status="ok",
        plan=cot.plan,
        segments=cot.segments,
        objects=[o.to_json() for o in anchors.objects],
        quality_flags=[*temporal.flags, *anchors.flags],
        frames=cot.frames,
        **base,
    )


# ------------------------------------------------------------------ worker side
_WORKER_BACKEND: tuple[str, SemanticBackend] | None = None


def _backend_for(config: AnnotationConfig) -> SemanticBackend:
    """One backend per process, reused across chunks (simulators and models are slow to build)."""
    global _WORKER_BACKEND
    key = config.config_hash()
    if _WORKER_BACKEND is None or _WORKER_BACKEND[0] != key:
        if _WORKER_BACKEND is not None:
            _WORKER_BACKEND[1].close()
        _WORKER_BACKEND = (key, make_backend(config))
    return _WORKER_BACKEND[1]


def _run_chunk(args: tuple[EpisodeSource, str, dict[str, Any], list[int]]) -> list[tuple[int, str]]:
    source, name, config_dict, indices = args
    config = AnnotationConfig.from_dict(config_dict)
    backend = _backend_for(config)
    run_dir = sidecar.annotation_dir(source.root, name)
    done: list[tuple[int, str]] = []
    for ep in source.iter_episodes(indices):
        ann = annotate_episode(ep, config, backend)
        sidecar.write_episode(run_dir, ann)
        done.append((ann.episode, ann.status))
    return done


# ------------------------------------------------------------------ driver
@dataclass
class RunSummary:
    name: str
    total: int = 0
    annotated: int = 0
    skipped: int = 0
    newly_done: int = 0
    frames: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    quality_flags: dict[str, int] = field(default_factory=dict)
    segments_per_episode: dict[str, float] = field(default_factory=dict)
    subtask_vocabulary: dict[str, int] = field(default_factory=dict)  # subtask -> number of segments

    def to_json(self) -> dict[str, Any]:
        return {
            "episodes": self.total,
            "annotated": self.annotated,
            "skipped": self.skipped,
            "frames": self.frames,
            "skip_reasons": self.skip_reasons,
            "quality_flags": self.quality_flags,
            "segments_per_episode": self.segments_per_episode,
            "subtask_vocabulary": self.subtask_vocabulary,
        }

    def format(self) -> str:
        lines = [
            f"annotation run {self.name!r}: {self.annotated}/{self.total} episodes annotated "
            f"({self.newly_done} this run), {self.skipped} skipped, {self.frames} frames"
        ]
        if self.segments_per_episode:
            s = self.segments_per_episode
            lines.append(f"  segments per episode: mean {s['mean']}, min {s['min']}, max {s['max']}")
        for reason, n in sorted(self.skip_reasons.items()):
            lines.append(f"  skipped ({n}): {reason}")
        for flag, n in sorted(self.quality_flags.items()):
            lines.append(f"  quality flag ({n} episodes): {flag}")
        lines.append(f"  subtask vocabulary ({len(self.subtask_vocabulary)} phrases):")
        for text, n in sorted(self.subtask_vocabulary.items(), key=lambda kv: (-kv[1], kv[0]))[:30]:
            lines.append(f"    {n:5d}  {text}")
        return "\n".join(lines)


def summarize(run_dir: Any, name: str) -> RunSummary:
    """Summary recomputed from the episode files (order-independent, so meta.json is reproducible)."""
    summary = RunSummary(name=name)
    seg_counts: list[int] = []
    reasons: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    vocab: Counter[str] = Counter()
    for ep in sidecar.finished_episodes(run_dir):
        ann = sidecar.read_episode(sidecar.episode_path(run_dir, ep))
        summary.total += 1
        if ann.status != "ok":
            summary.skipped += 1
            reasons[ann.reason.split(":")[0]] += 1
            continue
        summary.annotated += 1
        summary.frames += ann.num_frames
        seg_counts.append(len(ann.segments))
        for flag in sorted({f.split(":")[0] for f in ann.quality_flags}):
            flags[flag] += 1
        for seg in ann.segments:
            vocab[str(seg["subtask"])] += 1
    if seg_counts:
        summary.segments_per_episode = {
            "mean": round(sum(seg_counts) / len(seg_counts), 3),
            "min": min(seg_counts),
            "max": max(seg_counts),
        }
    summary.skip_reasons = dict(sorted(reasons.items()))
    summary.quality_flags = dict(sorted(flags.items()))
    summary.subtask_vocabulary = dict(sorted(vocab.items()))
    return summary


def _meta(
    name: str, config: AnnotationConfig, summary: RunSummary | None, complete: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "annotator_version": ANNOTATOR_VERSION,
        "backend": config.backend,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "frame_tags": list(sidecar.FRAME_TAGS),
        "episode_tags": list(sidecar.EPISODE_TAGS),
        "complete": bool(complete),  # every episode of the dataset has a file (ok or skipped)
    }
    if summary is not None:
        meta["counts"] = summary.to_json()
    return meta


def _chunks(indices: list[int], workers: int) -> list[list[int]]:
    """Contiguous chunks, about 4 per worker, so the progress bar moves and the load balances."""
    if not indices:
        return []
    size = max(1, math.ceil(len(indices) / (max(1, workers) * 4)))
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def annotate_dataset(
    source: EpisodeSource,
    name: str,
    config: AnnotationConfig,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    episodes: list[int] | None = None,
    worker_backend: str = "local",
    ray_address: str | None = None,
) -> RunSummary:
    """Annotate every episode of `source` (or `episodes`) into `<root>/annotations/<name>/`.

    Resumes a run of the same name and config; refuses (LaraUserError) to mix configs unless
    `overwrite`. Returns the summary, also stored in meta.json. `worker_backend` "ray" runs the
    workers as Ray actors (envs.worker_backends; on a cluster at `ray_address`, whose nodes must see
    the dataset at the same path: the workers read it and write the sidecar files there).
    """
    if workers < 1:
        raise LaraUserError(f"--workers must be >= 1, got {workers}")
    check_backend(worker_backend, ray_address, "--worker_backend")
    run_dir = sidecar.annotation_dir(source.root, name)
    with run_lock(run_dir, "lara annotate"):  # one run per annotation folder
        placement = (worker_backend, ray_address)
        return _annotate_locked(
            source, name, config, run_dir, workers, overwrite, progress, episodes, placement
        )


def _annotate_locked(
    source: EpisodeSource,
    name: str,
    config: AnnotationConfig,
    run_dir: Any,
    workers: int,
    overwrite: bool,
    progress: bool,
    episodes: list[int] | None,
    placement: tuple[str, str | None] = ("local", None),
) -> RunSummary:
    old = sidecar.read_meta(run_dir)
    if old is not None and old.get("config_hash") != config.config_hash():
        if not overwrite:  # the keys that differ, named (a run before meta.json kept its config: the hash)
            recorded = old.get("config") or {"config_hash": old.get("config_hash")}
            now = config.to_dict() if "config" in old else {"config_hash": config.config_hash()}
            error = check_same_run(run_dir, recorded, now, f"annotation run {name!r} with another config")
            error = error or f"{run_dir} holds annotation run {name!r} with another config (hash differs)"
            raise LaraUserError(f"{error}: choose another --name, or pass --overwrite to replace it")
    if overwrite and run_dir.exists():
        for child in run_dir.iterdir():  # everything but the lock this run holds
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    all_indices = source.episode_indices()  # reads the dataset: fails before meta.json says anything
    dataset_indices = list(all_indices)
    if episodes is not None:
        missing = sorted(set(episodes) - set(all_indices))
        if missing:
            raise LaraUserError(f"episodes {missing[:10]} are not in the dataset (it has {len(all_indices)})")
        all_indices = sorted(set(episodes))
    if not all_indices:
        raise LaraUserError(f"{source.root}: the dataset has no episodes")
    finished = set(sidecar.finished_episodes(run_dir))
    todo = [i for i in all_indices if i not in finished]
    logger.info(
        "annotation %r: %d episodes, %d already done, %d to do, %d worker(s)",
        name,
        len(all_indices),
        len(all_indices) - len(todo),
        len(todo),
        workers,
    )
    sidecar.write_meta(run_dir, _meta(name, config, None))  # the config of a run that may be killed
    chunks = _chunks(todo, workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"annotate {name}", unit="ep")
    newly = 0
    try:
        tasks = [(source, name, config.to_dict(), chunk) for chunk in chunks]
        # a worker killed mid-chunk costs a re-run of that chunk only (envs.workers)
        with make_pool(_run_chunk, max(1, min(workers, len(chunks))), None, (), None, *placement) as pool:
            for _task, done in pool.imap_unordered(tasks):
                newly += len(done)
                if bar is not None:
                    bar.update(len(done))
    except BaseException:
        if not sidecar.finished_episodes(run_dir):  # failed before any episode was annotated:
            (run_dir / sidecar.META_FILE).unlink(missing_ok=True)  # leave no run that looks interrupted
        raise
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(run_dir, name)
    summary.newly_done = newly
    complete = set(dataset_indices) <= set(sidecar.finished_episodes(run_dir))
    sidecar.write_meta(run_dir, _meta(name, config, summary, complete=complete))
    return summary


def close_cached_backend() -> None:
    """Close the in-process backend (simulator/model) kept between calls."""
    global _WORKER_BACKEND
    if _WORKER_BACKEND is not None:
        _WORKER_BACKEND[1].close()
        _WORKER_BACKEND = None
