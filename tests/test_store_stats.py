"""RunningStats: per-channel mean/variance with an exact merge, against numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saeno.store.running_stats import RunningStats


def _parts(rng: np.random.Generator, sizes: list[int], channels: int = 3) -> list[np.ndarray]:
    # large channel means: the case where the naive sum-of-squares formula loses digits
    return [rng.normal(1000.0, 0.01, size=(n, channels, 5, 4)) for n in sizes]


def test_merge_of_parts_equals_numpy_over_the_union() -> None:
    rng = np.random.default_rng(0)
    parts = _parts(rng, [3, 1, 7, 2])
    total = RunningStats.empty(3)
    for p in parts:
        total = total.merge(RunningStats.from_array(p))
    union = np.concatenate(parts)
    np.testing.assert_allclose(total.mean, union.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(total.var, union.var(axis=(0, 2, 3)), rtol=1e-9)
    assert total.count.tolist() == [union.shape[0] * 20] * 3


def test_merge_is_order_independent_up_to_rounding_and_ranks_combine() -> None:
    rng = np.random.default_rng(1)
    a, b, c = (RunningStats.from_array(p) for p in _parts(rng, [4, 5, 6]))
    left = a.merge(b).merge(c)
    right = c.merge(a.merge(b))  # e.g. two ranks merged later
    np.testing.assert_allclose(left.mean, right.mean, rtol=1e-14)
    np.testing.assert_allclose(left.var, right.var, rtol=1e-12)


def test_json_round_trip_is_exact() -> None:
    rng = np.random.default_rng(2)
    s = RunningStats.from_array(rng.normal(size=(6, 4, 3)).astype(np.float32))
    back = RunningStats.from_json(json.loads(json.dumps(s.to_json())))
    assert back.mean.tobytes() == s.mean.tobytes()
    assert back.m2.tobytes() == s.m2.tobytes()
    assert back.count.tobytes() == s.count.tobytes()


def test_complex_values_give_complex_mean_and_abs_variance() -> None:
    rng = np.random.default_rng(3)
    a = (rng.normal(size=(5, 2, 8)) + 1j * rng.normal(size=(5, 2, 8))).astype(np.complex64)
    s = RunningStats.from_array(a[:2]).merge(RunningStats.from_array(a[2:]))
    np.testing.assert_allclose(s.mean, a.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(s.var, a.var(axis=(0, 2)), rtol=1e-6)  # numpy: E|a - mean|^2
    back = RunningStats.from_json(json.loads(json.dumps(s.to_json())))
    assert back.mean.tobytes() == s.mean.tobytes()


def test_skip_nonfinite_uses_per_channel_counts() -> None:
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    a[0, 1, 2] = np.nan
    a[1, 2, 0] = np.inf
    s = RunningStats.from_array(a, skip_nonfinite=True)
    for c in range(3):
        vals = a[:, c].reshape(-1)
        vals = vals[np.isfinite(vals)]
        assert s.count[c] == vals.size
        assert s.mean[c] == pytest.approx(vals.mean())
        assert s.var[c] == pytest.approx(vals.var())
    plain = RunningStats.from_array(a)
    assert np.isnan(plain.mean[1]) and np.isfinite(plain.mean[0])
    assert json.loads(json.dumps(plain.to_json()))["mean"][1] is None  # valid JSON, no NaN token


def test_merging_different_channel_counts_fails() -> None:
    with pytest.raises(ValueError, match="channels"):
        RunningStats.empty(2).merge(RunningStats.empty(3))
