"""Generic HDF5 or Zarr files with named input and output arrays.

``x_key`` and ``y_key`` name the arrays (HDF5 dataset paths or Zarr array paths, default ``"x"``/``"y"``).
Their layout, ``(N, C, *grid)``, ``(N, *grid, C)`` or ``(N, *grid)``, is inferred from the shapes and refused
when ambiguous; ``channels_first``, ``channels_last``, ``no_channels`` or ``ndim`` settle it. ``params_keys``
names optional ``(N,)`` arrays of per-sample parameters. When the file has groups (``train``/``test``)
holding the keys, ``split`` selects one; a split the file does not have is an error.

An array whose axis 1 is time (a PDEBench CFD field such as ``density (N, T, X, Y)`` next to a
``t-coordinate``) is refused: read the file with the PDEBench reader, which pairs frames in time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import (
    check_array,
    infer_layout,
    layout_option,
    read_rows,
    to_channels_first,
)


def _open(path: Path):
    if path.is_dir() or path.suffix == ".zarr":
        import zarr

        try:
            return zarr.open_group(str(path), mode="r"), "zarr"
        except Exception as exc:
            raise DataFormatError(f"{path}: not a readable Zarr group ({type(exc).__name__}: {exc})") from exc
    import h5py

    try:
        return h5py.File(path, "r"), "hdf5"
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _keys(group) -> list[str]:
    try:
        return sorted(group.keys())
    except Exception:  # noqa: BLE001 - defensive for foreign stores
        return []


def _contains(group, key: str) -> bool:
    try:
        return key in group
    except Exception:  # noqa: BLE001 - a malformed path or foreign store
        return False


def _array(group, key: str, path: Path):
    try:
        arr = group[key]
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot open {key!r} ({type(exc).__name__}: {exc})") from exc
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        raise DataFormatError(f"{path}: {key!r} is a group, not an array; its keys are {_keys(arr)}")
    return arr


def splits(path: str | Path) -> list[str]:
    """The groups of a generic file that hold arrays ``x``/``y`` (its splits), sorted."""
    path = Path(path)
    root, kind = _open(path)
    try:
        return [k for k in _keys(root) if _contains(root[k], "x") and not hasattr(root[k], "shape")]
    finally:
        if kind == "hdf5":
            root.close()


def _time_axis(root, arr, key: str) -> int | None:
    """Length of the file's ``t-coordinate`` when it matches axis 1 of ``arr`` (a time series), else None."""
    if not _contains(root, "t-coordinate") or len(arr.shape) < 3:
        return None
    try:
        t = int(root["t-coordinate"].shape[0])
    except Exception:  # noqa: BLE001
        return None
    return t if arr.shape[1] in (t, t - 1) else None


def read_generic(
    path: str | Path,
    split: str | None = None,
    n: int | None = None,
    x_key: str = "x",
    y_key: str = "y",
    channels_last: bool | None = None,
    channels_first: bool | None = None,
    no_channels: bool | None = None,
    ndim: int | None = None,
    params_keys: list[str] | None = None,
) -> dict[str, Any]:
    """Read named arrays from an HDF5 or Zarr file.

    Parameters
    ----------
    path : str or Path
        HDF5 file or Zarr folder.
    split : str, optional
        A group of the file holding the keys. Default: ``"train"`` if the file has that group, else the
        whole file. A split the file does not have is an error.
    n : int, optional
        Read only the first ``n`` samples.
    x_key, y_key : str
        Paths of the input and output arrays.
    channels_last, channels_first, no_channels : bool, optional
        The layout ``(N, *grid, C)``, ``(N, C, *grid)`` or ``(N, *grid)`` (at most one). Default: inferred.
    ndim : int, optional
        Number of space axes.
    params_keys : list of str, optional
        Paths of ``(N,)`` per-sample parameter arrays.

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.
    """
    path = Path(path)
    layout = layout_option(channels_last, channels_first, no_channels, str(path))
    root, kind = _open(path)
    try:
        group, used_split = root, "all"
        if split is not None:
            if not (_contains(root, split) and _contains(root[split], x_key)):
                raise DataFormatError(
                    f"{path}: no split {split!r} holding {x_key!r}; the file's top-level keys are {_keys(root)}. "
                    "Omit split for a file without splits, or pick sample rows with rows= (CLI --rows START:STOP)"
                )
            group, used_split = root[split], split
        elif _contains(root, "train") and _contains(root["train"], x_key):
            group, used_split = root["train"], "train"
        missing = [k for k in (x_key, y_key) if not _contains(group, k)]
        if missing:
            raise DataFormatError(
                f"{path}: expected arrays {x_key!r} and {y_key!r} (N, C, *grid); missing {missing}; "
                f"top-level keys are {_keys(group)}. Name the arrays with x_key=/y_key= (CLI --x-key/--y-key)"
            )
        xs, ys = _array(group, x_key, path), _array(group, y_key, path)
        x_shape, y_shape = tuple(xs.shape), tuple(ys.shape)
        for key, arr in ((x_key, xs), (y_key, ys)):
            t = _time_axis(root, arr, key)
            if t is not None:
                raise DataFormatError(
                    f"{path}: axis 1 of {key!r} {tuple(arr.shape)} is time (the file's t-coordinate has {t} "
                    "points), so it would be read as channels. This is a PDEBench time-series file: read it "
                    "without x_key/y_key (CLI --x-key/--y-key), with pairing= / step= / fields= to choose "
                    "the frames and fields"
                )
        if x_shape[:1] != y_shape[:1]:
            raise DataFormatError(
                f"{path}: {x_key!r} {x_shape} and {y_key!r} {y_shape} have different "
                "numbers of samples; they must pair one to one"
            )
        lx, ly = infer_layout(x_shape, y_shape, str(path), layout, ndim, x_key, y_key)
        m = check_array(xs, str(path), x_key, n, min_ndim=2)
        x = read_rows(xs, str(path), x_key, m, min_ndim=2)
        y = read_rows(ys, str(path), y_key, m, min_ndim=2)
        params = {}
        for key in params_keys or []:
            if not _contains(group, key):
                raise DataFormatError(f"{path}: parameter array {key!r} not found; keys are {_keys(group)}")
            values = read_rows(_array(group, key, path), str(path), key, m).astype(np.float64)
            if values.shape != (m,):
                raise DataFormatError(
                    f"{path}: parameter array {key!r} should be (N,) = ({x_shape[0]},), "
                    f"found {values.shape} for the first {m} rows"
                )
            params[key.split("/")[-1]] = values
    finally:
        if kind == "hdf5":
            root.close()
    x, y = to_channels_first(x, lx), to_channels_first(y, ly)
    card = {
        "format": kind,
        "x_key": x_key,
        "y_key": y_key,
        "split": used_split,
        "layout": {x_key: lx, y_key: ly},
    }
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}
