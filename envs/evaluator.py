"""Closed-loop LIBERO evaluation over simulator workers, resumable episode by episode.

Layout of an output directory:
    run.json          the run's identity (policy, suite, protocol settings); a re-run must match it
    episodes.jsonl    one JSON line per finished episode, appended by the parent process only
    results.json      per-task / per-suite successes with 95% Wilson intervals (rebuilt at the end)
    report.md, success.png, videos/*.mp4 (with --video: agentview | wrist side by side)

Each worker owns its simulator (MuJoCo and GL contexts do not survive a fork, so workers are
spawned, `envs.workers`) and keeps the environment of the last task it ran, so consecutive episodes
of a task reuse it; a worker killed mid-episode costs a re-run of that episode only. Two ways to run
episodes (`--policy_in`): `driver` (the default for a checkpoint) keeps one policy here and steps
the workers as simulator servers, one forward for the batch of episodes in flight (envs.driver);
`workers` runs whole episodes in each worker with its own copy of the policy (envs.episode_worker:
the default for the built-in policies, which live next to their simulator). Both record the same
episodes. Finished episodes are written the moment they come back, by this process only: a killed
run loses only the episodes in flight, and the same command resumes with what is missing. An
episode that raises (MuJoCo instability, a policy crash) is recorded with its error and the run goes
on; a policy that returns malformed actions stops the run with one clear line, since every episode
would fail the same way.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from envs.driver import drive
from envs.episode_worker import close_worker_env, init_worker, run_episode
from envs.episodes import EpisodeUnit
from envs.policies import BUILTIN_POLICIES, is_batched, validate_policy_spec
from envs.protocol import check_render_quality, check_suite, parse_task_ids
from envs.report import write_report
from envs.sim_server import close_server, init_server, serve
from envs.worker_backends import check_backend, make_pool
from lara.utils.errors import LaraUserError
from lara.utils.jsonl import append_jsonl, read_jsonl, repair_jsonl
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
POLICY_IN = ("auto", "driver", "workers")


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
    # where the policy runs: auto (driver for a checkpoint, workers for a built-in policy); driver:
    # one copy here, one forward per batch of episodes in flight; workers: a copy per worker, batch 1
    policy_in: str = "auto"
    slots_per_worker: int = 1  # driver: episodes in flight per simulator worker (batch = workers x this)

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
        check_backend(self.backend, self.ray_address)
        if self.policy_in not in POLICY_IN:
            raise LaraUserError(f"--policy_in {self.policy_in!r}: choose one of {', '.join(POLICY_IN)}")
        if self.slots_per_worker < 1:
            raise LaraUserError(f"--slots_per_worker must be >= 1, got {self.slots_per_worker}")
        if self.video and self.render is False:
            raise LaraUserError("--video needs rendering; drop --render false")
        self.out = Path(self.out)
        self.records = None if self.records is None else Path(self.records)

    def identity(self) -> dict:
        return {key: (str(v) if isinstance(v := getattr(self, key), Path) else v) for key in IDENTITY_KEYS}


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
    """Without a policy builder `--policy` must name a built-in policy: a checkpoint is built by the
    command layer (one line that says so, before any worker starts or any file is written)."""
    validate_policy_spec(spec)
    if spec not in BUILTIN_POLICIES:
        raise LaraUserError(
            f"--policy {spec}: evaluate() needs the checkpoint's policy_builder "
            "(lara.modeling_lara.LaraPolicyBuilder; `lara eval` passes it)"
        )


def evaluate(cfg: EvalConfig, policy_builder=None) -> dict:
    """Run (or resume) the evaluation described by `cfg`; returns the results dict.

    `policy_builder`: a picklable callable `env -> policy` (envs.policies) that replaces
    `build_policy`: how a higher layer supplies a policy this package cannot build, e.g. a checkpoint
    (`lara.modeling_lara.LaraPolicyBuilder`, batched: it runs in the driver) or `--policy replay`,
    which reads a dataset (`data_pipeline.replay.ReplayPolicyBuilder`, built next to each env)."""
    if "," in cfg.suite:  # several suites: envs.multi_suite runs this function once per suite
        raise LaraUserError(
            f"--suite {cfg.suite} names several suites: envs.multi_suite.evaluate_suites scores them "
            "(`lara eval` calls it), evaluate() one suite"
        )
    from envs.libero_env import num_tasks

    if policy_builder is None:
        _check_policy(cfg.policy)
    describe = getattr(policy_builder, "describe", None)  # checks a checkpoint before any worker starts
    inference = describe() if describe is not None else None
    tasks = parse_task_ids(cfg.tasks, num_tasks(cfg.suite))
    if cfg.episodes > 50:
        raise LaraUserError(
            f"--episodes {cfg.episodes}: each LIBERO task ships 50 init states (episode i uses state i)"
        )
    with run_lock(cfg.out, "lara eval"):  # one run per --out: two would count every episode twice
        return _evaluate_locked(cfg, tasks, policy_builder, inference)


def _evaluate_locked(cfg: EvalConfig, tasks: list[int], policy_builder, inference: dict | None) -> dict:
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
        # a checkpoint's training stage and inference path ({"stage", "inference"}: the builder's
        # `describe()`), None for a built-in policy
        "policy_inference": inference,
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

    if units:  # nothing left to run: no worker (and no Ray instance) is started
        _run(cfg, units, policy_builder, _record)
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


def runs_in_driver(cfg: EvalConfig, policy_builder) -> bool:
    """Whether the driver steps the episodes (envs.driver) rather than each worker running its own
    (envs.episode_worker): `--policy_in`, by default the driver for a batched policy (a checkpoint)."""
    return cfg.policy_in == "driver" or (cfg.policy_in == "auto" and is_batched(policy_builder))


def _run(cfg: EvalConfig, units: list[EpisodeUnit], policy_builder, on_record) -> None:
    """Run `units` over the workers, each finished episode to `on_record`. A worker killed
    mid-episode (SIGKILL, OOM, a lost Ray actor) costs a re-run of that episode only (envs.workers)."""
    driver = runs_in_driver(cfg, policy_builder)
    slots = cfg.slots_per_worker if driver else 1
    n_workers = max(1, min(cfg.workers, -(-len(units) // slots)))
    spawned = n_workers > 1 or cfg.backend == "ray"
    threads = max(1, (os.cpu_count() or 1) // n_workers) if spawned else None
    if not driver:
        initargs = (cfg, threads, spawned, policy_builder)
        pool = make_pool(
            run_episode, n_workers, init_worker, initargs, close_worker_env, cfg.backend, cfg.ray_address
        )
        with pool:
            for _unit, result in pool.imap_unordered(units):
                on_record(result)
        return
    batched = is_batched(policy_builder)
    policy = policy_builder() if batched else None  # one copy, here; the servers hold only envs
    initargs = (cfg, threads, spawned, None if batched else policy_builder)
    pool = make_pool(serve, n_workers, init_server, initargs, close_server, cfg.backend, cfg.ray_address)
    with pool:
        drive(cfg, units, pool, policy, on_record, slots)
