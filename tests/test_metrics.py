"""The one relative L2 error (saeno.metrics.relative_l2) against hand computations."""

import numpy as np
import pytest
import torch

from saeno.metrics import EPS, relative_l2


def test_relative_l2_matches_hand_computation():
    # sample 0: pred - target = (3, 4) over a target of norm 5 -> 5 / 5; sample 1: exact -> 0
    target = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])  # (B=2, C=1, grid=2)
    pred = torch.tensor([[[6.0, 8.0]], [[1.0, 0.0]]])
    out = relative_l2(pred, target)
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    assert out.tolist() == pytest.approx([1.0, 0.0])


def test_zero_target_is_floored_not_divided_by_zero():
    target = torch.zeros(2, 1, 3)
    pred = torch.stack([torch.zeros(1, 3), torch.tensor([[0.0, 3e-12, 4e-12]])])
    out = relative_l2(pred, target)
    assert torch.isfinite(out).all()
    assert out[0].item() == 0.0
    assert out[1].item() == pytest.approx(5e-12 / EPS)  # ||pred|| / eps
    assert relative_l2(pred, target, eps=1e-6)[1].item() == pytest.approx(5e-12 / 1e-6)


def test_numpy_and_mixed_inputs_give_float64_numpy():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    p = t + rng.normal(size=t.shape).astype(np.float32) * 0.1
    hand = np.sqrt(
        ((p.astype(np.float64) - t) ** 2).sum(axis=(1, 2, 3))
        / (t.astype(np.float64) ** 2).sum(axis=(1, 2, 3))
    )
    for a, b in [(p, t), (torch.from_numpy(p), t), (p, torch.from_numpy(t))]:
        out = relative_l2(a, b)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        np.testing.assert_allclose(out, hand, rtol=1e-6)
    np.testing.assert_allclose(relative_l2(torch.from_numpy(p), torch.from_numpy(t)).numpy(), hand, rtol=1e-5)


def test_complex_fields_use_the_modulus_and_gradients_flow():
    target = torch.tensor([[3.0 + 4.0j]])
    pred = torch.tensor([[0.0 + 0.0j]])
    assert relative_l2(pred, target).item() == pytest.approx(1.0)
    p = torch.tensor([[2.0, 0.0]], requires_grad=True)
    relative_l2(p, torch.tensor([[1.0, 0.0]])).sum().backward()
    assert p.grad is not None and p.grad[0].tolist() == pytest.approx([1.0, 0.0])
