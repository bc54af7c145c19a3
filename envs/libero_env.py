"""`LiberoEnv`: one LIBERO task behind the project's protocol (envs/protocol.py).

Why a wrapper: LIBERO's own env returns raw robosuite dicts with upside-down images, leaves the
wait steps, step limit and state layout to every caller, and silently accepts malformed actions
(a (6,) action raises deep inside robosuite, a NaN action corrupts the MuJoCo state). Here each
of those is done once: `reset(i)` loads shipped init state i and runs the no-op wait steps
(`reset_sampled(seed)` draws a new layout from LIBERO's placement sampler instead);
`step` validates the action and returns an `Observation` with upright images and the (8,) state.

`render=False` builds the env with no offscreen renderer and no camera observables (about 15x
faster stepping), for the scripted expert and data replays that only need privileged state.

Rendering only the frames someone looks at: `step(action, render=False)` skips the cameras of that
step (its `Observation.images` is empty) and the wait steps render only the last one. A chunked
policy that runs 8 actions open loop needs 1 frame in 8. Skipping changes no pixel of the frames
that are rendered and no bit of the physics (tests/envs/test_lazy_render_sim.py): robosuite samples a
camera once per control step inside its own timing state machine, which keeps running; only the
camera's sensor function is gated (`_CameraGate`), so a skipped step costs physics alone.

`render_quality="fast"` renders without multisampling (`vis.quality.offsamples` 0 instead of
robosuite's 4): a frame costs ~40% less on the CPU renderer and ~9% of its pixels (object edges)
differ (benchmarks/render_breakdown.py). It changes what a policy sees, so the standard protocol
keeps "standard"; collection and evaluation record which one they used.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np

from envs import libero_setup
from envs.protocol import (
    NUM_WAIT_STEPS,
    ROBOSUITE_CAMERAS,
    Observation,
    build_state,
    check_render_quality,
    check_suite,
    flip_image,
    max_steps,
    noop_action,
    validate_action,
)
from lara.utils.errors import LaraUserError
from lara.utils.verbosity import verbose

logger = logging.getLogger(__name__)


class _CameraGate:
    """Wraps robosuite's camera sensors so that a step can skip rendering them. robosuite's observable
    keeps its sampling clock (when a camera is sampled inside a control step) untouched; a gated-off
    sample returns a blank frame that nobody reads (`LiberoEnv._observation` drops it)."""

    def __init__(self) -> None:
        self.on = True

    def install(self, raw_env: Any) -> None:
        """(Re)wrap the camera sensors; a hard reset replaces them, so this runs before each use."""
        for rs_name in ROBOSUITE_CAMERAS.values():
            observable = raw_env._observables[f"{rs_name}_image"]
            if getattr(observable._sensor, "_lara_gate", None) is self:
                continue
            real = observable._sensor
            blank = np.zeros_like(np.asarray(observable.obs))

            def gated(obs_cache, real=real, blank=blank):
                return real(obs_cache) if self.on else blank

            gated.__modality__ = real.__modality__  # robosuite's @sensor marker
            gated._lara_gate = self
            observable._sensor = gated


REGION_FITS = ("footprint", "center")  # how a sampled object must sit in its BDDL region (reset_sampled)


def _benchmark(suite: str) -> Any:
    """LIBERO's Benchmark object for `suite` (imports LIBERO after configuring it)."""
    libero_setup.configure()
    from libero.libero import benchmark

    # LIBERO prints "[info] using task orders" each time: shown only when verbose
    with contextlib.nullcontext() if verbose() else contextlib.redirect_stdout(io.StringIO()):
        return benchmark.get_benchmark_dict()[suite]()


def num_tasks(suite: str) -> int:
    """Number of tasks in a suite (10, or 90 for libero_90)."""
    return int(_benchmark(check_suite(suite)).n_tasks)


