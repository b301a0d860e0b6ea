"""saeno.capture: store contents against the forward pass, statistics, metadata, refusals."""

from __future__ import annotations

import uuid
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import saeno
from saeno.errors import SaenoError, StoreError
from saeno.hooking import HookedOperator, fingerprint
from saeno.store import ActivationStore, NonFiniteActivationError, capture

HOOKS = ["lifting.hook_out", "blocks.1.hook_out", "blocks.3.mlp.hook_out"]


def tiny_fno(seed: int = 0) -> torch.nn.Module:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=4).eval()


def inputs(n: int, seed: int = 1, res: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, res, res, generator=g)


def mem_url() -> str:
    return f"memory://saeno-test-{uuid.uuid4().hex}"


class DictData(Dataset):
    """A stand-in with the ``saeno.datasets.load`` item contract and attributes."""

    name = "toy"
    card = {"name": "toy", "pde": "none", "note": "test data"}
    grid = (16, 16)
    resolution = 16
    labels = {"family": ["a", "b"]}

    def __init__(self, n: int) -> None:
        self.x = inputs(n, seed=2)
        self.y = inputs(n, seed=3)
        self.params = {"nu": np.linspace(0.1, 1.0, n), "family": np.arange(n) % 2}

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {
            "x": self.x[i],
            "y": self.y[i],
            "index": 100 + i,
            "params": {k: float(v[i]) for k, v in self.params.items()},
        }


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny convolutions are hundreds of times slower with 2 OpenMP threads on a loaded 2-core box
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hooked() -> HookedOperator:
    return HookedOperator(tiny_fno())


@pytest.fixture(scope="module")
def tensor_store(hooked: HookedOperator) -> tuple[ActivationStore, torch.Tensor]:
    x = inputs(23)
    store = capture(hooked, x, HOOKS, mem_url(), batch_size=4, chunk_size=5, progress=False)
    return store, x


def test_contents_equal_run_with_cache_exactly(hooked, tensor_store) -> None:
    store, x = tensor_store
    assert store.hooks == HOOKS and store.n_rows == 23 and store.complete
    for lo in range(0, 23, 4):  # the same batches as the capture
        out, cache = hooked.run_with_cache(x[lo : lo + 4], names_filter=HOOKS)
        for h in HOOKS:
            got = store.read(h, slice(lo, lo + 4))
            assert got.dtype == np.float32
            assert np.array_equal(got, cache[h].numpy()), h
        assert np.array_equal(store.read("y_pred", slice(lo, lo + 4)), out.detach().numpy())
    assert np.array_equal(store.read("x"), x.numpy())
    assert store.read("index").tolist() == list(range(23))
    assert "y" not in store  # a tensor of inputs has no targets
    assert store["blocks.1.hook_out"].shape == (23, 8, 16, 16)
    assert store["blocks.1.hook_out"].chunks == (5, 8, 16, 16)


def test_stats_equal_numpy_over_the_stored_arrays(tensor_store) -> None:
    store, _ = tensor_store
    for h in HOOKS:
        a = store.read(h).astype(np.float64)
        mean, var = store.stats(h)
        np.testing.assert_allclose(mean, a.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var, a.var(axis=(0, 2, 3)), rtol=1e-10)


def test_metadata(hooked, tensor_store) -> None:
    store, _ = tensor_store
    attrs = store.attrs
    assert attrs["format"] == "saeno.activation_store" and attrs["format_version"] == 1
    assert store.fingerprint == fingerprint(hooked.model)
    assert store.grid == (16, 16)
    assert attrs["hook_info"]["lifting.hook_out"] == {
        "shape": [8, 16, 16],
        "grid": [16, 16],
        "axes": ["channel", "grid_0", "grid_1"],
        "dtype": "float32",
        "complex": None,
    }
    assert attrs["rows_written"] == 23 and attrs["dtype"] == "float32"
    assert attrs["model_class"] == "FNO"
    # the whole metadata is plain JSON in the root zarr.json
    assert ActivationStore.open(store.url).attrs == attrs


