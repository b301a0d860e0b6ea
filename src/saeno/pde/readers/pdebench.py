"""PDEBench HDF5 files.

Three layouts are recognised:

- 1D time series: ``tensor (N, T, X)`` with ``x-coordinate (X,)`` and ``t-coordinate (T or T+1,)``
  (Burgers, advection, ...); pairs are made with :func:`~saeno.pde.readers.common.pair_frames`.
- 2D Darcy: ``nu (N, X, Y)`` (the coefficient, input) and ``tensor (N, 1, X, Y)`` (the solution, output).
- One group per sample: ``"0000/data" (T, X[, Y], C)`` channels last (shallow water, diffusion-reaction);
  pairs per ``pairing`` as above, each group one trajectory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import describe_h5, limit, pair_frames


def is_pdebench(f: h5py.File) -> bool:
    """Whether an open HDF5 file looks like one of the PDEBench layouts."""
    if "tensor" in f:
        return True
    first = next(iter(f.keys()), None)
    return first is not None and isinstance(f[first], h5py.Group) and "data" in f[first]


def read_pdebench(
    path: str | Path,
    n: int | None = None,
    pairing: str = "initial_final",
    step: int = 1,
    t_in: int = 0,
    t_out: int = -1,
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

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``.
    """
    with h5py.File(path, "r") as f:
        card: dict[str, Any] = {"format": "pdebench", "pairing": pairing}
        if "nu" in f and "tensor" in f:
            nu, tensor = f["nu"], f["tensor"]
            if nu.ndim != 3 or tensor.ndim != 4 or tensor.shape[1] != 1 or nu.shape[1:] != tensor.shape[2:]:
                raise DataFormatError(
                    f"{path}: PDEBench Darcy expects nu (N, X, Y) and tensor (N, 1, X, Y), "
                    f"found nu {nu.shape} and tensor {tensor.shape}"
                )
            m = limit(nu.shape[0], n)
            card.update(layout="darcy", pairing="nu->tensor")
            return {"x": nu[:m][:, None], "y": tensor[:m], "params": {}, "labels": {}, "card": card}
        if "tensor" in f:
            tensor = f["tensor"]
            if tensor.ndim < 3:
                raise DataFormatError(f"{path}: PDEBench 'tensor' should be (N, T, *grid), found {tensor.shape}")
            m = limit(tensor.shape[0], n)
            traj = tensor[:m][:, :, None]  # (N, T, 1, *grid)
            if "t-coordinate" in f:
                card["t"] = [float(v) for v in np.asarray(f["t-coordinate"])]
            card["layout"] = "tensor"
        else:
            groups = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group) and "data" in f[k])
            if not groups:
                raise DataFormatError(
                    f"{path}: expected a PDEBench layout (a 'tensor' dataset, 'nu' + 'tensor' for Darcy, or "
                    f"per-sample groups '0000/data' (T, *grid, C)); found {describe_h5(f)}"
                )
            groups = groups[: limit(len(groups), n)]
            traj = np.stack([np.moveaxis(f[g]["data"][()], -1, 1) for g in groups])  # (N, T, C, *grid)
            card["layout"] = "per-sample groups"
            card["groups"] = groups[:3] + (["..."] if len(groups) > 3 else [])
    x, y, trajectory, t_index = pair_frames(traj, pairing, step, t_in, t_out)
    params = {"trajectory": trajectory.astype(float), "t_index": t_index.astype(float)}
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}
