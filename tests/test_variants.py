"""Shifted dataset variants: cards, generation, caching apart from the base dataset, the CLI."""

import h5py
import numpy as np
import pytest

from saeno.pde.cards import CardError, apply_variant, load_card, variant_names


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SAENO_HOME", str(tmp_path))
    return tmp_path


def test_every_shipped_variant_builds_a_valid_card():
    for base in ("darcy", "burgers", "navier_stokes"):
        card = load_card(base)
        assert len(variant_names(card)) >= 4
        for v in variant_names(card):
            vc = apply_variant(card, v)
            assert vc["name"] == f"{base}@{v}" and vc["base"] == base and "variants" not in vc
            spec = card["variants"][v]
            for key, value in spec.get("parameters", {}).items():
                assert vc["parameters"][key] == value
            untouched = set(card["parameters"]) - set(spec.get("parameters", {}))
            assert all(vc["parameters"][k] == card["parameters"][k] for k in untouched)
            assert load_card(f"{base}@{v}") == vc


def test_unknown_variant_is_refused_by_name():
    with pytest.raises(CardError, match="no variant 'nope'.*contrast"):
        apply_variant(load_card("darcy"), "nope")


def test_contrast_variant_changes_the_coefficients_and_never_collides_with_the_base(home):
    import saeno

    base = saeno.datasets.load("darcy", n=3, resolution=16, progress=False)
    shifted = saeno.datasets.load("darcy", variant="contrast", n=3, resolution=16, progress=False)
    files = sorted(p.name for p in (home / "data").glob("*.h5"))
    assert len(files) == 2 and any(f.startswith("darcy@contrast-") for f in files)
    # same random field, thresholded to other values: the phases agree, the values are 24 / 1.5
    assert set(np.unique(base.x)) == {3.0, 12.0} and set(np.unique(shifted.x)) == {1.5, 24.0}
    np.testing.assert_array_equal(base.x == 12.0, shifted.x == 24.0)
    assert shifted.card["variant"] == "contrast" and shifted.name == "darcy@contrast"


def test_forcing_variant_scales_the_solution(home):
    import saeno

    base = saeno.datasets.load("darcy", n=2, resolution=16, progress=False)
    forced = saeno.datasets.load("darcy@forcing", n=2, resolution=16, progress=False)
    np.testing.assert_array_equal(base.x, forced.x)
    np.testing.assert_allclose(forced.y, 2.0 * base.y, rtol=1e-4, atol=1e-7)  # linear in f


def test_noise_variant_adds_noise_of_the_declared_size_to_the_input_only(home):
    import saeno

    base = saeno.datasets.load("burgers", n=4, resolution=256, progress=False)
    noisy = saeno.datasets.load("burgers", variant="noise", n=4, resolution=256, progress=False)
    np.testing.assert_array_equal(base.y, noisy.y)
    diff = (noisy.x - base.x).reshape(4, -1)
    ratio = diff.std(axis=1) / base.x.reshape(4, -1).std(axis=1)
    assert np.all(np.abs(ratio - 0.05) < 0.01)


def test_resolution_variant_defaults_to_the_finer_grid(home):
    import saeno

    ds = saeno.datasets.load("darcy", variant="resolution", n=2, progress=False)
    assert ds.grid == (64, 64)


def test_variant_with_a_file_path_is_refused(home, tmp_path):
    import saeno
    from saeno.errors import DataFormatError

    path = saeno.datasets.generate("darcy", n=2, n_test=1, resolutions=[16], progress=False)
    with pytest.raises(DataFormatError, match="variant"):
        saeno.datasets.load(path, variant="contrast")


def test_cli_generates_a_variant_and_lists_it(home, capsys):
    from saeno.cli.main import main

    assert (
        main(
            [
                "data",
                "generate",
                "burgers",
                "--variant",
                "viscosity",
                "--n",
                "2",
                "--n-test",
                "1",
                "--resolution",
                "64",
                "--no-progress",
            ]
        )
        == 0
    )
    path = capsys.readouterr().out.strip()
    with h5py.File(path) as f:
        import json

        assert json.loads(f.attrs["card"])["parameters"]["viscosity"] == 0.003
        assert np.all(f["train/params/viscosity"][:] == 0.003)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "--variant contrast" in out and "--variant viscosity" in out and "--variant horizon" in out
