"""Preset files: matching, optional points, custom presets and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from neuralop.models import FNO
from torch import nn

from saeno import HookedOperator
from saeno.hooking import PresetError, load_presets, preset_names
from saeno.hooking.presets import get_preset


def _fno(**extra) -> nn.Module:
    torch.manual_seed(0)
    kw = dict(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    return FNO(**{**kw, **extra}).eval()


def test_shipped_presets_load_and_tfno_extends_fno() -> None:
    presets = {p["name"]: p for p in load_presets()}
    assert {"neuralop-fno", "neuralop-tfno"} <= set(presets)
    assert presets["neuralop-tfno"]["points"] == presets["neuralop-fno"]["points"]
    assert "all-modules" in preset_names()


def test_absent_modules_give_no_points() -> None:
    model = _fno(fno_skip=None, use_channel_mlp=False, positional_embedding=None)
    hooked = HookedOperator(model)
    assert hooked.hook_names == [
        "lifting.hook_out",
        "blocks.0.spectral.hook_out",
        "blocks.0.hook_out",
        "blocks.1.spectral.hook_out",
        "blocks.1.hook_out",
        "projection.hook_in",
        "hook_out",
    ]
    x = torch.randn(2, 1, 12)
    with torch.no_grad():
        out, cache = hooked.run_with_cache(x)
        # without skips and channel MLP, FNOBlocks still applies its nonlinearity twice per layer
        # (after the convolution and after the absent MLP), and none on the last layer
        gelu = torch.nn.functional.gelu
        assert torch.allclose(cache["blocks.1.hook_out"], cache["blocks.1.spectral.hook_out"])
        assert torch.allclose(cache["blocks.0.hook_out"], gelu(gelu(cache["blocks.0.spectral.hook_out"])))
        assert torch.equal(out, model(x))


def test_custom_preset_file_and_dict(tmp_path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Conv1d(1, 4, 1)
            self.dec = nn.Conv1d(4, 1, 1)

        def forward(self, x):
            return self.dec(torch.tanh(self.enc(x)))

    preset = {
        "name": "toy",
        "match": {"classes": ["Net"]},
        "points": [
            {"name": "enc.hook_out", "module": "enc", "at": "output"},
            {"name": "dec.hook_in", "module": "dec", "at": "input"},
        ],
    }
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(preset))
    net = Net()
    x = torch.randn(2, 1, 7)
    for given in (preset, str(path)):
        hooked = HookedOperator(net, preset=given)
        _, cache = hooked.run_with_cache(x)
        assert hooked.hook_names == ["enc.hook_out", "dec.hook_in"]
        assert torch.equal(cache["dec.hook_in"], torch.tanh(cache["enc.hook_out"]))
    with pytest.raises(PresetError, match="matches no submodule"):
        HookedOperator(nn.Linear(2, 2), preset=preset)


def test_preset_errors() -> None:
    with pytest.raises(PresetError, match="unknown hook preset 'nope'"):
        get_preset("nope")
    with pytest.raises(PresetError, match="at='after'"):
        get_preset(
            {"name": "x", "match": {"classes": ["A"]}, "points": [{"name": "a", "module": "", "at": "after"}]}
        )
    with pytest.raises(PresetError, match="'layers' section"):
        get_preset({"name": "x", "match": {"classes": ["A"]}, "points": [{"name": "b.{i}", "at": "output"}]})
    with pytest.raises(PresetError, match="no 'match'"):
        get_preset({"name": "x", "points": []})
