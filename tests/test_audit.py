"""saeno.audit on hand-built cases with known answers: the culprit concept of the error, separable and
identical shifts, stores from another model or without targets, and the JSON it writes."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import saeno
from saeno.audit import AuditError, load_audit
from saeno.audit.scores import ALL_SCORES

HOOK = "0.hook_out"
P, GRID = 3, 24


def culprit_model():
    """x (3 channels) -> identity at hook '0' -> y_pred = sum of the three channels."""
    model = torch.nn.Sequential(torch.nn.Conv1d(P, P, 1, bias=False), torch.nn.Conv1d(P, 1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(P)[:, :, None])
        model[1].weight.fill_(1.0)
    return model


def identity_sae():
    """A pointwise ReLU SAE whose concepts are the three channel directions (codes = the channels)."""
    sae = saeno.SAE(P, P, sparsity="relu")
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(P))
        sae.W_dec.copy_(torch.eye(P))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.hook = HOOK
    return sae.eval()


def sparse_inputs(n, seed, scale=1.0):
    """Each channel active on about 30% of the points with values in [0.5, 1.5] (times ``scale``)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, size=(n, P, GRID)) * (rng.uniform(size=(n, P, GRID)) < 0.3) * scale
    return torch.tensor(x, dtype=torch.float32)


def target(x, seed):
    """The truth is x0 + x1: the model's extra term x2 (concept 2) is the whole error."""
    noise = 0.01 * torch.tensor(
        np.random.default_rng(seed).normal(size=(len(x), 1, GRID)), dtype=torch.float32
    )
    return x[:, :1] + x[:, 1:2] + noise


