"""Sparsity mechanisms and code statistics: L0 behaviour of each mode, thresholds, counts by hand."""

from __future__ import annotations

import math

import pytest
import torch

from saeno.sae import SAE, SAEFNO
from saeno.sae.code_stats import CodeStats, domain_fraction, l0_concepts, l0_per_point
from saeno.sae.sparsity import BatchTopK, JumpReLU, ReLUL1, TopK, make_sparsity

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # see conftest.py


def test_topk_per_point_keeps_exactly_k():
    pre = torch.randn(64, 20) + 3.0  # all positive: exactly k non-zeros
    z, pen = TopK(5)(pre)
    assert pen is None
    assert ((z != 0).sum(1) == 5).all()
    # the kept ones are the largest
    kept_min = torch.where(z != 0, z, torch.inf).min(1).values
    dropped_max = torch.where(z == 0, pre, -torch.inf).max(1).values
    assert (kept_min >= dropped_max).all()


def test_topk_on_fields_per_point_and_per_concept():
    pre = torch.randn(3, 10, 6, 5) + 3.0
    z = TopK(4, group="point")(pre)[0]
    assert ((z != 0).sum(1) == 4).all()
    zc = TopK(4, group="concept")(pre)[0]
    active = (zc != 0).flatten(2).any(-1)
    assert (active.sum(1) == 4).all()
    # kept concepts are the 4 with the largest L2 norm, kept whole
    top = pre.clamp_min(0).flatten(2).pow(2).mean(-1).topk(4, dim=1).indices
    assert torch.equal(active, torch.zeros_like(active).scatter(1, top, True))
    torch.testing.assert_close(zc[active], pre.clamp_min(0)[active])


def test_domain_frac_keeps_top_grid_points_of_active_concepts():
    pre = torch.randn(2, 6, 40).abs() + 0.1
    z = TopK(2, group="concept", domain_frac=0.1)(pre)[0]
    nz = (z != 0).flatten(2).sum(-1)
    assert sorted(set(nz.flatten().tolist())) == [0, 4]
    assert domain_fraction(z) == pytest.approx(0.1)


def test_domain_pool_sample_shares_one_budget_among_the_kept_concepts():
    pre = torch.randn(3, 6, 40).abs() + 0.1
    z = TopK(2, group="concept", domain_frac=0.1, domain_pool="sample")(pre)[0]
    kept_concepts = TopK(2, group="concept")(pre)[0]  # the same two concepts, kept whole
    for b in range(3):
        nz = z[b] != 0
        assert int(nz.sum()) == math.ceil(0.1 * 40 * 2)  # 8 values over the two concepts
        assert (kept_concepts[b][nz] != 0).all()  # only inside the kept concepts
        kept_min = z[b][nz].min()
        dropped = kept_concepts[b][(~nz) & (kept_concepts[b] != 0)]
        assert (dropped <= kept_min).all()  # the largest of the pooled values
        torch.testing.assert_close(z[b][nz], pre[b][nz])
    assert domain_fraction(z) == pytest.approx(0.1)  # same codes per point as per-concept


def test_domain_pool_sample_round_trips_and_rejects_what_it_cannot_do():
    sp = make_sparsity(
        {"type": "topk", "k": 2, "group": "concept", "domain_frac": 0.2, "domain_pool": "sample"}, 6
    )
    assert make_sparsity(sp.config(), 6).config() == sp.config()
    assert "domain_pool" not in TopK(2, group="concept", domain_frac=0.2).config()  # old configs unchanged
    with pytest.raises(ValueError, match="domain_pool"):
        TopK(2, group="point", domain_frac=0.2, domain_pool="sample")
    with pytest.raises(ValueError, match="domain_pool"):
        TopK(2, group="concept", domain_pool="sample")  # no domain_frac to share
    with pytest.raises(ValueError, match="domain_pool"):
        ReLUL1(group="concept", domain_frac=0.2, domain_pool="sample")
    with pytest.raises(ValueError, match="unknown"):
        TopK(2, group="concept", domain_frac=0.2, domain_pool="grid")


