"""``saeno train`` end to end on a real (small) activation store."""

from __future__ import annotations

import json

import pytest
import torch

import saeno
from saeno.cli.main import main


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    from saeno.hooking import HookedOperator
    from saeno.hooking.examples import example_model

    torch.manual_seed(0)
    hooked = HookedOperator(example_model("example-fno1d")).eval()
    path = tmp_path_factory.mktemp("store") / "acts.zarr"
    x = torch.randn(24, hooked.model.in_channels if hasattr(hooked.model, "in_channels") else 1, 32)
    saeno.capture(hooked, x, "blocks.1.hook_out", str(path), batch_size=8, progress=False)
    return path


def test_train_cli_pointwise_and_sae_fno(store_path, tmp_path, capsys, saeno_cli):
    store = saeno.ActivationStore.open(store_path)
    hook = store.hooks[0]
    out = tmp_path / "sae"
    pointwise = dict(
        store=store_path, hook=hook, arch="sae", concepts=16, k=4, batch_size=128, out=out, no_progress=True
    )
    assert saeno_cli("train", **pointwise, steps=6) == 0
    assert "saved:" in capsys.readouterr().out
    sae = saeno.load_sae(out)
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["hook"] == hook and cfg["model_fingerprint"] == store.fingerprint
    assert sae.sparsity.k == 4 and (out / "train_log.csv").exists()
    # resume continues to a longer run from the checkpoint
    assert saeno_cli("train", **pointwise, steps=9, resume=True) == 0
    assert saeno.load_sae(out).metadata["steps"] == 9

    out2 = tmp_path / "fno"
    assert (
        main(
            [
                "train",
                "--store",
                str(store_path),
                "--arch",
                "sae-fno",
                "--modes",
                "4",
                "--concepts",
                "8",
                "--k",
                "3",
                "--steps",
                "3",
                "--batch-size",
                "4",
                "--lifting",
                str(2 * sae.in_channels),
                "--out",
                str(out2),
                "--no-progress",
            ]
        )
        == 0
    )
    fno = saeno.load_sae(out2)
    assert fno.architecture == "sae-fno" and fno.lifting == 2 * sae.in_channels


def test_train_cli_unknown_hook_lists_the_hooks(store_path, tmp_path, capsys):
    code = main(
        [
            "train",
            "--store",
            str(store_path),
            "--hook",
            "blocks.7.hook_out",
            "--concepts",
            "8",
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "blocks.7.hook_out" in err and "blocks.1.hook_out" in err
    assert "Traceback" not in err
