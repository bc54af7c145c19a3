"""Closed-loop LIBERO evaluation in parallel worker processes, resumable episode by episode.

Layout of an output directory:
    run.json          the run's identity (policy, suite, protocol settings); a re-run must match it
    episodes.jsonl    one JSON line per finished episode, appended by the parent process only
    results.json      per-task / per-suite successes with 95% Wilson intervals (rebuilt at the end)
    report.md, success.png, videos/*.mp4 (with --video: agentview | wrist side by side)

Each worker owns its simulator (MuJoCo and GL contexts do not survive a fork, so workers are
spawned, `envs.workers`) and keeps the environment of the last task it ran, so consecutive episodes
of a task reuse it; a worker killed mid-episode costs a re-run of that episode only. Finished
episodes are written the moment they come back: a killed run loses only the episodes in flight, and
the same command resumes with what is missing. An episode that raises (MuJoCo instability, a policy
crash) is recorded with its error and the run goes on; a policy that returns malformed actions stops
the run with one clear line, since every episode would fail the same way.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.episode_clock import EpisodeClock
from envs.policies import (
    BUILTIN_POLICIES,
    build_policy,
    check_action,
    checkpoint_inference,
    needs_observation,
    validate_policy_spec,
)
from envs.protocol import check_render_quality, check_suite, parse_task_ids
from envs.report import write_report
from envs.worker_backends import BACKENDS, make_pool
from lara.utils.errors import LaraUserError
from lara.utils.jsonl import append_jsonl, read_jsonl, repair_jsonl
from lara.utils.process_guard import exit_with_parent
from lara.utils.run_identity import check_same_run
from lara.utils.run_lock import run_lock

logger = logging.getLogger(__name__)

# Settings that change what an episode's result means: a resumed run must use the same ones.
IDENTITY_KEYS = (
    "policy",
    "suite",
    "camera_size",
    "render_quality",
    "seed",
    "execute_steps",
    "max_steps",
    "dataset",
)


@dataclass
class EvalConfig:
    """`lara eval` settings (YAML presets in configs/eval/, every field overridable by flag)."""

    policy: str = "scripted"  # noop | scripted | replay | <checkpoint dir>
    suite: str = "libero_object"  # or several, comma-separated: one run per suite (envs.multi_suite)
    tasks: str = "all"  # "all" or comma-separated task ids, e.g. "0,3"
    episodes: int = 50  # per task; episode i starts from init state i
    workers: int = 1
    out: Path = Path("runs/eval")
    video: bool = False
    camera_size: int = 256
    # standard (the protocol) | fast: no multisampling, frames 0.6x the cost whose edges differ; match
    # the demos' (their lara/collection.json says which)
    render_quality: str = "standard"
    seed: int = 7
    execute_steps: int | None = None  # actions run per chunk (None: checkpoint's inference.n_action_steps)
    max_steps: int | None = None  # override of the suite's step limit (smoke tests only; reported)
    dataset: str | None = None  # `--policy replay`: the dataset whose recorded actions are played back
    # cameras: None renders the frames the policy or --video reads; true every step's; false none
    render: bool | None = None
    backend: str = "local"  # local: worker processes here; ray: Ray actors (a local Ray, or --ray_address)
    ray_address: str | None = None  # join a running Ray cluster ("auto", "ray://host:10001"); needs ray
    records: Path | None = None  # episode record file; None: <out>/episodes.jsonl (several suites share one)

    def __post_init__(self) -> None:
        for suite in self.suite.split(","):
            check_suite(suite)
        if self.episodes < 1:
            raise LaraUserError(f"--episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise LaraUserError(f"--workers must be >= 1, got {self.workers}")
        if self.execute_steps is not None and self.execute_steps < 1:
            raise LaraUserError(f"--execute_steps must be >= 1, got {self.execute_steps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LaraUserError(f"--max_steps must be >= 1, got {self.max_steps}")
        check_render_quality(self.render_quality)
        if self.backend not in BACKENDS:
            raise LaraUserError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.ray_address and self.backend != "ray":
            raise LaraUserError("--ray_address joins a Ray cluster: add --backend ray")
        if self.video and self.render is False:
            raise LaraUserError("--video needs rendering; drop --render false")
        self.out = Path(self.out)
        self.records = None if self.records is None else Path(self.records)

    def identity(self) -> dict:
        return {key: (str(v) if isinstance(v := getattr(self, key), Path) else v) for key in IDENTITY_KEYS}


@dataclass(frozen=True)
class EpisodeUnit:
    task: int
    episode: int


@dataclass
class EpisodeRecord:
    suite: str
    task: int
    task_name: str
    episode: int
    init_state_index: int | None
    success: bool
    steps: int
    seconds: float
    policy_latency_ms: float | None  # mean per select_action call
    chunk_latency_ms: float | None = None  # mean per predicted chunk (chunked policies)
    # where the episode's `seconds` went (see EpisodeClock); the rest is checks, policy reset and video
    sim_seconds: float | None = None  # physics, controller, observation building (reset included)
    render_seconds: float | None = None  # MuJoCo offscreen rendering of the cameras
    policy_seconds: float | None = None  # select_action calls
    setup_seconds: float | None = None  # building the env and the policy (when the task changed)
    error: str | None = None
    video: str | None = None
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- worker side
_WORKER: dict = {}


def _init_worker(
    cfg: EvalConfig, torch_threads: int | None = None, in_subprocess: bool = False, policy_builder=None
) -> None:
    from envs import libero_setup

    if in_subprocess:
        exit_with_parent()
        if torch_threads:  # Mesa's llvmpipe renderer starts one thread per core in every worker otherwise
            os.environ.setdefault("LP_NUM_THREADS", str(torch_threads))
    libero_setup.configure()
    if torch_threads and cfg.policy not in BUILTIN_POLICIES:
        import torch

        # W workers share the cores: oversubscribed OpenMP threads spin and slow everything down.
        torch.set_num_threads(torch_threads)
    _WORKER.clear()
    _WORKER["cfg"] = cfg
    _WORKER["policy_builder"] = policy_builder


def _worker_env(task: int):
    """The worker's env + policy for `task`, rebuilt only when the task changes."""
    cfg: EvalConfig = _WORKER["cfg"]
    if _WORKER.get("task") != task:
        from envs.libero_env import LiberoEnv

        if "env" in _WORKER:
            _WORKER["env"].close()
        needs_images = (
            cfg.render if cfg.render is not None else (cfg.video or cfg.policy not in BUILTIN_POLICIES)
        )
        env = LiberoEnv(
            cfg.suite,
            task,
            camera_size=cfg.camera_size,
            render=needs_images,
            seed=cfg.seed,
            render_quality=cfg.render_quality,
        )
        builder = _WORKER.get("policy_builder")
        policy = builder(env) if builder is not None else build_policy(cfg.policy, env, cfg.execute_steps)
        _WORKER.update(task=task, env=env, policy=policy)
    return _WORKER["env"], _WORKER["policy"]


