import numpy as np
import pytest

from data_pipeline.episode import EpisodeError, noop_mask


def test_valid_episode_passes(make_episode):
    ep = make_episode(6)
    assert ep.validate(action_dim=7, state_dim=8) is ep
    assert ep.length == 6 and ep.action_dim == 7


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda ep: setattr(ep, "state", ep.state[:-1]), ["'state'", "5 frames", "action has 6"]),
        (lambda ep: ep.images.__setitem__("wrist", ep.images["wrist"][:-2]), ["'images.wrist'", "4 frames"]),
        (lambda ep: ep.action.__setitem__((3, 2), np.nan), ["'action'", "NaN/inf at frame 3"]),
        (lambda ep: ep.action.__setitem__((1, 0), np.inf), ["'action'", "frame 1"]),
        (lambda ep: setattr(ep, "action", ep.action[:, :6]), ["6 dims, expected 7", "key mapping"]),
        (lambda ep: setattr(ep, "sim_states", ep.sim_states[:3]), ["'sim_states'", "3 frames"]),
        (lambda ep: setattr(ep, "expert_phases", ["x"]), ["'expert_phases'"]),
    ],
)
def test_bad_episode_names_key_and_episode(make_episode, mutate, words):
    ep = make_episode(6, index=4)
    ep.source = "demo.hdf5"
    mutate(ep)
    with pytest.raises(EpisodeError) as info:
        ep.validate(action_dim=7, state_dim=8)
    msg = str(info.value)
    assert "demo.hdf5" in msg and "episode 4" in msg
    for w in words:
        assert w in msg


def test_empty_episode_is_an_error(make_episode):
    ep = make_episode(4).slice(np.zeros(4, bool))
    with pytest.raises(EpisodeError, match="empty"):
        ep.validate()


def test_slice_keeps_arrays_aligned(make_episode):
    ep = make_episode(8)
    keep = np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)
    sub = ep.slice(keep).validate()
    assert sub.length == 4
    np.testing.assert_array_equal(sub.sim_states, ep.sim_states[keep])
    np.testing.assert_array_equal(sub.images["wrist"], ep.images["wrist"][keep])
    assert sub.expert_phases == [p for p, k in zip(ep.expert_phases, keep) if k]


def test_noop_mask_matches_openvla_rule():
    a = np.zeros((5, 7), np.float32)
    a[:, -1] = [-1, -1, 1, 1, 1]  # frames 0,1: still; 2: gripper closes (not a no-op); 3: still; 4: moves
    a[4, 0] = 0.3
    np.testing.assert_array_equal(noop_mask(a), [True, True, False, True, False])
