"""Action range (finding 8 of issue 12): min/max or q01/q99 scaling, predictions clipped to [-1, 1]."""

import numpy as np
import pytest

from lara.normalization import NormalizationStats


def _stats(mode: str) -> NormalizationStats:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (1000, 3))
    x[0] = [8.0, -9.0, 7.0]  # outliers: beyond q01/q99, inside min/max
    return NormalizationStats.from_arrays({"action": x}, mode=mode)


def test_min_max_maps_the_data_range_to_plus_minus_one():
    s = _stats("min_max")
    f = s.features["action"]
    np.testing.assert_allclose(
        s.normalize("action", np.array([f.min, f.max])), [[-1] * 3, [1] * 3], atol=1e-6
    )
    q = _stats("quantile")
    assert np.abs(q.normalize("action", np.array([f.max]))).max() == 1.0  # q01/q99: the outlier saturates
    assert np.abs(s.normalize("action", np.array([f.q99]))).max() < 0.9  # min/max: q99 well inside


@pytest.mark.parametrize("mode", ["quantile", "min_max"])
def test_predictions_are_clipped_before_unnormalizing(mode):
    s = _stats(mode)
    f = s.features["action"]
    high, low = (f.q99, f.q01) if mode == "quantile" else (f.max, f.min)
    y = np.array([[1.7, -2.5, 0.0]], dtype=np.float32)
    out = s.unnormalize("action", s.clip(y))
    np.testing.assert_allclose(out[0, :2], [high[0], low[1]], rtol=1e-5)
    assert _stats("mean_std").clip(y) is y  # unbounded mode: untouched


def test_policy_actions_stay_in_the_data_range(make_stats, tiny_policy):
    policy = tiny_policy()
    stats = make_stats()
    policy.set_normalization(stats)
    wild = np.full((1, 8, 7), 3.0, dtype=np.float32)  # an expert / FAST output outside [-1, 1]
    out = policy.processor.unnormalize(wild)
    np.testing.assert_allclose(
        out[0, :, :6], np.broadcast_to(stats.features["action"].q99[:6], (8, 6)), rtol=1e-5
    )
    assert (out[..., 6] == 1.0).all()
