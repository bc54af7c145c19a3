"""Deterministic train/held-out splits recorded in the dataset's meta/ folder."""

from __future__ import annotations

import json

import pytest

from data_pipeline.lerobot_io import open_lerobot_dataset
from data_pipeline.splits import (
    SPLIT_FILE,
    choose_heldout,
    heldout_episodes,
    load_split,
    make_split,
    train_episodes,
)
from lara.utils.errors import LaraUserError


def test_choose_heldout_is_deterministic_and_sized():
    eps = list(range(100))
    a = choose_heldout(eps, 0.1, seed=3)
    assert a == choose_heldout(list(reversed(eps)), 0.1, seed=3)  # order of the input does not matter
    assert len(a) == 10 and a == sorted(a) and set(a) <= set(eps)
    assert choose_heldout(eps, 0.1, seed=4) != a
    assert len(choose_heldout([5, 9], 0.01, seed=0)) == 1  # at least one held out ...
    assert len(choose_heldout([5, 9], 0.99, seed=0)) == 1  # ... and at least one left to train on
    with pytest.raises(LaraUserError, match="at least 2"):
        choose_heldout([1], 0.5, 0)
    with pytest.raises(LaraUserError, match=r"\(0, 1\)"):
        choose_heldout(eps, 1.0, 0)


def test_split_recorded_in_meta_and_disjoint(bridge_copy):
    split = make_split(bridge_copy, heldout_fraction=0.4, seed=1, exclude={"no_language": [2]})
    data = json.loads((bridge_copy / SPLIT_FILE).read_text())
    assert (
        data["heldout"] == split.heldout
        and data["train"] == split.train
        and data["excluded"] == {"no_language": [2]}
    )
    assert heldout_episodes(bridge_copy) == split.heldout and train_episodes(bridge_copy) == split.train
    assert not set(split.train) & set(split.heldout)
    assert 2 not in split.train and 2 not in split.heldout
    assert sorted(split.train + split.heldout) == [0, 1, 3, 4, 5] and len(split.heldout) == 2
    # same request: same split, file untouched; lerobot still loads the dataset with the extra meta file
    mtime = (bridge_copy / SPLIT_FILE).stat().st_mtime_ns
    assert make_split(bridge_copy, heldout_fraction=0.4, seed=1, exclude={"no_language": [2]}) == split
    assert (bridge_copy / SPLIT_FILE).stat().st_mtime_ns == mtime
    assert open_lerobot_dataset(bridge_copy).meta.total_episodes == 6


def test_split_refuses_silent_changes(bridge_copy):
    first = make_split(bridge_copy, heldout_fraction=0.4, seed=1)
    with pytest.raises(LaraUserError, match="already records a split"):
        make_split(bridge_copy, heldout_fraction=0.4, seed=2)
    second = make_split(bridge_copy, heldout_fraction=0.4, seed=2, overwrite=True)
    assert load_split(bridge_copy) == second and second.seed == 2 and first.seed == 1
    path = bridge_copy / SPLIT_FILE
    data = json.loads(path.read_text())
    data["num_frames"] += 1  # as if the dataset had changed since the split was made
    path.write_text(json.dumps(data))
    with pytest.raises(LaraUserError, match="the dataset changed"):
        train_episodes(bridge_copy)
    data["num_frames"] -= 1
    data["train"].append(data["heldout"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(LaraUserError, match="both train and held-out"):
        load_split(bridge_copy)


def test_missing_split_is_a_clear_error(bridge_dataset):
    with pytest.raises(LaraUserError, match="no train/held-out split recorded"):
        heldout_episodes(bridge_dataset)


def test_training_episodes_follow_the_split_or_skip_unlabelled(bridge_copy):
    from data_pipeline.splits import training_episodes

    assert training_episodes(bridge_copy) == [0, 1, 3, 4, 5]  # no split yet: every episode with language
    split = make_split(bridge_copy, heldout_fraction=0.4, seed=1, exclude={"no_language": [2]})
    assert training_episodes(bridge_copy) == split.train and not set(split.heldout) & set(
        training_episodes(bridge_copy)
    )
