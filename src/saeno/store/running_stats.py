"""Per-channel mean and variance with an exact pairwise merge (Chan, Golub and LeVeque, 1979).

Each part (a chunk of samples, a resumed run, a distributed rank) is summarised by per-channel
``count``, ``mean`` and ``m2`` (the sum of squared deviations from the mean), in float64. Two
summaries merge exactly (up to float64 rounding) with::

    n = n_a + n_b,  d = mean_b - mean_a,
    mean = mean_a + d * n_b / n,  m2 = m2_a + m2_b + |d|^2 * n_a * n_b / n

so the result does not depend on how the rows were split, only (to rounding) on the merge order.
Statistics are taken over samples and grid points: channel axis 1 of a ``(B, C, *grid)`` array.
Complex arrays give a complex mean and ``var = E|a - mean|^2``.
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
