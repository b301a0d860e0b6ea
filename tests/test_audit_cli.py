"""``saeno audit`` end to end on the hand-built stores: audit.json, the page, refusals by name."""

import json
import warnings

import pytest
import torch

import saeno
from test_audit import capture, culprit_model, identity_sae, sparse_inputs, target


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit_cli")
    model = culprit_model()
    x_tr, x_te, x_sh = sparse_inputs(80, 0), sparse_inputs(40, 1), sparse_inputs(40, 2, scale=10.0)
    stores = {
        "train": capture(model, x_tr, target(x_tr, 0), root / "train.zarr"),
        "test": capture(model, x_te, target(x_te, 1), root / "test.zarr"),
        "shift": capture(model, x_sh, target(x_sh, 2), root / "shift.zarr"),
        "unlabelled": capture(model, x_sh, None, root / "unlabelled.zarr"),
    }
    sae = identity_sae()
    sae.model_fingerprint = stores["train"].fingerprint
    saeno.save_sae(sae, root / "sae")
    return root, model, stores


def _audit(root, *stores) -> list:
    """``audit --sae ... --train-store ... --store S ...`` of ``setup``'s SAE and training store."""
    return ["audit", "--sae", root / "sae", "--train-store", root / "train.zarr"] + [
        a for s in stores for a in ("--store", s)
    ]


def test_cli_writes_a_versioned_audit_and_a_page(setup, tmp_path, capsys, one_thread_seeded, saeno_cli):
    root, _, _ = setup
    rc = saeno_cli(
        *_audit(root, root / "shift.zarr", root / "unlabelled.zarr"),
        id_store=root / "test.zarr",
        out=tmp_path,
        n_boot=50,
        no_progress=True,
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert doc["format"] == "saeno-audit" and doc["version"] == 1 and len(doc["shifts"]) == 2
    assert "no targets" in out  # the unlabelled store's note is printed
    html = (tmp_path / "audit.html").read_text()
    assert "Content-Security-Policy" in html and 'id="scores"' in html
    assert "shift.zarr" in html and "unlabelled.zarr" in html
    for rel in (
        "figures/audit_roc_s0.png",
        "figures/audit_attribution_s0.png",
        "figures/audit_errors_s1.png",
    ):
        assert (tmp_path / rel).stat().st_size > 0


def test_cli_refuses_a_store_of_another_model_by_name(setup, tmp_path, capsys, one_thread_seeded, saeno_cli):
    root, _, _ = setup
    other = culprit_model()
    with torch.no_grad():
        other[1].weight.mul_(3.0)
    x = sparse_inputs(10, 9)
    capture(other, x, target(x, 9), tmp_path / "foreign.zarr")
    rc = saeno_cli(*_audit(root, tmp_path / "foreign.zarr"), out=tmp_path / "o", no_progress=True)
    err = capsys.readouterr().err
    assert rc == 2 and "foreign.zarr" in err and "another model" in err and "Traceback" not in err
    rc = saeno_cli(*_audit(root, root / "shift.zarr"), holdout=0, out=tmp_path / "o")
    assert rc == 2 and "--holdout" in capsys.readouterr().err


def test_sae_of_another_model_is_refused(setup, tmp_path, one_thread_seeded):
    from saeno.audit import AuditError

    _root, _, stores = setup
    sae = identity_sae()
    sae.model_fingerprint = "0" * 64
    with pytest.raises(AuditError, match="SAE was trained on activations of another model"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saeno.audit(sae, stores["train"], [stores["shift"]], progress=False)
