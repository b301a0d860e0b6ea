"""saeno's own generated datasets (``format = "saeno-dataset-1"``, see :mod:`saeno.pde.generate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import limit

FORMAT = "saeno-dataset-1"


def is_saeno(f: h5py.File) -> bool:
    """Whether an open HDF5 file was written by :func:`saeno.pde.generate.generate`."""
    return f.attrs.get("format") == FORMAT


def read_saeno(
    path: str | Path, split: str = "train", resolution: int | None = None, n: int | None = None
) -> dict[str, Any]:
    """Read one split at one resolution of a generated dataset.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    split : {"train", "test"}
        Which split.
    resolution : int, optional
        One of the stored resolutions (default: the card's first stored resolution above the smallest,
        i.e. the middle one for three stored, else the finest).
    n : int, optional
        Read only the first ``n`` samples.

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``; ``card`` is the dataset card.
    """
    with h5py.File(path, "r") as f:
        card = json.loads(f.attrs["card"])
        if split not in f:
            raise DataFormatError(f"{path}: no split {split!r}; choose one of {sorted(f.keys())}")
        group = f[split]
        stored = sorted(int(r) for r in group["x"].keys())
        if resolution is None:
            resolution = default_resolution(card, stored)
        if int(resolution) not in stored:
            raise DataFormatError(
                f"{card['name']}: resolution {resolution} is not stored; available: {stored} "
                f"(generate others with saeno data generate {card['name']} --resolution R)"
            )
        m = limit(group["x"][str(resolution)].shape[0], n)
        x = group["x"][str(resolution)][:m]
        y = group["y"][str(resolution)][:m]
        params = {k: group["params"][k][:m] for k in group.get("params", {}).keys()}
        labels = {}
        for factor, values in card.get("labels", {}).items():
            if "labels" in group and factor in group["labels"]:
                labels[factor] = [values[int(c)] for c in np.asarray(group["labels"][factor][:m])]
    card = dict(card, split=split, resolution=int(resolution), stored_resolutions=stored, file=str(path))
    return {"x": x, "y": y, "params": params, "labels": labels, "card": card}


def default_resolution(card: dict[str, Any], stored: list[int]) -> int:
    """The default resolution of a card: ``card["default_resolution"]`` if stored, else the middle one."""
    if card.get("default_resolution") in stored:
        return int(card["default_resolution"])
    return stored[len(stored) // 2] if len(stored) > 1 else stored[0]
