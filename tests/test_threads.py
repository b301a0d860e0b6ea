"""saeno.threads: policies set the wait policy and thread counts, and the spectral hook restores them."""

from __future__ import annotations

import pytest
import torch
from neuralop.models import FNO

from saeno import threads


def test_spectral1_runs_spectral_convolutions_with_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=1)
    conv = model.fno_blocks.convs[0]
    original = conv.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    conv.forward = spy
    try:
        threads.apply("spectral1")
        model(torch.randn(2, 1, 8, 8)).sum().backward()
        assert seen == [1]
        assert torch.get_num_threads() == 2  # restored after the forward and the backward
    finally:
        threads.remove()
        torch.set_num_threads(before)


def test_configure_keeps_the_users_wait_policy(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.configure("passive") == "passive"
    assert threads.passive_waiting() is False
    monkeypatch.delenv("OMP_WAIT_POLICY")
    threads.configure("passive")
    assert threads.passive_waiting()


@pytest.mark.parametrize("before", [(False, False), (True, False), (True, True)])
def test_deterministic_block_restores_the_previous_setting(before):
    import torch

    from saeno.threads import deterministic

    was = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        with pytest.raises(RuntimeError, match="inside"):
            with deterministic():
                assert torch.are_deterministic_algorithms_enabled()
                assert torch.is_deterministic_algorithms_warn_only_enabled()
                raise RuntimeError("inside")
        assert (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ) == before
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])
