"""The SAE models: shapes, normalisation, equivalences, concepts across resolutions, bad input."""

from __future__ import annotations

import pytest
import torch

from saeno.errors import SaenoError, ShapeError
from saeno.sae import SAE, SAEFNO, FlatSAE
from saeno.sae.base import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # see conftest.py


def _randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize("grid", [(12,), (8, 6), (4, 6, 5)])
@pytest.mark.parametrize("lifting", [None, 8])
def test_shapes_all_models(grid, lifting):
    c, p, b = 3, 10, 2
    a = torch.randn(b, c, *grid)
    models = [
        SAE(c, p, ndim=len(grid), sparsity={"type": "topk", "k": 2}, lifting=lifting),
        FlatSAE(c, p, grid=grid, lifting=lifting),
        SAEFNO(c, p, ndim=len(grid), modes=2, lifting=lifting),
    ]
    for m in models:
        assert m(a).shape == a.shape
        z = m.encode(a)
        assert z.shape == ((b, p) if isinstance(m, FlatSAE) else (b, p, *grid))
        assert m.decode(z).shape == a.shape
        assert m.concepts(grid).shape == (p, c, *grid)
        assert (m.n_concepts, m.in_channels, m.ndim) == (p, c, len(grid))


def test_pointwise_normalisation_matches_manual_computation():
    c, p, k = 4, 12, 3
    sae = SAE(c, p, sparsity={"type": "topk", "k": k})
    _randomize(sae)
    mean, scale = torch.randn(c), torch.rand(c) + 0.5
    sae.set_normalization(mean, scale)
    a = torch.randn(2, c, 5, 3) * 3 + 1
    rows = ((a - mean.view(1, c, 1, 1)) / scale.view(1, c, 1, 1)).permute(0, 2, 3, 1).reshape(-1, c)
    pre = (rows - sae.b_dec) @ sae.W_enc + sae.b_enc
    vals, idx = pre.topk(k, dim=1)
    z = torch.zeros_like(pre).scatter(1, idx, vals.clamp_min(0))
    rec = (z @ sae.W_dec + sae.b_dec) * scale + mean
    expected = rec.view(2, 5, 3, c).permute(0, 3, 1, 2)
    torch.testing.assert_close(sae(a), expected, rtol=1e-5, atol=1e-5)
    # rows work too and agree with the field path
    torch.testing.assert_close(sae(rows * scale + mean), rec, rtol=1e-5, atol=1e-5)


