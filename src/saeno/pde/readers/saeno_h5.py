"""saeno's own generated datasets (``format = "saeno-dataset-1"``, see :mod:`saeno.pde.generate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py

from saeno.errors import DataFormatError
from saeno.pde.readers.common import check_array, read_rows

FORMAT = "saeno-dataset-1"


def is_saeno(f: h5py.File) -> bool:
    """Whether an open HDF5 file was written by :func:`saeno.pde.generate.generate`."""
    return f.attrs.get("format") == FORMAT


def _card(f: h5py.File, path: str | Path) -> dict[str, Any]:
    try:
        card = json.loads(f.attrs["card"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: a saeno dataset file needs a JSON 'card' attribute ({exc})") from exc
    if not isinstance(card, dict):
        raise DataFormatError(
            f"{path}: the 'card' attribute should be a JSON object, found {type(card).__name__}"
        )
    return card


def read_saeno(
    path: str | Path, split: str | None = "train", resolution: int | None = None, n: int | None = None
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
    split = "train" if split is None else split
    src = str(path)
    with h5py.File(path, "r") as f:
        card = _card(f, path)
        if split not in f or not isinstance(f[split], h5py.Group):
            raise DataFormatError(f"{path}: no split {split!r}; choose one of {sorted(f.keys())}")
        group = f[split]
        if not all(isinstance(group.get(k), h5py.Group) for k in ("x", "y")):
            raise DataFormatError(
                f"{path}: split {split!r} should hold groups x/ and y/ (one array per "
                f"resolution); found {sorted(group.keys())}"
            )
        try:
            stored = sorted(int(r) for r in group["x"])  # type: ignore[union-attr]
        except ValueError as exc:
            raise DataFormatError(
                f"{path}: {split}/x/ should hold one array per resolution named by its "
                f"size; found {sorted(group['x'].keys())}"
            ) from exc
        if not stored:
            raise DataFormatError(f"{path}: {split}/x/ holds no resolution")
        if resolution is None:
            resolution = default_resolution(card, stored)
        if int(resolution) not in stored or str(resolution) not in group["y"]:
            raise DataFormatError(
                f"{card.get('name', path)}: resolution {resolution} is not stored; available: {stored} "
                f"(generate others with saeno data generate {card.get('name', 'NAME')} --resolution R)"
            )
        xs, ys = group["x"][str(resolution)], group["y"][str(resolution)]
        key = f"{split}/x/{resolution}"
        m = check_array(xs, src, key, n, min_ndim=3)
        if ys.shape[:1] != xs.shape[:1]:
            raise DataFormatError(
                f"{path}: {key} has {xs.shape[0]} samples but {split}/y/{resolution} "
                f"{ys.shape[0] if ys.shape else 0}"
            )
        x = read_rows(xs, src, key, m, min_ndim=3)
        y = read_rows(ys, src, f"{split}/y/{resolution}", m, min_ndim=3)
        params = {
            k: read_rows(group["params"][k], src, f"{split}/params/{k}", m)
            for k in (group["params"].keys() if isinstance(group.get("params"), h5py.Group) else [])
        }
        labels = {}
        for factor, values in dict(card.get("labels") or {}).items():
            if "labels" in group and factor in group["labels"]:
                codes = read_rows(group["labels"][factor], src, f"{split}/labels/{factor}", m)
                if codes.size and (codes.min() < 0 or codes.max() >= len(values)):
                    raise DataFormatError(
                        f"{path}: label codes of {factor!r} outside the card's {len(values)} categories"
                    )
                labels[factor] = [values[int(c)] for c in codes]
    card = dict(card, split=split, resolution=int(resolution), stored_resolutions=stored, file=str(path))
    return {"x": x, "y": y, "params": params, "labels": labels, "card": card}


def default_resolution(card: dict[str, Any], stored: list[int]) -> int:
    """The default resolution of a card: ``card["default_resolution"]`` if stored, else the middle one."""
    if card.get("default_resolution") in stored:
        return int(card["default_resolution"])
    return stored[len(stored) // 2] if len(stored) > 1 else stored[0]
