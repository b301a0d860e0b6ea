"""Readers never misread silently: each layout is read exactly or refused with a message naming the fix."""

import h5py
import numpy as np
import pytest
import torch

import saeno.datasets
from saeno.errors import DataFormatError
from saeno.pde.readers import detect_format, file_splits, read_file

RNG = np.random.default_rng(1)


def _pt(path, x, y):
    torch.save({"x": torch.as_tensor(x), "y": torch.as_tensor(y)}, path)
    return path


def test_channels_last_pt_is_detected(tmp_path):
    x = RNG.standard_normal((5, 16, 16, 1)).astype(np.float32)
    y = RNG.standard_normal((5, 16, 16, 1)).astype(np.float32)
    ds = saeno.datasets.load(_pt(tmp_path / "cl.pt", x, y))
    assert ds.grid == (16, 16) and ds.in_channels == 1  # not 16 channels on a (16, 1) grid
    np.testing.assert_array_equal(ds.x[3, 0], x[3, :, :, 0])
    np.testing.assert_array_equal(ds.y[4, 0], y[4, :, :, 0])
    three = RNG.standard_normal((2, 32, 32, 3)).astype(np.float32)
    out = read_file(_pt(tmp_path / "c3.pt", three, three[..., :1]))
    assert out["x"].shape == (2, 3, 32, 32) and out["card"]["layout"] == {"x": "last", "y": "last"}
    np.testing.assert_array_equal(out["x"][1, 2], three[1, :, :, 2])


def test_ambiguous_shape_is_refused_and_the_option_settles_it(tmp_path):
    a = RNG.standard_normal((3, 8, 8, 8)).astype(np.float32)  # 3-D grid, or 8 channels first or last
    path = _pt(tmp_path / "amb.pt", a, a)
    # 8x8x8 reads as a squeezed 3-D grid only: 8 channels on an 8x8 grid is not a plausible channel axis
    assert read_file(path)["x"].shape == (3, 1, 8, 8, 8)
    b = RNG.standard_normal((3, 2, 8, 8)).astype(np.float32)  # 2 channels on 8x8, or a 2x8x8 grid
    path = _pt(tmp_path / "amb2.pt", b, b)
    with pytest.raises(DataFormatError, match="ambiguous.*--channels-last.*--channels-first"):
        read_file(path)
    assert read_file(path, channels_first=True)["x"].shape == (3, 2, 8, 8)
    assert read_file(path, ndim=3)["x"].shape == (3, 1, 2, 8, 8)
    last = read_file(path, channels_last=True)
    np.testing.assert_array_equal(last["x"][0, 1], b[0, :, :, 1])
    with pytest.raises(DataFormatError, match="exclude each other"):
        read_file(path, channels_first=True, channels_last=True)


def test_neuraloperator_default_layouts_are_kept(tmp_path):
    x2 = RNG.standard_normal((4, 16, 16)).astype(np.float32)
    assert read_file(_pt(tmp_path / "a.pt", x2, x2))["x"].shape == (4, 1, 16, 16)
    x1 = RNG.standard_normal((4, 3, 64)).astype(np.float32)  # 1-D with 3 channels, not a 3x64 grid
    assert read_file(_pt(tmp_path / "b.pt", x1, x1[:, :1]))["x"].shape == (4, 3, 64)


def _cfd(path, n=3, t=5, nx=16, ny=16):
    fields = {
        k: RNG.standard_normal((n, t, nx, ny)).astype(np.float32) for k in ("density", "pressure", "Vx", "Vy")
    }
    with h5py.File(path, "w") as f:
        for k, v in fields.items():
            f[k] = v
        f["x-coordinate"] = np.linspace(0, 1, nx)
        f["y-coordinate"] = np.linspace(0, 1, ny)
        f["t-coordinate"] = np.linspace(0, 1, t + 1)
    return fields


def test_pdebench_cfd_fields_become_channels(tmp_path):
    path = tmp_path / "2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_16_Train.hdf5"
    fields = _cfd(path)
    assert detect_format(path) == "pdebench"
    ds = saeno.datasets.load(path)
    assert ds.x.shape == (3, 4, 16, 16) and ds.card["channels"] == ["density", "pressure", "Vx", "Vy"]
    np.testing.assert_array_equal(ds.x[2, 1], fields["pressure"][2, 0])
    np.testing.assert_array_equal(ds.y[1, 3], fields["Vy"][1, -1])
    nxt = saeno.datasets.load(path, pairing="next", fields=["density", "Vx"])
    assert nxt.x.shape == (3 * 4, 2, 16, 16)
    np.testing.assert_array_equal(nxt.x[5, 1], fields["Vx"][1, 1])  # pair 5: trajectory 1, frame 1 -> 2
    np.testing.assert_array_equal(nxt.y[5, 0], fields["density"][1, 2])
    with pytest.raises(DataFormatError, match=r"fields \['rho'\] not in the file"):
        read_file(path, fields=["rho"])


