"""One scripted demonstration in LIBERO: what a `lara collect` worker process runs per job.

Why a separate module: worker processes import only this (MuJoCo, LIBERO, the expert), never the
LeRobot/arrow stack, and each job is self-contained (task, episode slot, attempt -> npz file), so
the parent can resume a killed run by listing finished files.

Start states (`init`): with "shipped", episode slot k of a task starts from the suite's shipped init
state `k % num_init_states` (as the benchmark does); with "sampled", from a new layout drawn by
LIBERO's placement sampler (seeded per job, attempt and draw). Then every free-jointed object is
shifted in x/y by a uniform offset in [-perturb_xy, perturb_xy] (seeded per job and attempt), and
the scene settles for a few no-op steps. A sampled layout whose objects all lie within
`min_layout_distance` of one of the task's shipped (evaluation) init states is drawn again, so no
demo starts from an evaluation state. The recorded `init_state` is the MuJoCo state after settling:
the exact state the episode's first frame was rendered from, so a replay starts there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.expert_recording import record_expert

logger = logging.getLogger(__name__)

_ENV_CACHE: dict[str, Any] = {}  # per worker process: the last built env and expert, reused across jobs


@dataclass(frozen=True)
class Job:
    suite: str
    task_id: int
    slot: int  # episode slot within the task: 0..episodes_per_task-1
    camera_size: int
    perturb_xy: float
    settle_steps: int
    max_attempts: int
    max_steps: int | None  # None: the suite's protocol limit
    seed: int
    out_dir: str  # the run's partial folder
    finish_motion: bool = True  # after success, record the release and retract until the expert is done
    init: str = "shipped"  # shipped | sampled (see the module docstring)
    min_layout_distance: float = 0.01  # sampled: metres an object must be from every evaluation init state
    max_layout_draws: int = 20  # sampled: draws per attempt before the job fails
    region_fit: str = "center"  # sampled: how an object sits in its BDDL region (LiberoEnv.reset_sampled)
    render_quality: str = "standard"  # LiberoEnv: standard | fast (no multisampling)

    @property
    def file(self) -> Path:
        return episode_file(Path(self.out_dir), self.task_id, self.slot)


def episode_file(partial: Path, task_id: int, slot: int) -> Path:
    return partial / "episodes" / f"task{task_id:03d}_ep{slot:05d}.npz"


def _job_rng(job: Job, attempt: int) -> np.random.Generator:
    key = f"{job.seed}:{job.suite}:{job.task_id}:{job.slot}:{attempt}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


def _env_and_expert(job: Job) -> tuple[Any, Any]:
    key = f"{job.suite}:{job.task_id}:{job.camera_size}:{job.render_quality}"
    if _ENV_CACHE.get("key") != key:
        if "env" in _ENV_CACHE:
            _ENV_CACHE["env"].close()
            _ENV_CACHE.clear()
        from envs import libero_setup

        libero_setup.configure()
        from envs.libero_env import LiberoEnv
        from envs.scripted_expert import ScriptedExpert

        env = LiberoEnv(
            job.suite,
            job.task_id,
            camera_size=job.camera_size,
            render=True,
            seed=job.seed,
            render_quality=job.render_quality,
        )
        _ENV_CACHE.update(key=key, env=env, expert=ScriptedExpert(env))
    return _ENV_CACHE["env"], _ENV_CACHE["expert"]


def close_cached_env() -> None:
    """Close the worker's cached env (frees its GL context before interpreter teardown)."""
    if "env" in _ENV_CACHE:
        _ENV_CACHE["env"].close()
    _ENV_CACHE.clear()


def perturb_objects(env: Any, rng: np.random.Generator, perturb_xy: float) -> None:
    """Shift every free-jointed object by a uniform x/y offset in [-perturb_xy, perturb_xy] metres."""
    if perturb_xy <= 0:
        return
    data = env.sim.data
    for obj in env.raw_env.objects_dict.values():
        for joint in obj.joints:
            qpos = np.array(data.get_joint_qpos(joint))  # (7,) for a free joint: pos(3), quat(4)
            if qpos.shape != (7,):
                continue
            qpos[:2] += rng.uniform(-perturb_xy, perturb_xy, size=2)
            data.set_joint_qpos(joint, qpos)
            data.set_joint_qvel(joint, np.zeros(6))
    env.sim.forward()


class LayoutDrawError(RuntimeError):
    """Every sampled layout of an attempt was too close to an evaluation init state."""


