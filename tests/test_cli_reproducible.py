"""The CLI seeds before anything random: the same ``saeno train`` command gives the same weights' bytes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import saeno
from saeno.cli.main import main, seed_everything


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    from saeno.hooking import HookedOperator
    from saeno.hooking.examples import example_model

    torch.manual_seed(0)
    hooked = HookedOperator(example_model("example-fno1d")).eval()
    path = tmp_path_factory.mktemp("store") / "acts.zarr"
    saeno.capture(
        hooked, torch.randn(16, 1, 32), "blocks.1.hook_out", str(path), batch_size=8, progress=False
    )
    return path


def _train(store_path, out, extra=()):
    args = [
        "train",
        "--store",
        str(store_path),
        "--arch",
        "sae",
        "--concepts",
        "16",
        "--k",
        "4",
        "--steps",
        "4",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    assert main(args) == 0
    return (out / "sae_weights.safetensors").read_bytes()


def test_train_twice_gives_identical_weight_bytes(store_path, tmp_path, one_thread_seeded):
    first = _train(store_path, tmp_path / "a")
    torch.rand(17), np.random.rand(3), random.random()  # a fresh process starts from other generator states  # noqa: NPY002
    torch.manual_seed(12345)
    second = _train(store_path, tmp_path / "b")
    assert first == second
    other = _train(store_path, tmp_path / "c", ["--seed", "1"])
    assert other != first  # the seed is what decides


def test_seed_everything_seeds_every_generator():
    seed_everything(7)
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))  # noqa: NPY002
    seed_everything(7)
    assert a == (random.random(), float(np.random.rand()), float(torch.rand(1)))  # noqa: NPY002
