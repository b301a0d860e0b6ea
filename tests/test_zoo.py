"""The zoo: fast variants train in seconds, save without pickle, reload exactly, map raw x to raw y."""

import json

import numpy as np
import pytest
import torch
from neuralop.models import FNO

import saeno.datasets
import saeno.zoo
from saeno.cli.main import main
from saeno.errors import SaenoError, UntrustedFileError
from saeno.zoo.training import relative_l2


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("SAENO_HOME", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def darcy_fast(home):
    return saeno.zoo.train("darcy-fno", fast=True, progress=False)


def test_names():
    assert {"darcy-fno", "burgers-fno", "navier-stokes-fno"} <= set(saeno.zoo.names())
    with pytest.raises(SaenoError, match="available: .*darcy-fno"):
        saeno.zoo.train("nope", fast=True)


def test_fast_model_maps_raw_x_to_raw_y(darcy_fast):
    model = saeno.zoo.load_model(darcy_fast)
    cfg, rec = model.saeno_config, model.saeno_record
    assert cfg["dataset"] == "darcy" and cfg["resolution"] == 32 and cfg["fno"]["n_modes"] == [4, 4]
    assert isinstance(model.fno, FNO)
    train = saeno.datasets.load("darcy", n=rec["n_train"], resolution=32, progress=False)
    x, y = train.tensors()
    # the normaliser is the per-channel mean / std of the training data
    assert float(model.x_mean) == pytest.approx(float(x.mean()), rel=1e-5)
    assert float(model.y_std) == pytest.approx(float(y.std()), rel=1e-4)
    with torch.no_grad():
        manual = model.fno((x[:4] - x.mean()) / x.std()) * y.std() + y.mean()
        np.testing.assert_allclose(model(x[:4]).numpy(), manual.numpy(), rtol=1e-4, atol=1e-6)
    # the record's test errors are reproducible from the saved model, at every stored resolution
    assert set(rec["test_rel_l2"]) == {"16", "32", "64"}
    for res in (16, 64):
        test = saeno.datasets.load("darcy", split="test", n=rec["n_test"], resolution=res, progress=False)
        tx, ty = test.tensors()
        with torch.no_grad():
            err = relative_l2(model(tx), ty).mean().item()
        assert err == pytest.approx(rec["test_rel_l2"][str(res)], rel=1e-4)
    assert rec["epochs"] == 2 and rec["seed"] == 0 and rec["dataset_card"]["name"] == "darcy"
    assert len(rec["train_loss"]) == 2 and rec["wall_time_s"] > 0


def test_training_is_reproducible_by_seed(darcy_fast, tmp_path):
    again = saeno.zoo.train("darcy-fno", fast=True, out=tmp_path / "again", progress=False)
    other = saeno.zoo.train("darcy-fno", fast=True, out=tmp_path / "other", progress=False, seed=1)
    a, b, c = (saeno.zoo.load_model(p) for p in (darcy_fast, again, other))
    for (name, t1), t2 in zip(a.state_dict().items(), b.state_dict().values()):
        if isinstance(t1, torch.Tensor):
            assert torch.equal(t1, t2), name
    assert not torch.equal(a.fno.lifting.fcs[0].weight, c.fno.lifting.fcs[0].weight)


def test_load_uses_cache_and_fast_env(darcy_fast, monkeypatch):
    monkeypatch.setenv("SAENO_ZOO_FAST", "1")
    mtime = (darcy_fast / "model.safetensors").stat().st_mtime
    model = saeno.zoo.load("darcy-fno", progress=False)
    assert model.saeno_config["fast"] is True and not model.training
    assert (darcy_fast / "model.safetensors").stat().st_mtime == mtime  # not retrained


def test_folder_load_never_unpickles(darcy_fast, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", refuse)
    model = saeno.zoo.load_model(darcy_fast)
    assert model.saeno_record["n_train"] == 32


def test_save_model_round_trip_of_a_bare_fno(tmp_path):
    torch.manual_seed(0)
    fno = FNO(n_modes=(5,), in_channels=2, out_channels=1, hidden_channels=6, n_layers=2).eval()
    folder = saeno.zoo.save_model(fno, tmp_path / "mine", {"name": "mine", "dataset": "own"})
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["fno"]["hidden_channels"] == 6 and cfg["name"] == "mine"
    loaded = saeno.zoo.load_model(folder)
    x = torch.randn(3, 2, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), fno(x))


def test_neuralop_checkpoint_needs_trust(tmp_path):
    torch.manual_seed(0)
    fno = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1).eval()
    fno.save_checkpoint(tmp_path, "mymodel")
    with pytest.raises(UntrustedFileError, match="trust=True"):
        saeno.zoo.load_model(tmp_path / "mymodel_state_dict.pt")
    loaded = saeno.zoo.load_model(tmp_path, trust=True)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), fno(x))
    assert main(["zoo", "info", str(tmp_path / "nothing")]) == 0


def test_cli(darcy_fast, capsys, tmp_path):
    assert main(["data", "list"]) == 0
    assert "darcy" in capsys.readouterr().out
    assert main(["zoo", "list"]) == 0
    assert main(["zoo", "info", str(darcy_fast)]) == 0
    assert "test_rel_l2" in capsys.readouterr().out
    assert main(["data", "generate", "darcy", "--n", "4", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip().endswith(".h5")
    path = tmp_path / "f.pt"
    torch.save({"x": torch.zeros(3, 8), "y": torch.ones(3, 8)}, path)
    assert main(["data", "info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
    assert main(["data", "info", str(tmp_path / "missing.h5")]) == 2
    assert "neither a dataset name" in capsys.readouterr().err


def test_cpu_threads_only_under_passive_openmp(monkeypatch):
    from saeno.zoo.training import cpu_threads

    original = torch.get_num_threads()
    torch.set_num_threads(2)  # so that switching to one thread is visible
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(1, device="meta"), cpu_threads(None):
        assert torch.get_num_threads() == before  # not on CPU / no setting: unchanged
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with cpu_threads(1):
        assert torch.get_num_threads() == before
    torch.set_num_threads(original)
