"""saeno.evaluate against hand-computed metrics on a tiny FNO and its store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neuralop.models import FNO
from torch.utils.data import TensorDataset

import saeno
from saeno.errors import HookNameError, StoreError
from saeno.evaluation import evaluate, format_table, summary_rows

HOOK = "blocks.0.hook_out"


def _fno(seed: int = 0) -> FNO:
    torch.manual_seed(seed)
    return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=6, n_layers=2).eval()


def _capture(model, res: int, path, n: int = 12):
    g = torch.Generator().manual_seed(res)
    x = torch.randn(n, 1, res, res, generator=g)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(n, 1, res, res, generator=g)  # targets the FNO misses a bit
    hooked = saeno.HookedOperator(model)
    return saeno.capture(hooked, TensorDataset(x, y), HOOK, path, batch_size=5, progress=False), hooked


def _identity_sae(c: int) -> saeno.SAE:
    """A pointwise SAE that reconstructs exactly: codes [relu(a), relu(-a)], decoder [I; -I]."""
    sae = saeno.SAE(c, 2 * c, ndim=2, sparsity={"type": "relu", "l1": 0.0})
    eye = torch.eye(c)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def _rel(pred, y):
    return float(np.mean([np.linalg.norm(p - t) / np.linalg.norm(t) for p, t in zip(pred, y)]))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = _fno()
    store, hooked = _capture(model, 16, tmp_path_factory.mktemp("s") / "s16.zarr")
    store32, _ = _capture(model, 32, tmp_path_factory.mktemp("s") / "s32.zarr", n=6)
    return model, hooked, store, store32


def test_identity_sae_recovers_everything(setup):
    model, hooked, store, _ = setup
    sae = _identity_sae(6)
    mean, var = store.stats(HOOK)
    sae.set_normalization(mean, np.sqrt(var))
    res = evaluate(sae, store, HOOK, hooked=hooked, progress=False)["results"][0]
    assert res["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert res["rel_l2"] < 1e-5
    assert res["splice_added_error"] == pytest.approx(0.0, abs=1e-5)
    assert res["loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    # the clean loss is the FNO's error against the stored targets, recomputed by hand
    x, y = store.read("x"), store.read("y")
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).numpy()
    assert res["L_clean"] == pytest.approx(_rel(pred, y), rel=1e-5)
    # codes [relu(a), relu(-a)]: exactly one non-zero per channel and point (no exact zeros)
    assert res["L0_per_point"] == pytest.approx(6.0)
    assert res["L0_concepts"] == pytest.approx(12.0)
    assert res["dead_fraction"] == 0.0


def test_mean_decoder_has_zero_explained_variance_and_hand_computed_ablation(setup):
    model, hooked, store, _ = setup
    sae = _identity_sae(6)
    mean, var = store.stats(HOOK)
    sae.set_normalization(mean, np.sqrt(var))
    with torch.no_grad():
        sae.W_dec.zero_()  # reconstruction = per-channel mean
    res = evaluate(sae, store, HOOK, hooked=hooked, progress=False)["results"][0]
    assert res["explained_variance"] == pytest.approx(0.0, abs=1e-5)

    a = store.read(HOOK)
    x, y = torch.from_numpy(store.read("x")), store.read("y")
    mean_field = torch.from_numpy(a.mean(0))
    channel_mean = torch.from_numpy(mean.astype(np.float32)).view(1, -1, 1, 1)

    def run_with(replacement):
        # splice by hand: run block 0 through neuralop's own modules, replace, finish the forward
        with hooked.hooks(fwd_hooks=[(HOOK, lambda act, hook: replacement.expand_as(act))]):
            with torch.no_grad():
                return model(x).numpy()

    assert res["L_ablate"] == pytest.approx(_rel(run_with(mean_field), y), rel=1e-5)
    assert res["L_sae"] == pytest.approx(_rel(run_with(channel_mean), y), rel=1e-5)
    expected = (res["L_ablate"] - res["L_sae"]) / (res["L_ablate"] - res["L_clean"])
    assert res["loss_recovered"] == pytest.approx(expected)


def test_other_resolution_and_flat_sae_is_skipped_there(setup):
    model, hooked, store, store32 = setup
    sae = _identity_sae(6)
    report = evaluate(sae, store, HOOK, other_stores=[store32], progress=False)
    assert [r["grid"] for r in report["results"]] == [[16, 16], [32, 32]]
    assert report["results"][1]["explained_variance"] == pytest.approx(1.0, abs=1e-6)

    flat = saeno.FlatSAE(6, 4, grid=(16, 16))
    report = evaluate(flat, store, HOOK, other_stores=[store32], progress=False)
    assert "skipped" in report["results"][1]
    assert "16" in report["results"][1]["skipped"]
    table = format_table(summary_rows(report))
    lines = table.splitlines()
    skipped = [ln for ln in lines if "n/a" in ln]
    assert len(skipped) == 1 and "32" in skipped[0] and "16" in skipped[0]  # the 32x32 row, why
    assert any("flat" in ln and "n/a" not in ln for ln in lines)  # the 16x16 row has figures


def test_model_from_another_fno_is_refused(setup):
    _, _, store, _ = setup
    other = saeno.HookedOperator(_fno(seed=1))
    with pytest.raises(StoreError, match="not the model that produced"):
        evaluate(_identity_sae(6), store, HOOK, hooked=other, progress=False)


def test_missing_hook_is_refused(setup):
    _, _, store, _ = setup
    with pytest.raises(HookNameError, match="holds"):
        evaluate(_identity_sae(6), store, "blocks.1.hook_out", progress=False)


def test_output_change_and_mean_field_ev_against_hand_computation(setup):
    """A mean-field decoder: the output change is the FNO's own change, recomputed by hand; EV against
    the mean field is exactly 0 for it, EV against the channel mean is positive."""
    model, hooked, store, _ = setup
    sae = saeno.SAE(6, 12, ndim=2, sparsity={"type": "topk", "k": 1}, bias_field=4)
    mean, var = store.stats(HOOK)
    sae.set_normalization(mean, np.sqrt(var))
    a = store.read(HOOK)
    field = torch.from_numpy(a.mean(0)).double()
    normed = (field - torch.as_tensor(mean).view(-1, 1, 1)) / torch.as_tensor(np.sqrt(var)).view(-1, 1, 1)
    sae.bias_field.fit_(normed)
    with torch.no_grad():
        sae.W_dec.zero_()  # reconstruction = the bias field (4 modes of the mean field)
        sae.b_dec.zero_()
        sae.b_enc.fill_(-1e6)  # no concept ever fires
    res = evaluate(sae, store, HOOK, hooked=hooked, progress=False)["results"][0]
    x = torch.from_numpy(store.read("x"))
    with torch.no_grad():
        clean = model(x).numpy()
        with hooked.hooks(fwd_hooks=[(HOOK, lambda act, hook: sae(act).to(act.dtype))]):
            spliced = model(x).numpy()
    assert res["output_change"] == pytest.approx(_rel(spliced, clean), rel=1e-4)
    assert res["splice_added_abs"] == pytest.approx(res["L_sae"] - res["L_clean"], rel=1e-9)
    # the bias field keeps 4 modes of the mean field: compare against the decoder's own output
    with torch.no_grad():
        a_hat = sae(torch.from_numpy(a)).numpy()
    ev_field = 1 - ((a - a_hat) ** 2).sum() / ((a - a.mean(0)) ** 2).sum()
    assert res["explained_variance_mean_field"] == pytest.approx(float(ev_field), abs=1e-4)
    assert res["explained_variance"] > res["explained_variance_mean_field"]
    assert res["never_firing"] == 12 and res["density_window_samples"] == store.n_rows


def test_rare_concepts_are_counted_from_densities(setup):
    _, _, store, _ = setup
    sae = _identity_sae(6)
    mean, var = store.stats(HOOK)
    sae.set_normalization(mean, np.sqrt(var))
    res = evaluate(sae, store, HOOK, progress=False)["results"][0]
    assert res["rare_concepts"] == 0 and res["never_firing"] == 0
    from saeno.evaluation import evaluate_store

    res = evaluate_store(sae, store, HOOK, progress=False, rare_density=1.01)  # everything is "rare"
    assert res["rare_concepts"] == 12


def test_fast_fno_passes_give_the_plain_metrics(setup, monkeypatch):
    # the FNO's passes run on saeno.zoo.fast_forward; the metrics equal those of the plain forward
    import contextlib

    import saeno.evaluation as ev

    model, hooked, store, _ = setup
    torch.manual_seed(3)
    sae = saeno.SAE(6, 12, ndim=2, sparsity={"type": "topk", "k": 2, "group": "point"})
    patched = []

    @contextlib.contextmanager
    def spy(module):
        with real(module) as n:
            patched.append(n)
            yield n

    real = ev.fast_forward
    monkeypatch.setattr(ev, "fast_forward", spy)
    fast = evaluate(sae, store, HOOK, model=hooked, progress=False)["results"][0]
    assert patched and patched[0] > 0  # the FNO's convolutions ran on the fast path
    assert not any("forward" in vars(m) for m in model.modules())  # left a plain FNO
    monkeypatch.setattr(ev, "fast_forward", lambda model: contextlib.nullcontext())
    plain = evaluate(sae, store, HOOK, model=hooked, progress=False)["results"][0]
    for key in ("L_clean", "L_sae", "L_ablate", "output_change", "explained_variance"):
        assert fast[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    # a ratio of differences of the losses above: their 1e-5 agreement allows about 1e-3 here
    assert fast["loss_recovered"] == pytest.approx(plain["loss_recovered"], rel=1e-3)


def test_shared_reference_passes_give_the_same_metrics_with_one_fno_pass_per_batch(setup):
    from saeno.evaluation import ReferencePasses

    model, hooked, store, store32 = setup
    torch.manual_seed(3)
    saes = [_identity_sae(6), saeno.SAE(6, 12, ndim=2, sparsity={"type": "topk", "k": 2, "group": "point"})]
    for sae in saes:
        mean, var = store.stats(HOOK)
        sae.set_normalization(mean, np.sqrt(var))
    kw = dict(hooked=hooked, other_stores=[store32], batch_size=5, progress=False)
    alone = [evaluate(sae, store, HOOK, **kw) for sae in saes]
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        reference = ReferencePasses()
        shared = []
        for sae in saes:
            calls.clear()
            shared.append(evaluate(sae, store, HOOK, **kw, reference=reference))
            passes = len(calls)
            assert passes == (3 if sae is saes[0] else 1) * (3 + 2)  # batches of 5: 3 at 16x16, 2 at 32x32
    finally:
        handle.remove()
    assert shared == alone  # every metric, bit for bit
    assert alone[0]["results"][0]["output_change"] < 1e-5 < alone[1]["results"][0]["output_change"]


def test_reference_passes_travel_to_a_copy_of_the_fno(setup):
    # the passes of one evaluation, exported with state() and pickled, serve a copy of the same FNO
    # (as the demo's second process loads it): one FNO pass per batch, every metric bit for bit
    import copy
    import pickle

    from saeno.evaluation import ReferencePasses

    model, hooked, store, store32 = setup
    torch.manual_seed(4)
    first, second = (
        saeno.SAE(6, 12, ndim=2, sparsity={"type": "topk", "k": k, "group": "point"}) for k in (2, 3)
    )
    for sae in (first, second):
        mean, var = store.stats(HOOK)
        sae.set_normalization(mean, np.sqrt(var))
    kw = dict(other_stores=[store32], batch_size=5, progress=False)
    alone = evaluate(second, store, HOOK, hooked=hooked, **kw)
    reference = ReferencePasses()
    evaluate(first, store, HOOK, hooked=hooked, **kw, reference=reference)
    state = pickle.loads(pickle.dumps(reference.state()))
    twin = saeno.HookedOperator(copy.deepcopy(model))
    calls = []
    handle = twin.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        moved = evaluate(
            second, store, HOOK, hooked=twin, **kw, reference=ReferencePasses.from_state(state, twin)
        )
    finally:
        handle.remove()
    assert len(calls) == 3 + 2  # the splice only: batches of 5, 3 at 16x16 and 2 at 32x32
    assert moved == alone
