"""The SAE-FNO's fast training path against the straightforward formulation (full FFTs, dense codes).

``tests/sae_fno_reference.py`` holds the reference; the fast path (truncated DFTs by matrix
products, decoding of the kept concepts only, sparse recomputation of the kept pre-activations)
must give the same reconstruction, codes, pre-activations and parameter gradients.
"""

from __future__ import annotations

import pytest
import torch

import sae_fno_reference as ref
from saeno.sae import SAEFNO
from saeno.sae.spectral import SpectralConv, forward_modes, from_modes, inverse_modes, to_modes

CASES = [  # (ndim, grid, modes): 1D, 2D, odd sizes, grids smaller than 2K, 3D
    (1, (31,), 5),
    (2, (32, 32), 8),
    (2, (9, 7), 8),
    (2, (12, 16), 4),
    (2, (3, 4), 3),
    (3, (6, 5, 8), 3),
]


def _model(ndim: int, modes: int, dtype: torch.dtype, **kw) -> SAEFNO:
    torch.manual_seed(1)
    sae = SAEFNO(6, 12, ndim=ndim, modes=modes, **kw).to(dtype)
    with torch.no_grad():  # parameters away from their structured initialisation
        sae.b_e.normal_()
        sae.b_d.normal_()
        sae.W_e.add_(0.3 * torch.randn_like(sae.W_e))
        sae.enc_spectral.weight.add_(0.1 * torch.randn_like(sae.enc_spectral.weight))
        if sae.bias_field is not None:
            sae.bias_field.coef.normal_()
            sae.bias_field.fitted.fill_(True)
    return sae


