"""SFNO (spherical convolutions) hook preset; needs the optional extra ``harmonics`` (torch_harmonics)."""

from __future__ import annotations

import pytest
import torch

import family_hand as hand
from family_hand import quiet
from test_families import check_family

pytest.importorskip("torch_harmonics")
sfno_module = pytest.importorskip("neuralop.models.sfno")

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


@pytest.mark.parametrize("n_layers", [1, 3])
def test_sfno_fields_match_hand_forward(n_layers):
    model = quiet(
        sfno_module.SFNO, n_modes=(4, 4), hidden_channels=4, in_channels=1, out_channels=1, n_layers=n_layers
    )
    x = torch.randn(2, 1, 8, 16)
    hooked, cache = check_family(model, lambda tap: hand.fno(model, x, tap), (x,), {})
    assert hooked.preset["name"] == "neuralop-sfno"
    assert type(model.fno_blocks.convs[0]).__name__ == "SphericalConv"
    assert f"blocks.{n_layers - 1}.spectral.hook_out" in cache


def test_saeno_hooks_lists_an_sfno_architecture(capsys):
    from saeno.cli.main import main

    arch = '{"model_class": "SFNO", "n_modes": [4, 4], "hidden_channels": 4, "in_channels": 1, "out_channels": 1, "n_layers": 2}'
    assert main(["hooks", "--architecture", arch, "--resolution", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("SFNO: preset neuralop-sfno")
    assert [line.split()[0] for line in lines[3:]][-2:] == ["projection.hook_in", "hook_out"]
    assert any(line.startswith("blocks.1.spectral.hook_out") for line in lines)