def capture(model, x, y, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hooked = saeno.HookedOperator(model)
        data = TensorDataset(x, y) if y is not None else x
        return saeno.capture(hooked, data, [HOOK], path, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    model = culprit_model()
    x_train, x_test, x_shift = sparse_inputs(120, 0), sparse_inputs(60, 1), sparse_inputs(60, 2, scale=10.0)
    return {
        "model": model,
        "train": capture(model, x_train, target(x_train, 10), root / "train.zarr"),
        "test": capture(model, x_test, target(x_test, 11), root / "test.zarr"),
        "copy": capture(model, x_test, target(x_test, 11), root / "copy.zarr"),
        "shift": capture(model, x_shift, target(x_shift, 12), root / "shift.zarr"),
        "unlabelled": capture(model, x_shift, None, root / "unlabelled.zarr"),
        "root": root,
    }


def test_attribution_recovers_the_culprit_concept(stores, one_thread_seeded):
    res = saeno.audit(
        identity_sae(),
        stores["train"],
        [stores["shift"]],
        model=stores["model"],
        id_store=stores["test"],
        n_boot=300,
        progress=False,
    )
    att = res.in_distribution.attribution
    # ablating concept 2 removes the whole error; removing 0 or 1 adds error
    abl = att["ablation"]
    removed = dict(zip(abl["concepts"], abl["error_removed"]["value"]))
    assert set(removed) == {0, 1, 2}
    assert removed[2] == pytest.approx(abl["error_clean"], rel=0.02) and removed[2] > 0.1
    assert removed[0] < 0 and removed[1] < 0
    lo, hi = (
        abl["error_removed"]["low"][abl["concepts"].index(2)],
        abl["error_removed"]["high"][abl["concepts"].index(2)],
    )
    assert 0 < lo <= removed[2] <= hi
    # the error is large exactly where concept 2 is active, and the worst points all carry it
    ratio = att["active_vs_inactive"]["ratio"]["value"]
    assert ratio[2] > 10 and 0.5 < ratio[0] < 2 and 0.5 < ratio[1] < 2
    share = att["worst"]["share_active"]["value"]
    assert share[2] == pytest.approx(1.0) and max(share[0], share[1]) < 0.6
    assert att["worst"]["lift"]["value"][2] > 2.5
    # independent check of the ratio from the raw arrays
    x, y, yp = (stores["test"].read(k) for k in ("x", "y", "y_pred"))
    err = np.abs(yp - y)[:, 0] / np.sqrt((y**2).mean(axis=(1, 2)))[:, None]
    act = x[:, 2] > 0
    assert ratio[2] == pytest.approx(err[act].mean() / err[~act].mean(), rel=1e-6)


def test_separable_shift_gives_auroc_one_and_an_identical_copy_one_half(stores, one_thread_seeded):
    res = saeno.audit(
        identity_sae(),
        stores["train"],
        [stores["shift"], stores["copy"]],
        id_store=stores["test"],
        n_boot=100,
        progress=False,
    )
    shift, copy = res.shifts
    for score in ("mahalanobis", "act_norm", "sae_novelty"):
        assert shift.detection[score]["auroc"] == 1.0, score
    for score in ALL_SCORES:
        assert copy.detection[score]["auroc"] == 0.5, score
        roc = copy.detection[score]["roc"]
        assert roc["fpr"] == roc["tpr"]  # the diagonal
    # the relative error hardly changes with the scale: scores and errors are not always aligned
    assert shift.mean_error == pytest.approx(res.in_distribution.mean_error, rel=0.2)


def test_held_out_rows_of_the_training_store_by_default(stores, one_thread_seeded):
    res = saeno.audit(
        identity_sae(), stores["train"], stores["shift"], n_boot=50, holdout=0.25, progress=False
    )
    assert res.in_distribution.n_samples == 30 and res.reference_rows == 90
    assert res.in_distribution.name.endswith("(held out)")
    with pytest.raises(AuditError, match="holdout"):
        saeno.audit(identity_sae(), stores["train"], stores["shift"], holdout=1.5, progress=False)


def test_store_without_targets_gets_scores_and_a_note(stores, one_thread_seeded):
    res = saeno.audit(
        identity_sae(),
        stores["train"],
        [stores["unlabelled"]],
        id_store=stores["test"],
        model=stores["model"],
        n_boot=50,
        progress=False,
    )
    s = res.shifts[0]
    assert not s.has_targets and s.attribution is None and s.error is None
    assert any("no targets" in note for note in s.notes)
    assert s.detection["act_norm"]["auroc"] == 1.0 and s.detection["act_norm"]["spearman_within"] is None
    assert len(s.scores["sae_recon"]) == 60


def test_store_of_another_model_or_hook_is_refused_by_name(stores, tmp_path, one_thread_seeded):
    other = culprit_model()
    with torch.no_grad():
        other[1].weight.mul_(2.0)
    x = sparse_inputs(20, 5)
    foreign = capture(other, x, target(x, 5), tmp_path / "foreign.zarr")
    with pytest.raises(AuditError, match=r"foreign\.zarr.*another model"):
        saeno.audit(identity_sae(), stores["train"], [foreign], progress=False)
    sae = identity_sae()
    sae.hook = "1.hook_out"
    with pytest.raises(AuditError, match=r"no hook '1\.hook_out'"):
        saeno.audit(sae, stores["train"], [stores["shift"]], progress=False)
    with pytest.raises(Exception, match="not the model"):
        saeno.audit(identity_sae(), stores["train"], [stores["shift"]], model=other, progress=False)


def test_moves_find_the_concept_a_shift_switches_on(stores, tmp_path, one_thread_seeded):
    x = sparse_inputs(60, 7)
    x[:, 2] = 0.0  # concept 2 never fires in the shifted data: switched off
    off = capture(stores["model"], x, target(x, 7), tmp_path / "off.zarr")
    res = saeno.audit(
        identity_sae(), stores["train"], [off], id_store=stores["test"], n_boot=50, progress=False
    )
    moves = res.shifts[0].moves
    assert moves["switched_off"] == [2] and moves["switched_on"] == []
    assert moves["q"][2] < 1e-6 and moves["freq_shifted"][2] == 0.0
    assert min(moves["q"][0], moves["q"][1]) > 0.01  # concepts 0 and 1 are unchanged


def test_audit_json_is_versioned_and_round_trips(stores, tmp_path, one_thread_seeded):
    res = saeno.audit(
        identity_sae(), stores["train"], [stores["shift"]], id_store=stores["test"], n_boot=50, progress=False
    )
    path = res.save(tmp_path)
    doc = load_audit(tmp_path)
    assert path.name == "audit.json" and doc["format"] == "saeno-audit" and doc["version"] == 1
    assert doc["shifts"][0]["detection"]["mahalanobis"]["auroc"] == 1.0
    json.loads(path.read_text())  # strict JSON (no NaN)
    assert {r["score"] for r in res.table()} == set(ALL_SCORES)
