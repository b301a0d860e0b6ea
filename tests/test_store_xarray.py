"""Stores other tools can open: xarray (with dask) reads a saeno store's arrays with named dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import saeno

xr = pytest.importorskip("xarray")
pytest.importorskip("dask")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from saeno.hooking import HookedOperator
    from saeno.hooking.examples import example_model

    torch.manual_seed(0)
    model = example_model("example-fno2d")
    x = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        y = model(x)
    data = saeno.datasets.FieldDataset(x.numpy(), y.numpy(), name="toy", params={"nu": np.arange(6.0)})
    path = tmp_path_factory.mktemp("xr") / "acts.zarr"
    saeno.capture(
        HookedOperator(model),
        data,
        ["lifting.hook_out", "blocks.0.hook_out"],
        str(path),
        batch_size=3,
        progress=False,
    )
    return path


def test_open_zarr_with_dask_reads_the_inputs(store):
    ds = xr.open_zarr(store, consolidated=False)
    assert ds["x"].dims == ("sample", "x_channel", "grid_x", "grid_y")
    assert ds["index"].dims == ("sample",)
    np.testing.assert_allclose(ds["grid_x"].values, np.arange(16) / 16)
    st = saeno.ActivationStore.open(store)
    assert ds["x"].chunks is not None  # dask-backed
    np.testing.assert_array_equal(ds["x"].isel(sample=4).values, np.asarray(st.read("x", np.arange(6)))[4])


def test_open_datatree_reads_every_hook(store):
    tree = xr.open_datatree(store, engine="zarr", consolidated=False, chunks={})
    st = saeno.ActivationStore.open(store)
    acts = tree["acts"]
    for hook in st.hooks:
        arr = acts[hook]
        assert arr.dims[0] == "sample" and arr.dims[2:] == ("grid_x", "grid_y")
        expected = np.asarray(st.read(hook, np.arange(6)))
        np.testing.assert_allclose(arr.mean("sample").values, expected.mean(0), rtol=1e-5, atol=1e-6)
    assert "grid_y" in acts.coords  # inherited from the root
