"""The ``saeno hooks`` verb: one table row per hook point, shapes from a real forward pass."""

from __future__ import annotations

import pytest

from saeno.cli.main import main
from saeno.hooking import HookedOperator, example_model


@pytest.mark.parametrize("name,resolution", [("example-fno1d", 12), ("example-tfno2d", 8)])
def test_hooks_table_lists_every_hook(name: str, resolution: int, capsys) -> None:
    assert main(["hooks", "--model", name, "--resolution", str(resolution), "--batch", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    hooked = HookedOperator(example_model(name))
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out[3:]}
    assert list(rows) == hooked.hook_names
    grid = ", ".join([str(resolution)] * hooked.ndim)
    assert rows["blocks.3.hook_out"].startswith(f"(2, 16, {grid})")
    assert rows["hook_out"].startswith(f"(2, 1, {grid})") and rows["hook_out"].endswith("float32")


def test_hooks_default_resolution_3d(capsys) -> None:
    assert main(["hooks", "--model", "example-fno3d"]) == 0
    assert "(1, 8, 16, 16, 16)" in capsys.readouterr().out


def test_hooks_unknown_model_fails_cleanly(capsys) -> None:
    assert main(["hooks", "--model", "no-such-model-xyz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("saeno hooks: error:") and "no-such-model-xyz" in err
    assert "Traceback" not in err
