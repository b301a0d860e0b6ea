"""The fast training execution of a neuraloperator FNO computes the plain forward's function and gradients."""

from __future__ import annotations

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv
from neuralop.models import FNO

from saeno.zoo.fast_forward import fast_forward
from saeno.zoo.operator import ZooOperator
from saeno.zoo.training import fit_loop


def _fno(n_modes, hidden=8, layers=2, **kw):
    torch.manual_seed(0)
    return FNO(n_modes=n_modes, hidden_channels=hidden, n_layers=layers, in_channels=1, out_channels=1, **kw)


def _output_and_grads(model, x):
    y = model(x)
    grads = torch.autograd.grad(
        (y * torch.linspace(-1, 2, y.numel()).reshape(y.shape)).sum(), list(model.parameters())
    )
    return y.detach(), grads


def _close(a, b, tol):
    return (a - b).abs().max().item() <= tol * max(a.abs().max().item(), 1e-30)


@pytest.mark.parametrize(
    "n_modes, grid",
    [
        ((8, 8), (32, 32)),
        ((8, 8), (64, 64)),
        ((8, 8), (16, 16)),
        ((5, 7), (17, 21)),
        ((16,), (128,)),
        ((7,), (30,)),
    ],
)
def test_outputs_and_gradients_match_the_plain_forward(n_modes, grid):
    model = _fno(n_modes)
    x = torch.randn(3, 1, *grid)
    y0, g0 = _output_and_grads(model, x)
    with fast_forward(model) as n_fast:
        y1, g1 = _output_and_grads(model, x)
    # every kernel-1 Conv1d (lifting 2, projection 2, skips 2, channel MLPs 4) and both spectral convs
    assert n_fast == 12
    assert _close(y0, y1, 1e-5)
    for a, b in zip(g0, g1):
        assert a.dtype == b.dtype and _close(a, b, 1e-4)


def test_model_is_left_plain_and_unchanged():
    model = ZooOperator(_fno((8, 8)), 1, 1, 0.5, 2.0, 0.1, 3.0)
    x = torch.randn(2, 1, 32, 32)
    before = model(x).detach()
    state = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    with fast_forward(model):
        assert any("forward" in vars(m) for m in model.modules())
        model(x).sum().backward()
    assert not any("forward" in vars(m) for m in model.modules())
    after = {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}
    assert state.keys() == after.keys()
    assert all(torch.equal(state[k], v) for k, v in after.items())
    assert torch.equal(model(x).detach(), before)  # the plain forward again, bit for bit


def test_an_error_inside_the_block_still_restores_the_plain_forward():
    model = _fno((4, 4))
    with pytest.raises(RuntimeError, match="boom"), fast_forward(model):
        raise RuntimeError("boom")
    assert not any("forward" in vars(m) for m in model.modules())


def test_uncovered_cases_run_the_module_forward():
    torch.manual_seed(1)
    tucker = SpectralConv(4, 4, n_modes=(4, 4), factorization="tucker", rank=0.5)
    dense = SpectralConv(4, 4, n_modes=(4, 4))
    x = torch.randn(2, 4, 16, 16)
    with fast_forward(tucker) as n_tucker:
        assert n_tucker == 0
    ref = dense(x, output_shape=(24, 24))
    with fast_forward(dense) as n_dense:
        assert n_dense == 1
        # another output shape, a grid with fewer points than the kept modes: the module's own forward
        assert torch.equal(dense(x, output_shape=(24, 24)), ref)
        small = torch.randn(2, 4, 3, 3)
        small_out = dense(small)
    assert torch.equal(small_out, dense(small))


def test_fit_loop_fast_follows_the_plain_loop():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 16, 16) + 0.5
    y = torch.sin(x) + 0.1
    hp = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "seed": 0}
    losses = {}
    params = {}
    for fast in (False, True):
        model = _fno((4, 4))
        _, losses[fast] = fit_loop(model, x, y, hp, device=torch.device("cpu"), progress=False, fast=fast)
        params[fast] = [p.detach().clone() for p in model.parameters()]
        assert not any("forward" in vars(m) for m in model.modules())
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    for a, b in zip(params[False], params[True]):
        assert (a - b).abs().max() < 1e-5


def test_evaluate_rel_l2_equals_the_plain_forward_error():
    from saeno.zoo.training import evaluate_rel_l2

    model = _fno((8, 8)).eval()
    x, y = torch.randn(5, 1, 32, 32), torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        pred = model(x)
    want = ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean().item()
    assert evaluate_rel_l2(model, x, y, batch_size=2) == pytest.approx(want, rel=1e-5)
    assert not any("forward" in vars(m) for m in model.modules())


def _halves_grads(model, x, y, monkeypatch, cores):
    from saeno.zoo import training

    monkeypatch.setattr(training, "usable_cores", lambda: cores)
    params = list(model.parameters())
    step = training.HalvesStep(model, params)
    assert (step.pool is not None) == (cores >= 2)
    try:
        with fast_forward(model):
            loss = step(x, y)
    finally:
        step.close()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return loss, grads


@pytest.mark.parametrize("batch", [9, 8, 1])
def test_halves_step_is_the_whole_batch_gradient_in_parallel_or_not(monkeypatch, batch):
    from saeno.metrics import relative_l2

    model = _fno((4, 4))
    torch.manual_seed(1)
    x, y = torch.rand(batch, 1, 16, 16) + 0.5, torch.randn(batch, 1, 16, 16)
    params = list(model.parameters())
    loss = relative_l2(model(x), y).mean()  # plain forward, one pass over the batch
    want = torch.autograd.grad(loss, params)
    threads = torch.get_num_threads()
    got_parallel = _halves_grads(model, x, y, monkeypatch, cores=2)
    got_serial = _halves_grads(model, x, y, monkeypatch, cores=1)
    assert torch.get_num_threads() == threads
    assert got_parallel[0] == pytest.approx(loss.item(), rel=1e-5)
    assert got_parallel[0] == got_serial[0]
    for w, g, s in zip(want, got_parallel[1], got_serial[1]):
        assert torch.equal(g, s)  # the same halves and thread count whether or not they run at once
        assert _close(g, w, 1e-4)


def test_fit_loop_halves_follow_the_one_pass_loop():
    torch.manual_seed(0)
    x = torch.rand(20, 1, 16, 16) + 0.5
    y = torch.sin(x) + 0.1
    hp = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "seed": 0}
    losses, params = {}, {}
    for halves in (False, True):
        model = _fno((4, 4))
        _, losses[halves] = fit_loop(
            model, x, y, hp, device=torch.device("cpu"), progress=False, halves=halves
        )
        params[halves] = [p.detach().clone() for p in model.parameters()]
        assert not any("forward" in vars(m) for m in model.modules())
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    for a, b in zip(params[False], params[True]):
        assert (a - b).abs().max() < 1e-5