class LiberoEnv:
    """One LIBERO task: `reset(episode_index) -> Observation`, `step(action) -> (obs, done, info)`.

    Args:
        suite: one of `envs.protocol.SUITES`.
        task_id: index of the task in the suite (task order 0, as the benchmark ships it).
        camera_size: height = width of both cameras (protocol: 256).
        render: False builds no renderer; `Observation.images` is then an empty dict.
        seed: seed of the robosuite env (the protocol uses 7).
    """

    def __init__(
        self,
        suite: str,
        task_id: int,
        camera_size: int = 256,
        render: bool = True,
        seed: int = 7,
        render_quality: str = "standard",
    ):
        check_suite(suite)
        bench = _benchmark(suite)
        n = int(bench.n_tasks)
        if not isinstance(task_id, (int, np.integer)) or not 0 <= int(task_id) < n:
            raise LaraUserError(f"task_id {task_id!r} out of range for {suite}: valid ids are 0..{n - 1}")
        if camera_size <= 0:
            raise LaraUserError(f"camera_size must be positive, got {camera_size}")
        check_render_quality(render_quality)
        from libero.libero.envs import OffScreenRenderEnv
        from libero.libero.envs.env_wrapper import ControlEnv

        self.suite = suite
        self.task_id = int(task_id)
        self.camera_size = int(camera_size)
        self.render = bool(render)
        self.seed = int(seed)
        self.render_quality = render_quality
        task = bench.get_task(self.task_id)
        self.task_name: str = task.name
        self.instruction: str = task.language
        self.bddl_path: str = bench.get_task_bddl_file_path(self.task_id)
        self.max_steps: int = max_steps(suite)
        self._init_states: np.ndarray = np.asarray(bench.get_task_init_states(self.task_id))  # (N, D)
        kwargs: dict[str, Any] = dict(
            bddl_file_name=self.bddl_path,
            camera_heights=self.camera_size,
            camera_widths=self.camera_size,
        )
        if self.render:
            self._env = OffScreenRenderEnv(**kwargs)
        else:
            # OffScreenRenderEnv forces an offscreen renderer; the base class lets us drop it.
            self._env = ControlEnv(has_offscreen_renderer=False, use_camera_obs=False, **kwargs)
        self._env.seed(self.seed)
        self._apply_render_quality()
        self._cameras = _CameraGate()
        self._reset_done = False
        self._closed = False
        logger.debug("built %s task %d (%s), render=%s", suite, self.task_id, self.task_name, self.render)

    # ----------------------------------------------------------------- properties
    @property
    def num_init_states(self) -> int:
        return int(self._init_states.shape[0])

    @property
    def init_states(self) -> np.ndarray:
        """(N, D) shipped init states (flattened MuJoCo states)."""
        return self._init_states

    @property
    def raw_env(self) -> Any:
        """The underlying robosuite / LIBERO environment (privileged: objects, parsed BDDL, sim)."""
        return self._env.env

    @property
    def sim(self) -> Any:
        """robosuite's MjSim (privileged state: body positions, geoms)."""
        return self._env.sim

    @property
    def obj_of_interest(self) -> list[str]:
        return list(self._env.obj_of_interest)

    @property
    def control_dt(self) -> float:
        """Seconds per `step` (robosuite control frequency 20 Hz)."""
        return 1.0 / float(self.raw_env.control_freq)

    # ----------------------------------------------------------------- protocol
    def reset(self, episode_index: int = 0) -> Observation:
        """Load shipped init state `episode_index`, run the no-op wait steps, return the first obs."""
        self._check_open()
        n = self.num_init_states
        if not isinstance(episode_index, (int, np.integer)) or not 0 <= int(episode_index) < n:
            raise LaraUserError(
                f"episode_index {episode_index!r} out of range for {self.suite} task {self.task_id}: "
                f"valid indices are 0..{n - 1} (one per shipped init state)"
            )
        self._env.reset()
        self._apply_render_quality()  # a hard reset built a new simulator and render context
        with self._cameras_off():  # the last wait step renders the first frame
            raw = self._env.set_init_state(self._init_states[int(episode_index)])
        return self._wait(raw)

    def reset_sampled(self, layout_seed: int, region_fit: str = "footprint") -> Observation:
        """Start from a new layout drawn by LIBERO's placement sampler (the BDDL regions) instead of
        a shipped init state, then run the wait steps. The same `layout_seed` gives the same layout
        (robosuite's samplers draw from numpy's global RNG, which this seeds; it is left seeded).

        `region_fit` (table regions only): "footprint" is LIBERO's default, the object's whole
        footprint inside its region, which in libero_object's 5 cm regions leaves most objects 0 to
        1.5 cm of play (99 of 100 draws measured within 1 cm of a shipped init state); "center" lets the
        object's center go anywhere in the region (the sampler's `ensure_object_boundary_in_range`
        off), overlaps still refused by the sampler.
        """
        self._check_open()
        if not isinstance(layout_seed, (int, np.integer)) or not 0 <= int(layout_seed) < 2**32:
            raise LaraUserError(f"layout_seed must be an integer in [0, 2**32), got {layout_seed!r}")
        if region_fit not in REGION_FITS:
            raise LaraUserError(f"region_fit {region_fit!r}: choose one of {', '.join(REGION_FITS)}")
        raw_env = self.raw_env
        setup = (
            raw_env._setup_placement_initializer
        )  # re-run by every hard reset, which rebuilds the samplers

        def setup_with_fit(arena: Any) -> None:
            setup(arena)
            for sampler in raw_env.placement_initializer.samplers.values():
                sampler.ensure_object_boundary_in_range = region_fit == "footprint"

        raw_env._setup_placement_initializer = setup_with_fit
        np.random.seed(int(layout_seed))
        try:
            raw = self._env.reset()  # a reset without set_init_state keeps the sampler's layout
            self._apply_render_quality()  # (raw is replaced by the wait steps' observation)
        finally:
            del raw_env._setup_placement_initializer  # back to the class's method
        return self._wait(raw)

    def _wait(self, raw: dict[str, np.ndarray]) -> Observation:
        for i in range(NUM_WAIT_STEPS):
            raw = self._raw_step(noop_action(), render=i == NUM_WAIT_STEPS - 1)[0]
        self._reset_done = True
        return self._observation(raw)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[Observation, bool, dict[str, Any]]:
        """Apply one (7,) action; `done` is LIBERO's own success predicate. `render=False`: this step's
        observation has no images (the cameras are not rendered; physics and later frames unchanged)."""
        self._check_open()
        act = validate_action(action)  # (7,)
        if not self._reset_done:
            raise LaraUserError("call reset(episode_index) before step()")
        raw, done, info = self._raw_step(act, render)
        return self._observation(raw, render), bool(done), dict(info)

    def _raw_step(self, action: np.ndarray, render: bool) -> tuple[dict, bool, dict]:
        with contextlib.nullcontext() if render else self._cameras_off():
            raw, _reward, done, info = self._env.step(action)
        return raw, done, info

    def _apply_render_quality(self) -> None:
        """ "fast": rebuild the offscreen GL context without multisampling (MuJoCo reads
        `vis.quality.offsamples` when it creates one), as robosuite itself rebuilds it for a new frame
        size; the simulator is not touched (a new robosuite render context would run mj_forward)."""
        if not self.render or self.render_quality == "standard":
            return
        ctx = self.sim._render_context_offscreen
        if ctx is None or ctx.con.offSamples == 0:
            return
        ctx.gl_ctx.make_current()
        self.sim.model.vis.quality.offsamples = 0
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()

    @contextlib.contextmanager
    def _cameras_off(self):
        if not self.render:
            yield
            return
        self._cameras.install(self.raw_env)
        self._cameras.on = False
        try:
            yield
        finally:
            self._cameras.on = True

    def check_success(self) -> bool:
        return bool(self._env.check_success())

    def get_sim_state(self) -> np.ndarray:
        """Flattened MuJoCo state (time, qpos, qvel), same layout as the shipped init states."""
        return np.asarray(self._env.get_sim_state(), dtype=np.float64).copy()

    def set_sim_state(self, state: np.ndarray) -> Observation:
        """Restore a flattened MuJoCo state (e.g. for replay) and return the observation there."""
        self._check_open()
        raw = self._env.regenerate_obs_from_state(np.asarray(state, dtype=np.float64))
        self._reset_done = True
        return self._observation(raw)

    def close(self) -> None:
        if not self._closed:
            self._env.close()
            self._closed = True

    def __enter__(self) -> LiberoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise LaraUserError("this LiberoEnv is closed; build a new one")

    def _observation(self, raw: dict[str, np.ndarray], rendered: bool = True) -> Observation:
        images: dict[str, np.ndarray] = {}
        if self.render and rendered:
            for name, rs_name in ROBOSUITE_CAMERAS.items():
                images[name] = flip_image(raw[f"{rs_name}_image"])  # (H, W, 3) uint8, upright
        return Observation(
            images=images,
            state=build_state(raw),  # (8,)
            instruction=self.instruction,
            sim_state=self.get_sim_state(),
        )
