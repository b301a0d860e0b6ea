"""Readers: small files in each real layout round-trip into (N, C, *grid) with the right values."""

import h5py
import numpy as np
import pytest
import torch

import saeno.datasets
from saeno.errors import DataFormatError, UntrustedFileError
from saeno.pde.readers import detect_format, read_file

RNG = np.random.default_rng(0)


def test_neuralop_pt_squeezed_channels(tmp_path):
    x, y = RNG.standard_normal((5, 8, 8)), RNG.standard_normal((5, 8, 8))
    path = tmp_path / "darcy_train_8.pt"
    torch.save({"x": torch.tensor(x), "y": torch.tensor(y)}, path)
    ds = saeno.datasets.load(path, n=3)
    assert len(ds) == 3 and ds.grid == (8, 8)
    np.testing.assert_allclose(ds[2]["x"].numpy(), x[2][None], rtol=1e-6)
    np.testing.assert_allclose(ds[1]["y"].numpy(), y[1][None], rtol=1e-6)


def test_neuralop_pt_with_channels_and_subsampling(tmp_path):
    x = RNG.standard_normal((4, 2, 8, 8, 8)).astype(np.float32)
    path = tmp_path / "f.pt"
    torch.save({"x": torch.tensor(x), "y": torch.tensor(x[:, :1])}, path)
    out = read_file(path, resolution=4)
    assert out["x"].shape == (4, 2, 4, 4, 4)
    np.testing.assert_array_equal(out["x"][:, :, 1, 2, 3], x[:, :, 2, 4, 6])
    with pytest.raises(DataFormatError, match="resolution 3 is not available"):
        read_file(path, resolution=3)


def test_pt_with_pickled_objects_needs_trust(tmp_path):
    import argparse

    path = tmp_path / "obj.pt"
    # an argparse.Namespace is not on torch's weights-only allow-list: loading it needs a real unpickle
    torch.save({"x": torch.ones(2, 4), "y": torch.zeros(2, 4), "meta": argparse.Namespace(a=1)}, path)
    with pytest.raises(UntrustedFileError, match="trust=True"):
        read_file(path)
    out = read_file(path, trust=True)
    assert out["x"].shape == (2, 1, 4) and float(out["x"].sum()) == 8.0


def test_pt_missing_keys(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"a": torch.zeros(2, 4)}, path)
    with pytest.raises(DataFormatError, match="expected a dict with tensors 'x' and 'y'.*found \\['a'\\]"):
        read_file(path)


