"""Supervised SAE: labels through store and SAE, no-op interventions, held-out combinations, composition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saeno.errors import SaenoError
from saeno.sae.base import ConfigError
from saeno.sae.supervised import LabelError, SupervisedSAE
from saeno.supervised import baselines, training
from saeno.supervised import intervene as iv

FACTORS = {"a": ["a0", "a1", "a2"], "b": ["b0", "b1"], "c": ["c0", "c1", "c2"]}


def planted(n: int, grid: int = 32, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fields = sum of one random pattern per label value + a random-amplitude nuisance pattern."""
    rng = np.random.default_rng(seed)
    x = np.arange(grid) / grid
    pats = {
        f: [
            np.stack([np.sin(2 * np.pi * (k + 1) * x + rng.uniform(0, 6)) * rng.normal() for _ in range(4)])
            for k in range(len(cats))
        ]
        for f, cats in FACTORS.items()
    }
    nuis_pat = np.stack([np.cos(2 * np.pi * 3 * x + j) for j in range(4)])
    codes = {f: rng.integers(len(c), size=n) for f, c in FACTORS.items()}
    amp = rng.normal(size=n)
    a = np.stack([sum(pats[f][codes[f][i]] for f in FACTORS) + amp[i] * nuis_pat for i in range(n)])
    return a.astype(np.float32), codes


# ------------------------------------------------------------------ model and labels
def test_label_mask_roundtrip_and_errors():
    sae = SupervisedSAE(4, factors=FACTORS, ndim=1, hidden=0)
    codes = {"a": np.array([2, 0]), "b": np.array([1, 0]), "c": ["c1", "c2"]}
    mask = sae.label_mask(codes)
    assert mask.shape == (2, 8) and mask.sum(1).tolist() == [3.0, 3.0]
    assert sae.labels_of(mask) == {"a": ["a2", "a0"], "b": ["b1", "b0"], "c": ["c1", "c2"]}
    assert sae.concept_names[sae.concept_index("c", "c1")] == "c=c1"
    with pytest.raises(LabelError, match="unknown category"):
        sae.label_mask({"a": ["a9"], "b": [0], "c": [0]})
    with pytest.raises(LabelError, match="missing"):
        sae.label_mask({"a": [0], "b": [0]})
    with pytest.raises(LabelError, match="out of range"):
        sae.label_mask({"a": [3], "b": [0], "c": [0]})
    with pytest.raises(LabelError, match="needs the samples' labels"):
        sae(torch.zeros(2, 4, 16))
    with pytest.raises(ConfigError, match="n_concepts"):
        SupervisedSAE(4, 5, factors=FACTORS, ndim=1)
    assert issubclass(LabelError, SaenoError)


def test_blocks_are_gated_by_labels_and_render_on_any_grid():
    torch.manual_seed(0)
    sae = SupervisedSAE(3, factors=FACTORS, ndim=1, block_size=2, nuisance_size=2, modes=4)
    mask = sae.label_mask({"a": [1], "b": [0], "c": [2]})
    z = sae.codes(mask, torch.zeros(1, 2, 16))
    on = {sae.concept_index("a", "a1"), sae.concept_index("b", "b0"), sae.concept_index("c", "c2")}
    for k in range(sae.n_concepts):
        block = z[0, 2 * k : 2 * k + 2]
        assert (block.abs().sum() > 0) == (k in on)
    # a block is one trigonometric polynomial: the 32-point rendering contains the 16-point one
    b16, b32 = sae.block_fields((16,)), sae.block_fields((32,))
    torch.testing.assert_close(b32[..., ::2], b16, atol=1e-5, rtol=1e-5)
    assert sae.concepts(16).shape == (8, 3, 16)


