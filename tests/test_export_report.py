"""What a reader of the report sees: the evaluation at the top, the model's own name, thumbnails,
top examples as images, the SAE-FNO atom split into its smooth and pointwise parts, and an
``arrays.zarr`` that xarray opens with named dimensions and coordinates."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import zarr

from saeno.export.concepts import export_concepts, model_display_name
from saeno.export.passes import split_point_mass
from saeno.export.schema import load_concepts
from test_export_concepts import HOOK, build_tiny_pipeline


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import saeno

    root = tmp_path_factory.mktemp("report")
    fno, store = build_tiny_pipeline(root)
    fno.saeno_name = "my-darcy-fno"
    out = root / "export"
    export_concepts(root / "sae_fno", store, out, model=fno, n_top=3, max_concepts=2, progress=False)
    return SimpleNamespace(root=root, fno=fno, store=store, out=out, sae=saeno.load_sae(root / "sae_fno"))


def test_evaluation_is_computed_and_matches_evaluate(exported):
    import saeno
    from saeno.evaluation import evaluate

    fno = exported.fno
    store = exported.store
    out = exported.out
    sae = exported.sae
    doc = load_concepts(out)
    ev = doc["evaluation"]
    assert ev["source"] == "computed" and len(ev["results"]) == 1
    ref = evaluate(sae, store, HOOK, hooked=saeno.HookedOperator(fno), progress=False)
    row, want = ev["results"][0], ref["results"][0]
    for key in ("explained_variance", "loss_recovered", "splice_added_error", "dead_fraction"):
        assert row[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7)
    assert row["grid"] == list(store.grid) and row["samples"] == store.n_rows
    text = (out / "report.html").read_text()
    assert text.index("explained variance") < text.index('id="concepts"')


def test_given_evaluation_is_used_at_every_resolution(exported, tmp_path):
    store = exported.store
    sae = exported.sae
    given = {
        "hook": HOOK,
        "architecture": "sae-fno",
        "results": [
            {
                "grid": [16, 16],
                "training_resolution": True,
                "n_samples": 5,
                "explained_variance": 0.5,
                "loss_recovered": 0.25,
                "splice_added_error": 0.125,
                "dead_fraction": 0.0,
            },
            {"grid": [32, 32], "training_resolution": False, "skipped": "cannot run there"},
        ],
    }
    export_concepts(sae, store, tmp_path, n_top=2, max_concepts=1, progress=False, evaluation=given)
    ev = load_concepts(tmp_path)["evaluation"]
    assert ev["source"] == "given"
    assert ev["results"][0]["explained_variance"] == 0.5 and ev["results"][0]["samples"] == 5
    assert ev["results"][1]["skipped"] == "cannot run there"
    export_concepts(sae, store, tmp_path, n_top=2, max_concepts=1, progress=False, evaluation=False)
    assert load_concepts(tmp_path)["evaluation"] is None


def test_model_is_named_as_the_user_named_it(exported):
    out = exported.out
    assert load_concepts(out)["model"]["name"] == "my-darcy-fno"
    assert "my-darcy-fno" in (out / "report.html").read_text()
    plain = torch.nn.Linear(2, 2)
    assert model_display_name(plain) == "Linear"
    plain.saeno_config = {"name": "darcy-fno"}
    assert model_display_name(plain) == "darcy-fno"


def test_pages_show_thumbnails_examples_and_the_split_atom(exported):
    from PIL import Image

    out = exported.out
    doc = load_concepts(out)
    for k in doc["figures_for"]:
        c = doc["concepts"][k]
        figs = c["figures"]
        for key in ("thumbnail", "examples", "atom", "atom_pointwise", "spectrum", "code_maps"):
            assert figs.get(key), key
            with Image.open(out / figs[key]) as img:
                assert img.format == "PNG"
        assert figs["thumbnail"] in (out / "report.html").read_text()
        page = (out / c["page"]).read_text()
        assert figs["examples"] in page and figs["atom_pointwise"] in page
        note = c["figure_notes"]["atom"]
        assert "channel" in note and "most energy" in note  # which channels are drawn and why


def test_point_mass_split_recovers_the_kernel_and_the_pointwise_column(exported):
    sae = exported.sae
    concepts = [0, 3]
    atoms = {(16, 16): sae.concepts(16)[concepts].numpy(), (24, 24): sae.concepts(24)[concepts].numpy()}
    smooth, vectors, unit = split_point_mass(sae, concepts, atoms)
    scale = sae.norm_scale.numpy()[None, :, None, None]
    for res in atoms:
        # the smooth part is the decoder's spectral kernel (no point mass), on every grid
        kernel = sae.dec_spectral.kernel(res).detach().numpy()[concepts] * scale
        np.testing.assert_allclose(smooth[res], kernel, rtol=1e-4, atol=1e-5)
    # the pointwise part is W_d's column, the value on one mode-grid cell
    w_d = sae.W_d.detach().numpy().T[concepts] * sae.norm_scale.numpy()[None]
    np.testing.assert_allclose(vectors, w_d, rtol=1e-4, atol=1e-5)
    assert "G = 49" in unit


def test_arrays_open_in_xarray_with_dimensions_and_coordinates(exported):
    xr = pytest.importorskip("xarray")
    out = exported.out
    doc = load_concepts(out)
    ds = xr.open_zarr(out / "arrays.zarr")
    assert ds["activations"].dims == ("sample", "concept")
    assert ds["code_maps"].dims == ("exported", "top", "x", "y")
    assert list(ds["exported"].values) == doc["figures_for"]
    np.testing.assert_allclose(ds["x"].values, np.arange(16) / 16)
    assert ds.sizes["concept"] == doc["sae"]["n_concepts"]
    raw = zarr.open_group(str(out / "arrays.zarr"), mode="r")
    np.testing.assert_array_equal(ds["activations"].values, raw["activations"][:])
    # zero activations are data, not missing values
    assert not np.isnan(ds["activations"].values).any()
    # a concept's code maps picked by its concept index through the coordinate
    k = doc["figures_for"][0]
    np.testing.assert_array_equal(ds["code_maps"].sel(exported=k).values, raw["code_maps"][0])
    tree = xr.open_datatree(out / "arrays.zarr", engine="zarr")
    atoms = tree["atoms"].to_dataset()
    assert atoms["16x16"].dims == ("exported", "channel", "x_16", "y_16")
    assert atoms["32x32"].shape == (2, 8, 32, 32)
    assert tree["effect"].to_dataset()["y_clean"].dims[:3] == ("ablated", "top", "out_channel")
    dask = pytest.importorskip("dask")
    lazy = xr.open_zarr(out / "arrays.zarr", chunks={})
    assert dask.is_dask_collection(lazy["activations"].data)
    assert float(lazy["activations"].sum().compute()) == pytest.approx(
        float(raw["activations"][:].sum()), rel=1e-5
    )


def test_single_file_export_is_self_contained(exported, tmp_path):
    fno = exported.fno
    store = exported.store
    sae = exported.sae
    report = export_concepts(
        sae,
        store,
        tmp_path,
        model=fno,
        n_top=2,
        max_concepts=2,
        progress=False,
        inline=True,
        evaluation=False,
    )
    text = report.read_text()
    assert 'src="figures/' not in text and text.count("data:image/png;base64,") >= 8
    doc = json.loads((tmp_path / "concepts.json").read_text())
    for k in doc["figures_for"]:
        assert f'id="concept_{k:05d}"' in text
