"""saeno.datasets: generation is seeded, cached, nested across resolutions; loading by name and errors."""

import h5py
import numpy as np
import pytest
import torch

import saeno.datasets
from saeno.errors import DataFormatError, SaenoError
from saeno.pde.darcy import sample_coefficients, solve_darcy


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SAENO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_names_and_cards():
    assert {"darcy", "burgers", "navier_stokes"} <= set(saeno.datasets.names())
    card = saeno.datasets.card("darcy")
    assert card["solve_resolution"] % max(card["resolutions"]) == 0
    with pytest.raises(SaenoError, match="available: .*darcy"):
        saeno.datasets.card("nope")


def test_darcy_generation_matches_solver_and_nests(home):
    path = saeno.datasets.generate("darcy", n=6, n_test=2, progress=False)
    assert path.parent == home / "data"
    with h5py.File(path) as f:
        a64, u64 = f["train/x/64"][()], f["train/y/64"][()]
        a16 = f["train/x/16"][()]
        high = f["train/params/high_fraction"][()]
    # sample 3 of the train split is the solver's answer for the coefficient from rng([seed, 0, 3])
    a = sample_coefficients(1, 64, np.random.default_rng([0, 0, 3]))[0]
    np.testing.assert_array_equal(a64[3, 0], a)
    np.testing.assert_allclose(u64[3, 0], solve_darcy(a, 1.0), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(a16, a64[:, :, ::4, ::4])  # coarse = exact subsample
    np.testing.assert_allclose(high, (a64[:, 0] == 12).mean(axis=(1, 2)))


def test_seeded_prefix_and_cache(home):
    small = saeno.datasets.generate("burgers", n=3, n_test=1, progress=False)
    again = saeno.datasets.generate("burgers", n=3, n_test=1, progress=False)
    assert small == again
    big = saeno.datasets.generate("burgers", n=5, n_test=1, progress=False)
    other = saeno.datasets.generate("burgers", n=3, n_test=1, seed=7, progress=False)
    with h5py.File(small) as a, h5py.File(big) as b, h5py.File(other) as c:
        np.testing.assert_array_equal(a["train/y/256"][()], b["train/y/256"][:3])
        assert not np.allclose(a["train/x/256"][()], c["train/x/256"][()])


def test_load_by_name_items_collate_and_resolutions(home):
    ds = saeno.datasets.load("darcy", n=4, resolution=16, progress=False)
    assert ds.name == "darcy" and ds.grid == (16, 16) and ds.resolution == 16 and len(ds) == 4
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["x"].shape == (2, 1, 16, 16) and batch["index"].tolist() == [0, 1]
    assert batch["params"]["high_fraction"].shape == (2,)
    assert ds.labels == {}
    fine = saeno.datasets.load("darcy", n=4, resolution=64, progress=False)
    np.testing.assert_array_equal(ds.y, fine.y[:, :, ::4, ::4])
    test = saeno.datasets.load("darcy", split="test", n=4, progress=False)
    assert test.resolution == 32 and not np.allclose(test.x[:1], fine.x[:1, :, ::2, ::2])
    with pytest.raises(DataFormatError, match="available: \\[16, 32, 64\\]"):
        saeno.datasets.load("darcy", n=4, resolution=48, progress=False)


def test_generate_rejects_non_dividing_resolution(home):
    with pytest.raises(SaenoError, match="do not divide the solve resolution 64"):
        saeno.datasets.generate("darcy", n=2, resolutions=[24], progress=False)


def test_labels_schema_round_trip(home, tmp_path, monkeypatch):
    """A card with a label factor: codes stored per sample, names returned per sample."""
    import json

    import saeno.pde.generate as gen
    import saeno.resources

    card = saeno.datasets.card("burgers")
    card.update(name="burgers_labelled", labels={"regime": ["calm", "wild"]})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "burgers_labelled.json").write_text(json.dumps(card))
    monkeypatch.setattr(saeno.resources, "datasets_dir", lambda: cards)
    monkeypatch.setattr(saeno.pde.cards, "datasets_dir", lambda: cards)

    def labelled(card_, rngs):
        x, y, params = gen._sample_burgers(card_, rngs)
        params["_labels"] = {"regime": (params["u0_std"] > np.median(params["u0_std"])).astype(int)}
        return x, y, params

    monkeypatch.setitem(gen.SAMPLERS, "burgers", labelled)
    ds = saeno.datasets.load("burgers_labelled", n=6, progress=False)
    stds = ds.params["u0_std"]
    assert ds.labels["regime"] == ["wild" if s > np.median(stds) else "calm" for s in stds]


def test_parallel_generation_writes_the_same_file(home):
    from saeno.pde.generate import generate

    serial = generate("darcy", n=8, n_test=3, chunk=2, workers=1, progress=False)
    with h5py.File(serial) as f:
        want = {k: f[k][()] for k in ("train/x/64", "train/y/64", "test/y/16", "train/params/high_fraction")}
    parallel = generate("darcy", n=8, n_test=3, chunk=2, workers=2, progress=False, force=True)
    assert parallel == serial
    with h5py.File(parallel) as f:
        for key, value in want.items():
            np.testing.assert_array_equal(f[key][()], value)
    with pytest.raises(SaenoError, match="workers must be at least 1"):
        generate("darcy", n=8, n_test=3, workers=0, force=True)


def test_solvers_run_with_one_blas_thread(monkeypatch):
    # the chunk's sampler sees one BLAS thread (spinning OpenBLAS threads collapse on shared cores)
    import threadpoolctl

    import saeno.pde.generate as gen

    seen = []

    def spy(card_, rngs):
        seen.append([i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"])
        return gen._sample_darcy(card_, rngs)

    monkeypatch.setitem(gen.SAMPLERS, "darcy", spy)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        gen._solve_chunk(saeno.datasets.card("darcy"), 0, "train", 0, 2)
        outside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert seen and seen[0] and set(seen[0]) == {1}
    assert set(outside) == {2}  # restored after the chunk