def test_save_load_roundtrip(tmp_path):
    from saeno import load_sae, save_sae

    torch.manual_seed(0)
    sae = SupervisedSAE(3, factors=FACTORS, ndim=1, block_size=2, nuisance_size=2, modes=4)
    sae.set_normalization(torch.tensor([1.0, -1.0, 0.5]), torch.tensor([2.0, 1.0, 3.0]))
    save_sae(sae, tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert cfg["architecture"] == "supervised" and cfg["factors"] == FACTORS
    back = load_sae(tmp_path / "s")
    assert isinstance(back, SupervisedSAE) and back.factors == FACTORS
    a = torch.randn(2, 3, 16)
    labels = {"a": [0, 2], "b": [1, 1], "c": [2, 0]}
    torch.testing.assert_close(back(a, labels), sae.eval()(a, labels))


# ------------------------------------------------------------------ training and held-out rows
def test_holdout_never_in_training_batches():
    a, codes = planted(120)
    holdout = [{"a": "a1", "b": "b0", "c": "c2"}, {"a": "a2", "c": "c0"}]
    held = training.holdout_mask(codes, FACTORS, holdout)
    expect = ((codes["a"] == 1) & (codes["b"] == 0) & (codes["c"] == 2)) | (
        (codes["a"] == 2) & (codes["c"] == 0)
    )
    np.testing.assert_array_equal(held, expect)
    assert held.any()
    fit = training.fit_supervised(a, codes, FACTORS, holdout=holdout, steps=40, batch_size=16, hidden=0)
    # that no batch holds such a row: tests/test_supervised_train.py poisons them with NaN
    np.testing.assert_array_equal(np.sort(fit.train_rows), np.flatnonzero(~held))
    assert fit.sae.metadata["holdout"] == holdout
    with pytest.raises(LabelError, match="unknown"):
        training.holdout_mask(codes, FACTORS, [{"a": "zz"}])


def test_pick_holdout_keeps_every_pair():
    picks = training.pick_holdout(FACTORS, 3, seed=1)
    assert len(picks) == 3 and all(set(p) == set(FACTORS) for p in picks)
    assert training.parse_holdout(["a=a1,b=b0"]) == [{"a": "a1", "b": "b0"}]


def test_compositional_reconstruction_beats_trivial_baselines():
    a, codes = planted(300, seed=3)
    holdout = training.pick_holdout(FACTORS, 3, seed=0)
    held = training.holdout_mask(codes, FACTORS, holdout)
    fit = training.fit_supervised(
        a,
        codes,
        FACTORS,
        holdout=holdout,
        steps=400,
        batch_size=32,
        lr=1e-2,
        block_size=4,
        nuisance_size=2,
        modes=8,
        hidden=0,
    )
    test = {f: c[held] for f, c in codes.items()}
    with torch.no_grad():
        rec = fit.sae(torch.as_tensor(a[held]), test).numpy()
    ev = baselines.explained_variance(a[held], rec)
    mean_ev = baselines.explained_variance(a[held], np.broadcast_to(a[~held].mean(0), a[held].shape))
    assert mean_ev < 0.2
    assert ev > 0.9, ev


# ------------------------------------------------------------------ baselines
def test_ridge_and_mean_difference_recover_additive_effects():
    a, codes = planted(200, seed=5)
    ridge = baselines.RidgeFromLabels(FACTORS, alpha=1e-6).fit(a, codes)
    # the label part is additive: ridge explains all but the nuisance
    ev = baselines.explained_variance(a, ridge.predict(codes))
    assert 0.3 < ev < 1.0
    md = baselines.MeanDifference(FACTORS).fit(a, codes)
    same = md.intervene(a[:5], {f: c[:5] for f, c in codes.items()}, {f: c[:5] for f, c in codes.items()})
    np.testing.assert_allclose(same, a[:5])


# ------------------------------------------------------------------ the benchmark and the FNO
@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory):
    """A tiny burgers_labelled dataset, an untrained 1D FNO and its Zarr store."""
    import os

    from neuralop.models import FNO

    import saeno
    from saeno.supervised import benchmark_data as bd

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("SAENO_HOME")
    os.environ["SAENO_HOME"] = str(home)
    try:
        split = bd.load("train", n=30, resolution=64)
        torch.manual_seed(0)
        from saeno.supervised import model_fno

        kwargs = {"n_modes": [8], "in_channels": 2, "out_channels": 1, "hidden_channels": 8, "n_layers": 2}
        fno = FNO(n_modes=(8,), in_channels=2, out_channels=1, hidden_channels=8, n_layers=2)
        folder = model_fno.save(fno, home / "fno", {"name": "tiny", "fno": kwargs})
        hooked = saeno.HookedOperator(model_fno.load_folder(folder))
        store = saeno.capture(
            hooked, split.dataset(), "blocks.0.hook_out", home / "store.zarr", batch_size=16, progress=False
        )
        yield split, hooked, store, home
    finally:
        if old is None:
            os.environ.pop("SAENO_HOME", None)
        else:
            os.environ["SAENO_HOME"] = old


