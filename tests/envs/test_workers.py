"""`envs.workers.WorkerPool`: each result exactly once, a killed worker costs a re-run of its unit
only, a unit that keeps killing its worker is one named error, a user error crosses the pipe."""

from __future__ import annotations

import pytest
from workers_testing import always_killed, killed_once, refuses_three, square

from envs.workers import WorkerDied, WorkerPool
from lara.utils.errors import LaraUserError


def test_every_result_once_in_or_out_of_process(tmp_path):
    units = [(str(tmp_path), x) for x in range(6)]
    with WorkerPool(square, workers=2) as pool:
        spawned = dict(pool.imap_unordered(units))
    assert spawned == {u: u[1] ** 2 for u in units}
    inline_dir = tmp_path / "inline"
    inline_dir.mkdir()
    with WorkerPool(square, workers=1) as pool:
        assert [r for _, r in pool.imap_unordered([(str(inline_dir), 3)])] == [9]
    assert sorted(p.name for p in tmp_path.glob("*.*")) == [f"{x}.0" for x in range(6)]  # one attempt each


def test_a_killed_worker_costs_a_rerun_of_its_unit_only(tmp_path):
    units = [(str(tmp_path), x, 2) for x in range(6)]  # unit 2's first attempt is SIGKILLed
    with WorkerPool(killed_once, workers=2) as pool:
        results = list(pool.imap_unordered(units))
        assert pool.restarts == 1
    assert sorted(r for _, r in results) == [x * x for x in range(6)]  # each result exactly once
    attempts = sorted(p.name for p in tmp_path.glob("*.*"))
    assert attempts == sorted([f"{x}.0" for x in range(6)] + ["2.1"])  # only unit 2 ran twice


def test_a_unit_that_always_kills_its_worker_is_one_named_error():
    with WorkerPool(always_killed, workers=2, retries=1) as pool:
        with pytest.raises(WorkerDied, match="its worker died 2 times"):
            list(pool.imap_unordered([7, 8]))


def test_a_user_error_in_a_worker_reaches_the_driver_as_itself():
    with WorkerPool(refuses_three, workers=2) as pool:
        with pytest.raises(LaraUserError, match="unit 3 is bad input"):
            list(pool.imap_unordered(range(6)))
