"""``saeno export`` on the command line: writes the report, explains skipped ablations, refuses bad
input with a message and exit code 2."""

import json

import pytest

from saeno.cli.main import main
from test_export_concepts import build_tiny_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_cli")
    build_tiny_pipeline(root)
    return root


def _io(saved, sae: str, out) -> dict:
    """The saved SAE ``sae``, the tiny pipeline's store and the output folder, as CLI flags."""
    return {"sae": saved / sae, "store": saved / "store.zarr", "out": out}


def test_export_writes_report_and_prints_its_path(saved, tmp_path, capsys, saeno_cli):
    out = tmp_path / "out"
    rc = saeno_cli(
        "export",
        "--resolutions",
        "16",
        "24x24",
        **_io(saved, "sae", out),
        n_top=2,
        max_concepts=2,
        no_progress=True,
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in text
    assert "ablation effects skipped: no model was given" in text
    doc = json.loads((out / "concepts.json").read_text())
    assert doc["resolutions"] == [[16, 16], [24, 24]]
    assert len(doc["figures_for"]) == 2
    assert all(len(c["top_examples"]) <= 2 for c in doc["concepts"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n-top", "0"], "n_top must be at least 1"),
        (["--hook", "nope"], "not in the store"),
        (["--max-concepts", "-1"], "max_concepts"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(saved, tmp_path, capsys, extra, message, saeno_cli):
    rc = saeno_cli("export", *extra, **_io(saved, "sae", tmp_path / "out"), no_progress=True)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("saeno export: error:") and message in err


def test_missing_sae_folder_is_a_user_error(saved, tmp_path, capsys, saeno_cli):
    rc = saeno_cli(
        "export", **_io(saved, "sae", tmp_path / "out") | {"sae": tmp_path / "none"}, no_progress=True
    )
    assert rc == 2
    assert "saeno export: error:" in capsys.readouterr().err


def test_resolution_argument_is_validated(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--sae", "a", "--store", "b", "--out", "c", "--resolutions", "16xz"])
    assert "16xz" in capsys.readouterr().err


def test_model_folder_enables_ablation_and_a_foreign_model_is_refused(tmp_path, capsys):
    import saeno
    from saeno.zoo import load_model
    from saeno.zoo.io import save_model
    from test_export_concepts import HOOK, TinyData, tiny_fno

    folder = save_model(tiny_fno(), tmp_path / "model")
    other = save_model(tiny_fno(seed=1), tmp_path / "other")
    store = saeno.capture(
        saeno.HookedOperator(load_model(folder)),
        TinyData(n=8),
        [HOOK],
        tmp_path / "store.zarr",
        batch_size=8,
        progress=False,
    )
    sae = saeno.SAE(8, 6, sparsity={"type": "topk", "k": 2})
    mean, var = store.stats(HOOK)
    sae.set_normalization(mean, var**0.5)
    sae.hook = HOOK
    saeno.save_sae(sae, tmp_path / "sae")
    args = [
        "export",
        "--sae",
        str(tmp_path / "sae"),
        "--store",
        str(tmp_path / "store.zarr"),
        "--n-top",
        "2",
        "--max-concepts",
        "1",
        "--no-progress",
    ]
    assert main(args + ["--out", str(tmp_path / "out"), "--model", str(folder)]) == 0
    doc = json.loads((tmp_path / "out" / "concepts.json").read_text())
    assert doc["ablation"]["done"] and doc["model"]["name"] == str(folder)
    assert doc["concepts"][doc["figures_for"][0]]["effect"]["n_samples"] >= 1
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "out2"), "--model", str(other)]) == 2
    assert "fingerprint" in capsys.readouterr().err


def test_single_file_and_no_eval_flags(saved, tmp_path, capsys, saeno_cli):
    out = tmp_path / "single"
    flags = {"single_file": True, "no_eval": True, "model_name": "my FNO"}
    rc = saeno_cli("export", **_io(saved, "sae_fno", out), n_top=2, max_concepts=1, no_progress=True, **flags)
    assert rc == 0
    text = (out / "report.html").read_text()
    assert "data:image/png;base64," in text and 'src="figures/' not in text
    doc = json.loads((out / "concepts.json").read_text())
    assert doc["evaluation"] is None
    assert "How well the SAE reconstructs" not in text


def test_saelens_flag_writes_a_saelens_folder_and_store_is_needed_otherwise(saved, tmp_path, capsys):
    rc = main(["export", "--sae", str(saved / "sae"), "--saelens", str(tmp_path / "lens")])
    assert rc == 0
    cfg = json.loads((tmp_path / "lens" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["d_in"] == 8 and cfg["d_sae"] == 12
    assert "load_from_disk" in capsys.readouterr().out
    assert main(["export", "--sae", str(saved / "sae_fno"), "--saelens", str(tmp_path / "x")]) == 2
    assert "pointwise" in capsys.readouterr().err
    assert main(["export", "--sae", str(saved / "sae"), "--out", str(tmp_path / "o")]) == 2
    assert "--store" in capsys.readouterr().err