def test_counterfactual_reproduces_samples_and_changes_with_labels(labelled_store):
    from saeno.supervised import benchmark_data as bd

    split = labelled_store[0]
    idx = np.arange(4)
    same = {f: c[idx] for f, c in split.codes.items()}
    x, y = bd.counterfactual(idx, same, split="train", resolution=64)
    np.testing.assert_allclose(x, split.x[idx], atol=1e-6)
    np.testing.assert_allclose(y, split.y[idx], atol=1e-5)
    other = dict(same, viscosity=(same["viscosity"] + 1) % 3)
    x2, y2 = bd.counterfactual(idx, other, split="train", resolution=64)
    np.testing.assert_allclose(x2[:, 0], x[:, 0], atol=1e-6)  # same initial field
    assert np.abs(y2 - y).max() > 1e-2  # another viscosity, another solution
    with pytest.raises(SaenoError, match="missing"):
        bd.counterfactual(idx, {"viscosity": same["viscosity"]})


def test_labels_roundtrip_through_store_and_sae(labelled_store, tmp_path):
    from saeno import load_sae

    split, _, store, _ = labelled_store
    codes, factors = training.store_labels(store)
    assert factors == split.factors
    for f in factors:
        np.testing.assert_array_equal(codes[f], split.codes[f])
    path = training.train_from_store(
        store,
        "blocks.0.hook_out",
        tmp_path / "sae",
        steps=5,
        holdout=["viscosity=low,drift=right"],
        hidden=0,
        progress=False,
    )
    sae = load_sae(path)
    assert sae.factors == factors and sae.hook == "blocks.0.hook_out"
    assert sae.model_fingerprint == store.fingerprint
    assert sae.metadata["holdout"] == [{"viscosity": "low", "drift": "right"}]
    assert sae.labels_of(sae.label_mask(codes)) == {f: [factors[f][c] for c in codes[f]] for f in factors}
    with pytest.raises(LabelError, match="unknown label factors"):
        training.train_from_store(store, "blocks.0.hook_out", tmp_path / "x", labels=["nope"])


def test_intervention_with_unchanged_labels_changes_nothing(labelled_store):
    split, hooked, store, _ = labelled_store
    hook = "blocks.0.hook_out"
    acts = store.read(hook, np.arange(store.n_rows))
    fit = training.fit_supervised(
        acts, split.codes, split.factors, steps=30, hidden=8, nuisance_size=2, modes=4
    )
    clean = iv.run_edited(hooked, split.x, hook, None, batch_size=16)
    same = iv.run_edited(hooked, split.x, hook, iv.sae_edit(fit.sae, split.codes, split.codes), batch_size=16)
    torch.testing.assert_close(same, clean, atol=1e-6, rtol=0)
    ridge = baselines.RidgeFromLabels(split.factors).fit(acts, split.codes)
    same_r = iv.run_edited(
        hooked, split.x, hook, iv.array_edit(ridge.intervene, split.codes, split.codes), batch_size=16
    )
    torch.testing.assert_close(same_r, clean, atol=1e-5, rtol=0)
    # a real change of label does change the prediction (so the checks above can fail)
    new = iv.set_label(split.codes, split.factors, {"viscosity": "high"})
    moved = np.flatnonzero(new["viscosity"] != split.codes["viscosity"])
    changed = iv.run_edited(hooked, split.x, hook, iv.sae_edit(fit.sae, split.codes, new), batch_size=16)
    assert (changed[moved] - clean[moved]).abs().max() > 1e-4
    with pytest.raises(LabelError, match="unknown category"):
        iv.set_label(split.codes, split.factors, {"viscosity": "extreme"})


