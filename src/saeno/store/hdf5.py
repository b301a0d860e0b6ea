"""Copy an activation store into one HDF5 file (for tools that do not read Zarr)."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import numpy as np

from saeno.errors import StoreError
from saeno.store.activation_store import ActivationStore


def export_hdf5(store: ActivationStore, path: str | PathLike, overwrite: bool = False) -> Path:
    """Write the committed rows of every array of ``store`` to an HDF5 file.

    Arrays keep their store paths (``acts/<hook>``, ``x``, ``y``, ``y_pred``, ``index``,
    ``params/<name>``), gzip-compressed and chunked by sample; the store metadata goes to the root
    attribute ``saeno`` as a JSON string. Copies chunk by chunk, so memory stays flat.

    Parameters
    ----------
    store
        The source store.
    path
        The HDF5 file to write.
    overwrite
        Replace an existing file (otherwise an existing file is refused).

    Returns
    -------
    Path
        The written file.
    """
    import h5py

    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise StoreError(f"{path} exists: choose another file name or remove it first")
    n = store.n_rows
    tmp = path.with_name(path.name + ".partial")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["saeno"] = json.dumps(store.attrs)
            for name in store.array_names():
                src = store[name]
                step = int(src.chunks[0])
                key = store[name].path  # the path inside the store group (acts/<hook> for hooks)
                dst = f.create_dataset(
                    key,
                    shape=(n, *src.shape[1:]),
                    dtype=src.dtype,
                    chunks=(max(1, min(step, n)), *src.shape[1:]) if n else None,
                    compression="gzip" if n else None,
                )
                for lo in range(0, n, step):
                    dst[lo : min(lo + step, n)] = np.asarray(src[lo : min(lo + step, n)])
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
