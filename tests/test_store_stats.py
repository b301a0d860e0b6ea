"""RunningStats: per-channel mean/variance with an exact merge, against numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saeno.store.running_stats import RunningStats, sample_moments


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


# ------------------------------------------------------------------ per-sample moments (captures)


def _field(rng, rows, channels, points, dtype, nonfinite=False):
    a = rng.normal(loc=3.0, scale=2.0, size=(rows, channels, points))
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.normal(loc=-1.0, size=a.shape)
    a = a.astype(dtype)
    if nonfinite:
        a.flat[rng.integers(0, a.size, size=max(1, a.size // 50))] = np.nan
        a.flat[0] = np.inf
    return a


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 9),
    channels=st.sampled_from([1, 3]),
    points=st.sampled_from([1, 7, 64, 8193, 10000]),
    dtype=st.sampled_from([np.float32, np.float16, np.complex64]),
    skip=st.booleans(),
    cut=st.data(),
)
def test_sample_moments_of_a_piece_are_the_rows_of_the_whole(rows, channels, points, dtype, skip, cut):
    """A sample's moments do not depend on the rows summarised with it: a capture summarises batch
    pieces, a repair whole chunks, and both must commit the same bits."""
    a = _field(np.random.default_rng(rows * points), rows, channels, points, dtype, nonfinite=skip)
    whole = sample_moments(a, skip_nonfinite=skip)
    lo = cut.draw(st.integers(0, rows - 1))
    hi = cut.draw(st.integers(lo + 1, rows))
    piece = sample_moments(a[lo:hi], skip_nonfinite=skip)
    for field in ("count", "total", "m2"):
        np.testing.assert_array_equal(getattr(piece, field), getattr(whole, field)[lo:hi], err_msg=field)


@pytest.mark.parametrize("points", [8193, 20001])
def test_sample_moments_of_single_rows_of_long_grids_are_the_rows_of_the_whole(points) -> None:
    """The shapes where numpy's einsum sums one row differently from a batch of rows."""
    a = _field(np.random.default_rng(points), 5, 1, points, np.float32)
    whole = sample_moments(a)
    for b in range(5):
        one = sample_moments(a[b : b + 1])
        np.testing.assert_array_equal(one.total, whole.total[b : b + 1])
        np.testing.assert_array_equal(one.m2, whole.m2[b : b + 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.complex64])
def test_from_samples_equals_numpy_and_the_whole_chunk_statistics(dtype) -> None:
    rng = np.random.default_rng(7)
    a = _field(rng, 12, 5, 6 * 7, dtype).reshape(12, 5, 6, 7)
    s = RunningStats.from_samples(a)
    x = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
    np.testing.assert_allclose(s.mean, x.mean(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(s.var, (np.abs(x - x.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean(axis=(0, 2, 3)), rtol=1e-12)  # fmt: skip
    np.testing.assert_array_equal(s.count, np.full(5, 12 * 42.0))
    whole = RunningStats.from_array(a)  # the statistics of stores written before stats_method
    np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(s.m2, whole.m2, rtol=1e-12)
    # and chunks merged with Chan's update give the statistics of the union
    merged = RunningStats.from_samples(a[:5]).merge(RunningStats.from_samples(a[5:]))
    np.testing.assert_allclose(merged.mean, s.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.m2, s.m2, rtol=1e-12)


def test_from_samples_skipping_nonfinite_values_equals_nanmean() -> None:
    rng = np.random.default_rng(8)
    a = _field(rng, 6, 3, 50, np.float32, nonfinite=True)
    a[2, 1] = np.nan  # a sample with no finite value in one channel
    s = RunningStats.from_samples(a, skip_nonfinite=True)
    x = np.where(np.isfinite(a), a, np.nan).astype(np.float64)
    np.testing.assert_array_equal(s.count, np.isfinite(a).sum(axis=(0, 2)))
    np.testing.assert_allclose(s.mean, np.nanmean(x, axis=(0, 2)), rtol=1e-13)
    np.testing.assert_allclose(s.var, np.nanvar(x, axis=(0, 2)), rtol=1e-12)
    plain = RunningStats.from_samples(a)
    assert np.isnan(plain.mean).all() or not np.isfinite(plain.mean).all()
