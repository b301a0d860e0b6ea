"""Bad command-line inputs: each a message naming the flag and exit code 2, nothing left behind."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from faults import HOOKS, enospc, inputs, small_model
from saeno.cli.main import main
from saeno.store import capture


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("cli") / "s"
    capture(small_model(), inputs(), HOOKS, path, batch_size=3, chunk_size=4, progress=False)
    torch.set_num_threads(n)
    return path


def _cases(tmp: Path, store: Path) -> list[tuple[list[str], str]]:
    afile = tmp / "plain.txt"
    afile.write_text("x")
    cap = ["capture", "--model", "example-fno2d", "--dataset", "darcy", "--hooks", "*", "--no-progress"]
    train = ["train", "--store", str(store), "--hook", HOOKS[1], "--concepts", "8", "--no-progress"]
    out = ["--out", str(tmp / "o")]
    cases = [
        (cap + ["--out", str(afile / "store")], "is a file"),
        (cap + ["--out", "/proc/saeno-store"], "cannot write in /proc"),
        (cap + out + ["--batch-size", "0"], "--batch-size must be a positive integer"),
        (cap + out + ["--resolution", "-16"], "--resolution must be a positive integer"),
        (cap + out + ["--resolution", "0"], "--resolution must be a positive integer"),
        (cap + out + ["--max-samples", "-3"], "--max-samples must be a positive integer"),
        (cap + out + ["--chunk-size", "0"], "--chunk-size must be a positive integer"),
        (cap + out + ["--device", "bogus"], "--device 'bogus' is not a device"),
        (train + out + ["--batch-size", "0"], "--batch-size must be a positive integer"),
        (train + out + ["--lr", "-1"], "--lr must be a positive finite number"),
        (train + out + ["--lr", "nan"], "--lr must be a positive finite number"),
        (train + out + ["--dead-window", "0"], "--dead-window must be a positive integer"),
        (train + out + ["--checkpoint-every", "-1"], "--checkpoint-every must be a positive integer"),
        (train + out + ["--steps", "-1"], "--steps must be a positive integer"),
        (train + out + ["--concepts", "0"], "--concepts must be a positive integer"),
        (train + ["--out", str(afile)], "plain.txt is a file"),
        (train + out + ["--arch", "sae-fno", "--modes", "7"], "--modes 7 is above the Nyquist limit"),
        (["eval", "--sae", str(tmp), "--store", str(store), "--batch-size", "0"], "--batch-size"),
        (["export", "--sae", str(tmp), "--store", str(store), "--dpi", "0", *out], "--dpi must be"),
        (["export", "--sae", str(tmp), "--store", str(store), "--out", str(afile)], "is a file"),
        (
            ["store", "export", str(store), "--hdf5", str(tmp / "no" / "dir" / "x.h5")],
            "the folder .*no/dir does not exist",
        ),
    ]
    if not torch.cuda.is_available():
        cases.append((cap + out + ["--device", "cuda"], "no CUDA GPU is available"))
    if importlib.util.find_spec("s3fs") is None:
        cases.append((cap + ["--out", "s3://bucket/store"], "needs the package s3fs"))
    return cases


def test_every_bad_input_is_a_message_with_exit_code_2(store, tmp_path, capsys):
    failures = []
    for argv, pattern in _cases(tmp_path, store):
        rc = main(argv)
        err = capsys.readouterr().err
        if rc != 2 or not re.search(pattern, err) or "Traceback" in err:
            failures.append((argv, rc, err[-300:]))
    assert failures == []
    assert not (tmp_path / "o").exists()  # validated before anything was created


def test_a_full_disk_during_training_is_a_message(store, tmp_path, capsys, monkeypatch):
    from saeno.train import trainer

    def full(*args, **kwargs):
        raise enospc(str(tmp_path / "o" / "checkpoints"))

    monkeypatch.setattr(trainer, "train_sae", full)
    rc = main(
        [
            "train",
            "--store",
            str(store),
            "--hook",
            HOOKS[1],
            "--concepts",
            "8",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "disk is full" in err and "--resume" in err
