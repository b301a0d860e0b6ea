"""saeno.hooking.fingerprint: stable for a reloaded copy, sensitive to any weight and to the config."""

from __future__ import annotations

import hashlib

import torch
from neuralop.models import FNO
from torch import nn

from saeno import HookedOperator
from saeno.hooking import example_model, fingerprint

KW = dict(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)


def _fno(seed: int, **extra) -> nn.Module:
    torch.manual_seed(seed)
    return FNO(**{**KW, **extra})


def test_reloaded_copy_has_the_same_fingerprint() -> None:
    a = _fno(0)
    b = _fno(1)  # same config, other weights
    assert fingerprint(a) != fingerprint(b)
    state = {k: v for k, v in a.state_dict().items() if isinstance(v, torch.Tensor)}
    b.load_state_dict(state, strict=False)
    assert fingerprint(b) == fingerprint(a)
    assert len(fingerprint(a)) == 64 and int(fingerprint(a), 16) >= 0


def test_one_changed_weight_changes_the_fingerprint() -> None:
    model = _fno(0)
    before = fingerprint(model)
    with torch.no_grad():
        model.projection.fcs[1].bias[0] += 1e-6
    assert fingerprint(model) != before
    assert fingerprint(_fno(0)) == before


def test_config_and_class_enter_the_fingerprint() -> None:
    a = _fno(0)
    b = _fno(0, lifting_channel_ratio=2.0)  # same weights (2 == 2.0) but another recorded config
    assert [t.shape for t in a.state_dict().values() if isinstance(t, torch.Tensor)] == [
        t.shape for t in b.state_dict().values() if isinstance(t, torch.Tensor)
    ]
    assert fingerprint(a) != fingerprint(b)


def test_hooked_operator_is_unwrapped_and_example_models_are_seeded() -> None:
    model = example_model("example-fno1d")
    assert fingerprint(HookedOperator(model)) == fingerprint(model)
    assert fingerprint(example_model("example-fno1d")) == fingerprint(model)
    assert fingerprint(example_model("example-fno1d", seed=1)) != fingerprint(model)


def test_plain_module_digest_matches_independent_hash() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    h = hashlib.sha256()
    h.update(b'{"class": "torch.nn.modules.linear.Linear", "config": {}}')
    h.update(b'["weight", "torch.float32", [1, 2]]')
    h.update(torch.tensor([1.0, -2.0]).numpy().tobytes())
    assert fingerprint(model) == h.hexdigest()
