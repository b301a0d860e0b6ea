"""``saeno hooks --architecture``: every neuraloperator family, with random weights or a state dict."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from saeno.cli.hooks_cmd import build_architecture
from saeno.cli.main import main
from saeno.hooking import HookedOperator

pytest.importorskip("neuralop.models")

UNO = {
    "model_class": "UNO",
    "in_channels": 1,
    "out_channels": 1,
    "hidden_channels": 4,
    "lifting_channels": 4,
    "projection_channels": 4,
    "n_layers": 3,
    "uno_out_channels": [4, 6, 4],
    "uno_n_modes": [[4, 4]] * 3,
    "uno_scalings": [[1, 1], [0.5, 0.5], [2, 2]],
    "channel_mlp_skip": "linear",
    "horizontal_skips_map": {"2": 0},
}
FNO = {
    "model_class": "FNO",
    "n_modes": [4],
    "hidden_channels": 4,
    "in_channels": 1,
    "out_channels": 1,
    "n_layers": 2,
}
ARCHS = {
    "UNO": UNO,
    "UQNO": {"model_class": "UQNO", "base_model": FNO},
    "CODANO": {
        "model_class": "CODANO",
        "n_layers": 1,
        "n_modes": [[4, 4]],
        "hidden_variable_codimension": 2,
        "lifting_channels": 4,
        "projection_channels": 4,
        "per_layer_scaling_factors": [[1, 1]],
        "n_heads": [1],
        "attention_scaling_factors": [1],
    },
    "FNOGNO": {
        "model_class": "FNOGNO",
        "in_channels": 1,
        "out_channels": 1,
        "gno_coord_dim": 2,
        "fno_n_modes": [4, 4],
        "fno_hidden_channels": 4,
        "fno_n_layers": 2,
        "gno_radius": 0.3,
        "gno_use_open3d": False,
        "gno_use_torch_scatter": False,
        "gno_channel_mlp_hidden_layers": [8],
        "gno_embed_channels": 4,
    },
    "GINO": {
        "model_class": "GINO",
        "in_channels": 1,
        "out_channels": 1,
        "gno_coord_dim": 2,
        "fno_n_modes": [4, 4],
        "fno_hidden_channels": 4,
        "fno_n_layers": 2,
        "in_gno_radius": 0.3,
        "out_gno_radius": 0.3,
        "gno_use_open3d": False,
        "gno_use_torch_scatter": False,
        "in_gno_channel_mlp_hidden_layers": [8],
        "out_gno_channel_mlp_hidden_layers": [8],
        "gno_embed_channels": 4,
        "fno_in_channels": 3,
    },
}


def _rows(out: str) -> dict[str, str]:
    lines = out.splitlines()
    return {line.split()[0]: line.split(None, 1)[1] for line in lines[3:]}


@pytest.mark.parametrize("family", sorted(ARCHS))
def test_every_family_lists_exactly_its_preset_names(family, capsys, one_thread_seeded):
    with contextlib.redirect_stdout(io.StringIO()):
        model = build_architecture(ARCHS[family])
    hooked = HookedOperator(model)
    assert main(["hooks", "--architecture", json.dumps(ARCHS[family]), "--resolution", "8"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{family}: preset neuralop-{family.lower()}")
    assert list(_rows(out)) == hooked.hook_names  # every advertised point fired on the probe


def test_uno_rows_show_each_blocks_own_grid(tmp_path, capsys):
    path = tmp_path / "uno.json"
    path.write_text(json.dumps(UNO))
    assert main(["hooks", "--architecture", str(path), "--resolution", "16", "--batch", "2"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["blocks.1.hook_out"].startswith("(2, 6, 8, 8)")
    assert rows["blocks.2.hook_in"].startswith("(2, 10, 8, 8)")  # block 1 output and the skip from block 0
    assert rows["horizontal_skips.0.hook_out"].startswith("(2, 4, 16, 16)")


def test_state_dict_is_loaded_and_a_wrong_one_refused(tmp_path, capsys):
    with contextlib.redirect_stdout(io.StringIO()):
        model = build_architecture(UNO)
    torch.save(model.state_dict(), tmp_path / "uno.pt")
    assert main(["hooks", "--architecture", json.dumps(UNO), "--model", str(tmp_path / "uno.pt")]) == 0
    capsys.readouterr()
    state = model.state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "broken.pt")
    assert main(["hooks", "--architecture", json.dumps(UNO), "--model", str(tmp_path / "broken.pt")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the --architecture" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "arch,message",
    [
        ("{not json", "neither a JSON object"),
        ('{"in_channels": 1}', "model_class"),
        ('{"model_class": "NoSuchNO"}', "no model class 'NoSuchNO'"),
    ],
)
def test_bad_architecture_fails_cleanly(arch, message, capsys):
    assert main(["hooks", "--architecture", arch]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("family", ["FNOGNO", "GINO"])
def test_neuralop_checkpoint_of_a_point_cloud_family(family, tmp_path, capsys, one_thread_seeded):
    with contextlib.redirect_stdout(io.StringIO()):
        model = build_architecture(ARCHS[family])
    model.save_checkpoint(tmp_path, "model")
    assert main(["hooks", "--model", str(tmp_path), "--trust", "--resolution", "8"]) == 0
    out = capsys.readouterr().out
    assert f"preset neuralop-{family.lower()}" in out.splitlines()[0]
    assert list(_rows(out)) == HookedOperator(model).hook_names