def _grads(sae: SAEFNO, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    sae.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> None:
    assert (a - b).abs().max() <= rtol * b.abs().max().clamp_min(1e-30), ((a - b).abs().max(), b.abs().max())


@pytest.mark.parametrize("ndim, grid, modes", CASES)
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fast_forward_and_gradients_equal_the_reference(ndim, grid, modes, dtype, rtol):
    sae = _model(ndim, modes, dtype)
    a = torch.randn(3, 6, *grid, dtype=dtype)
    out = sae.forward_train(a)
    # the loss reaches the reconstruction and, like AuxK, the dense pre-activations
    fast = _grads(sae, out.recon.pow(2).sum() + out.pre.sin().sum())
    recon, target, codes, pre = ref.forward_train(sae, a)
    slow = _grads(sae, recon.pow(2).sum() + pre.sin().sum())
    if dtype == torch.float32 and not torch.equal(out.codes != 0, codes != 0):
        pytest.skip("float32 rounding moved a near-tie of the selection")  # the float64 case covers it
    _close(out.recon, recon, rtol)
    _close(out.codes, codes, rtol)
    _close(out.pre, pre, rtol)
    torch.testing.assert_close(out.target, target)
    assert fast.keys() == slow.keys() and "enc_spectral.weight" in fast and "bias_field.coef" in fast
    for name in slow:
        _close(fast[name], slow[name], rtol)


@pytest.mark.parametrize(
    "kw",
    [
        {"lifting": 9, "bias_field": None},
        {"decoder_pointwise": False},
        {"sparsity": {"type": "topk", "k": 3, "group": "concept"}},  # no domain sparsity
        {"sparsity": {"type": "topk", "k": 12, "group": "concept", "domain_frac": 0.5}},  # k = p
        {
            "sparsity": {
                "type": "topk",
                "k": 3,
                "group": "concept",
                "domain_frac": 0.3,
                "domain_pool": "sample",
            }
        },
    ],
)
def test_fast_path_options_equal_the_reference(kw):
    sae = _model(2, 4, torch.float64, **kw)
    a = torch.randn(4, 6, 10, 12, dtype=torch.float64)
    out = sae.forward_train(a)
    fast = _grads(sae, (out.recon - out.target).pow(2).sum())
    recon, target, codes, _ = ref.forward_train(sae, a)
    slow = _grads(sae, (recon - target).pow(2).sum())
    _close(out.recon, recon, 1e-10)
    _close(out.codes, codes, 1e-10)
    for name in slow:
        _close(fast[name], slow[name], 1e-10)


def test_general_path_encode_and_decode_equal_the_reference_in_float32():
    sae = _model(2, 8, torch.float32).eval()
    x = torch.randn(5, 6, 32, 32)
    _close(sae.encode_pre(x), ref.encode_pre(sae, x), 1e-5)
    z = torch.randn(5, 12, 32, 32).relu()
    _close(sae.decode_norm(z), ref.decode(sae, z), 1e-5)
    _close(sae.decode_norm(z, bias=False), ref.decode(sae, z, bias=False), 1e-5)


@pytest.mark.parametrize("grid", [(16,), (7,), (32, 32), (5, 9), (2, 2), (12, 10, 7)])
def test_truncated_dft_equals_the_fft_at_the_kept_modes(grid):
    modes = 4
    conv = SpectralConv(3, 2, modes, len(grid)).double()
    x = torch.randn(2, 3, *grid, dtype=torch.float64)
    dims = tuple(range(2, 2 + len(grid)))
    full = torch.fft.rfftn(x, dim=dims, norm="forward")
    fft_idx, w_idx = conv._indices(grid, x.device)
    expect = torch.zeros(2, 3, *conv.weight.shape[2:-1], dtype=full.dtype)
    expect[(slice(None), slice(None), *w_idx)] = full[(slice(None), slice(None), *fft_idx)]
    torch.testing.assert_close(forward_modes(x, modes), expect, rtol=0, atol=1e-12)
    # the inverse: irfftn of coefficients placed on the grid's spectrum
    y = torch.randn_like(expect)
    placed = torch.zeros_like(full)
    placed[(slice(None), slice(None), *fft_idx)] = y[(slice(None), slice(None), *w_idx)]
    back = torch.fft.irfftn(placed, s=grid, dim=dims, norm="forward")
    torch.testing.assert_close(inverse_modes(y, grid), back, rtol=0, atol=1e-11)
    # bias and gain inside the last product
    b = torch.randn(3, dtype=torch.float64)
    spec = to_modes(x, modes)
    torch.testing.assert_close(
        from_modes(spec, grid, bias=b, gain=2.5),
        2.5 * from_modes(spec, grid) + b.view(1, -1, *[1] * len(grid)),
    )


def test_fast_path_selects_and_balances_like_the_general_path():
    """The fast path uses the concept TopK's balancing offsets and updates them as the general path."""
    import copy

    from saeno.sae.base import SparseAutoencoder

    kw = {"sparsity": {"type": "topk", "k": 3, "group": "concept", "domain_frac": 0.5, "balance": 0.5}}
    fast = _model(2, 4, torch.float64, **kw).train()
    slow = copy.deepcopy(fast)
    torch.manual_seed(3)
    for _ in range(6):
        a = torch.randn(4, 6, 10, 12, dtype=torch.float64)
        out_fast = fast.forward_train(a)
        out_slow = SparseAutoencoder.forward_train(slow, a)
        assert torch.equal(out_fast.codes != 0, out_slow.codes != 0)
        _close(out_fast.recon, out_slow.recon, 1e-10)
        torch.testing.assert_close(fast.sparsity.balance_offset, slow.sparsity.balance_offset)
    assert fast.sparsity.balance_offset.abs().sum() > 0  # the offsets moved, so they were exercised


def test_mix_spectrum_values_and_gradients_equal_the_complex_product():
    from saeno.sae.spectral import mix_spectrum

    g = torch.Generator().manual_seed(11)
    spec = torch.randn(3, 4, 2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 6, 5, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    xc = torch.complex(spec[:, :, 0], spec[:, :, 1])
    ref = torch.einsum("bimn,iomn->bomn", xc, torch.view_as_complex(weight))
    out = mix_spectrum(spec, weight)
    assert torch.allclose(out[:, :, 0], ref.real, atol=1e-12)
    assert torch.allclose(out[:, :, 1], ref.imag, atol=1e-12)
    assert torch.autograd.gradcheck(mix_spectrum, (spec, weight))


def test_fired_of_the_fast_path_equals_the_dense_codes():
    torch.manual_seed(12)
    sparsity = {"type": "topk", "k": 16, "group": "concept", "domain_frac": 0.25}
    sae = SAEFNO(3, 40, ndim=2, modes=3, sparsity=sparsity)  # 16 concepts per sample: at most 32 of 40 fire
    out = sae.forward_train(torch.randn(2, 3, 9, 8))
    assert out._codes is None  # sparse output
    want = (out.codes != 0).transpose(0, 1).flatten(1).any(1)
    assert torch.equal(out.fired(), want)
    assert 0 < int(want.sum()) < 40
