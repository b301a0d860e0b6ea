"""Hook presets of neuraloperator's model families checked against hand-written forward passes.

For every family, at several depths and options: each captured field equals the field recomputed by
calling the model's own modules by hand (``family_hand``); capture-only hooks leave the output
bit-identical; replacing any hook point by itself changes nothing, and by zeros gives the hand-computed
forward with that field zeroed (its interior, on a domain-padded grid).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import family_hand as hand
from saeno.hooking import HookedOperator, PresetError
from saeno.hooking.hooked_operator import HookNotFiredWarning

neuralop_models = pytest.importorskip("neuralop.models")

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def _close(a, b):
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            _close(x, y)
        return
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def check_family(model, run_hand, args, kwargs, zero_names="all"):
    """Every check of the module docstring for one model and one input."""
    hooked = HookedOperator(model)
    names = hooked.hook_names
    with torch.no_grad():
        tap = hand.Tap()
        expected = run_hand(tap)
        plain = model(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("error", HookNotFiredWarning)
            out, cache = hooked.run_with_cache(*args, **kwargs)
    assert _same(out, plain), "capture-only hooks changed the output"
    _close(expected, plain)
    assert sorted(cache) == sorted(names), "the cache misses advertised hook points or has extra ones"
    assert set(tap.fields) == set(names), f"preset names {sorted(set(names) ^ set(tap.fields))} differ"
    for name in names:
        assert cache[name].shape == tap.fields[name].shape, name
        _close(cache[name], tap.fields[name])
    with torch.no_grad():
        same = hooked.run_with_hooks(*args, fwd_hooks=[("**", lambda a, hook: a.clone())], **kwargs)
    assert _same(same, plain), "replacing every hook point by itself changed the output"
    chosen = names if zero_names == "all" else zero_names
    for name in chosen:
        with torch.no_grad():
            zeroed = hooked.run_with_hooks(
                *args, fwd_hooks=[(name, lambda a, hook: torch.zeros_like(a))], **kwargs
            )
            want = run_hand(hand.Tap(zero=name))
        _close(zeroed, want)
    return hooked, cache


# ----------------------------------------------------------------------------------------------- UNO
UNO_CASES = {
    "2d-down-up-default-skips": dict(
        in_channels=1,
        out_channels=1,
        hidden_channels=6,
        lifting_channels=8,
        projection_channels=8,
        n_layers=3,
        uno_out_channels=[6, 8, 6],
        uno_n_modes=[[4, 4]] * 3,
        uno_scalings=[[1, 1], [0.5, 0.5], [2, 2]],
        channel_mlp_skip="linear",
    ),
    "1d-four-layers-two-skips-no-embedding": dict(
        in_channels=2,
        out_channels=1,
        hidden_channels=4,
        lifting_channels=8,
        projection_channels=8,
        n_layers=4,
        uno_out_channels=[4, 6, 6, 4],
        uno_n_modes=[[6], [4], [4], [6]],
        uno_scalings=[[1], [0.5], [1], [2]],
        horizontal_skips_map={3: 0, 2: 1},
        positional_embedding=None,
        channel_mlp_skip="linear",
    ),
    "2d-no-skips-upscaled-output": dict(
        in_channels=1,
        out_channels=2,
        hidden_channels=4,
        lifting_channels=4,
        projection_channels=4,
        n_layers=2,
        uno_out_channels=[4, 4],
        uno_n_modes=[[4, 4]] * 2,
        uno_scalings=[[1, 1], [2, 2]],
        horizontal_skips_map={},
        channel_mlp_skip="linear",
    ),
    "2d-domain-padding": dict(
        in_channels=1,
        out_channels=1,
        hidden_channels=4,
        lifting_channels=4,
        projection_channels=4,
        n_layers=3,
        uno_out_channels=[4, 4, 4],
        uno_n_modes=[[4, 4]] * 3,
        uno_scalings=[[1, 1], [0.5, 0.5], [2, 2]],
        channel_mlp_skip="linear",
        domain_padding=0.25,
    ),
}


@pytest.mark.parametrize("case", sorted(UNO_CASES))
def test_uno_fields_match_hand_forward(case):
    kwargs = UNO_CASES[case]
    model = hand.quiet(neuralop_models.UNO, **kwargs)
    x = torch.randn(2, kwargs["in_channels"], *([16] * len(kwargs["uno_n_modes"][0])))
    hooked, cache = check_family(model, lambda tap: hand.uno(model, x, tap), (x,), {})
    assert hooked.preset["name"] == "neuralop-uno"
    # each block output lives on its own grid: the input grid times the product of the scalings so far
    scale = 1.0
    for i, s in enumerate(kwargs["uno_scalings"]):
        scale *= s[0]
        assert tuple(cache[f"blocks.{i}.hook_out"].shape[2:]) == tuple(int(16 * scale) for _ in s)
    skips = set(model.horizontal_skips_map.values())
    assert {n for n in hooked.hook_names if n.startswith("horizontal_skips.")} == {
        f"horizontal_skips.{j}.hook_out" for j in skips
    }


def test_uno_padded_fields_are_cropped_to_each_blocks_own_grid():
    model = hand.quiet(neuralop_models.UNO, **UNO_CASES["2d-domain-padding"])
    x = torch.randn(1, 1, 16, 16)
    hooked = HookedOperator(model)
    with torch.no_grad():
        _, cropped = hooked.run_with_cache(x, "blocks.*.hook_out")
        _, kept = HookedOperator(model, keep_padding=True).run_with_cache(x, "blocks.*.hook_out")
    assert [tuple(cropped[f"blocks.{i}.hook_out"].shape[2:]) for i in range(3)] == [
        (16, 16),
        (8, 8),
        (16, 16),
    ]
    assert [tuple(kept[f"blocks.{i}.hook_out"].shape[2:]) for i in range(3)] == [(24, 24), (12, 12), (24, 24)]
    assert torch.equal(kept["blocks.1.hook_out"][..., 2:10, 2:10], cropped["blocks.1.hook_out"])


def test_fno_preset_forced_on_a_uno_fails_naming_the_mismatch():
    model = hand.quiet(neuralop_models.UNO, **UNO_CASES["2d-down-up-default-skips"])
    with pytest.raises(PresetError, match=r"fno_blocks is a ModuleList.*expects FNOBlocks"):
        HookedOperator(model, preset="neuralop-fno")


def test_uno_whose_tree_differs_from_the_preset_fails():
    model = hand.quiet(neuralop_models.UNO, **UNO_CASES["2d-down-up-default-skips"])
    model.fno_blocks[1] = nn.Identity()
    with pytest.raises(PresetError, match=r"UNO.fno_blocks.1 is a Identity"):
        HookedOperator(model)


def test_a_wrapper_holding_a_uno_gets_the_uno_names():
    class Wrapper(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.net = inner

        def forward(self, x):
            return 2 * self.net(x)

    model = hand.quiet(neuralop_models.UNO, **UNO_CASES["2d-down-up-default-skips"])
    hooked = HookedOperator(Wrapper(model))
    assert hooked.operator_path == "net"
    assert (
        "blocks.1.hook_out" in hooked.hook_names
        and hooked.hook_points["blocks.1.hook_out"].module_path == "net.fno_blocks.1"
    )


def test_a_hook_point_that_does_not_fire_is_reported():
    model = hand.quiet(neuralop_models.UNO, **UNO_CASES["2d-down-up-default-skips"])
    preset = {
        "name": "bad",
        "match": {"classes": ["UNO"]},
        "points": [
            {"name": "unused.hook_out", "module": "horizontal_skips", "at": "output"},
            {"name": "hook_out", "module": "@root", "at": "output"},
        ],
    }
    hooked = HookedOperator(model, preset=preset)
    with pytest.warns(HookNotFiredWarning, match="unused.hook_out"):
        _, cache = hooked.run_with_cache(torch.randn(1, 1, 16, 16))
    assert list(cache) == ["hook_out"]


# ----------------------------------------------------------------------------------------------- UQNO
def _fno(**kw):
    base = dict(n_modes=(4,), hidden_channels=4, in_channels=1, out_channels=1, n_layers=2)
    return hand.quiet(neuralop_models.FNO, **(base | kw))


@pytest.mark.parametrize("residual_layers,padding", [(None, None), (3, None), (1, 0.25)])
def test_uqno_names_base_and_residual_models_under_their_prefixes(residual_layers, padding):
    base = _fno(domain_padding=padding)
    residual = None if residual_layers is None else _fno(n_layers=residual_layers, domain_padding=padding)
    model = neuralop_models.UQNO(base, residual).eval()
    x = torch.randn(2, 1, 16)
    hooked, cache = check_family(model, lambda tap: hand.uqno(model, x, tap), (x,), {})
    n_res = 2 if residual_layers is None else residual_layers
    assert hooked.preset["name"] == "neuralop-uqno"
    assert (
        f"residual.blocks.{n_res - 1}.hook_out" in cache and f"residual.blocks.{n_res}.hook_out" not in cache
    )
    assert hooked.in_channels == 1 and hooked.ndim == 1
    assert torch.equal(cache["base.hook_out"], model.base_model(x))


# ----------------------------------------------------------------------------------------------- CODANO
@pytest.mark.parametrize("n_layers,padding", [(1, None), (2, 0.25)])
def test_codano_tokens_and_attention_blocks(n_layers, padding):
    model = hand.quiet(
        neuralop_models.CODANO,
        n_layers=n_layers,
        n_modes=[[4, 4]] * n_layers,
        hidden_variable_codimension=2,
        lifting_channels=4,
        projection_channels=4,
        output_variable_codimension=1,
        per_layer_scaling_factors=[[1, 1]] * n_layers,
        n_heads=[1] * n_layers,
        attention_scaling_factors=[1] * n_layers,
        domain_padding=padding,
    )
    x = torch.randn(2, 3, 16, 16)
    hooked, cache = check_family(model, lambda tap: hand.codano(model, x, tap), (x,), {})
    assert hooked.preset["name"] == "neuralop-codano"
    assert cache["blocks.0.attention.hook_out"].shape == (2, 3 * 2, 16, 16)  # 3 variables, 2 channels each


# ----------------------------------------------------------------------------------------------- FNOGNO / GINO
def _latent_grid(n=8):
    axes = torch.linspace(0, 1, n)
    return torch.stack(torch.meshgrid(axes, axes, indexing="ij"), -1)


@pytest.mark.parametrize("n_layers", [1, 3])
def test_fnogno_fno_names_and_gno_stage(n_layers):
    model = hand.quiet(
        neuralop_models.FNOGNO,
        in_channels=1,
        out_channels=2,
        gno_coord_dim=2,
        fno_n_modes=(4, 4),
        fno_hidden_channels=4,
        fno_n_layers=n_layers,
        gno_radius=0.3,
        gno_use_open3d=False,
        gno_use_torch_scatter=False,
        gno_channel_mlp_hidden_layers=[8],
        gno_embed_channels=4,
        projection_channel_ratio=2,
        fno_lifting_channel_ratio=2,
    )
    in_p, out_p, f = _latent_grid(), torch.rand(17, 2), torch.randn(8, 8, 1)
    kwargs = dict(out_p=out_p, f=f)
    hooked, cache = check_family(model, lambda tap: hand.fnogno(model, in_p, out_p, f, tap), (in_p,), kwargs)
    assert hooked.preset["name"] == "neuralop-fnogno"
    assert cache[f"blocks.{n_layers - 1}.hook_out"].shape == (1, 4, 8, 8)
    assert cache["gno.hook_out"].shape == (1, 4, 17) and cache["hook_out"].shape == (1, 2, 17)


@pytest.mark.parametrize("n_layers,batch", [(1, 1), (2, 2)])
def test_gino_gno_in_fno_and_gno_out(n_layers, batch):
    model = hand.tiny_gino(n_layers)
    geom, latent, queries = torch.rand(1, 23, 2), _latent_grid().unsqueeze(0), torch.rand(1, 11, 2)
    x = torch.randn(batch, 23, 1)
    kwargs = dict(latent_queries=latent, output_queries=queries, x=x)
    hooked, cache = check_family(
        model, lambda tap: hand.gino(model, geom, latent, queries, x, tap), (geom,), kwargs
    )
    assert hooked.preset["name"] == "neuralop-gino"
    assert cache["gno_in.hook_out"].shape == (batch, 3, 64)  # the latent grid's 8 x 8 points
    assert cache["lifting.hook_out"].shape == (batch, 4, 8, 8)
    assert cache["gno_out.hook_out"].shape == (batch, 4, 11)


# ----------------------------------------------------------------------------------------------- FNO unchanged
@pytest.mark.parametrize("padding", [None, 0.25])
def test_fno_preset_still_matches_the_hand_forward(padding):
    model = hand.quiet(
        neuralop_models.FNO,
        n_modes=(4, 4),
        hidden_channels=4,
        in_channels=1,
        out_channels=1,
        n_layers=3,
        domain_padding=padding,
    )
    x = torch.randn(2, 1, 16, 16)
    hooked, _ = check_family(
        model,
        lambda tap: hand.fno(model, x, tap),
        (x,),
        {},
        zero_names=["lifting.hook_out", "blocks.1.spectral.hook_out", "blocks.2.hook_out"],
    )
    assert hooked.preset["name"] == "neuralop-fno"


# ----------------------------------------------------------------------------------------------- preset checks
def test_uqno_whose_base_model_no_preset_knows_fails_naming_it():
    model = neuralop_models.UQNO(nn.Sequential(nn.Conv1d(1, 1, 1)), _fno())
    with pytest.raises(PresetError, match=r"no hook preset matches its submodel 'base_model' \(Sequential\)"):
        HookedOperator(model)


def test_fno_whose_layer_count_disagrees_with_its_blocks_fails():
    model = _fno(n_layers=3)
    model.n_layers = 2  # the attribute the names are expanded over no longer matches fno_blocks.convs
    with pytest.raises(PresetError, match=r"fno_blocks.convs holds 3 modules but FNO.n_layers is 2"):
        HookedOperator(model)


def test_a_preset_with_an_unknown_layout_is_refused():
    preset = {
        "name": "bad-layout",
        "match": {"classes": ["FNO"]},
        "points": [{"name": "hook_out", "module": "@root", "at": "output", "layout": "rows"}],
    }
    with pytest.raises(PresetError, match=r"layout='rows'"):
        HookedOperator(_fno(), preset=preset)


def test_a_custom_module_shaped_like_an_fno_but_holding_a_list_is_not_taken_for_one():
    class LooksLikeFNO(nn.Module):
        def __init__(self):
            super().__init__()
            self.lifting, self.projection = nn.Conv1d(1, 4, 1), nn.Conv1d(4, 1, 1)
            self.fno_blocks = nn.ModuleList([nn.Conv1d(4, 4, 1)])
            self.n_layers, self.in_channels, self.n_dim = 1, 1, 1

        def forward(self, x):
            return self.projection(self.fno_blocks[0](self.lifting(x)))

    with pytest.warns(UserWarning, match="no hook preset matches"):
        hooked = HookedOperator(LooksLikeFNO())
    assert hooked.preset is None and "fno_blocks.0.hook_out" in hooked.hook_names
