"""The pointwise SAE's sparse TopK path against the dense formulation it replaces."""

import pytest
import torch

from saeno.sae import SAE
from saeno.sae.base import SparseAutoencoder
from saeno.sae.sparse_topk import dense_pre, gather_pre, topk_rows
from saeno.train.trainer import sae_loss, train_sae


def _dense_forward(sae, a):
    return SparseAutoencoder.forward_train(sae, a)


def _grads(sae, a, dense, dead, aux_on):
    sae.zero_grad(set_to_none=True)
    if dense:
        orig = type(sae).forward_train
        type(sae).forward_train = _dense_forward
    try:
        loss, *_ = sae_loss(sae, a, dead, aux_on, 4, 0.5)
    finally:
        if dense:
            type(sae).forward_train = orig
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("aux_on", [False, True])
@pytest.mark.parametrize("lifting", [None, 12])
def test_sparse_path_has_the_dense_loss_and_gradients(aux_on, lifting):
    torch.manual_seed(0)
    sae = SAE(6, 32, sparsity={"type": "topk", "k": 3}, lifting=lifting).double()
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_(std=0.1)
    a = torch.randn(50, 6, dtype=torch.float64)
    dead = torch.zeros(32, dtype=torch.bool)
    dead[::3] = True
    loss_s, g_s = _grads(sae, a, False, dead, aux_on)
    loss_d, g_d = _grads(sae, a, True, dead, aux_on)
    assert torch.allclose(loss_s, loss_d, rtol=1e-12, atol=1e-12)
    assert g_s.keys() == g_d.keys()
    for name in g_d:
        assert torch.allclose(g_s[name], g_d[name], rtol=1e-10, atol=1e-12), name


def test_gather_and_dense_pre_match_autograd_on_addmm():
    torch.manual_seed(1)
    x = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 16, dtype=torch.float64, requires_grad=True)
    b = torch.randn(16, dtype=torch.float64, requires_grad=True)
    idx = torch.randn(20, 16).topk(4, dim=1).indices
    gv = torch.randn(20, 4, dtype=torch.float64)
    gp = torch.randn(20, 16, dtype=torch.float64)

    ref = torch.addmm(b, x, w)
    (ref.gather(1, idx) * gv).sum().add((ref * gp).sum()).backward()
    expected = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    pre = dense_pre(x, w, b)
    vals = gather_pre(x, w, b, pre, idx)
    assert torch.equal(pre, ref.detach())
    assert torch.equal(vals, ref.detach().gather(1, idx))
    ((vals * gv).sum() + (pre * gp).sum()).backward()
    for t, e in zip((x, w, b), expected):
        assert torch.allclose(t.grad, e, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, w, b: gather_pre(x, w, b, torch.addmm(b, x, w), idx), (x, w, b))


def test_topk_rows_selects_the_largest_and_fired_matches_dense_codes():
    torch.manual_seed(2)
    x, w, b = torch.randn(30, 4), torch.randn(4, 10), torch.randn(10)
    pre, vals, idx = topk_rows(x, w, b, 3)
    ref = torch.addmm(b, x, w)
    assert torch.equal(vals.sort(1).values, ref.topk(3, dim=1).values.relu().sort(1).values)
    sae = SAE(4, 10, sparsity={"type": "topk", "k": 3})
    out = sae.forward_train(torch.randn(30, 4))
    fired = out.fired()
    assert torch.equal(fired, (out.codes != 0).any(0))
    assert out.codes.shape == (30, 10) and int((out.codes != 0).sum(1).max()) <= 3


def test_training_with_the_sparse_path_equals_training_with_the_dense_one():
    data = torch.randn(512, 8) @ torch.randn(8, 8) + 1.0

    def run(dense: bool):
        torch.manual_seed(0)
        sae = SAE(8, 48, sparsity={"type": "topk", "k": 4}).double()
        with torch.no_grad():
            sae.b_enc[:12] = -50.0  # never selected: dead, so AuxK switches on
        orig = SAE.forward_train
        if dense:
            SAE.forward_train = _dense_forward
        try:
            res = train_sae(
                sae,
                data.double(),
                steps=40,
                batch_size=64,
                progress=False,
                aux_k=8,
                dead_window=5,
                log_every=10,
            )
        finally:
            SAE.forward_train = orig
        assert any(row["dead_fraction"] > 0 for row in res.history[:-1])  # AuxK was on
        return sae.state_dict()

    sparse, dense = run(False), run(True)
    for name in dense:
        assert torch.allclose(sparse[name], dense[name], rtol=1e-9, atol=1e-10), name


def _without_kernels(monkeypatch):
    from saeno.sae import topk_kernel

    monkeypatch.setattr(topk_kernel, "enabled", False)


