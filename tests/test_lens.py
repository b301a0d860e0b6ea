"""The transformer-lens adapter (needs the ``lens`` extra) and the import isolation of saeno."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from neuralop.models import FNO

from saeno import HookedOperator


def test_import_saeno_does_not_import_transformer_lens() -> None:
    code = (
        "import sys, saeno, saeno.hooking, saeno.lens\n"
        "from saeno import HookedOperator\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('transformer_lens', 'transformers'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _hooked() -> HookedOperator:
    torch.manual_seed(0)
    model = FNO(
        n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2, domain_padding=0.2
    )
    return HookedOperator(model.eval())


@pytest.mark.lens
def test_lens_run_with_cache_matches_saeno() -> None:
    pytest.importorskip("transformer_lens")
    from transformer_lens import HookedRootModule

    from saeno.lens import as_hooked_root_module

    hooked = _hooked()
    lens = as_hooked_root_module(hooked)
    assert isinstance(lens, HookedRootModule)
    assert list(lens.hook_dict) == hooked.hook_names
    x = torch.randn(2, 1, 10, 10)
    with torch.no_grad():
        out, cache = hooked.run_with_cache(x)
        lens_out, lens_cache = lens.run_with_cache(x)
        _, some = lens.run_with_cache(x, names_filter=["blocks.1.hook_out", "lifting.hook_out"])
    assert torch.equal(out, lens_out)
    assert set(lens_cache) == set(cache)
    for name, t in cache.items():
        assert torch.equal(lens_cache[name], t), name
    assert set(some) == {"blocks.1.hook_out", "lifting.hook_out"}


@pytest.mark.lens
def test_lens_patching_replaces_activation() -> None:
    pytest.importorskip("transformer_lens")
    from saeno.lens import as_hooked_root_module

    hooked = _hooked()
    lens = as_hooked_root_module(hooked)
    x = torch.randn(2, 1, 10, 10)
    zero = lambda a, hook: torch.zeros_like(a)  # noqa: E731
    with torch.no_grad():
        ours = hooked.run_with_hooks(x, fwd_hooks=[("blocks.0.hook_out", zero)])
        theirs = lens.run_with_hooks(x, fwd_hooks=[("blocks.0.hook_out", zero)])
        plain = hooked.model(x)
    assert torch.equal(ours, theirs)
    assert not torch.allclose(theirs, plain)
    assert all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in hooked.model.modules())