def test_concept_activations_follow_labels(labelled_store):
    from saeno.supervised import report

    split, _, store, _ = labelled_store
    acts = store.read("blocks.0.hook_out", np.arange(store.n_rows))
    fit = training.fit_supervised(acts, split.codes, split.factors, steps=5, hidden=0)
    act = report.concept_activations(fit.sae, acts, split.codes, batch_size=7)
    mask = fit.sae.label_mask(split.codes).numpy()
    assert act.shape == mask.shape
    assert (act[mask == 0] == 0).all() and (act[mask == 1] > 0).all()
    summary = report.concept_summary(fit.sae, 32)
    assert [s["name"] for s in summary][:3] == ["viscosity=low", "viscosity=mid", "viscosity=high"]


def test_intervene_cli(labelled_store, tmp_path, capsys):
    import h5py

    from saeno.cli.main import main

    split, hooked, store, home = labelled_store
    folder = home / "fno"
    sae_dir = training.train_from_store(
        store, "blocks.0.hook_out", tmp_path / "sae", steps=5, hidden=8, progress=False
    )
    out = tmp_path / "edit.h5"
    rc = main(
        [
            "intervene",
            "--sae",
            str(sae_dir),
            "--store",
            str(home / "store.zarr"),
            "--model",
            str(folder),
            "--set",
            "viscosity=high",
            "--rows",
            "0:12",
            "--out",
            str(out),
            "--score",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "supervised SAE" in text and "edited 12 rows" in text
    with h5py.File(out) as f:
        kept = f["labels/viscosity"][:] == 2
        assert (f["new_labels/viscosity"][:] == 2).all()
        np.testing.assert_allclose(f["y_edit"][:][kept], f["y_pred"][:][kept], atol=1e-6)
        if (~kept).any():
            assert np.abs(f["y_edit"][:][~kept] - f["y_pred"][:][~kept]).max() > 1e-5
        assert f["y_cf"].shape == f["y_pred"].shape
        # the Python function behind the verb, given the hooked FNO itself, gives the same arrays
        res = iv.intervene(sae_dir, store, hooked, {"viscosity": "high"}, rows=np.arange(12))
        np.testing.assert_array_equal(res["arrays"]["y_edit"], f["y_edit"][:])
        assert res["scores"] is None and res["changed"] == int((~kept).sum())
    with pytest.raises(SystemExit):
        main(
            [
                "intervene",
                "--sae",
                str(sae_dir),
                "--store",
                str(home / "store.zarr"),
                "--model",
                str(folder),
                "--out",
                str(out),
            ]
        )  # --set is required
    assert (
        main(
            [
                "intervene",
                "--sae",
                str(sae_dir),
                "--store",
                str(home / "store.zarr"),
                "--model",
                str(folder),
                "--set",
                "viscosity=huge",
                "--out",
                str(out),
            ]
        )
        != 0
    )


# ------------------------------------------------------------------ the concept report
@pytest.fixture(scope="module")
def supervised_export(labelled_store, tmp_path_factory):
    """A supervised SAE trained on the labelled store and its exported report."""
    import saeno
    from saeno import load_sae

    _, hooked, store, _ = labelled_store
    root = tmp_path_factory.mktemp("supervised_export")
    sae_dir = training.train_from_store(
        store, "blocks.0.hook_out", root / "sae", steps=20, hidden=8, nuisance_size=2, modes=4, progress=False
    )
    html = saeno.export_concepts(
        sae_dir, store, root / "exp", model=hooked, n_top=4, max_concepts=3, progress=False
    )
    return load_sae(sae_dir), html


def test_export_draws_supervised_concepts_with_their_label_names(labelled_store, supervised_export):
    import zarr

    split, hooked, store, _ = labelled_store
    sae, html = supervised_export
    hook = "blocks.0.hook_out"
    doc = json.loads((html.parent / "concepts.json").read_text())
    assert doc["sae"]["architecture"] == "supervised"
    assert [c["label"] for c in doc["concepts"]] == sae.concept_names
    assert "label switched off" in doc["ablation"]["method"] and doc["ablation"]["done"]
    text = html.read_text()
    for name in sae.concept_names:
        assert name in text

    # activations against a hand recomputation with the public encode / decode
    acts = torch.as_tensor(store.read(hook, np.arange(store.n_rows)), dtype=torch.float32)
    mask = sae.label_mask(split.codes)
    want = np.zeros(mask.shape, dtype=np.float32)
    with torch.no_grad():
        full = sae.decode(sae.encode(acts, mask))
        for k in range(sae.n_concepts):
            off = mask.clone()
            off[:, k] = 0
            diff = full - sae.decode(sae.encode(acts, off))
            want[:, k] = diff.pow(2).flatten(1).mean(1).sqrt().numpy()
    g = zarr.open_group(str(html.parent / "arrays.zarr"), mode="r")
    got = g["activations"][:]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert ((got > 0) == (mask.numpy() > 0)).all()  # a concept acts exactly where its label holds

    # top examples carry the concept's label; the label enrichment says so by name
    by_index = {c["index"]: c for c in doc["concepts"]}
    for k in doc["figures_for"]:
        factor, category = sae.concept_names[k].split("=")
        rows = [e["row"] for e in by_index[k]["top_examples"]]
        names = split.factors[factor]
        assert all(names[split.codes[factor][r]] == category for r in rows)
        assert factor in by_index[k]["labels"]
        assert category in json.dumps(by_index[k]["labels"][factor])

    # the ablation effect is the model run with that label switched off at the hook
    k = doc["figures_for"][0]
    rows = [e["row"] for e in by_index[k]["top_examples"]]
    x = torch.as_tensor(store.read("x", np.asarray(rows)), dtype=torch.float32)
    off = mask[rows].clone()
    off[:, k] = 0

    def switch_off(act, hook=None):
        return act + sae.decode(sae.encode(act, off)) - sae.decode(sae.encode(act, mask[rows]))

    with torch.no_grad(), hooked.hooks(fwd_hooks=[(hook, switch_off)]):
        y_edit = hooked(x)
    i = list(g["effect/concepts"][:]).index(k)
    np.testing.assert_allclose(g["effect/y_ablated"][i][: len(rows)], y_edit.numpy(), atol=1e-5)


def test_supervised_report_opens_in_chromium(supervised_export, tmp_path):
    from test_report_browser import CHROMIUM, open_in_chromium

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the report was not opened")
    sae, html = supervised_export
    doc = json.loads((html.parent / "concepts.json").read_text())
    pages = [html] + [html.parent / c["page"] for c in doc["concepts"] if c["page"]]
    assert len(pages) == 4
    for page in pages:
        result, console = open_in_chromium(page, tmp_path)
        assert console == [] and result["log"] == [], f"{page.name}: {console} {result['log']}"
        assert result["broken"] == [], f"{page.name}: images that did not load {result['broken']}"
        assert result["n_images"] >= (1 if page == html else 4)
        if page != html:  # each concept page is titled with its label name
            k = int(page.stem.split("_")[-1])
            assert sae.concept_names[k] in page.read_text()


def test_export_of_a_supervised_sae_needs_the_labelled_store(labelled_store, tmp_path):
    import saeno
    from saeno.export.concepts import ExportError

    split, _, store, _ = labelled_store
    acts = store.read("blocks.0.hook_out", np.arange(store.n_rows))
    other = {"viscosity": ["low", "mid", "high"], "forcing": ["none", "sine"]}
    fit = training.fit_supervised(
        acts,
        {"viscosity": split.codes["viscosity"], "forcing": split.codes["drift"] % 2},
        other,
        steps=2,
        hidden=0,
    )
    fit.sae.hook = "blocks.0.hook_out"
    with pytest.raises(ExportError, match=r"factors \['forcing'\] are not in the store"):
        saeno.export_concepts(fit.sae, store, tmp_path / "exp", progress=False)


def test_export_cli_with_the_benchmark_fno_folder(labelled_store, supervised_export, tmp_path, capsys):
    from saeno.cli.main import main

    _, _, _, home = labelled_store
    sae, html = supervised_export
    out = tmp_path / "cli_export"
    rc = main(
        [
            "export",
            "--sae",
            str(html.parent.parent / "sae"),
            "--store",
            str(home / "store.zarr"),
            "--model",
            str(home / "fno"),
            "--out",
            str(out),
            "--max-concepts",
            "2",
            "--n-top",
            "3",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "concepts.json").read_text())
    assert doc["ablation"]["done"] and doc["model"]["name"] == str(home / "fno")
    assert [c["label"] for c in doc["concepts"]] == sae.concept_names