def _start(job: Job, attempt: int, env: Any) -> tuple[Any, dict[str, Any]]:
    """Put the env in the episode's start state; returns (first obs, how the layout was drawn)."""
    from envs.layouts import check_env_layout, layout_seed
    from envs.protocol import noop_action

    for draw in range(job.max_layout_draws if job.init == "sampled" else 1):
        if job.init == "sampled":
            seed = layout_seed(job.seed, job.suite, job.task_id, job.slot, attempt, draw)
            obs = env.reset_sampled(seed, job.region_fit)
        else:
            obs = env.reset(job.slot % env.num_init_states)
        perturb_objects(env, _job_rng(job, attempt), job.perturb_xy)
        for _ in range(job.settle_steps):
            obs, _, _ = env.step(noop_action())
        if job.init != "sampled":
            return obs, {"init_state_index": job.slot % env.num_init_states}
        # checked on the state the demo really starts from (after jitter and settling)
        check = check_env_layout(env, job.min_layout_distance)
        if not check.too_close:
            return obs, {"layout_seed": seed, "resampled": draw, **check.as_dict()}
        logger.info(
            "task %d slot %d: layout %d within %.3f m of init state %d, drawing again",
            job.task_id,
            job.slot,
            seed,
            check.distance,
            check.nearest_index,
        )
    raise LayoutDrawError(
        f"{job.max_layout_draws} sampled layouts were all within {job.min_layout_distance} m "
        "of an evaluation init state; lower --min_layout_distance or raise --max_layout_draws"
    )


def _rollout(job: Job, attempt: int) -> tuple[bool, dict[str, Any]]:
    """Run the expert once; returns (success, arrays of the episode)."""
    from envs.protocol import max_steps

    env, expert = _env_and_expert(job)
    obs, layout = _start(job, attempt, env)
    init_state = env.get_sim_state()
    expert.reset()
    arrays, success = record_expert(
        env,
        expert,
        obs,
        job.max_steps or max_steps(job.suite),
        # LIBERO's predicate often holds while the object is still in the gripper (above the basket):
        # demos that stop there never show the release, and a policy trained on them never learns it.
        stop_at="expert_done" if job.finish_motion else "success",
        joints=True,
    )
    if job.finish_motion:
        success = env.check_success()  # the object must still be in place after release and retract
    arrays |= {
        "init_state": init_state,
        "init_state_index": np.array(layout.get("init_state_index", -1)),  # -1: a sampled layout
        "layout": np.array(json.dumps(layout)),
        "instruction": np.array(env.instruction),
        "task_name": np.array(env.task_name),
        "bddl_file": np.array(env.bddl_path),
    }
    return success, arrays


def run_job(job: Job) -> dict[str, Any]:
    """Try a job up to `max_attempts` times; a success is saved atomically to `job.file`.

    Returns a small report (never raises): status "ok" | "failed" | "unsupported" | "layout" | "error".
    """
    start = time.perf_counter()
    report: dict[str, Any] = {"job": asdict(job), "status": "failed", "attempts": 0, "steps": []}
    try:
        for attempt in range(job.max_attempts):
            report["attempts"] = attempt + 1
            success, arrays = _rollout(job, attempt)
            report["steps"].append(int(len(arrays["action"])))
            report["layout"] = json.loads(str(arrays["layout"]))  # the last attempt's start
            report["layouts_refused"] = report.get("layouts_refused", 0) + report["layout"].get(
                "resampled", 0
            )
            if success:
                job.file.parent.mkdir(parents=True, exist_ok=True)
                tmp = job.file.with_name(f".{job.file.stem}.tmp-{os.getpid()}.npz")
                np.savez_compressed(tmp, attempt=np.array(attempt), **arrays)
                tmp.replace(job.file)
                report["status"] = "ok"
                break
    except Exception as err:  # one bad job must not kill the run; the report says what happened
        from envs.scripted_expert import UnsupportedTaskError

        kinds = {UnsupportedTaskError: "unsupported", LayoutDrawError: "layout"}
        report["status"] = next((v for k, v in kinds.items() if isinstance(err, k)), "error")
        report["error"] = f"{type(err).__name__}: {err}"
        if isinstance(err, LayoutDrawError):
            report["layouts_refused"] = report.get("layouts_refused", 0) + job.max_layout_draws
        if report["status"] == "error":
            report["traceback"] = traceback.format_exc(limit=8)
    report["seconds"] = time.perf_counter() - start
    return report


def run_batch(jobs: list[Job]) -> list[dict[str, Any]]:
    """Run jobs in order in this worker (same task: the env is built once); one report per job."""
    return [run_job(job) for job in jobs]
