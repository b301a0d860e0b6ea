"""The convolutional SAE (SAE-CNN baseline, ``saeno.sae.ConvSAE``)."""

from __future__ import annotations

import pytest
import torch

from saeno.sae import ConvSAE
from saeno.sae.base import ConfigError
from saeno.sae.registry import get


def _model(**kw):
    torch.manual_seed(0)
    return ConvSAE(2, 4, ndim=1, kernel=9, sparsity={"type": "topk", "k": 2, "group": "concept"}, **kw)


def test_concepts_are_the_decoder_response_to_a_point_code():
    conv = _model()
    for n in (16, 32):
        z = torch.zeros(4, 4, n)
        z[torch.arange(4), torch.arange(4), 0] = 1.0
        with torch.no_grad():
            resp = conv.decode_norm(z, bias=False)
        torch.testing.assert_close(conv.concepts(n), resp)
        # by hand: concept k's decoder taps w[:, k, t] land at (c - t) mod n (cross-correlation)
        w = conv.dec_weight.detach()
        hand = torch.zeros(4, 2, n)
        for t in range(9):
            hand[:, :, (4 - t) % n] += w[:, :, t].T
        torch.testing.assert_close(conv.concepts(n), hand)
    # fixed taps: on a grid twice as fine the same atom covers half the physical width
    a16, a32 = conv.concepts(16)[0], conv.concepts(32)[0]
    assert (a16 != 0).any(0).sum() == (a32 != 0).any(0).sum() == 9


def test_encoder_starts_as_the_decoders_adjoint():
    conv = _model()
    z, a = torch.randn(3, 4, 20), torch.randn(3, 2, 20)
    with torch.no_grad():
        lhs = (conv.decode_norm(z, bias=False) * a).sum()
        rhs = (z * (conv.encode_pre(a) - conv.b_e.view(1, -1, 1))).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-4)


def test_unit_norm_concepts_and_any_grid():
    conv = _model()
    conv.dec_weight.data.mul_(3.0)
    conv.normalize_decoder_()
    torch.testing.assert_close(conv.concepts(32).flatten(1).norm(dim=1), torch.ones(4))
    for n in (5, 9, 64):  # grids smaller than the kernel wrap around periodically
        out = conv(torch.randn(2, 2, n))
        assert out.shape == (2, 2, n)


def test_registered_and_rebuilt_from_its_config():
    conv = _model(lifting=3)
    assert get("sae-cnn") is ConvSAE
    again = ConvSAE.from_config(conv.config())
    assert (again.kernel, again.lifting, again.ndim) == (9, 3, 1)
    assert again.sparsity.config() == conv.sparsity.config()


def test_bad_kernels_are_refused():
    with pytest.raises(ConfigError, match="odd"):
        ConvSAE(1, 4, ndim=1, kernel=8)
    with pytest.raises(ConfigError, match="ndim"):
        ConvSAE(1, 4, ndim=4)


def test_saved_and_loaded_like_the_other_saes(tmp_path):
    from saeno.train.checkpoint import load_sae, save_sae

    conv = _model()
    conv.set_normalization([0.5, -1.0], [2.0, 3.0])
    path = save_sae(conv, tmp_path / "cnn")
    again = load_sae(path)
    assert isinstance(again, ConvSAE)
    a = torch.randn(2, 2, 24)
    with torch.no_grad():
        torch.testing.assert_close(again(a), conv(a))
