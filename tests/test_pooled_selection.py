"""The pooled domain budget's selection: compiled kernel, torch fallback and the SAE-FNO's dense path.

The kept set is checked against an independent definition: the ``n`` largest entries of each row
(``torch.sort``), with the documented rules for zeros (never kept) and ties at the threshold (the
lower columns win).
"""

from __future__ import annotations

import copy

import pytest
import torch

from saeno.sae import SAEFNO, topk_kernel
from saeno.sae.base import SparseAutoencoder
from saeno.sae.selection import keep_top_pooled, pooled_keep_mask, relu_keep_pooled

needs_numba = pytest.mark.skipif(not topk_kernel.available(), reason="numba is not installed")


def _expected_mask(x: torch.Tensor, n: int) -> torch.Tensor:
    """The n largest entries per row, zeros never kept, ties at the threshold to the lower columns.

    A stable descending sort puts equal values in column order, so its first ``n`` entries are the
    documented set.
    """
    order = torch.sort(x, dim=1, descending=True, stable=True).indices[:, :n]
    mask = torch.zeros_like(x).scatter_(1, order, 1.0)
    return mask * (x > 0)


def _rows(kind: str, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4096, generator=g, dtype=torch.float64)
    if kind == "ties":  # few distinct values: many entries equal the threshold
        x = x.round(decimals=1)
    elif kind == "sparse":  # fewer positive entries than the budget
        x = x * (torch.rand(6, 4096, generator=g, dtype=torch.float64) < 0.03)
    elif kind == "misleading":  # every sampled column large, the rest small: the sample misses
        x = x.abs() * 0.01
        x[:, :: topk_kernel.SAMPLE_STRIDE] += 10.0
    return x.relu().to(dtype)


@needs_numba
@pytest.mark.parametrize("kind", ["plain", "ties", "sparse", "misleading"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 7, 256, 1000])
def test_kernel_keeps_the_n_largest_with_the_documented_tie_rule(kind, dtype, n):
    x = _rows(kind, dtype)
    mask = topk_kernel.pooled_mask(x, n)
    assert mask is not None and mask.dtype == dtype
    torch.testing.assert_close(mask, _expected_mask(x, n), rtol=0, atol=0)
    # the kept values are those torch.topk keeps (on ties possibly other columns, same values)
    kept = (x * mask).sort(dim=1, descending=True).values[:, :n]
    torch.testing.assert_close(kept, x.topk(n, dim=1).values, rtol=0, atol=0)
    # relu mode on the signed input: the same mask, and the masked values written out
    signed = torch.where(x > 0, x, -torch.rand_like(x))
    vals, mask_r = topk_kernel.relu_pooled(signed, n)
    torch.testing.assert_close(mask_r, mask, rtol=0, atol=0)
    torch.testing.assert_close(vals, x * mask, rtol=0, atol=0)


