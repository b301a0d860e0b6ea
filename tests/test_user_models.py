"""Any model a user has: a state dict plus its architecture, a trusted whole module, exact refusals, and one
fingerprint for the same FNO however it is wrapped."""

from __future__ import annotations

import json
import os

import pytest
import torch
from neuralop.models import FNO

import saeno
from saeno.cli.main import main
from saeno.errors import DataFormatError, UntrustedFileError
from saeno.hooking import HookedOperator, fingerprint
from saeno.zoo import ZooOperator, load_model
from saeno.zoo.io import describe_torch_file

KW = {"n_modes": [6, 6], "in_channels": 1, "out_channels": 1, "hidden_channels": 8, "n_layers": 2}


@pytest.fixture(scope="module")
def fno():
    torch.manual_seed(3)
    return FNO(**{**KW, "n_modes": tuple(KW["n_modes"])}).eval()


@pytest.fixture(scope="module")
def files(fno, tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.save(fno.state_dict(), d / "weights.pt")
    (d / "arch.json").write_text(json.dumps({"model_class": "FNO", **KW}))
    (d / "neuralop.yaml").write_text(
        "model:\n  model_arch: fno\n  data_channels: 1\n  out_channels: 1\n  n_modes: [6, 6]\n"
        "  hidden_channels: 8\n  n_layers: 2\n"
    )
    torch.save(fno, d / "whole.pt")
    torch.save(fno.state_dict(), d / "run_state_dict.pt")  # neuraloperator's name, without its _metadata.pkl
    return d


def _same_outputs(a, b):
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


@pytest.mark.parametrize("config", ["arch.json", "neuralop.yaml", "json-string", "dict"])
def test_state_dict_plus_architecture_loads(fno, files, config):
    cfg = {"json-string": json.dumps({"model_class": "FNO", **KW}), "dict": {"model_class": "FNO", **KW}}.get(
        config, files / config
    )
    model = load_model(files / "weights.pt", model_config=cfg)
    _same_outputs(model, fno)
    assert fingerprint(model) == fingerprint(fno)


def test_refusals_say_what_the_file_is(files):
    assert describe_torch_file(files / "weights.pt") == "state_dict"
    assert describe_torch_file(files / "whole.pt") == "module:neuralop.models.fno.FNO"
    with pytest.raises(DataFormatError, match="plain state dict.*model_config=.*--model-config") as err:
        load_model(files / "weights.pt")
    assert "_metadata.pkl" not in str(err.value)
    with pytest.raises(DataFormatError, match="plain state dict"):
        load_model(files / "run_state_dict.pt", trust=True)  # no FileNotFoundError for the missing .pkl
    with pytest.raises(
        UntrustedFileError, match=r"whole module saved with torch.save\(model\).*FNO.*--trust"
    ):
        load_model(files / "whole.pt")
    with pytest.raises(DataFormatError, match="do not match the architecture"):
        load_model(files / "weights.pt", model_config={"model_class": "FNO", **KW, "hidden_channels": 4})


def test_trusted_whole_module_loads(fno, files):
    model = load_model(files / "whole.pt", trust=True)
    _same_outputs(model, fno)
    assert fingerprint(model) == fingerprint(fno)


def test_pickled_objects_never_run_without_trust(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {"w": torch.ones(2)}, "evil": Evil()}, tmp_path / "ckpt.pt")
    assert describe_torch_file(tmp_path / "ckpt.pt") == "state_dict"  # the tensors are read, Evil is not run
    with pytest.raises(DataFormatError, match="plain state dict"):
        load_model(tmp_path / "ckpt.pt")
    assert not marker.exists()


def test_fingerprint_ignores_saeno_wrappers_but_not_the_normaliser(fno):
    wrapped = ZooOperator(fno, 1, 1, config={"name": "mine", "train": {"lr": 1}})
    assert fingerprint(wrapped) == fingerprint(fno) == fingerprint(HookedOperator(wrapped))
    scaled = ZooOperator(fno, 1, 1, x_std=[2.0])
    assert fingerprint(scaled) != fingerprint(fno)


def test_store_from_bare_fno_passes_eval_with_the_checkpoint(fno, files, tmp_path, capsys, one_thread_seeded):
    store = tmp_path / "s.zarr"
    x = torch.randn(12, 1, 16, 16)
    with torch.no_grad():
        y = fno(x) + 0.1 * torch.randn(12, 1, 16, 16)
    data = saeno.datasets.FieldDataset(x.numpy(), y.numpy(), name="mine")
    saeno.capture(HookedOperator(fno), data, "blocks.1.hook_out", str(store), batch_size=6, progress=False)
    sae = tmp_path / "sae"
    assert (
        main(
            [
                "train",
                "--store",
                str(store),
                "--arch",
                "sae",
                "--concepts",
                "8",
                "--k",
                "2",
                "--steps",
                "2",
                "--batch-size",
                "64",
                "--out",
                str(sae),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                "--sae",
                str(sae),
                "--store",
                str(store),
                "--model",
                str(files / "weights.pt"),
                "--model-config",
                str(files / "arch.json"),
            ]
        )
        == 0
    )
    assert "loss_rec" in capsys.readouterr().out  # operator loss recovered: the fingerprints matched
    # export checks the same fingerprint (it loads the model through saeno.zoo.load_model)
    from saeno.export.inputs import check_fingerprint
    from saeno.zoo import io

    io.CLI_MODEL_CONFIG = str(files / "arch.json")
    try:
        hooked = HookedOperator(load_model(files / "weights.pt"))
    finally:
        io.CLI_MODEL_CONFIG = None
    check_fingerprint(hooked, saeno.ActivationStore.open(store))
    code = main(["eval", "--sae", str(sae), "--store", str(store), "--model", str(files / "weights.pt")])
    assert code == 2 and "--model-config" in capsys.readouterr().err
