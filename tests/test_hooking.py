"""HookedOperator on neuraloperator FNO/TFNO: captured fields against a recomputation by hand.

The reference below calls the model's submodules in the order of neuraloperator 2.0's ``FNO.forward``
and ``FNOBlocks.forward_with_postactivation`` / ``forward_with_preactivation`` (read from its source), pads
with ``F.pad`` by ``round(p * r)`` cells per side as ``DomainPadding.pad`` does, and never uses saeno's
hook code.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from neuralop.layers.complex import CGELU
from neuralop.models import FNO, TFNO
from torch import nn

from saeno import HookedOperator
from saeno.errors import HookNameError, SaenoError, ShapeError
from saeno.hooking import NoPresetWarning


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP contention on a shared CPU (about 5x faster here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


GRID = {1: (12,), 2: (12, 10), 3: (8, 8, 6)}
PAD = 0.25
VARIANTS = ["plain", "tfno", "padding", "complex", "no_embedding", "preactivation"]


def build(ndim: int, n_layers: int, variant: str, in_channels: int = 2) -> nn.Module:
    kwargs = dict(
        n_modes=(4,) * ndim, in_channels=in_channels, out_channels=1, hidden_channels=8, n_layers=n_layers
    )
    if variant == "padding":
        kwargs["domain_padding"] = PAD
    if variant == "complex":
        kwargs["complex_data"] = True
    if variant == "no_embedding":
        kwargs["positional_embedding"] = None
    if variant == "preactivation":
        kwargs["preactivation"] = True
    torch.manual_seed(ndim * 10 + n_layers)
    cls = TFNO if variant == "tfno" else FNO
    return cls(**kwargs).eval()


def make_input(model: nn.Module, ndim: int, batch: int = 2) -> torch.Tensor:
    dtype = torch.complex64 if model.complex_data else torch.float32
    g = torch.Generator().manual_seed(1)
    if dtype == torch.complex64:
        return torch.complex(
            torch.randn(batch, model.in_channels, *GRID[ndim], generator=g),
            torch.randn(batch, model.in_channels, *GRID[ndim], generator=g),
        )
    return torch.randn(batch, model.in_channels, *GRID[ndim], generator=g)


def reference(model: nn.Module, x: torch.Tensor, block_edit=None) -> tuple[torch.Tensor, dict, dict]:
    """Recompute every activation by calling submodules in neuraloperator's order.

    ``block_edit(i, cropped_block_output) -> tensor`` replaces block i's output (inside the padding).
    Returns (output, cropped activations, padded block activations).
    """
    fb = model.fno_blocks
    act = (lambda t: CGELU(t)) if model.complex_data else F.gelu
    acts, padded = {}, {}
    if model.positional_embedding is not None:
        x = model.positional_embedding(x)
        acts["embedding.hook_out"] = x
    x = model.lifting(x)
    acts["lifting.hook_out"] = x
    grid = x.shape[2:]
    amounts = [round(PAD * r) for r in grid] if model.domain_padding is not None else [0] * len(grid)
    interior = (Ellipsis,) + tuple(slice(a, r + a) for a, r in zip(amounts, grid))
    if model.domain_padding is not None:
        pad_arg = [p for a in reversed(amounts) for p in (a, a)]
        x = F.pad(x, pad_arg, mode="constant")

    def keep(name: str, t: torch.Tensor) -> None:
        padded[name] = t
        acts[name] = t[interior]

    n = model.n_layers
    for i in range(n):
        if fb.preactivation:
            x = act(x)
        skip = fb.fno_skips[i](x)
        mlp_skip = fb.channel_mlp_skips[i](x)
        spectral = fb.convs[i](x)
        keep(f"blocks.{i}.skip.hook_out", skip)
        keep(f"blocks.{i}.spectral.hook_out", spectral)
        h = spectral + skip
        if i < n - 1:
            h = act(h)
        mlp = fb.channel_mlp[i](h)
        keep(f"blocks.{i}.mlp.hook_out", mlp)
        h = mlp + mlp_skip
        if not fb.preactivation and i < n - 1:
            h = act(h)
        if block_edit is not None:
            h = h.clone()
            h[interior] = block_edit(i, h[interior])
        keep(f"blocks.{i}.hook_out", h)
        x = h
    x = x[interior]
    acts["projection.hook_in"] = x
    out = model.projection(x)
    acts["hook_out"] = out
    return out, acts, padded


def no_hooks_left(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._forward_hooks_with_kwargs
        for m in model.modules()
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_capture_matches_reference(ndim: int, n_layers: int, variant: str) -> None:
    model = build(ndim, n_layers, variant)
    x = make_input(model, ndim)
    with torch.no_grad():
        plain = model(x)
        ref_out, ref, _ = reference(model, x)
        hooked = HookedOperator(model)
        out, cache = hooked.run_with_cache(x)
    assert torch.equal(out, plain)
    assert torch.allclose(ref_out, plain, atol=1e-6)  # the reference follows neuralop's order
    assert set(hooked.hook_names) == set(ref)
    assert list(cache) and set(cache) == set(ref)
    for name, expected in ref.items():
        got = cache[name]
        assert got.shape == expected.shape, name
        assert got.shape[2:] == x.shape[2:], name  # always on the input grid
        assert got.dtype == expected.dtype, name
        assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5), name
    if variant == "complex":
        assert all(t.is_complex() for t in cache.values())
    assert no_hooks_left(model)


@pytest.mark.parametrize("variant", ["plain", "padding", "preactivation", "complex"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_block_replacement(ndim: int, variant: str) -> None:
    model = build(ndim, 3, variant)
    x = make_input(model, ndim)
    hooked = HookedOperator(model)
    with torch.no_grad():
        plain = model(x)
        for i in range(3):
            same = hooked.run_with_hooks(x, fwd_hooks=[(f"blocks.{i}.hook_out", lambda a, hook: a)])
            assert torch.equal(same, plain)
            zeroed = hooked.run_with_hooks(
                x, fwd_hooks=[(f"blocks.{i}.hook_out", lambda a, hook: torch.zeros_like(a))]
            )
            expected, _, _ = reference(
                model, x, block_edit=lambda j, a, i=i: torch.zeros_like(a) if j == i else a
            )
            assert torch.allclose(zeroed, expected, atol=1e-6)
            assert not torch.allclose(zeroed, plain, atol=1e-4)
    assert no_hooks_left(model)


def test_capture_only_hooks_keep_output_exact() -> None:
    model = build(2, 4, "padding")
    x = make_input(model, 2)
    hooked = HookedOperator(model)
    with torch.no_grad():
        plain = model(x)
        seen = []
        out = hooked.run_with_hooks(x, fwd_hooks=[("**", lambda a, hook: seen.append(hook.name))])
    assert torch.equal(out, plain)
    assert set(seen) == set(hooked.hook_names)


def test_keep_padding_gives_padded_fields() -> None:
    model = build(2, 2, "padding")
    x = make_input(model, 2)
    with torch.no_grad():
        _, _, padded = reference(model, x)
        _, cache = HookedOperator(model, keep_padding=True).run_with_cache(x, names_filter="blocks.**")
    assert set(cache) == set(padded)
    for name, t in padded.items():
        assert cache[name].shape[2:] == tuple(r + 2 * round(PAD * r) for r in GRID[2])
        assert torch.allclose(cache[name], t, atol=1e-6)


def test_padding_other_resolutions_in_turn() -> None:
    model = build(1, 2, "padding")
    hooked = HookedOperator(model)
    with torch.no_grad():
        for n in (12, 20, 9, 12):
            x = torch.randn(1, 2, n)
            _, ref, _ = reference(model, x)
            _, cache = hooked.run_with_cache(x, names_filter="blocks.1.hook_out")
            assert torch.allclose(cache["blocks.1.hook_out"], ref["blocks.1.hook_out"], atol=1e-6)


def test_hook_fns_chain_and_see_hook_name() -> None:
    model = build(1, 2, "plain")
    x = make_input(model, 1)
    hooked = HookedOperator(model)
    calls = []

    def double(a, *, hook):
        calls.append(hook.name)
        return 2 * a

    with torch.no_grad():
        _, ref, _ = reference(model, x)
        with hooked.hooks(fwd_hooks=[("lifting.hook_out", double)]):
            _, cache = hooked.run_with_cache(x, names_filter="lifting.hook_out")
    assert calls == ["lifting.hook_out"]
    assert torch.allclose(cache["lifting.hook_out"], 2 * ref["lifting.hook_out"])
    assert no_hooks_left(model)


def test_replacing_input_and_spectral_points() -> None:
    model = build(2, 2, "padding")
    x = make_input(model, 2)
    hooked = HookedOperator(model)
    with torch.no_grad():
        plain = model(x)
        out = hooked.run_with_hooks(
            x, fwd_hooks=[("projection.hook_in", lambda a, hook: torch.zeros_like(a))]
        )
        assert torch.allclose(out, model.projection(torch.zeros(2, 8, *GRID[2])))
        same = hooked.run_with_hooks(x, fwd_hooks=[("blocks.*.spectral.hook_out", lambda a, hook: a.clone())])
        assert torch.equal(same, plain)


def test_hooks_removed_after_exceptions() -> None:
    model = build(1, 2, "padding")
    x = make_input(model, 1)
    hooked = HookedOperator(model)

    def boom(a, *, hook):
        raise RuntimeError("user hook failed")

    with pytest.raises(RuntimeError, match="user hook failed"):
        hooked.run_with_hooks(x, fwd_hooks=[("blocks.0.hook_out", boom)])
    assert no_hooks_left(model)
    with pytest.raises(ValueError, match="inside"):
        with hooked.hooks(fwd_hooks=[("blocks.**", lambda a, hook: None)]):
            assert not no_hooks_left(model)
            raise ValueError("inside")
    assert no_hooks_left(model)
    with pytest.raises(ShapeError, match="blocks.1.hook_out"):
        hooked.run_with_hooks(x, fwd_hooks=[("blocks.1.hook_out", lambda a, hook: a[:, :2])])
    assert no_hooks_left(model)


def test_stop_at_ends_forward() -> None:
    model = build(2, 3, "plain")
    x = make_input(model, 2)
    hooked = HookedOperator(model)
    ran = []
    model.projection.register_forward_pre_hook(lambda m, a: ran.append(1))
    with torch.no_grad():
        _, ref, _ = reference(model, x)
        ran.clear()
        out, cache = hooked.run_with_cache(x, stop_at="blocks.1.hook_out")
    assert out is None and not ran
    names = hooked.hook_names
    assert set(cache) == set(names[: names.index("blocks.1.hook_out") + 1])
    assert "blocks.2.skip.hook_out" not in cache and "hook_out" not in cache
    assert torch.allclose(cache["blocks.1.hook_out"], ref["blocks.1.hook_out"], atol=1e-6)
    model.projection._forward_pre_hooks.clear()
    assert no_hooks_left(model)
    with pytest.raises(HookNameError, match="blocks.1.hook_out"):
        hooked.run_with_cache(x, stop_at="blocks.1.hookout")


def test_names_filter_forms() -> None:
    hooked = HookedOperator(build(1, 3, "plain"))
    names = hooked.hook_names
    assert hooked.resolve(None) == names
    assert hooked.resolve("blocks.2.hook_out") == ["blocks.2.hook_out"]
    # dotted globs: '*' and '?' stay within one segment, '**' crosses dots
    block_outs = [f"blocks.{i}.hook_out" for i in range(3)]
    assert hooked.resolve("blocks.?.hook_out") == block_outs
    assert hooked.resolve("blocks.*.hook_out") == block_outs
    assert hooked.resolve("blocks.**") == [n for n in names if n.startswith("blocks.")]
    assert hooked.resolve("**.hook_out") == [n for n in names if n.endswith(".hook_out")]
    assert hooked.resolve("blocks.[01].*.hook_out") == [
        n for n in names if n.startswith(("blocks.0.", "blocks.1.")) and n.count(".") == 3
    ]
    assert hooked.resolve("*.hook_in") == ["projection.hook_in"]
    with pytest.raises(HookNameError, match="matches no hook point"):
        hooked.resolve("*.spectral.hook_out")  # '*' does not cross the dot in 'blocks.0'

    assert hooked.resolve(["hook_out", "lifting.hook_out", "hook_out"]) == ["lifting.hook_out", "hook_out"]
    assert hooked.resolve(lambda n: n.endswith("mlp.hook_out")) == [
        f"blocks.{i}.mlp.hook_out" for i in range(3)
    ]
    x = make_input(hooked.model, 1)
    _, cache = hooked.run_with_cache(x, names_filter=["blocks.0.**", "hook_out"])
    assert set(cache) == {n for n in names if n.startswith("blocks.0.")} | {"hook_out"}


def test_error_messages() -> None:
    hooked = HookedOperator(build(2, 2, "plain", in_channels=3))
    with pytest.raises(HookNameError, match="Did you mean 'blocks.1.mlp.hook_out'"):
        hooked.resolve("blocks.1.mlp_hook_out")
    with pytest.raises(HookNameError, match="matches no hook point"):
        hooked.resolve("decoder.*")
    with pytest.raises(HookNameError, match="selects no hook point"):
        hooked.resolve(lambda n: False)
    with pytest.raises(HookNameError, match="empty list"):
        hooked.resolve([])
    with pytest.raises(ShapeError, match=r"\(B, 3, n, n\)"):
        hooked(torch.randn(2, 1, 8, 8))  # wrong channels
    with pytest.raises(ShapeError, match="x.unsqueeze\\(0\\)"):
        hooked(torch.randn(3, 8, 8))  # missing batch
    with pytest.raises(ShapeError, match="2 dimension"):
        hooked.run_with_cache(torch.randn(2, 3, 8))
    with pytest.raises(SaenoError, match="pairs"):
        hooked.run_with_hooks(torch.randn(1, 3, 8, 8), fwd_hooks=["hook_out"])
    assert no_hooks_left(hooked.model)


class Normalised(nn.Module):
    """A zoo-style wrapper: normalise x, run the FNO, de-normalise y."""

    def __init__(self, fno: nn.Module) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.tensor(0.5))
        self.register_buffer("y_scale", torch.tensor(3.0))
        self.inner = nn.ModuleDict({"fno": fno})

    def forward(self, x):
        return self.inner["fno"](x - self.x_mean) * self.y_scale


def test_wrapper_gets_the_same_names() -> None:
    fno = build(2, 2, "padding")
    wrapper = Normalised(fno).eval()
    x = make_input(fno, 2)
    bare, hooked = HookedOperator(fno), HookedOperator(wrapper)
    assert hooked.hook_names == bare.hook_names
    assert hooked.operator_path == "inner.fno" and hooked.operator is fno
    with torch.no_grad():
        out, cache = hooked.run_with_cache(x)
        ref_out, ref, _ = reference(fno, x - 0.5)
    assert torch.equal(out, wrapper(x))
    assert torch.equal(cache["hook_out"], out)  # the outer model's output
    assert torch.allclose(cache["projection.hook_in"], ref["projection.hook_in"], atol=1e-6)
    assert torch.allclose(cache["blocks.1.hook_out"], ref["blocks.1.hook_out"], atol=1e-6)


def test_unknown_model_gets_generic_names_with_warning() -> None:
    model = nn.Sequential(nn.Conv1d(2, 4, 1), nn.ReLU())
    with pytest.warns(NoPresetWarning, match="no hook preset matches Sequential"):
        hooked = HookedOperator(model)
    assert hooked.hook_names == ["hook_out", "0.hook_out", "1.hook_out"]
    x = torch.randn(3, 2, 5)
    out, cache = hooked.run_with_cache(x)
    assert torch.equal(cache["0.hook_out"], model[0](x))
    assert torch.equal(cache["hook_out"], out) and torch.equal(out, torch.relu(model[0](x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert HookedOperator(model, preset="all-modules").hook_names == hooked.hook_names


def test_persistent_hooks_and_reset() -> None:
    model = build(1, 2, "plain")
    x = make_input(model, 1)
    hooked = HookedOperator(model)
    with torch.no_grad():
        plain = model(x)
        hooked.add_hook("blocks.1.hook_out", lambda a, hook: torch.zeros_like(a))
        patched = model(x)  # the torch hooks act on the model itself until reset_hooks
        hooked.reset_hooks()
        assert torch.equal(model(x), plain)
    assert torch.allclose(patched, model.projection(torch.zeros(2, 8, *GRID[1])))
    assert no_hooks_left(model)


def test_cache_device_and_detached() -> None:
    model = build(1, 1, "plain")
    x = make_input(model, 1).requires_grad_(True)
    out, cache = HookedOperator(model).run_with_cache(x, device="cpu")
    assert out.requires_grad and not any(t.requires_grad for t in cache.values())
