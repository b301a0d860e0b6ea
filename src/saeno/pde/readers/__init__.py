"""Readers for data files users already have, and for saeno's own generated files.

:func:`read_file` picks the reader from the file: ``.pt``/``.pth`` -> neuraloperator dict; HDF5 written by
saeno -> :mod:`saeno_h5`; HDF5 with The Well's layout -> :mod:`the_well`; HDF5 with ``x_key``/``y_key``
given -> :mod:`generic`; HDF5 with a PDEBench layout -> :mod:`pdebench`; other HDF5 and Zarr ->
:mod:`generic` (keys ``x``/``y`` by default). ``format=`` forces one reader.

Every reader returns ``{"x": (N, C, *grid), "y": (N, C, *grid), "params": {name: (N,)},
"labels": {factor: [str] * N}, "card": dict}``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from saeno.errors import DataFormatError
from saeno.pde.readers.common import select_resolution
from saeno.pde.readers.generic import read_generic
from saeno.pde.readers.pdebench import is_pdebench, read_pdebench
from saeno.pde.readers.saeno_h5 import is_saeno, read_saeno
from saeno.pde.readers.the_well import is_the_well, read_the_well
from saeno.pde.readers.torch_pt import read_torch_pt

READERS = {
    "saeno": read_saeno,
    "neuraloperator-pt": read_torch_pt,
    "pdebench": read_pdebench,
    "the_well": read_the_well,
    "generic": read_generic,
}

__all__ = ["READERS", "detect_format", "read_file"]


def detect_format(path: str | Path, keys: dict[str, Any] | None = None) -> str:
    """Name of the reader for ``path`` (a key of ``READERS``)."""
    path = Path(path)
    keys = keys or {}
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder")
    if path.suffix in (".pt", ".pth"):
        return "neuraloperator-pt"
    if path.is_dir() or path.suffix == ".zarr":
        return "generic"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if is_saeno(f):
                return "saeno"
            if is_the_well(f):
                return "the_well"
            if "x_key" in keys or "y_key" in keys:
                return "generic"
            if is_pdebench(f):
                return "pdebench"
            return "generic"
    except OSError as exc:
        raise DataFormatError(
            f"{path}: expected a neuraloperator .pt file, an HDF5 file (PDEBench, The Well, saeno or named "
            f"keys) or a Zarr folder; could not open it as HDF5 ({exc})"
        ) from exc


def read_file(
    path: str | Path,
    split: str = "train",
    resolution: int | None = None,
    n: int | None = None,
    format: str | None = None,  # noqa: A002 - user-facing keyword
    **keys: Any,
) -> dict[str, Any]:
    """Read a data file into input/output arrays ``(N, C, *grid)``.

    Parameters
    ----------
    path : str or Path
        The file (or Zarr folder).
    split : str
        Split for files that have them (saeno files, generic files with train/test groups).
    resolution : int, optional
        Points per side; for files with one grid, a divisor of it (the grid is subsampled).
    n : int, optional
        Read only the first ``n`` samples (trajectories for time series).
    format : str, optional
        Force a reader: one of ``READERS``.
    **keys
        Reader options (``x_key``, ``y_key``, ``pairing``, ``step``, ``t_in``, ``t_out``, ``fields``,
        ``channels_last``, ``no_channels``, ``params_keys``, ``channels_squeezed``, ``ndim``, ``trust``).

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.
    """
    fmt = format or detect_format(path, keys)
    if fmt not in READERS:
        raise DataFormatError(f"unknown format {fmt!r}; choose one of {sorted(READERS)}")
    reader = READERS[fmt]
    accepted = set(inspect.signature(reader).parameters)
    unknown = sorted(set(keys) - accepted)
    if unknown:
        raise DataFormatError(
            f"{path}: options {unknown} do not apply to the {fmt} reader; it accepts "
            f"{sorted(accepted - {'path', 'split', 'n', 'resolution'})}"
        )
    kwargs = dict(keys, n=n)
    if "split" in accepted:
        kwargs["split"] = split
    if fmt == "saeno":
        return reader(path, resolution=resolution, **kwargs)
    out = reader(path, **kwargs)
    out["x"], out["y"] = select_resolution(out["x"], out["y"], resolution, str(path))
    out["card"].setdefault("file", str(path))
    return out