def test_dataset_dicts_give_targets_indices_params_and_card(hooked) -> None:
    data = DictData(9)
    store = capture(hooked, data, "blocks.0.hook_out", mem_url(), batch_size=4, progress=False)
    assert np.array_equal(store.read("y"), data.y.numpy())
    assert np.array_equal(store.read("x"), data.x.numpy())
    assert store.index.tolist() == [100 + i for i in range(9)]
    assert set(store.params) == {"nu", "family"}
    np.testing.assert_array_equal(store.params["nu"], data.params["nu"])
    assert store.labels == {"family": ["a", "b"]}
    assert store.attrs["dataset"]["card"] == DictData.card
    assert store.attrs["resolution"] == 16
    # a DataLoader over the same data stores the same bytes
    store2 = capture(hooked, DataLoader(data, batch_size=4), "blocks.0.hook_out", mem_url(), progress=False)
    for name in store.array_names():
        assert np.array_equal(store.read(name), store2.read(name)), name


def test_float16_and_n_and_read_selections(hooked) -> None:
    x = inputs(10)
    store = capture(hooked, x, "blocks.2.hook_out", mem_url(), dtype="float16", n=6, progress=False)
    assert store.n_rows == 6 and store["blocks.2.hook_out"].dtype == np.float16
    # the partial batch runs padded to the batch size (32) with copies of its last sample
    padded = torch.cat([x[:6], x[5:6].expand(26, *x.shape[1:])])
    _, cache = hooked.run_with_cache(padded, names_filter="blocks.2.hook_out")
    want = cache["blocks.2.hook_out"][:6].numpy().astype(np.float16)
    assert np.array_equal(store.read("blocks.2.hook_out"), want)
    assert store.read("x").dtype == np.float32  # inputs and outputs stay float32
    rows = np.array([4, 0, 2])
    assert np.array_equal(store.read("x", rows), x.numpy()[rows])
    with pytest.raises(StoreError, match="outside|rows must lie"):
        store.read("x", 6)


