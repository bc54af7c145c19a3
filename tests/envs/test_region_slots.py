"""envs.region_slots puts several objects side by side on one region (no simulator)."""

from __future__ import annotations

import numpy as np

from envs.region_slots import slot_offsets


def test_two_moka_pots_fit_side_by_side_on_the_stove() -> None:
    # libero_10 task 8: two pots 8.2 cm wide across, a cook region of half size 7.5 cm
    offsets = slot_offsets(np.array([0.082, 0.082]), 0.075)
    assert np.allclose(offsets, [-0.051, 0.051])  # 2 cm apart, each body 2.4 cm inside the region
    assert offsets[1] - offsets[0] - 0.082 >= 0.02 - 1e-9


def test_slots_stay_inside_the_region_and_keep_their_order() -> None:
    offsets = slot_offsets(np.array([0.05, 0.1, 0.05]), 0.08)
    assert np.all(np.diff(offsets) > 0) and np.all(np.abs(offsets) <= 0.08 - 0.015 + 1e-12)
    assert np.allclose(slot_offsets(np.array([0.06]), 0.075), [0.0])
