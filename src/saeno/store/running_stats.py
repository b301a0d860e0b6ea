"""Per-channel mean and variance with an exact pairwise merge (Chan, Golub and LeVeque, 1979).

Each part (a chunk of samples, a resumed run, a distributed rank) is summarised by per-channel
``count``, ``mean`` and ``m2`` (the sum of squared deviations from the mean), in float64. Two
summaries merge exactly (up to float64 rounding) with::

    n = n_a + n_b,  d = mean_b - mean_a,
    mean = mean_a + d * n_b / n,  m2 = m2_a + m2_b + |d|^2 * n_a * n_b / n

so the result does not depend on how the rows were split, only (to rounding) on the merge order.
Statistics are taken over samples and grid points: channel axis 1 of a ``(B, C, *grid)`` array.
Complex arrays give a complex mean and ``var = E|a - mean|^2``.

A capture summarises each chunk sample by sample (:func:`sample_moments`: per sample and channel
the count, the sum and the sum of squared deviations from that sample's own mean, two passes in
float64) and combines the samples of a chunk at once (:meth:`RunningStats.from_moments`). Each
sample's moments depend on that sample alone, so a capture computes them in blocks of rows small
enough to stay in cache, and a repair recomputes the same bits from the whole chunk read back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def _to_json_floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _from_json_floats(values: list[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


@dataclass
class SampleMoments:
    """Per-sample, per-channel moments of a ``(B, C, *grid)`` array (see :func:`sample_moments`).

    Parameters
    ----------
    count
        Values per sample and channel, ``(B, C)`` float64.
    total
        Their sum, ``(B, C)`` float64 (complex128 for complex values).
    m2
        Sum of squared (absolute) deviations from the sample's own channel mean, ``(B, C)`` float64.
    """

    count: np.ndarray
    total: np.ndarray
    m2: np.ndarray


def sample_moments(a: np.ndarray, skip_nonfinite: bool = False) -> SampleMoments:
    """Moments of every sample and channel of a ``(B, C, *grid)`` array, in float64.

    Row ``b`` of each result depends only on ``a[b]`` (the same bits whether the sample is summarised
    alone, in a batch or in a chunk): the sums are numpy's pairwise sums along the grid of a
    contiguous float64 copy, and the squared deviations are summed the same way (not with
    ``einsum``, whose blocking depends on the array's shape).

    Parameters
    ----------
    a
        The values; channel axis 1.
    skip_nonfinite
        Leave NaN and infinite values out (counts then differ). Without it, a non-finite value
        makes its sample's sum and ``m2`` non-finite.
    """
    if a.ndim < 2:
        raise ValueError(f"expected a (B, C, *grid) array, got shape {a.shape}")
    rows, channels = a.shape[0], a.shape[1]
    acc = np.complex128 if np.iscomplexobj(a) else np.float64
    x = np.array(a.reshape(rows, channels, -1), dtype=acc, order="C")  # the one float64 copy
    points = x.shape[2]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if skip_nonfinite:
            finite = np.isfinite(x)
            count = finite.sum(axis=2).astype(np.float64)
            x[~finite] = 0
            total = x.sum(axis=2)
            x -= (total / np.where(count > 0, count, 1))[..., None]
            x[~finite] = 0
        else:
            count = np.full((rows, channels), float(points))
            total = x.sum(axis=2)
            x -= (total / max(points, 1))[..., None]
        if acc is np.complex128:
            m2 = np.square(x.real).sum(axis=2) + np.square(x.imag).sum(axis=2)
        else:
            np.square(x, out=x)
            m2 = x.sum(axis=2)
    return SampleMoments(count, total, m2)


@dataclass
class RunningStats:
    """Mergeable per-channel statistics.

    Parameters
    ----------
    count
        Values seen per channel, shape ``(C,)`` (float64; equal across channels unless non-finite
        values were skipped).
    mean
        Per-channel mean, shape ``(C,)``, float64 or complex128.
    m2
        Per-channel sum of squared (absolute) deviations from the mean, shape ``(C,)``, float64.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, channels: int, complex_: bool = False) -> RunningStats:
        """Statistics of zero values for ``channels`` channels."""
        dtype = np.complex128 if complex_ else np.float64
        return cls(np.zeros(channels), np.zeros(channels, dtype=dtype), np.zeros(channels))

    @classmethod
    def from_array(cls, a: np.ndarray, skip_nonfinite: bool = False) -> RunningStats:
        """Statistics of one ``(B, C, *grid)`` array over its samples and grid points.

        Parameters
        ----------
        a
            The values; channel axis 1.
        skip_nonfinite
            Leave NaN and infinite values out (per channel counts then differ). Without it, a
            non-finite value makes that channel's mean and variance NaN.
        """
        if a.ndim < 2:
            raise ValueError(f"expected a (B, C, *grid) array, got shape {a.shape}")
        channels = a.shape[1]
        is_complex = np.iscomplexobj(a)
        acc = np.complex128 if is_complex else np.float64
        x = a.reshape(a.shape[0], channels, -1)  # (B, C, G): no copy for contiguous input
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if skip_nonfinite:
                finite = np.isfinite(x)
                count = finite.sum(axis=(0, 2)).astype(np.float64)
                vals = np.where(finite, x, 0)
                mean = vals.sum(axis=(0, 2), dtype=acc) / np.where(count > 0, count, 1)
                dev = np.where(finite, vals - mean[None, :, None], 0)
            else:
                count = np.full(channels, float(x.shape[0] * x.shape[2]))
                mean = x.sum(axis=(0, 2), dtype=acc) / max(count[0], 1.0)
                dev = x - mean[None, :, None]  # one float64 temporary
            # einsum: a single pass without BLAS (whose threads thrash on a busy machine)
            m2 = np.einsum("bcg,bcg->c", dev, dev.conj() if is_complex else dev).real
        mean = np.where(count > 0, mean, 0)
        return cls(count, mean, np.asarray(m2, dtype=np.float64))

    @classmethod
    def from_moments(cls, moments: SampleMoments) -> RunningStats:
        """The statistics of all the samples whose :func:`sample_moments` are given, combined at once.

        With ``n_b``, ``s_b`` and ``m2_b`` each sample's count, sum and squared deviations::

            count = sum n_b,  mean = sum s_b / count,
            m2 = sum m2_b + sum n_b * |s_b / n_b - mean|^2

        (the exact pooled sum of squares). The result depends only on the moments and their order.
        """
        n_b, s_b, m2_b = moments.count, moments.total, moments.m2
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            count = n_b.sum(axis=0)
            mean = s_b.sum(axis=0) / np.where(count > 0, count, 1)
            mean_b = s_b / np.where(n_b > 0, n_b, 1)
            d = mean_b - mean
            d2 = d.real**2 + d.imag**2 if np.iscomplexobj(d) else d * d
            m2 = m2_b.sum(axis=0) + (n_b * np.where(n_b > 0, d2, 0)).sum(axis=0)
        mean = np.where(count > 0, mean, 0)
        return cls(count, mean, np.asarray(m2, dtype=np.float64))

    @classmethod
    def from_samples(cls, a: np.ndarray, skip_nonfinite: bool = False) -> RunningStats:
        """Statistics of one chunk ``(B, C, *grid)`` as a capture computes them: the
        :func:`sample_moments` of its samples combined by :meth:`from_moments`."""
        return cls.from_moments(sample_moments(a, skip_nonfinite=skip_nonfinite))

    def merge(self, other: RunningStats) -> RunningStats:
        """The statistics of the union of both parts (Chan et al.'s pairwise update)."""
        if self.count.shape != other.count.shape:
            raise ValueError(
                f"cannot merge statistics of {self.count.shape[0]} and {other.count.shape[0]} channels"
            )
        n = self.count + other.count
        safe = np.where(n > 0, n, 1.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / safe)
        d2 = delta.real**2 + delta.imag**2 if np.iscomplexobj(delta) else delta * delta
        m2 = self.m2 + other.m2 + d2 * (self.count * other.count / safe)
        return RunningStats(n, mean, m2)

    @property
    def var(self) -> np.ndarray:
        """Population variance per channel (``numpy.var`` with ``ddof=0``); NaN where count is 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.m2 / self.count, np.nan)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form that round-trips exactly (floats keep all their bits)."""
        out: dict[str, Any] = {"count": _to_json_floats(self.count), "m2": _to_json_floats(self.m2)}
        if np.iscomplexobj(self.mean):
            out["mean"] = _to_json_floats(self.mean.real)
            out["mean_imag"] = _to_json_floats(self.mean.imag)
        else:
            out["mean"] = _to_json_floats(self.mean)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunningStats:
        """Inverse of :meth:`to_json`."""
        mean = _from_json_floats(data["mean"])
        if "mean_imag" in data:
            mean = mean + 1j * _from_json_floats(data["mean_imag"])
        return cls(_from_json_floats(data["count"]), mean, _from_json_floats(data["m2"]))