def test_pdebench_1d_tensor_pairings(tmp_path):
    tensor = RNG.standard_normal((3, 5, 16)).astype(np.float32)  # (N, T, X)
    path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    with h5py.File(path, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = np.linspace(0, 1, 16, endpoint=False)
        f["t-coordinate"] = np.linspace(0, 2, 6)
    assert detect_format(path) == "pdebench"
    ds = saeno.datasets.load(path)
    assert len(ds) == 3 and ds.grid == (16,)
    np.testing.assert_array_equal(ds.x[:, 0], tensor[:, 0])
    np.testing.assert_array_equal(ds.y[:, 0], tensor[:, -1])
    nxt = saeno.datasets.load(path, pairing="next", step=2)
    assert len(nxt) == 3 * 3
    # pair 4 = trajectory 1, frame 1 -> frame 3
    np.testing.assert_array_equal(nxt.x[4, 0], tensor[1, 1])
    np.testing.assert_array_equal(nxt.y[4, 0], tensor[1, 3])
    assert nxt.params["trajectory"][4] == 1 and nxt.params["t_index"][4] == 1


def test_pdebench_2d_darcy(tmp_path):
    nu = RNG.uniform(1, 2, (4, 8, 8)).astype(np.float32)
    tensor = RNG.standard_normal((4, 1, 8, 8)).astype(np.float32)
    path = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(path, "w") as f:
        f["nu"] = nu
        f["tensor"] = tensor
        f["x-coordinate"] = np.linspace(0, 1, 8)
    ds = saeno.datasets.load(path)
    np.testing.assert_array_equal(ds.x[:, 0], nu)
    np.testing.assert_array_equal(ds.y, tensor)


def test_pdebench_darcy_wrong_shape(tmp_path):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f["nu"] = np.zeros((4, 8, 8))
        f["tensor"] = np.zeros((4, 8, 8))
    with pytest.raises(
        DataFormatError, match=r"tensor \(N, 1, X, Y\), found nu \(4, 8, 8\) and tensor \(4, 8, 8\)"
    ):
        read_file(path)


def test_pdebench_per_sample_groups(tmp_path):
    data = RNG.standard_normal((3, 4, 6, 5, 2)).astype(np.float32)  # (N, T, X, Y, C)
    path = tmp_path / "2D_rdb_NA_NA.h5"
    with h5py.File(path, "w") as f:
        for i in range(3):
            f[f"{i:04d}/data"] = data[i]
            f[f"{i:04d}/grid/x"] = np.linspace(0, 1, 6)
    ds = saeno.datasets.load(path, n=2)
    assert ds.x.shape == (2, 2, 6, 5)
    np.testing.assert_array_equal(ds.x[1], np.moveaxis(data[1, 0], -1, 0))
    np.testing.assert_array_equal(ds.y[0, 1], data[0, -1, :, :, 1])


def _write_well(path, n_traj=2, t=4, nx=8, ny=6):
    pressure = RNG.standard_normal((n_traj, t, nx, ny)).astype(np.float32)
    velocity = RNG.standard_normal((n_traj, t, nx, ny, 2)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update(
            dataset_name="dummy", n_spatial_dims=2, n_trajectories=n_traj, simulation_parameters=["Re"]
        )
        f["dimensions/time"] = np.linspace(0, 1, t)
        f["dimensions/x"] = np.linspace(0, 1, nx)
        f["dimensions/y"] = np.linspace(0, 1, ny)
        f.create_group("boundary_conditions")
        f["scalars/Re"] = 100.0
        f["t0_fields/pressure"] = pressure
        f["t0_fields/pressure"].attrs.update(sample_varying=True, time_varying=True)
        f["t1_fields/velocity"] = velocity
        f["t1_fields/velocity"].attrs.update(sample_varying=True, time_varying=True)
        f.create_group("t2_fields")
    return pressure, velocity


def test_the_well_channels_last_and_pairing(tmp_path):
    path = tmp_path / "dummy.hdf5"
    pressure, velocity = _write_well(path)
    assert detect_format(path) == "the_well"
    ds = saeno.datasets.load(path)
    assert ds.x.shape == (2, 3, 8, 6) and ds.card["channels"] == ["pressure", "velocity_0", "velocity_1"]
    np.testing.assert_array_equal(ds.x[1, 0], pressure[1, 0])
    np.testing.assert_array_equal(ds.x[0, 2], velocity[0, 0, :, :, 1])
    np.testing.assert_array_equal(ds.y[1, 1], velocity[1, -1, :, :, 0])
    assert ds.params["Re"].tolist() == [100.0, 100.0]
    nxt = saeno.datasets.load(path, pairing="next", fields=["pressure"])
    assert nxt.x.shape == (6, 1, 8, 6)
    np.testing.assert_array_equal(nxt.y[5, 0], pressure[1, 3])


def test_the_well_wrong_rank(tmp_path):
    path = tmp_path / "w.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["n_spatial_dims"] = 2
        f["t1_fields/velocity"] = np.zeros((2, 4, 8, 8))  # missing the component axis
    with pytest.raises(DataFormatError, match="t1_fields/velocity should have 5 axes"):
        read_file(path)


def test_generic_hdf5_keys_and_channels_last(tmp_path):
    a = RNG.standard_normal((6, 8, 8, 3)).astype(np.float32)
    b = RNG.standard_normal((6, 8, 8, 1)).astype(np.float32)
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        f["inputs/field"] = a
        f["outputs/field"] = b
        f["viscosity"] = np.arange(6.0)
    ds = saeno.datasets.load(
        path, x_key="inputs/field", y_key="outputs/field", channels_last=True, params_keys=["viscosity"]
    )
    np.testing.assert_array_equal(ds.x[4], np.moveaxis(a[4], -1, 0))
    assert ds[3]["params"] == {"viscosity": 3.0}
    with pytest.raises(DataFormatError, match="missing \\['nope'\\]"):
        saeno.datasets.load(path, x_key="inputs/field", y_key="nope")


def test_generic_zarr_with_splits(tmp_path):
    import zarr

    root = zarr.open_group(str(tmp_path / "data.zarr"), mode="w")
    for split, n in (("train", 5), ("test", 2)):
        g = root.create_group(split)
        g.create_array("x", data=np.full((n, 1, 4), 1.0 if split == "train" else 2.0, dtype=np.float32))
        g.create_array("y", data=np.zeros((n, 2, 4), dtype=np.float32))
    test = saeno.datasets.load(tmp_path / "data.zarr", split="test")
    assert len(test) == 2 and float(test.x.max()) == 2.0 and test.out_channels == 2


def test_unknown_option_is_named(tmp_path):
    path = tmp_path / "p.pt"
    torch.save({"x": torch.zeros(2, 4), "y": torch.zeros(2, 4)}, path)
    with pytest.raises(DataFormatError, match=r"options \['pairing'\] \(CLI --pairing\) do not apply"):
        read_file(path, pairing="next")
