"""Helpers shared by the readers: time pairing, sample limits, resolution selection, channel moves."""

from __future__ import annotations

import numpy as np

from saeno.errors import DataFormatError

PAIRINGS = ("initial_final", "next")


def pair_frames(
    traj: np.ndarray, pairing: str = "initial_final", step: int = 1, t_in: int = 0, t_out: int = -1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Turn trajectories ``(N, T, C, *grid)`` into input/output pairs.

    Parameters
    ----------
    traj : numpy.ndarray
        ``(N, T, C, *grid)``, time on axis 1.
    pairing : {"initial_final", "next"}
        ``"initial_final"``: one pair per trajectory, frame ``t_in`` -> frame ``t_out`` (default first ->
        last). ``"next"``: every frame ``t`` -> frame ``t + step``, ``N * (T - step)`` pairs ordered
        trajectory-major.
    step, t_in, t_out : int
        See ``pairing``.

    Returns
    -------
    x, y : numpy.ndarray
        ``(M, C, *grid)``.
    trajectory, t_index : numpy.ndarray
        ``(M,)`` trajectory number and input frame of each pair.
    """
    n, t = traj.shape[:2]
    if pairing == "initial_final":
        if not (-t <= t_in < t and -t <= t_out < t):
            raise DataFormatError(f"t_in={t_in} / t_out={t_out} outside the {t} stored time steps")
        return traj[:, t_in], traj[:, t_out], np.arange(n), np.full(n, t_in % t)
    if pairing == "next":
        if not 1 <= step < t:
            raise DataFormatError(f"step={step} must be between 1 and T - 1 = {t - 1} (the file has T = {t})")
        x = traj[:, : t - step].reshape(n * (t - step), *traj.shape[2:])
        y = traj[:, step:].reshape(n * (t - step), *traj.shape[2:])
        return x, y, np.repeat(np.arange(n), t - step), np.tile(np.arange(t - step), n)
    raise DataFormatError(f"unknown pairing {pairing!r}; choose one of {PAIRINGS}")


def limit(n_total: int, n: int | None) -> int:
    """Number of samples to read: all of them, or the first ``n``."""
    if n is None:
        return n_total
    if n < 1:
        raise DataFormatError(f"n must be positive, got {n}")
    return min(int(n), n_total)


def select_resolution(
    x: np.ndarray, y: np.ndarray, resolution: int | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Subsample ``(N, C, *grid)`` arrays to ``resolution`` points per side when it divides the grid."""
    if resolution is None:
        return x, y
    grid = x.shape[2:]
    if all(g == resolution for g in grid):
        return x, y
    if any(g % resolution for g in grid):
        raise DataFormatError(
            f"{source}: resolution {resolution} is not available: the file's grid is {grid}; pick one that "
            f"divides every side (for example {grid[0]}), or omit resolution"
        )
    index = (slice(None), slice(None)) + tuple(slice(None, None, g // resolution) for g in grid)
    return x[index], y[index]


def channels_first(a: np.ndarray, n_lead: int) -> np.ndarray:
    """Move the last axis (channels) to position ``n_lead`` (after the ``n_lead`` leading axes)."""
    return np.moveaxis(a, -1, n_lead)


def describe_h5(f) -> str:  # noqa: ANN001 - h5py.File or Group
    """A short listing of the datasets in an HDF5 file (name and shape), for error messages."""
    items: list[str] = []

    def visit(name: str, obj) -> None:  # noqa: ANN001
        if hasattr(obj, "shape") and len(items) < 12:
            items.append(f"{name} {tuple(obj.shape)}")

    f.visititems(visit)
    return ", ".join(items) if items else "no datasets"
