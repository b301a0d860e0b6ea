"""Fault injection on training: a kill at every checkpoint write, damaged checkpoints, resumes with
other settings, non-finite losses, corrupted SAE and zoo files."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from faults import HOOKS, InjectedKill, inputs, small_model
from saeno.errors import DataFormatError, SaenoError
from saeno.sae import SAE
from saeno.store import capture
from saeno.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_sae,
    save_sae,
)
from saeno.train.guards import NonFiniteLossError, ResumeMismatchError
from saeno.train.trainer import train_sae

HOOK = HOOKS[1]
STEPS, EVERY = 8, 2


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("store") / "s"
    yield capture(small_model(), inputs(), HOOKS, path, batch_size=3, chunk_size=4, progress=False)
    torch.set_num_threads(n)


def _sae() -> SAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SAE(4, 8, ndim=2, sparsity={"type": "topk", "k": 2})


def _train(store, out: Path, **kw):
    return train_sae(
        _sae(),
        store,
        hook=HOOK,
        steps=STEPS,
        batch_size=128,
        checkpoint_dir=out / "ck",
        checkpoint_every=EVERY,
        log_csv=out / "log.csv",
        log_every=1,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def clean(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    _train(store, out)
    return out


def _final(out: Path) -> tuple[bytes, bytes, str]:
    ck = out / "ck" / f"step_{STEPS:08d}"
    return (
        (ck / "sae_weights.safetensors").read_bytes(),
        (ck / "trainer_state.safetensors").read_bytes(),
        (out / "log.csv").read_text(),
    )


def _count_replaces(store, tmp_path, monkeypatch) -> int:
    calls = {"n": 0}
    real = os.replace

    def counting(a, b):
        calls["n"] += 1
        return real(a, b)

    monkeypatch.setattr(os, "replace", counting)
    _train(store, tmp_path / "count")
    monkeypatch.setattr(os, "replace", real)
    return calls["n"]


def test_a_kill_at_every_checkpoint_write_then_resume_gives_the_clean_run(
    store, clean, tmp_path, monkeypatch
):
    writes = _count_replaces(store, tmp_path, monkeypatch)
    assert writes >= 4 * (STEPS // EVERY)  # weights, cfg, state tensors, state json, folder per checkpoint
    real = os.replace
    failures = []
    for k in range(1, writes + 1):
        out = tmp_path / f"k{k}"
        calls = {"n": 0}

        def failing(a, b, calls=calls, k=k):
            calls["n"] += 1
            if calls["n"] == k:
                raise InjectedKill(f"{a} -> {b}")
            return real(a, b)

        monkeypatch.setattr(os, "replace", failing)
        with pytest.raises(InjectedKill):
            _train(store, out)
        monkeypatch.setattr(os, "replace", real)
        assert not list((out / "ck").glob("step_*/*.tmp"))
        _train(store, out, resume=True)
        if _final(out) != _final(clean):
            failures.append(k)
    assert failures == []


def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(store, clean, tmp_path, caplog):
    out = tmp_path / "d"
    shutil.copytree(clean, out)
    newest = out / "ck" / f"step_{STEPS:08d}"
    (newest / "trainer_state.safetensors").write_bytes(b"\0" * 10)
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(out / "ck").name == f"step_{STEPS - EVERY:08d}"
    assert "damaged checkpoint" in caplog.text
    _train(store, out, resume=True)
    assert _final(out) == _final(clean)


@pytest.mark.parametrize(
    "change, named", [({"lr": 1e-2}, "lr"), ({"batch_size": 64}, "batch_size"), ({"seed": 3}, "seed")]
)
def test_resume_with_other_settings_is_refused(store, clean, tmp_path, change, named):
    out = tmp_path / "r"
    shutil.copytree(clean, out)
    kw = {"steps": STEPS + 2, "batch_size": 128, **change}
    with pytest.raises(ResumeMismatchError, match=named):
        train_sae(_sae(), store, hook=HOOK, checkpoint_dir=out / "ck", resume=True, progress=False, **kw)


def test_resume_on_another_models_store_is_refused(clean, tmp_path):
    other = small_model()
    with torch.no_grad():
        next(other.model.parameters()).mul_(2)
    store = capture(other, inputs(), HOOKS, tmp_path / "o", batch_size=3, chunk_size=4, progress=False)
    out = tmp_path / "r"
    shutil.copytree(clean, out)
    with pytest.raises(ResumeMismatchError, match="model fingerprint"):
        _train(store, out, resume=True)


def test_training_stops_at_the_first_nonfinite_loss_naming_step_and_rows(tmp_path):
    hooked = small_model()

    def poison(act, *, hook):
        act = act.clone()
        act[act.shape[0] - 1] = float("nan")  # the last sample of every batch
        return act

    hooked.add_hook(HOOK, poison)
    store = capture(
        hooked, inputs(), [HOOK], tmp_path / "nan", batch_size=5, allow_nonfinite=True, progress=False
    )
    out = tmp_path / "t"
    # points in store order, 144 per sample, 128 per batch: batch 4 (points 512..639) holds rows 3
    # and 4, and row 4 is NaN
    with pytest.raises(NonFiniteLossError, match=r"step 5 \(epoch 0, batch 4 .*store rows 3, 4\)"):
        train_sae(
            _sae(),
            store,
            steps=8,
            batch_size=128,
            shuffle_buffer=0,
            checkpoint_dir=out / "ck",
            checkpoint_every=1,
            log_every=100,
            normalize="none",
            progress=False,
        )
    # the checkpoints of steps 1-4 are intact; none from step 5 on (trained through NaN) was saved
    assert latest_checkpoint(out / "ck").name == "step_00000004"


def test_bad_training_arguments_are_refused(store, tmp_path):
    for kw, named in (
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"dead_window": 0}, "dead_window"),
        ({"checkpoint_every": -1}, "checkpoint_every"),
    ):
        with pytest.raises(SaenoError, match=named):
            train_sae(_sae(), store, hook=HOOK, steps=2, progress=False, **kw)


# --------------------------------------------------------------------- corrupted SAE files
def _saved(tmp_path) -> Path:
    return save_sae(_sae(), tmp_path / "sae")


SAE_CORRUPTIONS = {
    "cfg.json truncated": (
        lambda p: (p / "cfg.json").write_text((p / "cfg.json").read_text()[:50]),
        "cfg.json is not valid JSON",
    ),
    "cfg.json without in_channels": (lambda p: _drop_key(p / "cfg.json", "in_channels"), "cfg.json"),
    "weights truncated": (lambda p: _cut(p / "sae_weights.safetensors"), "sae_weights.safetensors"),
    "weights byte flipped": (lambda p: _flip(p / "sae_weights.safetensors"), "sae_weights.safetensors"),
}


def _drop_key(path: Path, key: str) -> None:
    cfg = json.loads(path.read_text())
    cfg.pop(key)
    path.write_text(json.dumps(cfg))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-17])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", sorted(SAE_CORRUPTIONS))
def test_corrupted_sae_files_are_named(tmp_path, case):
    damage, pattern = SAE_CORRUPTIONS[case]
    path = _saved(tmp_path)
    damage(path)
    with pytest.raises(CheckpointError, match=pattern):
        load_sae(path)


def test_corrupted_checkpoint_state_is_named_on_explicit_resume(store, clean, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(clean, out)
    ck = out / "ck" / f"step_{STEPS:08d}"
    (ck / "trainer_state.json").write_text('{"trainer": ')
    with pytest.raises(CheckpointError, match="trainer_state.json is not valid JSON"):
        _train(store, out, resume=ck)


# --------------------------------------------------------------------- corrupted zoo files
def _zoo_folder(tmp_path) -> Path:
    from saeno.zoo.io import save_model

    return save_model(small_model().model, tmp_path / "fno", config={"name": "t"})


ZOO_CORRUPTIONS = {
    "config.json not JSON": (
        lambda p: (p / "config.json").write_text("{nope"),
        "config.json is not valid JSON",
    ),
    "record.json not JSON": (
        lambda p: (p / "record.json").write_text("[1,"),
        "record.json is not valid JSON",
    ),
    "unknown FNO argument": (lambda p: _edit_fno(p, bogus_width=3), "config.json.*bogus_width"),
    "weights byte flipped": (lambda p: _flip(p / "model.safetensors"), "model.safetensors is damaged"),
    "weights truncated": (lambda p: _cut(p / "model.safetensors"), "model.safetensors"),
}


def _edit_fno(path: Path, **extra) -> None:
    cfg = json.loads((path / "config.json").read_text())
    cfg["fno"].update(extra)
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("case", sorted(ZOO_CORRUPTIONS))
def test_corrupted_zoo_files_are_named(tmp_path, case):
    from saeno.zoo import load_model

    damage, pattern = ZOO_CORRUPTIONS[case]
    path = _zoo_folder(tmp_path)
    load_model(path)  # intact first
    damage(path)
    with pytest.raises(DataFormatError, match=pattern):
        load_model(path)