def test_full_mode_sae_fno_without_spectral_path_equals_pointwise_sae():
    """docs/method.md section 1: an SAE-FNO restricted to act pointwise is the pointwise SAE."""
    c, p, k, grid = 3, 8, 2, (7, 7)
    sae = SAE(c, p, sparsity={"type": "topk", "k": k})
    _randomize(sae)
    fno = SAEFNO(c, p, ndim=2, modes=4, sparsity={"type": "topk", "k": k, "group": "point"})
    mean, scale = torch.randn(c), torch.rand(c) + 0.5
    for m in (sae, fno):
        m.set_normalization(mean, scale)
    with torch.no_grad():
        fno.enc_spectral.weight.zero_()
        fno.dec_spectral.weight.zero_()
        fno.W_e.copy_(sae.W_enc.T)
        fno.b_e.copy_(sae.b_enc - sae.b_dec @ sae.W_enc)
        fno.W_d.copy_(sae.W_dec.T)
        fno.b_d.copy_(sae.b_dec)
    a = torch.randn(3, c, *grid)
    torch.testing.assert_close(fno(a), sae(a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fno.encode(a), sae.encode(a), rtol=1e-5, atol=1e-5)


def test_full_mode_sae_fno_with_codes_at_one_point_equals_flat_sae():
    """With all modes kept and codes restricted to the origin, an SAE-FNO is a flat SAE.

    Flat encoder row E_k (a field) becomes the spectral encoder R_e = conj(FFT(E_k)); flat decoder atom
    D_k becomes R_d = FFT(D_k) / G (unnormalised FFTs; the model uses the 1/N forward convention and
    scales its decoder's spectral path by the spectral gain G = (2K-1)^d, here G = N).
    """
    c, p, k, n = 2, 6, 2, 9  # odd n: all 5 frequencies |w| < 5 are kept, no Nyquist mode
    flat = FlatSAE(c, p, grid=(n,), sparsity={"type": "topk", "k": k})
    _randomize(flat)
    const_bias = torch.randn(c)
    with torch.no_grad():
        flat.b_dec.copy_(const_bias.repeat_interleave(n))  # SAE-FNO's decoder bias is per channel
    fno = SAEFNO(c, p, ndim=1, modes=5, sparsity={"type": "topk", "k": k, "group": "concept"})
    enc = flat.W_enc.T.reshape(p, c, n)  # E_k
    dec = flat.W_dec.reshape(p, c, n)  # D_k
    with torch.no_grad():
        r_e = torch.fft.rfft(enc, dim=-1).conj().transpose(0, 1)  # (c, p, 5)
        fno.enc_spectral.weight.copy_(torch.view_as_real(r_e.resolve_conj().contiguous()))
        fno.dec_spectral.weight.copy_(torch.view_as_real(torch.fft.rfft(dec, dim=-1)) / fno.spectral_gain)
        fno.W_e.zero_()
        fno.W_d.zero_()
        fno.b_e.copy_(flat.b_enc - torch.einsum("pcn,cn->p", enc, flat.b_dec.view(c, n)))
        fno.b_d.copy_(const_bias)
    a = torch.randn(4, c, n)
    ref = flat.forward_train(a)
    pre = fno.encode_pre(fno.normalize(a))
    at_origin = torch.zeros_like(pre)
    at_origin[..., 0] = pre[..., 0]
    z, _ = fno.sparsity(at_origin)
    torch.testing.assert_close(z[..., 0], ref.codes, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fno.decode_norm(z), ref.recon, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ndim,coarse,factor", [(1, 16, 2), (1, 15, 3), (2, 12, 2), (3, 8, 2)])
@pytest.mark.parametrize("pointwise", [False, True])
def test_sae_fno_concepts_agree_across_resolutions(ndim, coarse, factor, pointwise):
    """The kernel part of a concept is one function on every grid; the pointwise part is a point mass
    1/G at the origin, whose one-point value scales with the number of grid points N."""
    fno = SAEFNO(2, 5, ndim=ndim, modes=4, lifting=3, decoder_pointwise=pointwise)
    _randomize(fno)
    fno.set_normalization(torch.randn(2), torch.rand(2) + 0.5)
    lo = fno.concepts(coarse)
    hi = fno.concepts(coarse * factor)
    sub = hi[(slice(None), slice(None), *([slice(None, None, factor)] * ndim))].clone()
    origin = (slice(None), slice(None), *([0] * ndim))
    if pointwise:
        # the origin values differ by the pointwise column times (N_hi - N_lo) / G, in raw units
        point = fno.lift.down(fno.W_d.T.detach().unsqueeze(-1)).squeeze(-1) * fno.norm_scale
        sub[origin] -= point * (coarse**ndim) * (factor**ndim - 1) / fno.spectral_gain
    else:
        assert not fno.W_d.requires_grad  # (randomised above: the renders must ignore it)
    torch.testing.assert_close(sub, lo, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(hi, hi.roll(1, dims=-1))  # not a constant field


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("grid", [(10,), (9,), (6, 7)])
def test_sae_fno_concept_is_the_decoder_response_to_a_point_mass(grid, pointwise):
    """concepts(grid)[k] is the decoder's response (raw units, bias excluded) to the code
    (N / G) e_0 of concept k: a point mass 1/G at the origin, one cell of the mode grid."""
    p, c = 4, 3
    fno = SAEFNO(c, p, ndim=len(grid), modes=3, decoder_pointwise=pointwise)
    _randomize(fno)
    fno.normalize_decoder_()
    scale = torch.rand(c) + 0.5
    fno.set_normalization(torch.randn(c), scale)
    atoms = fno.concepts(grid)
    n_points = 1
    for n in grid:
        n_points *= n
    origin = (0,) * len(grid)
    for k in range(p):
        z = torch.zeros(1, p, *grid)
        z[(0, k, *origin)] = n_points / fno.spectral_gain
        expected = (fno.decode(z) - fno.decode(torch.zeros_like(z)))[0]
        torch.testing.assert_close(atoms[k], expected, rtol=1e-4, atol=1e-5)
        linear = fno.decode_norm(z, bias=False)[0] * scale.view(c, *([1] * len(grid)))
        torch.testing.assert_close(atoms[k], linear.detach(), rtol=1e-4, atol=1e-5)


def test_sae_fno_spectral_and_pointwise_paths_are_on_one_scale():
    """On the mode grid (2K-1 points per dimension) a unit code at one point gives kernel + W_d at
    that point, and the unit-norm constraint counts both parts with the same weight."""
    k_modes, p, c = 3, 4, 2
    n = 2 * k_modes - 1
    fno = SAEFNO(c, p, ndim=2, modes=k_modes)
    assert fno.spectral_gain == n**2
    kernel = fno.dec_spectral.kernel((n, n)).detach()  # (p, C, n, n)
    for k in range(p):
        z = torch.zeros(1, p, n, n)
        z[0, k, 0, 0] = 1.0
        expected = kernel[k].clone()
        expected[:, 0, 0] += fno.W_d[:, k].detach()
        torch.testing.assert_close(fno.decode_norm(z, bias=False)[0].detach(), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fno.concept_norms().detach(), torch.ones(p))


def test_pointwise_concepts_are_decoder_vectors_in_raw_units():
    sae = SAE(3, 5, ndim=2)
    scale = torch.tensor([1.0, 2.0, 3.0])
    sae.set_normalization(torch.zeros(3), scale)
    torch.testing.assert_close(sae.concepts(), sae.W_dec.detach() * scale)
    img = sae.concepts(4)
    torch.testing.assert_close(img[:, :, 0, 0], sae.W_dec.detach() * scale)
    assert img[:, :, 1:, :].abs().sum() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: SAE(3, 6, sparsity={"type": "topk", "k": 2}, lifting=5),
        lambda: FlatSAE(3, 6, grid=(8,), sparsity="relu"),
        lambda: SAEFNO(
            3,
            6,
            ndim=1,
            modes=3,
            sparsity={"type": "jumprelu", "l0": 0.1, "threshold": 0.05, "bandwidth": 0.5},
        ),
    ],
)
def test_gradients_reach_every_parameter(make):
    m = make()
    out = m.forward_train(torch.randn(4, 3, 8))
    loss = (out.recon - out.target).pow(2).sum()
    if out.penalty is not None:
        loss = loss + out.penalty
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_complex_activations_need_a_declared_treatment():
    a = torch.randn(2, 3, 8, dtype=torch.complex64)
    with pytest.raises(ShapeError, match="realimag"):
        SAE(3, 6)(a)
    m = SAEFNO(3, 6, ndim=1, modes=3, complex="realimag")
    assert m.norm_mean.shape == (6,)
    out = m(a)
    assert out.is_complex() and out.shape == a.shape
    assert m.concepts(8).is_complex()
    with pytest.raises(ShapeError):
        m(a.real)
    with pytest.raises(ConfigError):
        SAE(3, 6, complex="magnitude")


def test_flat_sae_refuses_other_grids():
    m = FlatSAE(2, 4, grid=(8, 8))
    with pytest.raises(ShapeError, match=r"trained on the grid \(8, 8\)"):
        m(torch.randn(1, 2, 16, 16))
    with pytest.raises(ShapeError):
        m.concepts(16)
    assert m.concepts(8).shape == (4, 2, 8, 8)


def test_bad_shapes_and_configs_raise_saeno_errors():
    with pytest.raises(ShapeError, match="channels"):
        SAE(3, 6)(torch.randn(2, 4, 5))
    with pytest.raises(ShapeError, match="2D grid"):
        SAEFNO(3, 6, ndim=2)(torch.randn(2, 3, 5))
    with pytest.raises(SaenoError, match="larger than the number of concepts"):
        SAE(3, 6, sparsity={"type": "topk", "k": 7})
    with pytest.raises(SaenoError, match="unknown sparsity"):
        SAE(3, 6, sparsity="gated")
    with pytest.raises(ShapeError):
        SAE(3, 6).set_normalization(torch.zeros(2), torch.ones(2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: SAE(3, 6, sparsity="batchtopk", lifting=4, ndim=2),
        lambda: FlatSAE(3, 6, grid=(4, 5), sparsity={"type": "relu", "l1": 0.3}),
        lambda: SAEFNO(3, 6, ndim=3, modes=2, sparsity={"type": "topk", "k": 2, "domain_frac": 0.25}),
    ],
)
def test_config_round_trip(make):
    m = make()
    rebuilt = type(m).from_config(m.config())
    assert rebuilt.config() == m.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in m.state_dict().items()
    }