@pytest.mark.parametrize("kernels", [True, False])
def test_sparse_path_with_and_without_the_compiled_kernels_matches_the_dense_one(kernels, monkeypatch):
    # p = 128 rows, so that the compiled selection applies (p a multiple of its lanes)
    if not kernels:
        _without_kernels(monkeypatch)
    torch.manual_seed(3)
    sae = SAE(10, 128, sparsity={"type": "topk", "k": 5}).double()
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_(std=0.1)
    a = torch.randn(70, 10, dtype=torch.float64)
    dead = torch.zeros(128, dtype=torch.bool)
    dead[::5] = True
    for aux_on in (False, True):
        loss_s, g_s = _grads(sae, a, False, dead, aux_on)
        loss_d, g_d = _grads(sae, a, True, dead, aux_on)
        assert torch.allclose(loss_s, loss_d, rtol=1e-12, atol=1e-12)
        for name in g_d:
            assert torch.allclose(g_s[name], g_d[name], rtol=1e-10, atol=1e-12), name


def test_compiled_topk_equals_torch_topk():
    pytest.importorskip("numba")
    from saeno.sae import topk_kernel

    g = torch.Generator().manual_seed(4)
    for dtype in (torch.float32, torch.float64):
        for p in (64, 96, 512):
            for k in (1, 3, 8, 16):
                x = torch.randn(57, p, generator=g, dtype=dtype)
                found = topk_kernel.topk_rows(x, k)
                assert found is not None
                vals, idx = found
                ref = x.topk(k, dim=1)
                assert torch.equal(vals, ref.values)  # descending, as sorted=True
                assert torch.equal(idx.sort(1).values, ref.indices.sort(1).values)
                assert torch.equal(x.gather(1, idx), vals)


def test_compiled_topk_on_ties_infinities_and_nan():
    pytest.importorskip("numba")
    from saeno.sae import topk_kernel

    g = torch.Generator().manual_seed(5)
    x = torch.randint(-3, 4, (40, 64), generator=g).float()  # many ties
    x[0] = 0.0  # one row all equal
    x[1, :60] = float("-inf")  # fewer than k finite values above -inf
    x[2, 5] = float("inf")
    found = topk_kernel.topk_rows(x, 8)
    assert found is not None
    vals, idx = found
    assert torch.equal(vals, x.topk(8, dim=1).values)  # the same values; ties keep the lower column
    assert torch.equal(x.gather(1, idx), vals)
    assert all(len(set(row.tolist())) == 8 for row in idx)
    assert torch.equal(idx[0], torch.arange(8))
    x[3, 7] = float("nan")
    assert topk_kernel.topk_rows(x, 8) is None  # NaN: the caller falls back to torch.topk
    assert topk_kernel.topk_rows(x[:, :48], 8) is None  # not a multiple of the lanes
    assert topk_kernel.topk_rows(x, topk_kernel.LANES + 1) is None


def test_compiled_sparse_gradients_equal_the_torch_ones():
    pytest.importorskip("numba")
    from saeno.sae import topk_kernel
    from saeno.sae.sparse_topk import _sparse_grads

    g = torch.Generator().manual_seed(6)
    n, c, p, k = 90, 7, 40, 6
    x = torch.randn(n, c, generator=g, dtype=torch.float64)
    gy = torch.randn(n, c, generator=g, dtype=torch.float64)
    w_dec = torch.randn(p, c, generator=g, dtype=torch.float64)
    idx = torch.rand(n, p, generator=g).topk(k, dim=1).indices
    vals = torch.randn(n, k, generator=g, dtype=torch.float64).relu()  # some exact zeros
    found = topk_kernel.sparse_grads(x, gy, w_dec, idx, vals, p)
    assert found is not None
    for got, want in zip(found, _sparse_grads(x, gy, w_dec, idx, vals, p)):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_topk_with_balancing_offsets_takes_the_general_path():
    # the sparse path has no offsets: a balanced TopK must select as the base class does
    torch.manual_seed(7)
    sae = SAE(6, 64, sparsity={"type": "topk", "k": 3, "balance": 0.1}).eval()
    sae.sparsity.check(64)
    with torch.no_grad():
        sae.sparsity.balance_offset[:8] = 100.0  # concepts 0-7 win wherever their score is positive
    a = torch.randn(40, 6)
    got = sae.forward_train(a).codes
    want = _dense_forward(sae, a).codes
    assert torch.equal(got, want)
    plain = SAE(6, 64, sparsity={"type": "topk", "k": 3})
    plain.load_state_dict({k: v for k, v in sae.state_dict().items() if "balance" not in k}, strict=False)
    assert not torch.equal(plain.eval().forward_train(a).codes != 0, got != 0)  # the offsets mattered