def test_batchtopk_keeps_k_per_row_on_average_and_uses_threshold_in_eval():
    torch.manual_seed(1)
    s = BatchTopK(3)
    for _ in range(200):
        pre = torch.randn(128, 32)
        z, _ = s(pre)
        assert (z != 0).sum() == 3 * 128
        assert not ((z != 0).sum(1) == 3).all()  # varies per row
    s.eval()
    pre = torch.randn(20000, 32)
    z, _ = s(pre)
    torch.testing.assert_close(z, pre * (pre > s.threshold))
    # the learned threshold gives about k per row on the same distribution
    assert (z != 0).sum(1).float().mean().item() == pytest.approx(3.0, rel=0.15)


def test_batchtopk_threshold_is_saved_with_the_weights():
    sae = SAE(4, 8, sparsity="batchtopk")
    sae.forward_train(torch.randn(64, 4))
    state = sae.state_dict()
    assert state["sparsity.threshold"] > 0 and state["sparsity.n_updates"] == 1


def test_jumprelu_threshold_and_pseudo_gradients():
    s = JumpReLU(4, l0=1.0, threshold=0.5, bandwidth=0.2)
    pre = torch.tensor([[0.3, 0.45, 0.55, 1.0]], requires_grad=True)
    z, pen = s(pre)
    torch.testing.assert_close(z.detach(), torch.tensor([[0.0, 0.0, 0.55, 1.0]]))
    assert pen.item() == pytest.approx(2.0)  # l0 * number active
    (z.sum() + pen).backward()
    # x gets gradient only where active
    torch.testing.assert_close(pre.grad, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    # theta gets -(theta/eps) + (-1/eps) * l0 inside the window |x - theta| < eps/2, zero outside;
    # chain rule through log_threshold multiplies by theta
    theta, eps = 0.5, 0.2
    inside = -(theta / eps) - 1 / eps
    expected = torch.tensor([0.0, inside, inside, 0.0]) * theta
    torch.testing.assert_close(s.log_threshold.grad, expected)


def test_relu_l1_penalty_by_hand():
    pre = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
    z, pen = ReLUL1(l1=0.1)(pre)
    torch.testing.assert_close(z, pre.clamp_min(0))
    assert pen.item() == pytest.approx(0.1 * (4.0 + 1.0) / 2)


def test_domain_l1_penalty_by_hand():
    pre = torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])  # (1, 2 concepts, 2 points)
    z, pen = ReLUL1(l1=0.0, domain_l1=0.5)(pre)
    assert pen.item() == pytest.approx(0.5 * (1 + 2 + 0 + 0) / 2)


def test_make_sparsity_specs():
    assert isinstance(make_sparsity("topk", 16), TopK)
    s = make_sparsity({"type": "jump-relu", "l0": 0.2}, 16, default_group="concept")
    assert isinstance(s, JumpReLU) and s.group == "concept" and s.log_threshold.shape == (16,)
    assert make_sparsity(s.config(), 16).config() == s.config()


def test_code_stats_by_hand():
    z = torch.zeros(2, 3, 4)
    z[0, 0, :2] = 1.0  # sample 0: concept 0 on 2 of 4 points
    z[0, 2, :] = 1.0  # sample 0: concept 2 on 4 of 4 points
    z[1, 1, 3] = 2.0  # sample 1: concept 1 on 1 point
    assert l0_concepts(z) == pytest.approx(1.5)
    assert domain_fraction(z) == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert l0_per_point(z) == pytest.approx(7 / 8)
    acc = CodeStats(3)
    acc.update(z[:1])
    acc.update(z[1:])
    out = acc.compute()
    assert out["L0_concepts"] == pytest.approx(1.5)
    assert out["domain_fraction"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert out["L0_per_point"] == pytest.approx(7 / 8)
    assert out["dead_fraction"] == 0.0
    torch.testing.assert_close(out["density"], torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    assert math.isnan(domain_fraction(torch.ones(3, 4)))


def test_sae_fno_default_is_concept_topk():
    m = SAEFNO(3, 12, ndim=1, modes=3, sparsity={"type": "topk", "k": 4})
    z = m.encode(torch.randn(5, 3, 16))
    assert (l0_concepts(z) <= 4) and m.sparsity.group == "concept"
