"""Where an evaluation episode's time goes: simulator, camera rendering, policy (envs.evaluator)."""

from __future__ import annotations

import time


class EpisodeClock:
    """Splits an episode's time into simulator, rendering and policy.

    robosuite renders the cameras inside `env.step` (its camera observables call `MjSim.render`),
    so rendering is timed by wrapping the `render` method of the simulator's class once per worker
    process (the env rebuilds its MjSim on reset; the class stays). Simulator time is the time in
    env calls minus the rendering inside them."""

    render_total = 0.0  # process-wide running sum of render time
    now = staticmethod(time.perf_counter)  # one clock for every figure of a record (tests substitute it)

    def __init__(self) -> None:
        self.env = self.policy = 0.0
        self._render_start = EpisodeClock.render_total

    @classmethod
    def watch(cls, env) -> None:
        sim = getattr(env, "sim", None)
        kind = type(sim)
        render = getattr(kind, "render", None)
        if sim is None or render is None or getattr(render, "_lara_timed", False):
            return

        def timed_render(self, *args, **kwargs):
            t0 = EpisodeClock.now()
            try:
                return render(self, *args, **kwargs)
            finally:
                cls.render_total += EpisodeClock.now() - t0

        timed_render._lara_timed = True
        kind.render = timed_render

    def call(self, part: str, fn, *args):
        """fn(*args), its time added to `part` ("env" or "policy")."""
        t0 = EpisodeClock.now()
        try:
            return fn(*args)
        finally:
            setattr(self, part, getattr(self, part) + EpisodeClock.now() - t0)

    def fill(self, record) -> None:
        """Write the split into an evaluator EpisodeRecord's render/sim/policy seconds."""
        render = EpisodeClock.render_total - self._render_start
        record.render_seconds, record.sim_seconds, record.policy_seconds = (
            render,
            self.env - render,
            self.policy,
        )