def test_time_axis_read_as_channels_is_refused(tmp_path):
    path = tmp_path / "cfd.hdf5"
    _cfd(path)
    with pytest.raises(DataFormatError, match="axis 1 of 'density'.*is time.*without x_key"):
        read_file(path, x_key="density", y_key="pressure")


def test_the_well_static_fields_are_inputs_only(tmp_path):
    path = tmp_path / "well.hdf5"
    u = RNG.standard_normal((2, 4, 16, 16)).astype(np.float32)
    mask = RNG.standard_normal((2, 16, 16)).astype(np.float32)  # per sample, constant in time
    with h5py.File(path, "w") as f:
        f.attrs.update(dataset_name="d", n_spatial_dims=2, n_trajectories=2)
        f["dimensions/time"] = np.linspace(0, 1, 4)
        f["t0_fields/u"] = u
        f["t0_fields/mask"] = mask
        f["t0_fields/mask"].attrs.update(sample_varying=True, time_varying=False)
        f["t0_fields/u"].attrs.update(sample_varying=True, time_varying=True)
    ds = saeno.datasets.load(path, pairing="next")
    assert ds.in_channels == 2 and ds.out_channels == 1
    assert ds.card["x_channels"] == ["u", "mask"] and ds.card["y_channels"] == ["u"]
    np.testing.assert_array_equal(ds.x[4, 1], mask[1])  # pair 4 is trajectory 1
    np.testing.assert_array_equal(ds.y[4, 0], u[1, 2])


def test_generic_shape_error_is_a_message(tmp_path):
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((4, 1, 8, 8), np.float32)
        f["y"] = np.zeros((4, 1, 4, 4), np.float32)
    with pytest.raises(DataFormatError, match=r"'x' \(4, 1, 8, 8\) and 'y' \(4, 1, 4, 4\) cannot be read"):
        read_file(path)


def test_declared_but_unwritten_arrays_do_not_allocate(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # 2 x 1 GiB declared, nothing written
        f.create_dataset("x", shape=(1024, 1, 512, 512), dtype="f4", chunks=(1, 1, 512, 512))
        f.create_dataset("y", shape=(1024, 1, 512, 512), dtype="f4")
    assert path.stat().st_size < 64 * 1024
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFormatError, match="only 0 of its 1024 chunks|stores no data"):
        read_file(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: < 200 MiB


@pytest.mark.parametrize("dtype", ["S5", np.dtype([("a", "f4"), ("b", "i4")])])
def test_string_and_compound_dtypes_are_refused(tmp_path, dtype):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros((3, 1, 8), dtype=dtype))
        f["y"] = np.zeros((3, 1, 8), np.float32)
    with pytest.raises(DataFormatError, match=f"{path}: array 'x' has dtype"):
        read_file(path)


def test_zero_samples_are_refused(tmp_path):
    path = _pt(tmp_path / "z.pt", np.zeros((0, 8, 8), np.float32), np.zeros((0, 8, 8), np.float32))
    with pytest.raises(DataFormatError, match="no samples"):
        read_file(path)


def test_split_of_a_single_file_is_refused_and_rows_split_it(tmp_path):
    x = np.arange(10 * 16, dtype=np.float32).reshape(10, 16)
    path = _pt(tmp_path / "one.pt", x, x)
    assert file_splits(path) == []
    with pytest.raises(DataFormatError, match="no 'test' split.*--rows"):
        saeno.datasets.load(path, split="test")
    train = saeno.datasets.load(path, rows="0:8")
    test = saeno.datasets.load(path, rows="8:")
    assert len(train) == 8 and len(test) == 2
    np.testing.assert_array_equal(test.x[0, 0], x[8])
    assert test.card["rows"] == [8, 10]
    head = saeno.datasets.load(path, rows="2:9", n=3)
    np.testing.assert_array_equal(head.x[:, 0], x[2:5])
    with pytest.raises(DataFormatError, match="START < STOP"):
        saeno.datasets.load(path, rows="5:5")
    with pytest.raises(DataFormatError, match="start past"):
        saeno.datasets.load(path, rows="20:")
