"""``torchrun -m saeno capture|train``: the verbs detect torchrun (WORLD_SIZE > 1) and run distributed.

Two forked gloo ranks call ``saeno.cli.main.main`` with torchrun's environment variables, as the
``torchrun ... -m saeno`` entry does; the dataset loader is replaced by an in-memory toy dataset.
"""

from __future__ import annotations

import torch
from distributed_worker import launch, tree

from saeno.cli import capture_cmd
from saeno.cli.main import main
from saeno.distributed.env import launched_by_torchrun
from saeno.hooking import HookedOperator, example_model
from saeno.store import capture
from saeno.train.checkpoint import load_sae

N = 12


def _toy() -> torch.Tensor:
    return torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def _cli(argv: list[str]) -> None:
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"saeno {argv[0]} exited with {rc}")


def test_launched_by_torchrun_reads_world_size(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_by_torchrun()


def test_capture_and_train_verbs_under_torchrun(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(capture_cmd, "_load_dataset", lambda name, split, resolution: _toy())
    store = tmp_path / "acts.zarr"
    cap = [
        "capture",
        "--model",
        "example-fno2d",
        "--dataset",
        "toy",
        "--hooks",
        "blocks.1.hook_out",
        "--out",
        str(store),
        "--batch-size",
        "3",
        "--chunk-size",
        "2",
        "--no-progress",
    ]
    assert launch(tmp_path, _cli, cap) == {}
    ref = tmp_path / "ref.zarr"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        capture(
            HookedOperator(example_model("example-fno2d")),
            _toy(),
            "blocks.1.hook_out",
            ref,
            batch_size=3,
            chunk_size=2,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    assert tree(store) == tree(ref)
    assert capfd.readouterr().out.count("with 2 processes") == 1  # rank 0 alone prints

    out = tmp_path / "sae"
    train = [
        "train",
        "--store",
        str(store),
        "--concepts",
        "32",
        "--k",
        "4",
        "--steps",
        "6",
        "--batch-size",
        "256",
        "--checkpoint-every",
        "3",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert launch(tmp_path, _cli, train) == {}
    sae = load_sae(out)
    assert sae.metadata["world_size"] == 2 and sae.metadata["steps"] == 6
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000003", "step_00000006"]
    assert (out / "train_log.csv").read_text().count("\n") == 2  # header + the last step's row

    odd = train[:-3] + ["--batch-size", "255", "--out", str(tmp_path / "odd")]
    failed = launch(tmp_path, _cli, odd)
    assert failed  # exit code 2 on every rank, with the fix in the message
    assert "multiple of the number of processes" in capfd.readouterr().err
