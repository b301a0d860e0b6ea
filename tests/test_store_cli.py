"""`saeno capture`, `saeno store info` and `saeno store export --hdf5` end to end."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from saeno.cli import capture_cmd
from saeno.cli.main import main
from saeno.hooking import HookedOperator, example_model
from saeno.store import ActivationStore


class Toy(Dataset):
    name = "toy"
    card = {"name": "toy"}
    resolution = 16
    labels: dict = {}

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, 16, 16, generator=g)
        self.y = torch.randn(n, 1, 16, 16, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i], "index": i, "params": {"nu": 0.5 * i}}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_data(monkeypatch) -> Toy:
    data = Toy(7)
    seen = {}

    def fake_load(name, split, resolution):
        seen.update(name=name, split=split, resolution=resolution)
        return data

    monkeypatch.setattr(capture_cmd, "_load_dataset", fake_load)
    data.seen = seen
    return data


def test_capture_info_export(tmp_path, toy_data, capsys) -> None:
    out = tmp_path / "acts.zarr"
    argv = ["capture", "--model", "example-fno2d", "--dataset", "toy", "--hooks", "blocks.?.hook_out",
            "--out", str(out), "--n", "5", "--batch-size", "2", "--resolution", "16", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert toy_data.seen == {"name": "toy", "split": "test", "resolution": 16}
    store = ActivationStore.open(out)
    assert store.n_rows == 5 and store.hooks == [f"blocks.{i}.hook_out" for i in range(4)]
    hooked = HookedOperator(example_model("example-fno2d"))
    _, cache = hooked.run_with_cache(toy_data.x[:2], names_filter="blocks.2.hook_out")
    assert np.array_equal(store.read("blocks.2.hook_out", slice(0, 2)), cache["blocks.2.hook_out"].numpy())
    # a second run without --resume refuses, exit code 2 and a message naming the fix
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err

    assert main(["store", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 of 5 (complete)" in text and "blocks.3.hook_out: [16, 16, 16] float32" in text
    assert main(["store", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_written"] == 5

    h5 = tmp_path / "acts.h5"
    assert main(["store", "export", str(out), "--hdf5", str(h5)]) == 0
    with h5py.File(h5, "r") as f:
        assert json.loads(f.attrs["saeno"])["hooks"] == store.hooks
        for name in store.array_names():
            key = store[name].path
            assert np.array_equal(f[key][()], store.read(name)), name
        assert np.array_equal(f["params/nu"][()], 0.5 * np.arange(5))
    assert main(["store", "export", str(out), "--hdf5", str(h5)]) == 2  # exists: refused


def test_info_on_missing_store_is_a_clean_error(tmp_path, capsys) -> None:
    assert main(["store", "info", str(tmp_path / "nothing")]) == 2
    assert "no store" in capsys.readouterr().err
