"""Readers for data files users already have, and for saeno's own generated files.

:func:`read_file` picks the reader from the file: ``.pt``/``.pth`` -> neuraloperator dict; HDF5 written by
saeno -> :mod:`saeno_h5`; HDF5 with The Well's layout -> :mod:`the_well`; HDF5 with ``x_key``/``y_key``
given -> :mod:`generic`; HDF5 with a PDEBench layout -> :mod:`pdebench`; other HDF5 and Zarr ->
:mod:`generic` (keys ``x``/``y`` by default). ``format=`` forces one reader.

Every reader returns ``{"x": (N, C, *grid), "y": (N, C, *grid), "params": {name: (N,)},
"labels": {factor: [str] * N}, "card": dict}``.

Every reader checks an array before it reads it (numeric dtype, stored data present, fits in memory;
:mod:`saeno.pde.readers.common`) and raises :class:`~saeno.errors.DataFormatError` naming the file and the
key; :func:`read_file` turns any other failure of the underlying libraries on a damaged file into one too.
A split the file does not have is an error, never silently ignored: one file is split into train and test
by ``rows=START:STOP``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from saeno.errors import DataFormatError, SaenoError
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

__all__ = ["READERS", "detect_format", "file_splits", "parse_rows", "read_file"]

SPLIT_READERS = ("saeno", "generic")
# what the HDF5, Zarr, numpy and torch libraries raise on damaged or foreign files
_LIBRARY_ERRORS = (
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    EOFError,
    OverflowError,
    MemoryError,
    UnicodeDecodeError,
)


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

    if path.is_dir():
        raise DataFormatError(f"{path}: a folder that is not a Zarr group; pass a data file")
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
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise DataFormatError(
            f"{path}: expected a neuraloperator .pt file, an HDF5 file (PDEBench, The Well, saeno or named "
            f"keys) or a Zarr folder; could not open it as HDF5 ({exc})"
        ) from exc


def _flag(name: str) -> str:
    return "--no-channels" if name == "channels_squeezed" else "--" + name.replace("_", "-")


def file_splits(path: str | Path, format: str | None = None, **keys: Any) -> list[str]:
    """The splits a file has (``["test", "train"]`` for saeno files, its groups for generic files), or ``[]``."""
    fmt = format or detect_format(path, keys)
    try:
        if fmt == "saeno":
            import h5py

            with h5py.File(path, "r") as f:
                return sorted(k for k in f if isinstance(f[k], h5py.Group))
        if fmt == "generic":
            from saeno.pde.readers.generic import splits

            return splits(path)
    except DataFormatError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise DataFormatError(f"{path}: could not list its splits ({type(exc).__name__}: {exc})") from exc
    return []


def parse_rows(rows: Any) -> slice | None:
    """``"START:STOP"``, ``(start, stop)`` or a ``slice`` -> a slice of sample indices (step 1, start >= 0)."""
    if rows is None:
        return None
    if isinstance(rows, str):
        parts = rows.split(":")
        if len(parts) != 2:
            raise DataFormatError(f"rows {rows!r}: expected START:STOP, e.g. 0:800 or 800: (CLI --rows)")
        try:
            rows = slice(*(int(p) if p.strip() else None for p in parts))
        except ValueError as exc:
            raise DataFormatError(f"rows {rows!r}: START and STOP must be integers") from exc
    elif isinstance(rows, (tuple, list)) and len(rows) == 2:
        rows = slice(rows[0], rows[1])
    if not isinstance(rows, slice) or rows.step not in (None, 1):
        raise DataFormatError(f"rows must be START:STOP, (start, stop) or a slice with step 1, got {rows!r}")
    start, stop = rows.start or 0, rows.stop
    if start < 0 or (stop is not None and stop <= start):
        raise DataFormatError(f"rows {start}:{'' if stop is None else stop}: need 0 <= START < STOP")
    return slice(start, stop)


def _select_rows(out: dict[str, Any], rows: slice, path: Path) -> dict[str, Any]:
    n = len(out["x"])
    if rows.start >= n:
        raise DataFormatError(
            f"{path}: rows {rows.start}:{rows.stop or ''} start past the file's {n} samples"
        )
    out["x"], out["y"] = out["x"][rows], out["y"][rows]
    out["params"] = {k: v[rows] for k, v in out["params"].items()}
    out["labels"] = {k: list(v)[rows] for k, v in out["labels"].items()}
    out["card"]["rows"] = [rows.start, min(n, rows.stop) if rows.stop is not None else n]
    return out


def read_file(
    path: str | Path,
    split: str | None = None,
    resolution: int | None = None,
    n: int | None = None,
    format: str | None = None,
    rows: Any = None,
    **keys: Any,
) -> dict[str, Any]:
    """Read a data file into input/output arrays ``(N, C, *grid)``.

    Parameters
    ----------
    path : str or Path
        The file (or Zarr folder).
    split : str, optional
        Split for files that have them (saeno files, generic files with train/test groups; default
        ``"train"`` where the file has it). Passing a split for a file without splits is an error: use
        ``rows`` to split one file.
    resolution : int, optional
        Points per side; for files with one grid, a divisor of it (the grid is subsampled).
    n : int, optional
        Read only the first ``n`` samples (of ``rows``, when given; trajectories for time series).
    format : str, optional
        Force a reader: one of ``READERS``.
    rows : str, tuple or slice, optional
        Sample rows ``START:STOP`` to keep (``"0:800"`` for training, ``"800:"`` for testing); counted in
        samples as read (input/output pairs for time series).
    **keys
        Reader options (``x_key``, ``y_key``, ``pairing``, ``step``, ``t_in``, ``t_out``, ``fields``,
        ``channels_last``, ``channels_first``, ``no_channels``, ``params_keys``, ``channels_squeezed``,
        ``ndim``, ``trust``).

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.

    Raises
    ------
    DataFormatError
        For any file that cannot be read as asked, naming the file and what to pass.
    """
    path = Path(path)
    fmt = format or detect_format(path, keys)
    if fmt not in READERS:
        raise DataFormatError(f"unknown format {fmt!r}; choose one of {sorted(READERS)}")
    reader = READERS[fmt]
    accepted = set(inspect.signature(reader).parameters)
    keys = dict(keys)
    if "trust" not in accepted:
        keys.pop("trust", None)  # a permission, needed only by readers that may unpickle
    if fmt == "neuraloperator-pt" and "no_channels" in keys:
        keys["channels_squeezed"] = keys.pop("no_channels")
    unknown = sorted(set(keys) - accepted)
    if unknown:
        options = sorted(accepted - {"path", "split", "n", "resolution"})
        raise DataFormatError(
            f"{path}: options {unknown} (CLI {', '.join(_flag(k) for k in unknown)}) do not apply to the {fmt} "
            f"reader; it accepts {options} (CLI {', '.join(_flag(k) for k in options)})"
        )
    if split is not None and fmt not in SPLIT_READERS:
        raise DataFormatError(
            f"{path}: a {fmt} file has no {split!r} split (it is one set of samples). Omit split to read it "
            "all, or split it by sample rows with rows= (CLI --rows), e.g. '0:800' to train and '800:' to test"
        )
    row_slice = parse_rows(rows)
    read_n = n
    if row_slice is not None:
        read_n = None if row_slice.stop is None else row_slice.stop
        if n is not None and n < 1:
            raise DataFormatError(f"n must be positive, got {n}")
        if n is not None and row_slice.stop is None:
            read_n = row_slice.start + n
        elif n is not None:
            read_n = min(row_slice.stop, row_slice.start + n)
    kwargs = dict(keys, n=read_n)
    if "split" in accepted:
        kwargs["split"] = split
    try:
        if fmt == "saeno":
            out = reader(path, resolution=resolution, **kwargs)
        else:
            out = reader(path, **kwargs)
            out["x"], out["y"] = select_resolution(out["x"], out["y"], resolution, str(path))
    except SaenoError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise DataFormatError(
            f"{path}: could not be read as a {fmt} file ({type(exc).__name__}: {exc}); check the file, or "
            f"force another reader with format= (one of {sorted(READERS)})"
        ) from exc
    out["card"].setdefault("file", str(path))
    if row_slice is not None:
        out = _select_rows(out, row_slice, path)
        if n is not None:
            out = _select_rows(out, slice(0, n), path)
            out["card"]["rows"] = [row_slice.start, row_slice.start + len(out["x"])]
    if len(out["x"]) == 0:
        raise DataFormatError(f"{path}: no samples were read")
    return out
