"""Generic HDF5 or Zarr files with named input and output arrays.

``x_key`` and ``y_key`` name the arrays (HDF5 dataset paths or Zarr array paths, default ``"x"``/``"y"``);
each is ``(N, C, *grid)`` by default, ``(N, *grid, C)`` with ``channels_last=True``, or ``(N, *grid)``
with ``no_channels=True``. ``params_keys`` names optional ``(N,)`` arrays of per-sample parameters. When the
file has ``train``/``test`` groups holding the keys, ``split`` selects one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import limit


def _open(path: Path):  # noqa: ANN202 - h5py.File or zarr.Group
    if path.is_dir() or path.suffix == ".zarr":
        import zarr

        try:
            return zarr.open_group(str(path), mode="r"), "zarr"
        except Exception as exc:  # zarr raises several types for a missing or foreign store
            raise DataFormatError(f"{path}: not a readable Zarr group ({exc})") from exc
    import h5py

    try:
        return h5py.File(path, "r"), "hdf5"
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _keys(group) -> list[str]:  # noqa: ANN001
    try:
        return sorted(group.keys())
    except Exception:  # pragma: no cover - defensive for foreign stores
        return []


def read_generic(
    path: str | Path,
    split: str = "train",
    n: int | None = None,
    x_key: str = "x",
    y_key: str = "y",
    channels_last: bool = False,
    no_channels: bool = False,
    params_keys: list[str] | None = None,
) -> dict[str, Any]:
    """Read named arrays from an HDF5 or Zarr file.

    Parameters
    ----------
    path : str or Path
        HDF5 file or Zarr folder.
    split : str
        Used when the file has a group of that name holding the keys; otherwise the whole file is read.
    n : int, optional
        Read only the first ``n`` samples.
    x_key, y_key : str
        Paths of the input and output arrays.
    channels_last : bool
        Arrays are ``(N, *grid, C)``.
    no_channels : bool
        Arrays are ``(N, *grid)`` (one channel).
    params_keys : list of str, optional
        Paths of ``(N,)`` per-sample parameter arrays.

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.
    """
    path = Path(path)
    root, kind = _open(path)
    try:
        group = root
        if split in _keys(root) and x_key in root[split]:
            group = root[split]
        missing = [k for k in (x_key, y_key) if k not in group]
        if missing:
            raise DataFormatError(
                f"{path}: expected arrays {x_key!r} and {y_key!r} (N, C, *grid); missing {missing}; "
                f"top-level keys are {_keys(group)}. Name the arrays with x_key=/y_key= (CLI --x-key/--y-key)"
            )
        xs, ys = group[x_key], group[y_key]
        m = limit(len(xs), n)
        x, y = np.asarray(xs[:m]), np.asarray(ys[:m])
        params = {}
        for key in params_keys or []:
            if key not in group:
                raise DataFormatError(f"{path}: parameter array {key!r} not found; keys are {_keys(group)}")
            params[key.split("/")[-1]] = np.asarray(group[key][:m], dtype=np.float64)
    finally:
        if kind == "hdf5":
            root.close()
    if no_channels:
        x, y = x[:, None], y[:, None]
    elif channels_last:
        x, y = np.moveaxis(x, -1, 1), np.moveaxis(y, -1, 1)
    if x.ndim < 3 or y.ndim != x.ndim or x.shape[2:] != y.shape[2:] or y.shape[0] != x.shape[0]:
        raise DataFormatError(
            f"{path}: expected {x_key!r} and {y_key!r} as (N, C, *grid) with the same N and grid "
            f"(channels_last={channels_last}, no_channels={no_channels}), found {xs.shape} and {ys.shape}; "
            "set channels_last=True for (N, *grid, C) or no_channels=True for (N, *grid)"
        )
    card = {"format": kind, "x_key": x_key, "y_key": y_key, "split": split if group is not root else "all"}
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}