def _close_worker_env() -> None:
    """Close the worker's simulator now: freeing its GL context at interpreter exit raises EGL errors."""
    if "env" in _WORKER:
        _WORKER.pop("env").close()
    _WORKER.clear()


def _write_video(frames: list[np.ndarray], path: Path, fps: int = 20) -> None:
    import imageio.v2 as imageio

    tmp = path.with_name(path.stem + ".tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    tmp.replace(path)


def run_episode(unit: EpisodeUnit) -> dict:
    """Run one episode in this worker; never raises for simulator/policy crashes (recorded instead)."""
    cfg: EvalConfig = _WORKER["cfg"]
    start = EpisodeClock.now()
    record = EpisodeRecord(
        suite=cfg.suite,
        task=unit.task,
        task_name="",
        episode=unit.episode,
        init_state_index=unit.episode,
        success=False,
        steps=0,
        seconds=0.0,
        policy_latency_ms=None,
    )
    latencies: list[float] = []
    frames: list[np.ndarray] = []
    clock = EpisodeClock()
    try:
        env, policy = _worker_env(unit.task)
        record.setup_seconds = EpisodeClock.now() - start
    except LaraUserError:
        raise
    except Exception as err:  # the env or the policy could not be built: not a result (see _never_started)
        record.error = f"{type(err).__name__}: {err}"
        record.extra["traceback"] = traceback.format_exc()  # logged by the parent with --verbose
        _WORKER.pop("task", None)
        return asdict(record)
    try:
        record.task_name = env.task_name
        EpisodeClock.watch(env)
        obs = clock.call("env", env.reset, unit.episode)
        EpisodeClock.watch(env)  # a reset may have built a new simulator
        if hasattr(policy, "start"):  # replay: start from the recorded episode's own initial state
            demo = policy.episode_for(unit.episode)
            policy.start(demo)
            if getattr(demo, "sim_states", None) is not None:
                obs = clock.call("env", env.set_sim_state, demo.sim_states[0])
                record.init_state_index = None
                record.extra["replayed_episode"] = int(demo.episode_index)
        policy.reset()  # a chunked policy's chunk_latency_ms restarts too
        limit = cfg.max_steps or env.max_steps
        for _ in range(limit):
            if cfg.video:
                frames.append(
                    np.concatenate([obs.images["agentview"], obs.images["wrist"]], axis=1)
                )  # (H, 2W, 3)
            spent = clock.policy
            action = check_action(clock.call("policy", policy.select_action, obs))
            latencies.append(1e3 * (clock.policy - spent))
            render = cfg.video or cfg.render or needs_observation(policy)  # frames no one reads: not rendered
            obs, done, _ = clock.call("env", env.step, action, render)
            record.steps += 1
            if done:
                record.success = True
                break
        if cfg.video:
            frames.append(np.concatenate([obs.images["agentview"], obs.images["wrist"]], axis=1))
    except LaraUserError:  # bad input or a malformed action (PolicyOutputError): stop the run
        raise
    except Exception as err:  # a crash in the simulator or the policy: keep the run going
        record.error = f"{type(err).__name__}: {err}"
        logger.warning("task %d episode %d raised:\n%s", unit.task, unit.episode, traceback.format_exc())
        _WORKER.pop("task", None)  # rebuild the env: its state is unknown after a crash
    record.seconds = EpisodeClock.now() - start
    record.policy_latency_ms = float(np.mean(latencies)) if latencies else None
    clock.fill(record)
    chunk_ms = getattr(_WORKER.get("policy"), "chunk_latency_ms", None)  # chunked policies (envs.policies)
    if chunk_ms:
        record.chunk_latency_ms = float(np.mean(chunk_ms))
    if cfg.video and frames:
        video_dir = cfg.out / "videos"
        video_dir.mkdir(parents=True, exist_ok=True)
        name = f"task{unit.task:02d}_ep{unit.episode:02d}_{'success' if record.success else 'failure'}.mp4"
        _write_video(frames, video_dir / name)
        record.video = f"videos/{name}"
    return asdict(record)


# ----------------------------------------------------------------------------- parent side
def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("lara", "libero", "robosuite", "mujoco", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _check_run_identity(cfg: EvalConfig) -> None:
    path = cfg.out / "run.json"
    if path.exists():
        previous = json.loads(path.read_text()).get("identity", {})
        previous.setdefault("render_quality", "standard")  # runs recorded before the switch existed
        now = cfg.identity()
        error = check_same_run(cfg.out, previous, now, "results of a different run", keys=now)
        if error:
            raise LaraUserError(f"{error}; use another --out or delete it")


def _never_started(record: dict) -> bool:
    """An episode whose env or policy could not be built (no task name, no step) is no result:
    never written, and dropped on resume from logs of older versions, which recorded them."""
    return bool(record.get("error")) and not record.get("steps") and not record.get("task_name")


def _read_episodes(jsonl: Path, suite: str) -> list[dict]:
    records, _ = read_jsonl(jsonl)
    return [r for r in records if r.get("suite") == suite and not _never_started(r)]


def _check_policy(spec: str) -> None:
    """Resolve and check a checkpoint once in the parent, before any worker starts or any file is
    written: a broken one is one line naming the file, not N failed episodes."""
    validate_policy_spec(spec)
    if spec not in BUILTIN_POLICIES:
        from lara.checkpoint import check_checkpoint, resolve_checkpoint_dir

        check_checkpoint(resolve_checkpoint_dir(spec))


def evaluate(cfg: EvalConfig, policy_builder=None) -> dict:
    """Run (or resume) the evaluation described by `cfg`; returns the results dict.

    `policy_builder`: a picklable callable `env -> policy` that replaces `build_policy` in every
    worker (how a higher layer supplies a policy this package cannot build, e.g. `--policy replay`,
    which reads a dataset: `data_pipeline.replay.ReplayPolicyBuilder`)."""
    if "," in cfg.suite:  # several suites: envs.multi_suite runs this function once per suite
        raise LaraUserError(
            f"--suite {cfg.suite} names several suites: envs.multi_suite.evaluate_suites scores them "
            "(`lara eval` calls it), evaluate() one suite"
        )
    from envs.libero_env import num_tasks

    if policy_builder is None:
        _check_policy(cfg.policy)
    tasks = parse_task_ids(cfg.tasks, num_tasks(cfg.suite))
    if cfg.episodes > 50:
        raise LaraUserError(
            f"--episodes {cfg.episodes}: each LIBERO task ships 50 init states (episode i uses state i)"
        )
    with run_lock(cfg.out, "lara eval"):  # one run per --out: two would count every episode twice
        return _evaluate_locked(cfg, tasks, policy_builder)


def _evaluate_locked(cfg: EvalConfig, tasks: list[int], policy_builder) -> dict:
    _check_run_identity(cfg)
    from envs import libero_setup

    gl_backend = libero_setup.configure()
    run_info = {
        "identity": cfg.identity(),
        **cfg.identity(),
        "tasks": tasks,
        "episodes_per_task": cfg.episodes,
        "workers": cfg.workers,
        "gl_backend": gl_backend,
        "versions": _versions(),
        # a checkpoint's training stage and inference path ({"stage", "inference"}), None otherwise
        "policy_inference": checkpoint_inference(cfg.policy) if policy_builder is None else None,
    }
    (cfg.out / "run.json").write_text(json.dumps(run_info, indent=2))

    jsonl = cfg.records or cfg.out / "episodes.jsonl"
    repair_jsonl(jsonl)  # a torn last line would swallow the next record appended after it
    previous = _read_episodes(jsonl, cfg.suite)
    done = {(r["task"], r["episode"]) for r in previous}
    units = [EpisodeUnit(t, e) for t in tasks for e in range(cfg.episodes) if (t, e) not in done]
    if done:
        logger.info("resuming: %d episodes already in %s, %d to run", len(done), jsonl, len(units))

    successes = sum(bool(r["success"]) for r in previous)
    bar = tqdm(
        total=len(units) + len(done),
        initial=len(done),
        desc=f"eval {cfg.suite}",
        unit="ep",
        dynamic_ncols=True,
    )
    finished = len(done)
    not_started: list[dict] = []

    def _record(result: dict) -> None:
        nonlocal successes, finished
        if _never_started(result):
            not_started.append(result)
            logger.warning(
                "task %d episode %d could not start: %s", result["task"], result["episode"], result["error"]
            )
            logger.debug("%s", result["extra"].get("traceback"))
            return
        append_jsonl(jsonl, result)
        successes += bool(result["success"])
        finished += 1
        bar.set_postfix(success=f"{successes}/{finished}")
        bar.update(1)

    # A worker killed mid-episode (SIGKILL, OOM) costs a re-run of that episode only (envs.workers).
    n_workers = max(1, min(cfg.workers, len(units)))
    spawned = n_workers > 1 or cfg.backend == "ray"
    threads = max(1, (os.cpu_count() or 1) // n_workers) if spawned else None
    initargs = (cfg, threads, spawned, policy_builder)
    pool = make_pool(
        run_episode, n_workers, _init_worker, initargs, _close_worker_env, cfg.backend, cfg.ray_address
    )
    if units:  # nothing left to run: no worker (and no Ray instance) is started
        with pool:
            for _unit, result in pool.imap_unordered(units):
                _record(result)
    bar.close()
    if not_started:
        raise LaraUserError(
            f"{len(not_started)} episode(s) could not start (first: {not_started[0]['error']}); nothing was "
            f"recorded for them: fix the cause and re-run the same command to run them"
        )
    selected = [
        r for r in _read_episodes(jsonl, cfg.suite) if r["task"] in tasks and r["episode"] < cfg.episodes
    ]
    return write_report(cfg.out, run_info, selected)
