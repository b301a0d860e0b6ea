"""PDEBench HDF5 files.

Four layouts are recognised:

- 1D time series: ``tensor (N, T, X)`` with ``x-coordinate (X,)`` and ``t-coordinate (T or T+1,)``
  (Burgers, advection, ...); pairs are made with :func:`~saeno.pde.readers.common.pair_frames`.
- 2D Darcy: ``nu (N, X, Y)`` (the coefficient, input) and ``tensor (N, 1, X, Y)`` (the solution, output).
- Compressible Navier-Stokes (CFD): one dataset per field, ``density``, ``pressure``, ``Vx``, ``Vy``,
  ``Vz``, each ``(N, T, *grid)``; the fields become channels in that order (``fields=`` picks some) and
  frames are paired in time as above.
- One group per sample: ``"0000/data" (T, X[, Y], C)`` channels last (shallow water, diffusion-reaction);
  pairs per ``pairing`` as above, each group one trajectory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import (
    check_array,
    describe_h5,
    limit,
    pair_frames,
    read_rows,
)

CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")


def is_pdebench(f: h5py.File) -> bool:
    """Whether an open HDF5 file looks like one of the PDEBench layouts."""
    if "tensor" in f or is_pdebench_cfd(f):
        return True
    first = next(iter(f.keys()), None)
    return first is not None and isinstance(f[first], h5py.Group) and "data" in f[first]


def is_pdebench_cfd(f: h5py.File) -> bool:
    """Whether an open HDF5 file has PDEBench's compressible-flow layout (one dataset per field)."""
    return "density" in f and "Vx" in f and isinstance(f["density"], h5py.Dataset)


def _cfd(f: h5py.File, path: Path, n: int | None, fields: list[str] | None) -> tuple[np.ndarray, list[str]]:
    names = [k for k in CFD_FIELDS if k in f]
    if fields is not None:
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise DataFormatError(f"{path}: fields {unknown} not in the file; it has {names}")
        names = [k for k in names if k in fields]
    shapes = {k: tuple(f[k].shape) for k in names}
    if len(set(shapes.values())) != 1:
        raise DataFormatError(
            f"{path}: PDEBench CFD fields must share one shape (N, T, *grid); found {shapes}"
        )
    shape = shapes[names[0]]
    if not 3 <= len(shape) <= 5:
        raise DataFormatError(
            f"{path}: PDEBench CFD field {names[0]!r} should be (N, T, *grid) with 1-3 space "
            f"axes, found {shape}"
        )
    m = limit(shape[0], n, str(path))
    for k in names:
        check_array(f[k], str(path), k, m)
    traj = np.stack([read_rows(f[k], str(path), k, m) for k in names], axis=2)  # (N, T, C, *grid)
    return traj, names


def read_pdebench(
    path: str | Path,
    n: int | None = None,
    pairing: str = "initial_final",
    step: int = 1,
    t_in: int = 0,
    t_out: int = -1,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Read a PDEBench HDF5 file into ``(N, C, *grid)`` pairs.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    n : int, optional
        Read only the first ``n`` trajectories (samples for Darcy).
    pairing, step, t_in, t_out
        How time series become pairs: ``"initial_final"`` (frame ``t_in`` -> ``t_out``, default first ->
        last) or ``"next"`` (frame ``t`` -> ``t + step``). Ignored for Darcy.
    fields : list of str, optional
        For CFD files: the fields to use as channels (default all of ``density``, ``pressure``, ``Vx``,
        ``Vy``, ``Vz`` present).

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.
    """
    path = Path(path)
    src = str(path)
    with h5py.File(path, "r") as f:
        card: dict[str, Any] = {"format": "pdebench", "pairing": pairing}
        if fields is not None and not is_pdebench_cfd(f):
            raise DataFormatError(
                f"{path}: fields= applies to PDEBench CFD files (density, pressure, Vx, ...); "
                f"this file has {describe_h5(f)}"
            )
        if "nu" in f and "tensor" in f:
            nu, tensor = f["nu"], f["tensor"]
            if (
                nu.ndim != 3
                or tensor.ndim != 4
                or tensor.shape[1] != 1
                or nu.shape[1:] != tensor.shape[2:]
                or nu.shape[0] != tensor.shape[0]
            ):
                raise DataFormatError(
                    f"{path}: PDEBench Darcy expects nu (N, X, Y) and tensor (N, 1, X, Y), "
                    f"found nu {nu.shape} and tensor {tensor.shape}"
                )
            m = limit(nu.shape[0], n, src)
            check_array(tensor, src, "tensor", m)
            x = read_rows(nu, src, "nu", m)[:, None]
            card.update(layout="darcy", pairing="nu->tensor")
            return {
                "x": x,
                "y": read_rows(tensor, src, "tensor", m),
                "params": {},
                "labels": {},
                "card": card,
            }
        if is_pdebench_cfd(f):
            traj, names = _cfd(f, path, n, fields)
            card.update(layout="cfd", channels=names)
        elif "tensor" in f:
            tensor = f["tensor"]
            if not isinstance(tensor, h5py.Dataset) or not 3 <= tensor.ndim <= 5:
                raise DataFormatError(
                    f"{path}: PDEBench 'tensor' should be (N, T, *grid), found "
                    f"{getattr(tensor, 'shape', 'a group')}"
                )
            traj = read_rows(tensor, src, "tensor", n)[:, :, None]  # (N, T, 1, *grid)
            card["layout"] = "tensor"
        else:
            groups = sorted(k for k in f if isinstance(f[k], h5py.Group) and "data" in f[k])
            if not groups:
                raise DataFormatError(
                    f"{path}: expected a PDEBench layout (a 'tensor' dataset, 'nu' + 'tensor' for Darcy, "
                    f"density/pressure/Vx... for CFD, or per-sample groups '0000/data' (T, *grid, C)); found "
                    f"{describe_h5(f)}"
                )
            groups = groups[: limit(len(groups), n, src)]
            shapes = {g: tuple(f[g]["data"].shape) for g in groups}
            if len(set(shapes.values())) != 1 or not 3 <= len(shapes[groups[0]]) <= 5:
                raise DataFormatError(
                    f"{path}: per-sample groups need one shape (T, *grid, C) for every "
                    f"'data'; found {dict(list(shapes.items())[:4])}"
                )
            traj = np.stack(
                [np.moveaxis(read_rows(f[g]["data"], src, f"{g}/data"), -1, 1) for g in groups]
            )  # (N, T, C, *grid)
            card["layout"] = "per-sample groups"
            card["groups"] = groups[:3] + (["..."] if len(groups) > 3 else [])
        if (
            "t-coordinate" in f
            and isinstance(f["t-coordinate"], h5py.Dataset)
            and f["t-coordinate"].ndim == 1
        ):
            card["t"] = [float(v) for v in read_rows(f["t-coordinate"], src, "t-coordinate")]
    x, y, trajectory, t_index = pair_frames(traj, pairing, step, t_in, t_out)
    params = {"trajectory": trajectory.astype(float), "t_index": t_index.astype(float)}
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}
