"""Helpers shared by the readers: time pairing, sample limits, resolution selection, channel layouts, and
the checks every array passes before it is read (numeric dtype, stored data present, fits in memory)."""

from __future__ import annotations

import os
from typing import Any

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
    if t < 2:
        raise DataFormatError(f"a time series needs at least 2 frames to pair; the file has T = {t}")
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


def limit(n_total: int, n: int | None, source: str = "") -> int:
    """Number of samples to read: all of them, or the first ``n``; refuses a file with no samples."""
    where = f"{source}: " if source else ""
    if n_total < 1:
        raise DataFormatError(f"{where}the file holds no samples (the sample axis has length {n_total})")
    if n is None:
        return n_total
    if n < 1:
        raise DataFormatError(f"{where}n must be positive, got {n}")
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


def describe_h5(f) -> str:
    """A short listing of the datasets in an HDF5 file (name and shape), for error messages."""
    items: list[str] = []

    def visit(name: str, obj) -> None:
        if hasattr(obj, "shape") and len(items) < 12:
            items.append(f"{name} {tuple(obj.shape)}")

    f.visititems(visit)
    return ", ".join(items) if items else "no datasets"


# ---------------------------------------------------------------------------------------------------------
# checks before reading

MEMORY_FRACTION = 0.8  # refuse a read that needs more than this share of the memory available now


def available_memory() -> int | None:
    """Bytes of memory available now (``None`` where the platform does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def check_memory(nbytes: int, source: str, what: str) -> None:
    """Refuse a read of ``nbytes`` that would not fit in the memory available now."""
    free = available_memory()
    if free is not None and nbytes > MEMORY_FRACTION * free:
        raise DataFormatError(
            f"{source}: reading {what} needs {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB of memory "
            "is available; read fewer samples with n= (CLI --n) or a coarser resolution"
        )


def check_dtype(dtype: Any, source: str, key: str) -> None:
    """Refuse arrays that are not real numbers (strings, compound records, objects, complex)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise DataFormatError(
            f"{source}: array {key!r} has dtype {dtype} ({'compound' if dtype.names else dtype.kind}); "
            "saeno reads real-valued numeric arrays (float, int or bool)"
        )


def _hdf5_stored(ds: Any, source: str, key: str, rows: int) -> None:
    """Refuse an HDF5 dataset whose rows ``[:rows]`` were never written (they would read as fill values)."""
    if getattr(ds, "is_virtual", False) or ds.size == 0:
        return
    if ds.chunks is None:
        if getattr(ds.id, "get_storage_size", None) and ds.id.get_storage_size() == 0 and ds.nbytes > 0:
            raise DataFormatError(
                f"{source}: dataset {key!r} declares shape {ds.shape} but stores no data (it was created and "
                "never written); write its values or name another key"
            )
        return
    per_axis = [int(np.ceil(s / c)) for s, c in zip(ds.shape, ds.chunks)]
    if ds.ndim:
        per_axis[0] = int(np.ceil(min(rows, ds.shape[0]) / ds.chunks[0]))
    needed = int(np.prod(per_axis))
    stored = int(ds.id.get_num_chunks()) if hasattr(ds.id, "get_num_chunks") else needed
    if stored < needed and ds.fillvalue is not None:
        raise DataFormatError(
            f"{source}: dataset {key!r} declares shape {ds.shape} but only {stored} of its {needed} chunks "
            "needed here are stored; the others would read as fill values. The file is incomplete: "
            "write it again, or read fewer samples with n= (CLI --n)"
        )


def check_array(arr: Any, source: str, key: str, rows: int | None = None, min_ndim: int = 1) -> int:
    """Validate an HDF5 dataset, Zarr array or numpy/torch array before reading its first ``rows`` rows.

    Checks the dtype, the rank, that the sample axis is not empty, that the data is stored, and that the
    read fits in memory. Returns the number of rows to read.
    """
    shape = tuple(int(s) for s in getattr(arr, "shape", ()))
    if len(shape) < min_ndim:
        raise DataFormatError(
            f"{source}: array {key!r} has shape {shape}; expected at least {min_ndim} axes (samples first)"
        )
    check_dtype(getattr(arr, "dtype", None), source, key)
    m = limit(shape[0], rows, source) if shape else 1
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
    check_memory(m * per_row * max(np.dtype(arr.dtype).itemsize, 4), source, f"{m} rows of {key!r}")
    # Zarr leaves chunks equal to the fill value unwritten by design, so only HDF5 storage is checked
    if type(arr).__module__.startswith("h5py"):
        _hdf5_stored(arr, source, key, m)
    return m


def read_rows(arr: Any, source: str, key: str, rows: int | None = None, min_ndim: int = 1) -> np.ndarray:
    """:func:`check_array`, then the first ``rows`` rows as a numpy array (errors name the file and key)."""
    m = check_array(arr, source, key, rows, min_ndim)
    try:
        return np.asarray(arr[:m] if getattr(arr, "ndim", 0) else arr[()])
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise DataFormatError(
            f"{source}: could not read array {key!r} ({type(exc).__name__}: {exc})"
        ) from exc


