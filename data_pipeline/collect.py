"""Scripted demo collection: run the expert in W worker processes, keep successes, write a dataset.

Why this layout: each finished demo is saved on its own (atomically) under `<out>.partial/`, so a
killed run keeps every finished episode and the same command continues where it stopped; the final
LeRobot dataset (and optional LIBERO HDF5 files) is assembled from those files in one atomic write
at the end (data_pipeline.collected_dataset), so `<out>` exists only when it is complete. Failed
attempts are retried with a new start-state perturbation (up to `max_attempts`) and reported, never
written.

Files under `<out>.partial/`: `config.json` (what the run collects; a resume with other settings is
refused), `episodes/task{T}_ep{K}.npz` (one success each), `reports.jsonl` (one line per job).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_pipeline.collect_worker import Job, close_cached_env, episode_file, run_batch
from data_pipeline.collected_dataset import COLLECTION_FILE, write_collected
from envs.libero_env import REGION_FITS
from envs.protocol import check_render_quality
from envs.worker_backends import check_backend, make_pool
from lara.utils.atomic import remove_stale_temps
from lara.utils.errors import LaraUserError
from lara.utils.jsonl import append_jsonl, repair_jsonl
from lara.utils.run_identity import check_same_run
from lara.utils.run_lock import run_lock

logger = logging.getLogger(__name__)

# settings that change what an episode file contains: a resume must use the same values
_RUN_KEYS = (
    "suite",
    "camera_size",
    "perturb_xy",
    "settle_steps",
    "max_steps",
    "seed",
    "finish_motion",
    "init",
    "min_layout_distance",
    "region_fit",
    "render_quality",
)
INIT_MODES = ("shipped", "sampled")


@dataclass
class CollectConfig:
    suite: str = "libero_object"
    tasks: str = "all"  # "all" or comma-separated task ids, e.g. "0,3,4"
    episodes_per_task: int = 10
    out: str = ""  # output LeRobot dataset folder
    workers: int = 1
    backend: str = "local"  # local: worker processes here; ray: Ray actors (a local Ray, or --ray_address)
    ray_address: str | None = None  # join a running Ray cluster (its nodes share <out>'s filesystem)
    camera_size: int = 128  # both cameras, square (official LIBERO demos: 128)
    # standard | fast (no multisampling: frames 0.6x the cost, edges differ); evaluate with the same
    render_quality: str = "standard"
    # start layouts: "shipped" = the suite's init state k mod 50 (the evaluation's own states, jittered by
    # perturb_xy); "sampled" = LIBERO's placement sampler, never within min_layout_distance of one
    init: str = "shipped"
    min_layout_distance: float = 0.01  # sampled: metres (x/y) some object must be from each evaluation state
    max_layout_draws: int = 20  # sampled: layouts drawn per attempt before the slot is reported as failed
    # sampled: "center" = an object's center anywhere in its BDDL region; "footprint" = LIBERO's default,
    # the whole footprint inside (libero_object then leaves 0-1.5 cm of play: nearly every draw is refused)
    region_fit: str = "center"
    perturb_xy: float = 0.01  # metres of uniform x/y jitter per object on top of the start layout
    settle_steps: int = 5  # no-op steps after the perturbation, before recording
    max_attempts: int = 3  # expert rollouts per episode slot before it is reported as failed
    max_steps: int | None = None  # per rollout; None = the suite's protocol limit
    finish_motion: bool = True  # record release + retract after success (False: stop at the first success)
    seed: int = 7
    hdf5_dir: str | None = None  # also write LIBERO HDF5 files (one per task) here
    keep_partial: bool = False  # keep `<out>.partial/` after the dataset is written
    repo_id: str = "lara/scripted"

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1 or self.workers < 1 or self.max_attempts < 1 or self.camera_size < 8:
            raise LaraUserError("episodes_per_task, workers and max_attempts must be >= 1, camera_size >= 8")
        if self.init not in INIT_MODES:
            raise LaraUserError(f"--init {self.init!r}: choose one of {', '.join(INIT_MODES)}")
        check_render_quality(self.render_quality)
        check_backend(self.backend, self.ray_address)
        if self.region_fit not in REGION_FITS:
            raise LaraUserError(f"--region_fit {self.region_fit!r}: choose one of {', '.join(REGION_FITS)}")
        if not 0 <= self.min_layout_distance <= 0.1 or self.max_layout_draws < 1:
            raise LaraUserError("min_layout_distance must be in 0..0.1 m and max_layout_draws >= 1")
        if not 0 <= self.perturb_xy <= 0.05:
            raise LaraUserError(f"perturb_xy={self.perturb_xy}: use 0..0.05 m (objects must not collide)")

    def task_ids(self, n_tasks: int) -> list[int]:
        from envs.protocol import parse_task_ids

        return parse_task_ids(self.tasks, n_tasks)


@dataclass
class CollectResult:
    out: Path
    episodes: int = 0
    frames: int = 0
    collected_now: int = 0
    resumed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def demos_per_minute(self) -> float:
        return 60.0 * self.collected_now / self.seconds if self.seconds > 0 else 0.0


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _check_resume(partial: Path, cfg: CollectConfig) -> None:
    path = partial / "config.json"
    mine = {k: getattr(cfg, k) for k in _RUN_KEYS}
    if path.is_file():
        # a key the run's config.json predates had its default then (runs before --init were "shipped")
        theirs = {k: getattr(CollectConfig, k) for k in _RUN_KEYS} | json.loads(path.read_text())
        error = check_same_run(partial, theirs, mine, "a run with other settings", keys=_RUN_KEYS)
        if error:
            raise LaraUserError(
                f"{error}; re-run with the same settings to resume, or delete that folder to start over"
            )
    else:
        partial.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine, indent=2))


def batch_jobs(jobs: list[Job], workers: int, max_batch: int = 5) -> list[list[Job]]:
    """Group jobs into batches of consecutive slots of one task, so a worker builds each task's env
    once per batch (building takes 7-18 s here, a demo 30-60 s). With fewer tasks than workers a
    task is split across workers; batches are capped at `max_batch` to keep progress granular."""
    by_task: dict[int, list[Job]] = {}
    for job in jobs:
        by_task.setdefault(job.task_id, []).append(job)
    per_task_workers = max(1, workers // max(len(by_task), 1))
    batches = []
    for task_jobs in by_task.values():
        size = min(max_batch, -(-len(task_jobs) // per_task_workers))  # ceil division
        batches += [task_jobs[i : i + size] for i in range(0, len(task_jobs), size)]
    return batches


class _Progress:
    """The bar counts demos as they land on disk (a worker returns a whole batch at once) plus the
    slots that finished without one, on top of those a previous run collected."""

    def __init__(self, jobs: list[Job], resumed: int):
        self.jobs, self.failed = jobs, 0
        self.bar = tqdm(total=len(jobs) + resumed, initial=resumed, desc="collecting demos", unit="demo")
        self.resumed = resumed

    def refresh(self) -> None:
        on_disk = sum(job.file.is_file() for job in self.jobs)
        if self.bar.n != self.resumed + on_disk + self.failed:
            self.bar.n = self.resumed + on_disk + self.failed
            self.bar.set_postfix(ok=on_disk, failed=self.failed)  # redraws the bar


def _run_jobs(
    jobs: list[Job],
    workers: int,
    partial: Path,
    result: CollectResult,
    backend: str = "local",
    ray_address: str | None = None,
) -> None:
    reports = partial / "reports.jsonl"
    repair_jsonl(reports)  # a torn last line would swallow the next report appended after it
    progress = _Progress(jobs, result.resumed)
    try:
        # one demo batch per unit; a worker killed mid-batch costs a re-run of that batch only, whose
        # finished demos are already on disk (envs.workers)
        pool = make_pool(
            run_batch, workers, finalizer=close_cached_env, backend=backend, ray_address=ray_address
        )
        with pool:
            done = pool.imap_unordered(batch_jobs(jobs, workers), idle=progress.refresh)
            _consume((batch_reports for _batch, batch_reports in done), reports, progress, result)
    finally:
        progress.bar.close()


def _consume(
    batches: Iterator[list[dict[str, Any]]], reports: Path, progress: _Progress, result: CollectResult
) -> None:
    counts: Counter = Counter()
    for report in (r for batch in batches for r in batch):
        append_jsonl(reports, {k: v for k, v in report.items() if k != "traceback"})
        counts[report["status"]] += 1
        if report["status"] == "ok":
            result.collected_now += 1
        else:
            result.failed.append(report)
            if report["status"] == "error":
                logger.warning(
                    "job %s crashed: %s\n%s", report["job"], report.get("error"), report.get("traceback")
                )
            progress.failed += 1
        progress.refresh()
    result.status_counts = dict(counts)


def collect(cfg: CollectConfig) -> CollectResult:
    """Collect (or resume) the run described by `cfg` and write the dataset at `cfg.out`."""
    if not cfg.out:
        raise LaraUserError("--out is required: the folder of the LeRobot dataset to write")
    out = Path(cfg.out)
    if out.exists():
        raise LaraUserError(
            f"{out} already exists (a finished collection); choose another --out or delete it"
        )
    from envs.libero_env import num_tasks

    task_ids = cfg.task_ids(num_tasks(cfg.suite))
    partial = partial_dir(out)
    with run_lock(partial, "lara collect"):  # one run per --out: two would collect each demo twice
        return _collect_locked(cfg, out, partial, task_ids)


def _collect_locked(cfg: CollectConfig, out: Path, partial: Path, task_ids: list[int]) -> CollectResult:
    if out.exists():  # finished by a run that held the lock before us
        raise LaraUserError(
            f"{out} already exists (a finished collection); choose another --out or delete it"
        )
    _check_resume(partial, cfg)
    remove_stale_temps(out.parent, f".{out.name}.tmp-")  # a run killed while writing the dataset
    remove_stale_temps(partial / "episodes", ".")  # ... or while a worker saved a demo
    if cfg.hdf5_dir:
        remove_stale_temps(cfg.hdf5_dir, ".")
    all_jobs = [
        Job(
            cfg.suite,
            t,
            k,
            cfg.camera_size,
            cfg.perturb_xy,
            cfg.settle_steps,
            cfg.max_attempts,
            cfg.max_steps,
            cfg.seed,
            str(partial),
            cfg.finish_motion,
            cfg.init,
            cfg.min_layout_distance,
            cfg.max_layout_draws,
            cfg.region_fit,
            cfg.render_quality,
        )
        for t in task_ids
        for k in range(cfg.episodes_per_task)
    ]
    todo = [job for job in all_jobs if not job.file.is_file()]
    result = CollectResult(out=out, resumed=len(all_jobs) - len(todo))
    if result.resumed:
        logger.info(
            "resuming: %d of %d demos already collected in %s", result.resumed, len(all_jobs), partial
        )
    start = time.perf_counter()
    _run_jobs(todo, min(cfg.workers, max(len(todo), 1)), partial, result, cfg.backend, cfg.ray_address)
    result.seconds = time.perf_counter() - start
    done = [(j.task_id, j.slot) for j in all_jobs if j.file.is_file()]
    if not done:
        raise LaraUserError(
            f"no successful demos for {cfg.suite} tasks {task_ids}; see {partial / 'reports.jsonl'}"
        )
    write_collected(partial, done, cfg, out)
    result.episodes = len(done)
    result.frames = int(sum(np.load(episode_file(partial, t, k))["action"].shape[0] for t, k in done))
    if not cfg.keep_partial:
        shutil.rmtree(partial, ignore_errors=True)
    return result


def summary(result: CollectResult) -> str:
    if result.collected_now or result.failed:
        how = (
            f"{result.collected_now} collected now in {result.seconds:.0f} s = {result.demos_per_minute:.2f} "
            f"demos/min, {result.resumed} from a previous run"
        )
    else:
        how = f"all {result.resumed} from a previous run"
    lines = [f"wrote {result.out}: {result.episodes} episodes, {result.frames} frames ({how})"]
    meta_path = result.out / COLLECTION_FILE
    if meta_path.is_file() and (meta := json.loads(meta_path.read_text()))["init"] == "sampled":
        lines.append(
            f"  start layouts: LIBERO's placement sampler (seed {meta['seed']}); "
            f"{meta['layouts_refused']} refused within {meta['min_layout_distance_m']} m of an evaluation "
            f"init state; nearest kept: {meta['min_distance_to_evaluation_states_m']:.3f} m"
        )
    for rep in result.failed:
        job = rep["job"]
        lines.append(
            f"  not collected: task {job['task_id']} slot {job['slot']}: {rep['status']} after "
            f"{rep['attempts']} attempt(s) {rep.get('error', '')}".rstrip()
        )
    return "\n".join(lines)


__all__ = ["CollectConfig", "CollectResult", "collect", "summary"]
