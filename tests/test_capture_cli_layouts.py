"""``saeno capture`` on users' files: layout options, --trust reaching the reader, --split refused for a
single file, --rows splitting one, and the summary saying what was captured."""

from __future__ import annotations

import argparse
from typing import ClassVar

import numpy as np
import pytest
import torch

import saeno
from saeno.cli.main import main

RNG = np.random.default_rng(5)


@pytest.fixture()
def user_file(tmp_path):
    a = RNG.standard_normal((10, 16, 16, 1)).astype(np.float32)  # channels last, other key names
    u = RNG.standard_normal((10, 16, 16, 1)).astype(np.float32)
    path = tmp_path / "mine.pt"
    torch.save({"a": torch.from_numpy(a), "u": torch.from_numpy(u), "meta": argparse.Namespace(k=1)}, path)
    return path, a, u


def _capture(path, out, *extra):
    return main(
        [
            "capture",
            "--model",
            "example-fno2d",
            "--dataset",
            str(path),
            "--hooks",
            "blocks.0.hook_out",
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--no-progress",
            *extra,
        ]
    )


def test_user_file_options_reach_the_reader(user_file, tmp_path, capsys, one_thread_seeded):
    path, a, _ = user_file
    assert _capture(path, tmp_path / "s0", "--x-key", "a", "--y-key", "u") == 2
    assert "--trust" in capsys.readouterr().err  # the pickled Namespace needs trust, named as a CLI flag
    assert _capture(path, tmp_path / "s1", "--x-key", "a", "--y-key", "u", "--trust", "--split", "test") == 2
    err = capsys.readouterr().err
    assert "no 'test' split" in err and "--rows" in err and "rows=" not in err
    assert (
        _capture(
            path,
            tmp_path / "s2",
            "--x-key",
            "a",
            "--y-key",
            "u",
            "--trust",
            "--channels-last",
            "--rows",
            "6:",
        )
        == 0
    )
    assert "from rows 6:10 of" in capsys.readouterr().out
    store = saeno.ActivationStore.open(tmp_path / "s2")
    assert store.n_rows == 4
    np.testing.assert_array_equal(np.asarray(store.read("x", np.arange(4)))[:, 0], a[6:, :, :, 0])


def test_benchmark_capture_says_which_split(tmp_path, capsys, monkeypatch):
    from saeno.cli import capture_cmd

    seen = {}

    class Data(torch.utils.data.Dataset):
        card: ClassVar[dict] = {"split": "test"}

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"x": torch.zeros(1, 16, 16), "y": torch.zeros(1, 16, 16), "index": i, "params": {}}

    def fake_load(name, split, resolution, **keys):
        seen.update(split=split, keys=keys)
        return Data()

    monkeypatch.setattr(capture_cmd, "_load_dataset", fake_load)
    assert _capture("darcy", tmp_path / "b") == 0
    assert seen == {"split": "test", "keys": {}}
    assert "from the test split of darcy (pass --split train" in capsys.readouterr().out
