"""`envs.ray_workers.RayWorkerPool` on a local Ray instance: the same contract as the local pool
(each result once, a killed actor costs a re-run of its unit only, a user error arrives as itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from workers_testing import killed_once, refuses_three, square

from envs.worker_backends import make_pool
from lara.utils.errors import LaraUserError

ray = pytest.importorskip("ray")  # pinned in requirements/stack.txt: present wherever make install ran


@pytest.fixture(scope="module")
def local_ray():
    # the actors import this folder's helper module, like the package modules they run in real use
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
    )
    yield
    ray.shutdown()


def test_every_result_once_and_a_killed_actor_reruns_its_unit_only(local_ray, tmp_path):
    units = [(str(tmp_path), x) for x in range(5)]
    with make_pool(square, 2, backend="ray") as pool:
        assert dict(pool.imap_unordered(units)) == {u: u[1] ** 2 for u in units}
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    with make_pool(killed_once, 2, backend="ray") as pool:
        results = list(pool.imap_unordered([(str(killed_dir), x, 1) for x in range(4)]))
        assert pool.restarts == 1
    assert sorted(r for _, r in results) == [0, 1, 4, 9]
    attempts = sorted(p.name for p in killed_dir.iterdir())
    assert attempts == ["0.0", "1.0", "1.1", "2.0", "3.0"]  # only unit 1 ran twice


def test_a_user_error_in_an_actor_reaches_the_driver_as_itself(local_ray):
    with make_pool(refuses_three, 2, backend="ray") as pool:
        with pytest.raises(LaraUserError, match="unit 3 is bad input"):
            list(pool.imap_unordered(range(5)))


def test_ray_address_needs_the_ray_backend():
    with pytest.raises(LaraUserError, match="--backend ray"):
        make_pool(square, 2, ray_address="auto")
