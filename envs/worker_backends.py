"""Which pool runs the simulator workers: `make_pool(..., backend="local" | "ray")`.

`local` (the default): `envs.workers.WorkerPool`, spawned processes on this machine. `ray`:
`envs.ray_workers.RayWorkerPool`, Ray actors on a local Ray instance or on the cluster at
`ray_address`. Both keep the same contract, so a caller never branches on the backend.

`lara eval`, `lara collect` and `lara rl` take `--backend` and `--ray_address` (checked by
`check_backend` when their config is parsed). On a cluster of several machines the workers read and
write the run's folders (collect's `<out>.partial/`, rl's weights file, eval's videos) by path: the
nodes must share that filesystem at the same path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envs.workers import WorkerPool
from lara.utils.errors import LaraUserError

BACKENDS = ("local", "ray")


def check_backend(backend: str, ray_address: str | None, flag: str = "--backend") -> None:
    """A config's `--backend` / `--ray_address` pair, refused in one line before any worker starts
    (`flag`: the backend's flag name, e.g. lara annotate's `--worker_backend`)."""
    if backend not in BACKENDS:
        raise LaraUserError(f"{flag} {backend!r}: choose one of {', '.join(BACKENDS)}")
    if ray_address and backend != "ray":
        raise LaraUserError(f"--ray_address joins a Ray cluster: add {flag} ray")


def make_pool(
    fn: Callable[[Any], Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    finalizer: Callable[[], None] | None = None,
    backend: str = "local",
    ray_address: str | None = None,
):
    """A `WorkerPool` (local spawned processes, the default) or a `RayWorkerPool` (Ray actors on a
    local Ray instance, or on the cluster at `ray_address`): the same contract either way."""
    check_backend(backend, ray_address)
    if backend == "ray":
        from envs.ray_workers import RayWorkerPool

        return RayWorkerPool(fn, workers, initializer, initargs, finalizer, address=ray_address)
    return WorkerPool(fn, workers, initializer, initargs, finalizer)