def test_local_path_and_refusal_to_overwrite(hooked, tmp_path) -> None:
    path = tmp_path / "acts.zarr"
    x = inputs(5)
    first = capture(hooked, x, "blocks.0.hook_out", path, progress=False)
    assert (path / "zarr.json").exists() and first.n_rows == 5
    with pytest.raises(StoreError, match="resume=True"):
        capture(hooked, x, "blocks.0.hook_out", path, progress=False)
    assert ActivationStore.open(path).n_rows == 5  # untouched
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("data")
    with pytest.raises(StoreError, match="not an empty folder"):
        capture(hooked, x, "blocks.0.hook_out", tmp_path / "other", progress=False, overwrite=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "data"
    again = capture(hooked, inputs(3, seed=5), "blocks.0.hook_out", path, progress=False, overwrite=True)
    assert again.n_rows == 3


def test_disk_space_check_refuses(hooked, tmp_path, monkeypatch) -> None:
    import shutil

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(StoreError, match="not enough disk space"):
        capture(hooked, inputs(4), "blocks.0.hook_out", tmp_path / "s", progress=False)


def test_nonfinite_stops_with_row_and_keeps_committed_rows(hooked) -> None:
    x = inputs(20)
    x[13] = float("nan")
    url = mem_url()
    with pytest.raises(NonFiniteActivationError, match="row 13"):
        capture(hooked, x, HOOKS, url, batch_size=3, chunk_size=4, progress=False)
    store = ActivationStore.open(url)
    assert store.n_rows == 12 and not store.complete  # chunks 0..2 committed, chunk 3 holds row 13
    _, cache = hooked.run_with_cache(x[:12], names_filter=HOOKS)
    for h in HOOKS:
        a = store.read(h)
        assert np.allclose(a, cache[h].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(store.stats(h)[0], a.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    # allowed on request: the store completes, statistics skip the NaNs
    done = capture(hooked, x, HOOKS, url, batch_size=3, resume=True, allow_nonfinite=True, progress=False)
    assert done.complete and done.n_rows == 20
    assert np.isnan(done.read(HOOKS[1], 13)).all()
    a = done.read(HOOKS[1]).astype(np.float64)
    np.testing.assert_allclose(done.stats(HOOKS[1])[0], np.nanmean(a, axis=(0, 2, 3)), rtol=1e-10)


def test_in_process_resume_equals_uninterrupted(hooked) -> None:
    x = inputs(17)
    clean = capture(hooked, x, HOOKS, mem_url(), batch_size=3, chunk_size=4, progress=False)
    bad = x.clone()
    bad[9] = float("inf")
    url = mem_url()
    with pytest.raises(NonFiniteActivationError):
        capture(hooked, bad, HOOKS, url, batch_size=3, chunk_size=4, progress=False)
    assert ActivationStore.open(url).n_rows == 8
    resumed = capture(hooked, x, HOOKS, url, batch_size=3, resume=True, progress=False)
    for name in clean.array_names():
        assert resumed.read(name).tobytes() == clean.read(name).tobytes(), name
    assert resumed.attrs == clean.attrs


def test_mismatched_resume_is_refused(hooked) -> None:
    x = inputs(12)
    x[6] = float("nan")
    url = mem_url()
    with pytest.raises(NonFiniteActivationError):
        capture(hooked, x, HOOKS, url, batch_size=2, chunk_size=2, progress=False)
    other_model = HookedOperator(tiny_fno(seed=7))
    with pytest.raises(StoreError, match="fingerprint"):
        capture(other_model, x, HOOKS, url, batch_size=2, resume=True, progress=False)
    with pytest.raises(StoreError, match="hooks"):
        capture(hooked, x, HOOKS[:2], url, batch_size=2, resume=True, progress=False)
    with pytest.raises(StoreError, match="dtype"):
        capture(hooked, x, HOOKS, url, batch_size=2, resume=True, dtype="float16", progress=False)
    with pytest.raises(StoreError, match=r"per-sample shapes differ.*\[8, 32, 32\]"):
        capture(hooked, inputs(12, res=32), HOOKS, url, batch_size=2, resume=True, progress=False)
    with pytest.raises(StoreError, match="started for 12 samples"):
        capture(hooked, inputs(20), HOOKS, url, batch_size=2, resume=True, progress=False)
    assert ActivationStore.open(url).n_rows == 6  # nothing was touched


def test_bad_arguments_raise_saeno_errors(hooked) -> None:
    with pytest.raises(SaenoError):
        capture(hooked, inputs(2), "no.such.hook", mem_url(), progress=False)
    with pytest.raises(StoreError, match="dtype"):
        capture(hooked, inputs(2), HOOKS, mem_url(), dtype="int8", progress=False)
    with pytest.raises(SaenoError, match="'x' key"):
        capture(hooked, [{"a": 1}], HOOKS, mem_url(), progress=False)
    with pytest.raises(StoreError, match="no store"):
        ActivationStore.open(mem_url())


def test_public_api_is_exported() -> None:
    assert saeno.capture is capture
    assert saeno.ActivationStore is ActivationStore


def test_complex_activations_are_stored_as_complex64() -> None:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FNO(
            n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, complex_data=True
        ).eval()
    hooked = HookedOperator(model)
    x = torch.randn(5, 1, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    store = capture(hooked, x, "blocks.1.hook_out", mem_url(), batch_size=5, dtype="float16", progress=False)
    assert store.hook_info("blocks.1.hook_out")["complex"] == "complex64"
    _, cache = hooked.run_with_cache(x, names_filter="blocks.1.hook_out")
    a = store.read("blocks.1.hook_out")
    assert a.dtype == np.complex64 and np.array_equal(a, cache["blocks.1.hook_out"].numpy())
    mean, var = store.stats("blocks.1.hook_out")
    np.testing.assert_allclose(mean, a.astype(np.complex128).mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(var, a.astype(np.complex128).var(axis=(0, 2, 3)), rtol=1e-10)


def test_resume_after_kill_between_last_commits_and_complete_store(hooked) -> None:
    import zarr

    x = inputs(6)
    url = mem_url()
    done = capture(hooked, x, HOOKS, url, batch_size=3, progress=False)
    zarr.open_group(url, mode="r+").attrs.update({"complete": False})  # all rows in, flag not yet
    again = capture(hooked, x, HOOKS, url, batch_size=3, resume=True, progress=False)
    assert again.complete and again.attrs == done.attrs
    # resuming a complete store is a no-op; asking it for other samples is refused
    assert capture(hooked, x, HOOKS, url, batch_size=3, resume=True, progress=False).n_rows == 6
    with pytest.raises(StoreError, match="complete with 6 rows"):
        capture(hooked, inputs(9), HOOKS, url, batch_size=3, resume=True, progress=False)
