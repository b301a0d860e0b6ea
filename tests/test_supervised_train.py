"""The supervised SAE trains through ``saeno.train_sae``: the same result as the dedicated loop it replaced.

``reference_fit`` is that loop (plain Adam, cosine decay to 5%, channel-averaged MSE plus the weighted
nuisance-label correlation, batches drawn without replacement per step), kept here as the independent
expectation: with full batches the order of rows cannot matter, so the two loss curves must agree step by
step; with mini-batches they must agree statistically.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saeno.sae.supervised import SupervisedSAE, nuisance_label_correlation
from saeno.supervised import training
from saeno.train import train_sae
from test_supervised import FACTORS, planted

pytestmark = pytest.mark.filterwarnings("ignore::saeno.train.ConvergenceWarning")

SIZES = {"block_size": 2, "nuisance_size": 2, "modes": 6, "hidden": 8}


def reference_fit(a, codes, pool, *, steps, batch_size, lr, decorrelate, seed):
    a = torch.as_tensor(a)
    torch.manual_seed(seed)
    sae = SupervisedSAE(a.shape[1], factors=FACTORS, ndim=1, **SIZES)
    train = a[torch.as_tensor(pool)]
    sae.set_normalization(train.mean(dim=[0, 2]), train.std(dim=[0, 2]).clamp_min(1e-6))
    mask = sae.label_mask(codes)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        idx = torch.as_tensor(rng.choice(pool, size=min(batch_size, len(pool)), replace=False))
        out = sae.forward_train(a[idx], mask[idx])
        loss = (out.recon - out.target).pow(2).mean()
        nuis = out.pre[:, sae.n_concepts * sae.block_size :]
        loss = loss + decorrelate * nuisance_label_correlation(nuis, mask[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return sae.eval(), np.array(losses)


def _data():
    a, codes = planted(90, grid=16, seed=5)
    holdout = [{"a": "a1", "b": "b0", "c": "c2"}]
    pool = np.flatnonzero(~training.holdout_mask(codes, FACTORS, holdout))
    return a, codes, holdout, pool


def test_full_batch_loss_curve_matches_the_dedicated_loop():
    a, codes, holdout, pool = _data()
    kw = {"steps": 40, "batch_size": len(pool), "lr": 3e-3, "decorrelate": 10.0, "seed": 2}
    ref_sae, ref = reference_fit(a, codes, pool, **kw)
    fit = training.fit_supervised(a, codes, FACTORS, holdout=holdout, log_every=1, **SIZES, **kw)
    new = np.array(fit.losses)
    assert len(new) == len(ref) == 40
    assert ref[-1] < 0.7 * ref[0]  # it trains at all
    np.testing.assert_allclose(new, ref, rtol=2e-3)
    with torch.no_grad():
        x = torch.as_tensor(a[:8])
        lab = {f: c[:8] for f, c in codes.items()}
        np.testing.assert_allclose(fit.sae(x, lab).numpy(), ref_sae(x, lab).numpy(), rtol=1e-2, atol=1e-3)


def test_minibatch_loss_curve_matches_the_dedicated_loop_statistically():
    a, codes, holdout, pool = _data()
    kw = {"steps": 150, "batch_size": 16, "lr": 3e-3, "decorrelate": 10.0, "seed": 0}
    _, ref = reference_fit(a, codes, pool, **kw)
    fit = training.fit_supervised(a, codes, FACTORS, holdout=holdout, log_every=1, **SIZES, **kw)
    new = np.array(fit.losses)
    windows = [slice(0, 10), slice(40, 60), slice(100, 150)]
    for w in windows:
        assert new[w].mean() == pytest.approx(ref[w].mean(), rel=0.15), w
    assert new[-30:].mean() < 0.5 * new[:5].mean()


def test_held_out_rows_never_reach_the_trainer():
    """Held-out rows poisoned with NaN: the trainer's finite-loss guard would stop at the first batch
    that contained one."""
    a, codes, holdout, pool = _data()
    poisoned = a.copy()
    poisoned[np.setdiff1d(np.arange(len(a)), pool)] = np.nan
    fit = training.fit_supervised(
        poisoned, codes, FACTORS, holdout=holdout, steps=30, batch_size=8, seed=1, **SIZES
    )
    assert np.isfinite(fit.losses).all()
    np.testing.assert_array_equal(np.sort(fit.train_rows), pool)


def test_train_sae_takes_a_supervised_sae_and_labelled_fields_directly():
    a, codes, _, pool = _data()
    sae = SupervisedSAE(a.shape[1], factors=FACTORS, ndim=1, decorrelate=0.0, **SIZES)
    mask = sae.label_mask(codes)
    res = train_sae(sae, (torch.as_tensor(a), mask), steps=60, batch_size=16, lr=3e-3, progress=False)
    assert res.steps == 60 and res.final["ev"] > 0.3
    assert res.final["l0"] == pytest.approx(len(FACTORS))  # one concept per factor and sample
    assert res.final["aux"] == 0.0  # no AuxK for a decoder-only SAE
