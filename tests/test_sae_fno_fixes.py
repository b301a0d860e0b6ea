"""Issue 14: bias field, exact-adjoint initialisation, per-group learning rates, concept norms, peaks."""

from __future__ import annotations

import math

import pytest
import torch

from saeno.sae import SAE, SAEFNO
from saeno.sae.bias_field import BiasField
from saeno.sae.sparsity import keep_top_domain, make_sparsity, peak_mask
from saeno.train.trainer import train_sae


def _planted_mean(grid: tuple[int, int]) -> torch.Tensor:
    """A band-limited mean field (frequencies < 4) with 3 channels, sampled on ``grid``."""
    x = torch.arange(grid[0]).view(-1, 1) / grid[0]
    y = torch.arange(grid[1]).view(1, -1) / grid[1]
    two_pi = 2 * math.pi
    return torch.stack(
        [
            1.0 + torch.cos(two_pi * x) + 0.5 * torch.sin(two_pi * (x + 2 * y)),
            -0.3 + 0.8 * torch.cos(two_pi * 3 * y) * torch.sin(two_pi * 2 * x),
            0.7 * torch.sin(two_pi * (3 * x - y)) + 0.2,
        ]
    )


def _samples(grid: tuple[int, int], n: int, seed: int) -> torch.Tensor:
    """Planted mean field plus zero-mean fluctuations (random amplitudes of a few modes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(grid[0]).view(1, 1, -1, 1) / grid[0]
    y = torch.arange(grid[1]).view(1, 1, 1, -1) / grid[1]
    amp = torch.randn(n, 3, 1, 1, 2, generator=g)
    fluct = amp[..., 0] * torch.cos(2 * math.pi * (x + y)) + amp[..., 1] * torch.sin(2 * math.pi * 2 * y)
    fluct = fluct - fluct.mean(0, keepdim=True)  # the sample mean is exactly the planted field
    return _planted_mean(grid).unsqueeze(0) + fluct


@pytest.mark.parametrize("train_grid", [(16, 16), (32, 24)])
def test_bias_field_recovers_a_planted_mean_field_and_transfers_across_grids(train_grid):
    data = _samples(train_grid, 64, seed=1)
    sae = SAEFNO(3, 8, ndim=2, modes=4, bias_field=4)
    train_sae(sae, data, steps=1, lr=1e-12, normalize="none", progress=False, aux_k=0)
    assert bool(sae.bias_field.fitted)
    for grid in [(16, 16), (32, 24), (48, 40)]:  # the training grid and two others
        torch.testing.assert_close(sae.mean_field(grid), _planted_mean(grid), atol=1e-4, rtol=0)


def test_bias_field_fitted_at_two_resolutions_has_the_same_coefficients():
    a, b = BiasField(3, 4, 2), BiasField(3, 4, 2)
    a.fit_(_planted_mean((16, 16)))
    b.fit_(_planted_mean((40, 32)))
    torch.testing.assert_close(a.coef, b.coef, atol=1e-5, rtol=0)


def test_bias_field_is_subtracted_before_the_encoder_and_added_after_the_decoder():
    torch.manual_seed(0)
    sae = SAEFNO(3, 8, ndim=2, modes=3, bias_field=4).eval()
    sae.set_normalization(torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 1.0, 0.5]))
    sae.bias_field.fit_(torch.randn(3, 12, 12))
    a = torch.randn(2, 3, 12, 12)
    b = sae.bias_field((12, 12))
    x = (a - sae.norm_mean.view(1, -1, 1, 1)) / sae.norm_scale.view(1, -1, 1, 1)
    z, _ = sae.sparsity(sae.encode_pre(x - b))
    expect = (sae.decode_norm(z) + b) * sae.norm_scale.view(1, -1, 1, 1) + sae.norm_mean.view(1, -1, 1, 1)
    torch.testing.assert_close(sae(a), expect)
    torch.testing.assert_close(sae.encode(a), z)


def test_pointwise_sae_with_a_bias_field_trains_on_fields_and_round_trips():
    sae = SAE(3, 8, ndim=2, bias_field=4, sparsity={"type": "topk", "k": 2})
    assert sae.view == "field"
    data = _samples((16, 16), 32, seed=2)
    train_sae(sae, data, steps=1, lr=1e-12, normalize="none", progress=False, aux_k=0)
    torch.testing.assert_close(sae.mean_field(16), _planted_mean((16, 16)), atol=1e-4, rtol=0)
    again = SAE.from_config(sae.config())
    assert again.view == "field" and again.config() == sae.config()
    with pytest.raises(Exception, match="fields"):
        sae.encode(torch.randn(10, 3))  # rows carry no position


@pytest.mark.parametrize("ndim,grid", [(1, (20,)), (2, (12, 10)), (3, (6, 7, 8))])
@pytest.mark.parametrize("norm", ["parameters", "function"])
def test_encoder_starts_as_the_exact_adjoint_of_the_decoder(ndim, grid, norm):
    torch.manual_seed(1)
    sae = SAEFNO(3, 5, ndim=ndim, modes=3, bias_field=None, concept_norm=norm, encoder_init="adjoint")
    z = torch.randn(2, 5, *grid, dtype=torch.float64)
    x = torch.randn(2, 3, *grid, dtype=torch.float64)
    sae = sae.double()
    with torch.no_grad():
        dz = sae.decode_norm(z, bias=False)  # A z
        ex = sae.encode_pre(x) - sae.b_e.view(1, -1, *([1] * ndim))  # A^T x
    lhs, rhs = (dz * x).sum(), (z * ex).sum()
    assert lhs.abs() > 1e-3
    torch.testing.assert_close(lhs, rhs, rtol=1e-6, atol=0.0)  # weights were set in float32
    # without the gain G the spectral part is off by G: the identity fails
    sae.encoder_init = "adjoint-no-gain"
    sae.init_encoder_from_decoder_()
    with torch.no_grad():
        ex = sae.encode_pre(x) - sae.b_e.view(1, -1, *([1] * ndim))
    assert not torch.allclose(lhs, (z * ex).sum(), rtol=1e-3)


def test_function_norm_is_the_norm_of_the_concept_on_the_mode_grid():
    torch.manual_seed(2)
    sae = SAEFNO(4, 6, ndim=2, modes=3, concept_norm="function", bias_field=None)
    with torch.no_grad():
        sae.dec_spectral.weight.mul_(torch.rand(6, 1, 1, 1, 1) * 3)
        sae.W_d.mul_(torch.rand(1, 6) * 3)
    sae.normalize_decoder_()
    k = 2 * sae.modes - 1
    # the decoder's response to a unit code on one mode-grid cell, rendered on the mode grid
    z = torch.zeros(6, 6, k, k)
    z[torch.arange(6), torch.arange(6), 0, 0] = 1.0
    with torch.no_grad():
        resp = sae.decode_norm(z, bias=False)
    torch.testing.assert_close(resp.flatten(1).norm(dim=1), torch.ones(6), atol=1e-5, rtol=0)


@pytest.fixture
def adam_spy(monkeypatch):
    """A dict whose ``"opt"`` is the last ``torch.optim.Adam`` built while the test runs."""
    captured = {}
    real_adam = torch.optim.Adam

    def spy(params, **kw):
        captured["opt"] = real_adam(params, **kw)
        return captured["opt"]

    monkeypatch.setattr(torch.optim, "Adam", spy)
    return captured


def test_per_group_learning_rates_reach_the_optimiser(adam_spy):
    captured = adam_spy
    torch.manual_seed(3)
    sae = SAEFNO(
        2,
        4,
        ndim=1,
        modes=3,
        spectral_lr_scale=0.1,
        bias_field=None,
        sparsity={"type": "topk", "k": 2, "group": "concept"},
    )
    enc_spec, w_e = sae.enc_spectral.weight.detach().clone(), sae.W_e.detach().clone()
    lr = 1e-2
    train_sae(
        sae, torch.randn(16, 2, 16), steps=1, lr=lr, batch_size=16, progress=False, aux_k=0, lr_decay_frac=0.0
    )
    groups = {g["name"]: g for g in captured["opt"].param_groups}
    assert groups["spectral"]["lr"] == pytest.approx(0.1 * lr)
    assert groups["pointwise"]["lr"] == pytest.approx(lr)
    assert any(p is sae.enc_spectral.weight for p in groups["spectral"]["params"])
    # Adam's first step moves every entry by at most its rate (exactly it where the gradient is large)
    d_spec = (sae.enc_spectral.weight.detach() - enc_spec).abs().max()
    d_w = (sae.W_e.detach() - w_e).abs().max()
    assert d_spec == pytest.approx(0.1 * lr, rel=0.05)
    assert d_w == pytest.approx(lr, rel=0.05)


def test_default_rate_is_the_models_scale_times_the_pointwise_default(adam_spy):
    from saeno.sae import SAE
    from saeno.train.schedules import default_lr

    captured = adam_spy
    data = torch.randn(16, 2, 16)
    fno = SAEFNO(
        2, 4, ndim=1, modes=3, bias_field=None, sparsity={"type": "topk", "k": 2, "group": "concept"}
    )
    train_sae(fno, data, steps=1, batch_size=16, progress=False, aux_k=0, lr_decay_frac=0.0)
    groups = {g["name"]: g for g in captured["opt"].param_groups}
    assert SAEFNO.default_lr_scale == 2.0
    assert groups["pointwise"]["lr"] == pytest.approx(2.0 * default_lr(4))
    assert groups["spectral"]["lr"] == pytest.approx(2.0 * default_lr(4) * fno.spectral_lr_scale)
    sae = SAE(2, 4, ndim=1, sparsity={"type": "topk", "k": 2, "group": "point"})
    train_sae(sae, data, steps=1, batch_size=16, progress=False, aux_k=0, lr_decay_frac=0.0)
    assert [g["lr"] for g in captured["opt"].param_groups] == [pytest.approx(default_lr(4))]
    # an explicit rate is taken as given
    train_sae(fno, data, steps=1, lr=1e-3, batch_size=16, progress=False, aux_k=0, lr_decay_frac=0.0)
    assert {g["name"]: g["lr"] for g in captured["opt"].param_groups}["pointwise"] == pytest.approx(1e-3)


def test_bias_field_rate_reaches_the_optimiser_and_zero_keeps_the_fit(adam_spy):
    captured = adam_spy
    torch.manual_seed(4)
    data = torch.randn(16, 2, 16) + torch.sin(torch.linspace(0, 6.283, 16))
    for scale in (0.0, 0.5):
        sae = SAEFNO(
            2,
            4,
            ndim=1,
            modes=3,
            bias_field_lr_scale=scale,
            sparsity={"type": "topk", "k": 2, "group": "concept"},
        )
        train_sae(sae, data, steps=3, lr=1e-2, batch_size=16, progress=False, aux_k=0, lr_decay_frac=0.0)
        groups = {g["name"]: g for g in captured["opt"].param_groups}
        assert groups["bias_field"]["lr"] == pytest.approx(scale * 1e-2)
        assert [p is sae.bias_field.coef for p in groups["bias_field"]["params"]] == [True]
        assert all(p is not sae.bias_field.coef for p in groups["pointwise"]["params"])
        fitted = sae.bias_field.coef.detach().clone()
        sae.bias_field.fit_(sae.normalize(data).double().mean(0))  # the initial fit, recomputed
        moved = (fitted - sae.bias_field.coef).abs().max()
        assert (moved == 0) if scale == 0 else (moved > 1e-4)
    assert SAEFNO.from_config(sae.config()).bias_field_lr_scale == 0.5


def test_peak_picking_never_keeps_two_neighbours_of_one_bump():
    n = 32
    t = torch.arange(n, dtype=torch.float32)
    bump = lambda c, h: h * torch.exp(-((t - c) ** 2) / 8.0)
    z = (bump(8, 1.0) + bump(22, 0.6)).view(1, 1, n)
    top2 = keep_top_domain(z, 2 / n)
    assert set(top2.flatten().nonzero().flatten().tolist()) == {7, 8} or set(
        top2.flatten().nonzero().flatten().tolist()
    ) == {8, 9}  # the plain top-2: one bump
    sp = make_sparsity({"type": "relu", "l1": 0.0, "domain_frac": 2 / n, "domain_peaks": 1}, 1)
    codes, _ = sp(z)
    assert codes.flatten().nonzero().flatten().tolist() == [8, 22]
    # periodic boundary: a peak at the last point beats its neighbour at the first
    w = torch.zeros(1, 1, 2, 5)
    w[0, 0, 0, 4], w[0, 0, 0, 0] = 2.0, 1.0
    m = peak_mask(w, 1)
    assert bool(m[0, 0, 0, 4]) and not bool(m[0, 0, 0, 0])


def test_config_stores_every_constant_needed_to_read_the_weights():
    sae = SAEFNO(3, 16, ndim=2, modes=5)
    cfg = sae.config()
    assert cfg["spectral_gain"] == (2 * 5 - 1) ** 2
    assert cfg["bias_field"] == 5 and cfg["spectral_lr_scale"] == 0.1
    assert cfg["sparsity"]["k"] == 16  # the default 64, capped at the 16 concepts
    assert cfg["sparsity"]["domain_frac"] == 0.0625 and cfg["sparsity"]["domain_pool"] == "sample"
    assert SAEFNO.from_config(cfg).config() == cfg
    with pytest.raises(Exception, match="spectral_gain"):
        SAEFNO.from_config({**cfg, "spectral_gain": 1.0})
