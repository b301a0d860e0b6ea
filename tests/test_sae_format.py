"""docs/sae_format.md is enough to run a saved SAE: the pointwise SAE, the SAE-FNO and the flat SAE
reimplemented here from the document with numpy only (JSON, safetensors, numpy FFT), reading every
constant from ``cfg.json``, match ``sae(x)``. Old files without ``constants`` still load."""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import saeno


def _perturb(sae, seed=0):
    """Weights and normalisation far from their initial values (biases and means non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    c = sae.real_channels
    sae.set_normalization(torch.randn(c, generator=g), torch.rand(c, generator=g) + 0.5)
    return sae.eval()


def _read(folder):
    cfg = json.loads((folder / "cfg.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(folder / "sae_weights.safetensors")).items()}
    return cfg, w


def _normalise(cfg, w, x):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(cfg["normalization"]["mean"]).reshape(shape)
    scale = np.asarray(cfg["normalization"]["scale"]).reshape(shape)
    return (x - mean) / scale, mean, scale


def _lift(w, x, key):  # channel_linear along axis 1: out[b, o] = sum_i W[o, i] x[b, i]
    return np.einsum("oi,bi...->bo...", w[key], x) if key in w else x


def _topk(pre, cfg):
    sp = cfg["sparsity"]
    assert sp["type"] == "topk" and sp["domain_frac"] is None
    k = sp["k"]
    if sp["group"] == "point" or pre.ndim == 2:
        idx = np.argpartition(-pre, k - 1, axis=1)[:, :k] if pre.ndim == 2 else None
        if pre.ndim > 2:  # per grid point: move concepts last
            moved = np.moveaxis(pre, 1, -1)
            idx = np.argpartition(-moved, k - 1, axis=-1)[..., :k]
            mask = np.zeros_like(moved)
            np.put_along_axis(mask, idx, 1.0, axis=-1)
            return np.maximum(pre, 0) * np.moveaxis(mask, -1, 1)
        mask = np.zeros_like(pre)
        np.put_along_axis(mask, idx, 1.0, axis=1)
        return np.maximum(pre, 0) * mask
    r = np.maximum(pre, 0)  # group "concept": score = RMS over the grid of relu(pre)
    score = np.sqrt((r.reshape(r.shape[0], r.shape[1], -1) ** 2).mean(-1))
    idx = np.argpartition(-score, k - 1, axis=1)[:, :k]
    mask = np.zeros_like(score)
    np.put_along_axis(mask, idx, 1.0, axis=1)
    return r * mask.reshape(mask.shape + (1,) * (r.ndim - 2))


def pointwise_forward(folder, x):
    """The document's pointwise SAE on fields (B, C, *grid)."""
    cfg, w = _read(folder)
    assert cfg["constants"]["encoder_input"] == "x - b_dec"
    xn, mean, scale = _normalise(cfg, w, x)
    xl = _lift(w, xn, "lift.P")
    rows = np.moveaxis(xl, 1, -1).reshape(-1, xl.shape[1])  # (B * points, C)
    pre = (rows - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    z = _topk(pre, cfg)
    y = z @ w["W_dec"] + w["b_dec"]
    y = np.moveaxis(y.reshape(xl.shape[0], *xl.shape[2:], -1), -1, 1)
    return _lift(w, y, "lift.Q") * scale + mean


def _spectral(x, weight, cfg):
    """y = irfftn(R . rfftn(x, norm=forward)_{|f|<K}, norm=forward), per the mode layout."""
    c = cfg["constants"]
    assert "norm='forward'" in c["fft"]
    K = cfg["modes"]
    grid = x.shape[2:]
    axes = tuple(range(2, x.ndim))
    R = weight[..., 0] + 1j * weight[..., 1]  # (C_in, C_out, *mode_shape)
    assert list(R.shape[2:]) == c["mode_shape"]
    X = np.fft.rfftn(x, axes=axes, norm="forward")
    Y = np.zeros((x.shape[0], R.shape[1], *X.shape[2:]), dtype=complex)
    sel_x, sel_w = _frequencies(grid, K)
    Xs = X[(slice(None), slice(None)) + sel_x]
    Rs = R[(slice(None), slice(None)) + sel_w]
    Y[(slice(None), slice(None)) + sel_x] = np.einsum("bi...,io...->bo...", Xs, Rs)
    return np.fft.irfftn(Y, s=grid, axes=axes, norm="forward")


def _frequencies(grid, K):
    """Per axis: the kept frequencies' FFT indices and their indices in a ``(2K-1, ..., K)`` layout."""
    fft_idx, w_idx = [], []
    for d, n in enumerate(grid):
        last = d == len(grid) - 1
        kk = min(K, (n + 1) // 2)
        freqs = list(range(kk)) if last else list(range(kk)) + list(range(-(kk - 1), 0))
        fft_idx.append([f % n for f in freqs])
        w_idx.append([f if last else f % (2 * K - 1) for f in freqs])
    return np.ix_(*fft_idx), np.ix_(*w_idx)


def _bias_field(cfg, w, grid):
    """The document's bias field ``b(x)`` in normalised units, ``(1, C, *grid)`` (0 without one)."""
    if "bias_field.coef" not in w:
        return 0.0
    coef = w["bias_field.coef"]
    B = coef[..., 0] + 1j * coef[..., 1]  # (C, *mode_shape) with the bias field's own K
    sel_x, sel_w = _frequencies(grid, int(cfg["bias_field"]))
    spec = np.zeros((B.shape[0], *grid[:-1], grid[-1] // 2 + 1), dtype=complex)
    spec[(slice(None),) + sel_x] = B[(slice(None),) + sel_w]
    return np.fft.irfftn(spec, s=grid, axes=tuple(range(1, len(grid) + 1)), norm="forward")[None]


def sae_fno_forward(folder, x):
    """The document's SAE-FNO on fields (B, C, *grid)."""
    cfg, w = _read(folder)
    G = cfg["constants"]["spectral_gain"]
    assert G == (2 * cfg["modes"] - 1) ** cfg["ndim"]
    xn, mean, scale = _normalise(cfg, w, x)
    b = _bias_field(cfg, w, x.shape[2:])
    xl = _lift(w, xn - b, "lift.P")
    bias = (1, -1) + (1,) * (x.ndim - 2)
    pre = (
        _spectral(xl, w["enc_spectral.weight"], cfg)
        + np.einsum("pc,bc...->bp...", w["W_e"], xl)
        + w["b_e"].reshape(bias)
    )
    z = _topk(pre, cfg)
    y = G * _spectral(z, w["dec_spectral.weight"], cfg) + w["b_d"].reshape(bias)
    if cfg["decoder_pointwise"]:
        y = y + np.einsum("cp,bp...->bc...", w["W_d"], z)
    return (_lift(w, y, "lift.Q") + b) * scale + mean


def flat_forward(folder, x):
    cfg, w = _read(folder)
    xn, mean, scale = _normalise(cfg, w, x)
    pre = (xn.reshape(x.shape[0], -1) - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    y = (_topk(pre, cfg) @ w["W_dec"] + w["b_dec"]).reshape(x.shape)
    return y * scale + mean


def _check(sae, forward, x, tmp_path):
    folder = saeno.save_sae(sae, tmp_path / "sae")
    want = sae(torch.as_tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(forward(folder, x), want, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("lifting", [None, 6])
def test_pointwise_sae_from_the_document(tmp_path, lifting):
    sae = _perturb(saeno.SAE(4, 10, ndim=2, sparsity={"type": "topk", "k": 3}, lifting=lifting))
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 5)) * 2 + 1
    _check(sae, pointwise_forward, x, tmp_path)


def test_the_pointwise_sae_subtracts_b_dec_before_encoding(tmp_path):
    """Leaving out ``- b_dec`` (the obvious formula) gives another reconstruction."""
    sae = _perturb(saeno.SAE(4, 10, sparsity={"type": "topk", "k": 3}))
    folder = saeno.save_sae(sae, tmp_path / "sae")
    cfg, w = _read(folder)
    x = np.random.default_rng(1).normal(size=(2, 4, 6, 6))
    w_no = dict(w)
    xn, mean, scale = _normalise(cfg, w, x)
    rows = np.moveaxis(xn, 1, -1).reshape(-1, 4)
    wrong = _topk(rows @ w["W_enc"] + w["b_enc"], cfg) @ w_no["W_dec"] + w["b_dec"]
    right = np.moveaxis(pointwise_forward(folder, x), 1, -1).reshape(-1, 4)
    assert np.abs(wrong * scale.reshape(1, -1) + mean.reshape(1, -1) - right).max() > 1e-2


@pytest.mark.parametrize(
    "ndim, grid, pointwise", [(1, (12,), True), (2, (8, 7), True), (2, (9, 9), False), (3, (6, 5, 6), True)]
)
def test_sae_fno_from_the_document(tmp_path, ndim, grid, pointwise):
    torch.manual_seed(ndim)
    sae = _perturb(
        saeno.SAEFNO(
            3,
            7,
            ndim=ndim,
            modes=3,
            decoder_pointwise=pointwise,
            sparsity={"type": "topk", "k": 4, "group": "concept"},
        )
    )
    x = np.random.default_rng(ndim).normal(size=(2, 3, *grid))
    _check(sae, sae_fno_forward, x, tmp_path)


def test_sae_fno_on_a_grid_coarser_than_the_modes(tmp_path):
    sae = _perturb(saeno.SAEFNO(2, 5, ndim=2, modes=4, sparsity={"type": "topk", "k": 2, "group": "concept"}))
    _check(sae, sae_fno_forward, np.random.default_rng(3).normal(size=(2, 2, 5, 4)), tmp_path)


def test_flat_sae_from_the_document(tmp_path):
    sae = _perturb(saeno.FlatSAE(2, 6, grid=(4, 5), sparsity={"type": "topk", "k": 2}))
    _check(sae, flat_forward, np.random.default_rng(4).normal(size=(3, 2, 4, 5)), tmp_path)


def test_files_without_constants_still_load(tmp_path):
    sae = _perturb(saeno.SAEFNO(2, 4, ndim=2, modes=3))
    folder = saeno.save_sae(sae, tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["constants"]["spectral_gain"] == 25.0
    del cfg["constants"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    again = saeno.load_sae(folder)
    x = torch.randn(2, 2, 8, 8)
    torch.testing.assert_close(again(x), sae(x))