@needs_numba
@pytest.mark.parametrize("length", [2, 17, 40, 100])
def test_kernel_on_short_rows(length):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(5, length, generator=g).relu()
    for n in sorted({1, length // 2, length - 1} - {0}):
        torch.testing.assert_close(topk_kernel.pooled_mask(x, n), _expected_mask(x, n), rtol=0, atol=0)


@needs_numba
def test_kernel_declines_nan_negative_and_gpu_style_inputs():
    x = _rows("plain", torch.float32)
    bad = x.clone()
    bad[2, 17] = float("nan")
    assert topk_kernel.pooled_mask(bad, 10) is None
    assert topk_kernel.relu_pooled(bad, 10) is None
    neg = x.clone()
    neg[1, 3] = -1.0
    assert topk_kernel.pooled_mask(neg, 10) is None  # negative entries only in relu mode
    assert topk_kernel.relu_pooled(neg, 10) is not None
    assert topk_kernel.pooled_mask(x.half(), 10) is None
    assert topk_kernel.pooled_mask(x, x.shape[1]) is None  # nothing to drop
    # the library falls back to torch.topk: the same values
    torch.testing.assert_close(pooled_keep_mask(bad, 10).sum(1), torch.full((6,), 10.0))


@pytest.mark.parametrize("kernels", [True, False])
def test_keep_top_pooled_values_and_gradients_equal_the_topk_formulation(kernels, monkeypatch):
    if kernels and not topk_kernel.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(topk_kernel, "enabled", kernels)
    g = torch.Generator().manual_seed(8)
    pre = torch.randn(3, 5, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    gout = torch.randn(3, 5, 8, 8, generator=g, dtype=torch.float64)
    n = 40
    # reference: torch.topk of the flattened ReLU codes, kept values scattered into zeros
    r = pre.relu().flatten(1)
    vals, idx = r.topk(n, dim=1)
    ref = torch.zeros_like(r).scatter(1, idx, vals).view_as(pre)
    (g_ref,) = torch.autograd.grad((ref * gout).sum(), pre)
    for out in (keep_top_pooled(pre.relu(), n), relu_keep_pooled(pre.flatten(1), n).view_as(pre)):
        (g_out,) = torch.autograd.grad((out * gout).sum(), pre)
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        torch.testing.assert_close(g_out, g_ref, rtol=0, atol=0)


def _default_model(dtype: torch.dtype = torch.float64) -> SAEFNO:
    torch.manual_seed(2)
    sae = SAEFNO(4, 10, ndim=2, modes=3).to(dtype)  # default sparsity: k = 10 = every concept
    with torch.no_grad():
        sae.b_e.normal_(std=0.3)
        sae.enc_spectral.weight.add_(0.2 * torch.randn_like(sae.enc_spectral.weight))
    return sae


@pytest.mark.parametrize("kernels", [True, False])
def test_dense_path_at_the_default_equals_the_general_path_over_steps(kernels, monkeypatch):
    """k = p takes the dense decoder: codes, reconstruction, gradients and balancing as the base class."""
    if kernels and not topk_kernel.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(topk_kernel, "enabled", kernels)
    fast = _default_model().train()
    assert fast.sparsity.k == fast.n_concepts and fast.sparsity.domain_pool == "sample"
    fast.sparsity.check(fast.n_concepts)
    start = torch.rand(fast.n_concepts) * 0.05  # raised offsets: every concept is chosen, so they decay
    fast.sparsity.balance_offset.copy_(start)
    slow = copy.deepcopy(fast)
    opt_f = torch.optim.SGD(fast.parameters(), lr=1e-4)
    opt_s = torch.optim.SGD(slow.parameters(), lr=1e-4)
    torch.manual_seed(3)
    for _ in range(4):
        a = torch.randn(3, 4, 12, 10, dtype=torch.float64)
        out_f = fast.forward_train(a)
        out_s = SparseAutoencoder.forward_train(slow, a)
        torch.testing.assert_close(out_f.codes, out_s.codes, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out_f.recon, out_s.recon, rtol=1e-10, atol=1e-12)
        assert torch.equal(out_f.fired(), out_s.fired())
        for out, opt in ((out_f, opt_f), (out_s, opt_s)):
            opt.zero_grad()
            ((out.recon - out.target).pow(2).sum() + out.pre.sin().sum()).backward()
        for (name, p_f), p_s in zip(fast.named_parameters(), slow.parameters()):
            if p_s.grad is not None:
                torch.testing.assert_close(p_f.grad, p_s.grad, rtol=1e-9, atol=1e-12, msg=name)
        opt_f.step()
        opt_s.step()
        torch.testing.assert_close(fast.sparsity.balance_offset, slow.sparsity.balance_offset)
    assert (fast.sparsity.balance_offset < start).all()  # the offsets decayed: the update ran


def test_frozen_benchmark_baseline_computes_the_same_step():
    """The speed benchmark's frozen baseline and the fast path train the same function."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from sae_fno_baseline import freeze

    fast = _default_model(torch.float32)
    base = freeze(copy.deepcopy(fast))
    a = torch.randn(2, 4, 16, 16)
    out_f, out_b = fast.forward_train(a), base.forward_train(a)
    torch.testing.assert_close(out_f.recon, out_b.recon, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_f.codes, out_b.codes, rtol=1e-4, atol=1e-5)
