"""Fuzz: every reader and ``saeno.datasets.load``, on malformed files, raise only saeno's own errors.

Files are built from each real layout's keys with random shapes (empty axes included), dtypes (strings,
compound records, complex, bool), attributes and damaged bytes; a reader must either return well-formed
``(N, C, *grid)`` pairs or raise a :class:`~saeno.errors.SaenoError`.
"""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import saeno.datasets
from saeno.errors import SaenoError
from saeno.pde.readers import READERS, read_file

KEYS = [
    "x",
    "y",
    "tensor",
    "nu",
    "density",
    "pressure",
    "Vx",
    "t-coordinate",
    "0000/data",
    "0001/data",
    "t0_fields/u",
    "t1_fields/v",
    "dimensions/time",
    "scalars/Re",
    "train/x/8",
    "train/y/8",
    "train/x",
    "test/x/8",
]
DTYPES = ["f4", "f8", "i2", "u1", "?", "c8", "S3", "compound"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple)


def _array(shape, dtype):
    if dtype == "compound":
        return np.zeros(shape, dtype=[("a", "f4"), ("b", "i4")])
    if dtype == "S3":
        return np.full(shape, b"abc", dtype="S3")
    return np.ones(shape, dtype=dtype)


entries = st.lists(st.tuples(st.sampled_from(KEYS), shapes, st.sampled_from(DTYPES)), min_size=0, max_size=6)
attrs = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from(["saeno-dataset-1", "other"]),
        "card": st.sampled_from(["{", "[]", json.dumps({"name": "d"}), json.dumps({"labels": {"f": ["a"]}})]),
        "n_spatial_dims": st.sampled_from([0, 1, 2, 5, -1]),
        "n_trajectories": st.sampled_from([0, 1, 3]),
    },
)


def _write_h5(path, items, root_attrs, static):
    with h5py.File(path, "w") as f:
        f.attrs.update(root_attrs)
        for key, shape, dtype in items:
            try:
                f[key] = _array(shape, dtype)
                if static and key.startswith("t0_fields"):
                    f[key].attrs.update(time_varying=False)
            except (ValueError, TypeError, OSError, KeyError):  # a name clash between a group and a dataset
                pass


def _check(path, **kw):
    for fmt in [None, *READERS]:
        try:
            out = read_file(path, format=fmt, **kw)
        except SaenoError:
            continue
        x, y = out["x"], out["y"]
        assert x.ndim >= 3 and x.ndim == y.ndim and len(x) == len(y) > 0 and x.shape[2:] == y.shape[2:]
    try:
        saeno.datasets.load(path, **kw)
    except SaenoError:
        pass


@SETTINGS
@given(items=entries, root_attrs=attrs, static=st.booleans())
def test_hdf5_files_raise_only_saeno_errors(tmp_path_factory, items, root_attrs, static):
    path = tmp_path_factory.mktemp("h5") / "f.h5"
    _write_h5(path, items, root_attrs, static)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check(path)


@SETTINGS
@given(
    x=st.tuples(shapes, st.sampled_from(DTYPES[:6])),
    y=st.tuples(shapes, st.sampled_from(DTYPES[:6])),
    key=st.sampled_from(["x", "a"]),
    wrap=st.sampled_from(["dict", "list", "tensor"]),
)
def test_pt_files_raise_only_saeno_errors(tmp_path_factory, x, y, key, wrap):
    path = tmp_path_factory.mktemp("pt") / "f.pt"
    tx, ty = torch.from_numpy(_array(*x)), torch.from_numpy(_array(*y))
    obj = {key: tx, "y": ty} if wrap == "dict" else ([tx, ty] if wrap == "list" else tx)
    torch.save(obj, path)
    _check(path)


@SETTINGS
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000), suffix=st.sampled_from([".h5", ".pt"]))
def test_damaged_bytes_raise_only_saeno_errors(tmp_path_factory, cut, flip, suffix):
    folder = tmp_path_factory.mktemp("bytes")
    good = folder / f"good{suffix}"
    if suffix == ".pt":
        torch.save({"x": torch.ones(4, 8, 8), "y": torch.zeros(4, 8, 8)}, good)
    else:
        with h5py.File(good, "w") as f:
            f["x"], f["y"] = np.ones((4, 1, 8, 8), "f4"), np.zeros((4, 1, 8, 8), "f4")
    data = bytearray(good.read_bytes())
    data = data[: max(1, len(data) - cut)]
    data[flip % len(data)] ^= 0xFF
    bad = folder / f"bad{suffix}"
    bad.write_bytes(bytes(data))
    _check(bad)


@pytest.mark.parametrize("kw", [{"n": 0}, {"rows": "a:b"}, {"split": "nope"}, {"resolution": 3}])
def test_bad_arguments_raise_saeno_errors(tmp_path, kw):
    path = tmp_path / "ok.pt"
    torch.save({"x": torch.ones(4, 8, 8), "y": torch.zeros(4, 8, 8)}, path)
    with pytest.raises(SaenoError):
        saeno.datasets.load(path, **kw)
