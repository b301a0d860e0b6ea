"""Loss-free load balancing of the concept TopK (``TopK(balance=...)``)."""

from __future__ import annotations

import pytest
import torch

from saeno.sae import SAEFNO
from saeno.sae.sparsity import SparsityConfigError, TopK, concept_scores, make_sparsity


def _fixed_pre(b: int, p: int, n: int) -> torch.Tensor:
    """Pre-activations whose concept scores fall with the concept index (all positive somewhere)."""
    g = torch.Generator().manual_seed(0)
    scale = torch.linspace(2.0, 0.2, p).view(1, p, 1)
    return scale * (torch.rand(b, p, n, generator=g) + 0.05) * (1 + 0.1 * torch.randn(b, p, n, generator=g))


def test_offset_changes_the_selection_never_the_kept_values():
    s = make_sparsity({"type": "topk", "k": 2, "group": "concept", "balance": 0.1}, 5)
    s.eval()
    pre = _fixed_pre(4, 5, 16)
    s.balance_offset.copy_(torch.tensor([-10.0, 0.0, 0.0, 0.0, 10.0]))
    z, _ = s(pre)
    chosen = z.flatten(2).abs().sum(-1) > 0
    expect = (concept_scores(pre.relu()) + s.balance_offset).topk(2, dim=1).indices
    assert chosen.sum(1).tolist() == [2] * 4
    assert torch.equal(chosen, torch.zeros_like(chosen).scatter_(1, expect, True))
    assert chosen[:, 4].all() and not chosen[:, 0].any()  # the offsets decided, not the scores
    torch.testing.assert_close(z[chosen], pre.relu()[chosen])  # kept values are relu(pre), unshifted


def test_balancing_brings_rarely_chosen_concepts_back_and_only_while_training():
    pre = _fixed_pre(8, 6, 16)
    plain = TopK(2, group="concept").train()
    z, _ = plain(pre)
    assert (z.flatten(2).abs().sum(-1) > 0).any(0).sum() == 2  # the two strongest always win
    bal = make_sparsity({"type": "topk", "k": 2, "group": "concept", "balance": 0.05}, 6).train()
    ever = torch.zeros(6, dtype=torch.bool)
    for _ in range(200):
        z, _ = bal(pre)
        ever |= (z.flatten(2).abs().sum(-1) > 0).any(0)
    assert ever.all()
    assert bal.balance_offset[-1] > bal.balance_offset[0]  # the weakest concept was nudged up
    frozen = bal.balance_offset.clone()
    bal.eval()
    bal(pre)
    assert torch.equal(bal.balance_offset, frozen)


def test_a_concept_with_no_positive_score_is_never_chosen_for_its_offset():
    s = make_sparsity({"type": "topk", "k": 2, "group": "concept", "balance": 0.1}, 4).eval()
    pre = _fixed_pre(3, 4, 8)
    pre[:, 3] = -1.0
    s.balance_offset.copy_(torch.tensor([0.0, 0.0, 0.0, 100.0]))
    z, _ = s(pre)
    assert not z[:, 3].any()
    assert ((z.flatten(2).abs().sum(-1) > 0).sum(1) == 2).all()


def test_balance_offset_is_saved_and_restored_with_the_model():
    sae = SAEFNO(
        3, 6, ndim=1, modes=3, sparsity={"type": "topk", "k": 2, "group": "concept", "balance": 0.02}
    )
    sae.sparsity.balance_offset.copy_(torch.arange(6.0))
    again = SAEFNO.from_config(sae.config())
    assert again.sparsity.balance == 0.02
    again.load_state_dict(sae.state_dict())
    assert torch.equal(again.sparsity.balance_offset, torch.arange(6.0))
    # a model without balancing has no such buffer: older weights still load
    assert (
        "sparsity.balance_offset"
        not in SAEFNO(3, 6, ndim=1, modes=3, sparsity={"type": "topk", "k": 2}).state_dict()
    )


def test_balance_is_rejected_where_it_does_not_apply():
    with pytest.raises(SparsityConfigError, match="balance"):
        make_sparsity({"type": "topk", "k": 2, "balance": -1.0}, 4)
    with pytest.raises(SparsityConfigError, match="BatchTopK"):
        make_sparsity({"type": "batchtopk", "k": 2, "balance": 0.1}, 4)


def test_revive_rule_raises_only_unchosen_concepts_and_never_pushes_any_below_zero():
    pre = _fixed_pre(8, 6, 16)
    s = make_sparsity(
        {"type": "topk", "k": 2, "group": "concept", "balance": 0.05, "balance_rule": "revive"}, 6
    ).train()
    ever = torch.zeros(6, dtype=torch.bool)
    for _ in range(200):
        z, _ = s(pre)
        ever |= (z.flatten(2).abs().sum(-1) > 0).any(0)
        assert (s.balance_offset >= 0).all()
    assert ever.all()
    assert s.balance_offset[0] == 0  # the strongest concept is always chosen: never raised
    with pytest.raises(SparsityConfigError, match="balance_rule"):
        make_sparsity({"type": "topk", "k": 2, "balance": 0.1, "balance_rule": "even"}, 4)


def test_sae_fno_default_balances_in_the_class_the_cli_and_the_demo_source():
    import argparse
    import inspect

    from saeno import demo
    from saeno.cli import train_cmd
    from saeno.sae.sae_fno import DEFAULT_SPARSITY

    cfg = SAEFNO(4, 32, ndim=2).sparsity.config()
    assert cfg["balance"] == 0.01 and cfg["balance_rule"] == "revive" and cfg["k"] == 32  # 64, capped
    parser = argparse.ArgumentParser()
    train_cmd.add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["train", "--store", "s.zarr", "--arch", "sae-fno", "--out", "x"])
    args.concepts = args.concepts or 32
    built = train_cmd.build_sae(args, 4, (16, 16)).sparsity.config()
    assert built["balance"] == DEFAULT_SPARSITY["balance"] and built["balance_rule"] == "revive"
    assert {k: built[k] for k in ("k", "domain_frac", "domain_pool")} == {
        "k": 32,  # the default 64, capped at --concepts 32
        "domain_frac": DEFAULT_SPARSITY["domain_frac"],
        "domain_pool": DEFAULT_SPARSITY["domain_pool"],
    }
    args.concepts, args.domain_pool, args.domain_frac = 8, "concept", 0.5  # flags override, k capped
    built = train_cmd.build_sae(args, 4, (16, 16)).sparsity.config()
    assert built["k"] == 8 and built["domain_frac"] == 0.5 and "domain_pool" not in built
    assert "DEFAULT_SPARSITY" in inspect.getsource(demo)