def test_pointwise_sparse_topk_path_equals_the_dense_path():
    from saeno.sae.base import SparseAutoencoder

    sae = SAE(5, 20, sparsity={"type": "topk", "k": 3}, lifting=7)
    _randomize(sae)
    a = torch.randn(3, 5, 6, 4)
    grads = []
    for forward in (sae.forward_train, lambda x: SparseAutoencoder.forward_train(sae, x)):
        sae.zero_grad()
        out = forward(a)
        (out.recon - out.target).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in sae.named_parameters()})
        grads[-1]["recon"], grads[-1]["codes"] = out.recon.detach(), out.codes.detach()
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-5, msg=key)


def test_aux_codes_reach_dead_concepts_with_negative_pre_activations():
    fno = SAEFNO(3, 6, ndim=1, modes=3)
    with torch.no_grad():
        fno.b_e[0] = -100.0  # concept 0 can never fire: plain ReLU AuxK would give it no gradient
    pre = fno.encode_pre(torch.randn(4, 3, 16))
    dead = torch.zeros(6, dtype=torch.bool)
    dead[[0, 1]] = True
    z = fno.aux_codes(pre, dead, k=2)
    assert (z[:, 2:] == 0).all() and (z[:, 0] == 0).all()  # forward: ReLU, only dead concepts
    residual = torch.randn(4, 3, 16)
    (fno.decode_norm(z, bias=False) - residual).pow(2).sum().backward()
    assert fno.b_e.grad[0] != 0  # straight-through gradient reaches the hopeless concept
    assert fno.b_e.grad[2:].abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_mix_modes_equals_complex_einsum(dtype):
    from saeno.sae.spectral import mix_modes

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 4, dtype=dtype, generator=g)
    w = torch.randn(5, 6, 7, 4, dtype=dtype, generator=g)
    want = torch.einsum("bi...,io...->bo...", x, w)
    got = mix_modes(x, w)
    assert got.dtype == dtype and got.shape == (3, 6, 7, 4)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)


def test_mix_modes_gradients_match_complex_einsum():
    from saeno.sae.spectral import mix_modes

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 3, dtype=torch.complex128, generator=g, requires_grad=True)
    w = torch.randn(3, 4, 5, 3, dtype=torch.complex128, generator=g, requires_grad=True)
    torch.autograd.gradcheck(mix_modes, (x, w))
    up = torch.randn(2, 4, 5, 3, dtype=torch.complex128, generator=g)
    gx, gw = torch.autograd.grad((mix_modes(x, w) * up.conj()).real.sum(), (x, w))
    ex, ew = torch.autograd.grad((torch.einsum("bi...,io...->bo...", x, w) * up.conj()).real.sum(), (x, w))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)