# ---------------------------------------------------------------------------------------------------------
# channel layouts

LAYOUTS = ("squeezed", "first", "last")
_LAYOUT_HINT = (
    "pass the layout: channels_last=True (CLI --channels-last) for (N, *grid, C), channels_first=True "
    "(CLI --channels-first) for (N, C, *grid), no_channels=True (CLI --no-channels) for (N, *grid), or "
    "ndim= (CLI --ndim) for the number of space axes"
)


def _grid_and_channels(shape: tuple[int, ...], layout: str) -> tuple[tuple[int, ...], int] | None:
    if layout == "squeezed":
        return (shape[1:], 1) if len(shape) >= 2 else None
    if len(shape) < 3:
        return None
    return (shape[2:], shape[1]) if layout == "first" else (shape[1:-1], shape[-1])


def _plausible(grid: tuple[int, ...], channels: int, layout: str) -> bool:
    """A grid of 1 to 3 axes, each with 2 or more points, sides within a factor 4 of each other; a channel
    axis of 1, or at most half the smallest side."""
    if not 1 <= len(grid) <= 3 or min(grid) < 2:
        return False
    if len(grid) > 1 and max(grid) > 4 * min(grid):
        return False
    return layout == "squeezed" or channels == 1 or 2 * channels <= min(grid)


def infer_layout(
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    source: str,
    layout: str | None = None,
    ndim: int | None = None,
    x_key: str = "x",
    y_key: str = "y",
) -> tuple[str, str]:
    """The channel layout of an input and output array: each ``"squeezed"``, ``"first"`` or ``"last"``.

    With ``layout`` given, both arrays use it; with ``ndim`` (space axes) given, the layouts giving that many
    space axes are kept. Otherwise every reading whose grids agree and look like a grid (see
    :func:`_plausible`) is a candidate, and exactly one must remain: an ambiguous shape is refused with a
    message that says what to pass, never guessed.
    """
    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    if layout is not None and layout not in LAYOUTS:
        raise DataFormatError(f"unknown channel layout {layout!r}; choose one of {LAYOUTS}")
    structural = []
    for lx in [layout] if layout else LAYOUTS:
        for ly in [layout] if layout else LAYOUTS:
            gx, gy = _grid_and_channels(x_shape, lx), _grid_and_channels(y_shape, ly)
            if gx is None or gy is None or gx[0] != gy[0] or not gx[0]:
                continue
            if ndim is not None and len(gx[0]) != ndim:
                continue
            structural.append((lx, ly, gx, gy))
    candidates = [(lx, ly) for lx, ly, _, _ in structural]
    if layout is None:
        plausible = [(lx, ly) for lx, ly, gx, gy in structural if _plausible(*gx, lx) and _plausible(*gy, ly)]
        if plausible or ndim is None:
            candidates = plausible
        if len(candidates) > 1:  # the same layout for both arrays, when that is one reading
            same = [c for c in candidates if c[0] == c[1]]
            if len(same) == 1:
                candidates = same
    shapes = f"{x_key!r} {x_shape} and {y_key!r} {y_shape}"
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        asked = f" with layout {layout!r}" if layout else (f" with ndim={ndim}" if ndim is not None else "")
        raise DataFormatError(
            f"{source}: {shapes} cannot be read{asked} as (N, C, *grid) pairs with the same N and grid; "
            + _LAYOUT_HINT
        )
    readings = "; ".join(
        f"{x_key} {_describe(x_shape, lx)}, {y_key} {_describe(y_shape, ly)}" for lx, ly in candidates
    )
    raise DataFormatError(
        f"{source}: the layout of {shapes} is ambiguous: it reads as {readings}. " + _LAYOUT_HINT
    )


def _describe(shape: tuple[int, ...], layout: str) -> str:
    grid, c = _grid_and_channels(shape, layout)  # type: ignore[misc]
    return f"{c} channel(s) on a {'x'.join(map(str, grid))} grid"


def to_channels_first(a: np.ndarray, layout: str) -> np.ndarray:
    """``(N, C, *grid)`` from an array in ``layout``."""
    if layout == "squeezed":
        return a[:, None]
    if layout == "last":
        return np.moveaxis(a, -1, 1)
    return a


def layout_option(
    channels_last: bool | None, channels_first: bool | None, no_channels: bool | None, source: str
) -> str | None:
    """The layout named by the readers' boolean options (at most one may be true)."""
    chosen = [
        name
        for name, flag in (("last", channels_last), ("first", channels_first), ("squeezed", no_channels))
        if flag
    ]
    if len(chosen) > 1:
        raise DataFormatError(
            f"{source}: channels_last, channels_first and no_channels exclude each other "
            "(CLI --channels-last, --channels-first, --no-channels); pass one"
        )
    return chosen[0] if chosen else None
