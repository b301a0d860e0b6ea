"""Fault injection on activation stores: a kill at every write, random SIGKILLs, a full disk,
corruption of every file kind, concurrent writers, other data on resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from faults import (
    BATCH,
    CHUNK,
    HOOKS,
    InjectedKill,
    N,
    enospc,
    fail_at_write,
    files,
    inputs,
    small_model,
)
from saeno.errors import SaenoError, StoreError
from saeno.store import ActivationStore, NonFiniteActivationError, capture
from saeno.store.lock import WriterLock


@pytest.fixture(scope="module")
def hooked():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield small_model()
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clean(hooked, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "store"
    capture(hooked, inputs(), HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False)
    return path


def _capture(hooked, path, **kw):
    return capture(
        hooked, kw.pop("x", inputs()), HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False, **kw
    )


def _n_writes(hooked, tmp_path) -> int:
    with fail_at_write(10**9) as count:
        _capture(hooked, tmp_path / "count")
    return count["n"]


def test_a_kill_at_every_write_then_resume_gives_the_clean_store(hooked, clean, tmp_path):
    writes = _n_writes(hooked, tmp_path)
    assert writes > 20  # creation, every chunk of every array, every commit
    failures = []
    for k in range(1, writes + 1):
        path = tmp_path / f"k{k}"
        with pytest.raises(InjectedKill), fail_at_write(k):
            _capture(hooked, path)
        # readers of the killed store see only committed rows, or a clean refusal
        try:
            partial = ActivationStore.open(path)
            assert partial.n_rows % CHUNK == 0 or partial.n_rows == N
        except StoreError:
            pass
        _capture(hooked, path, resume=True)
        if files(path) != files(clean):
            failures.append(k)
    assert failures == []


def test_a_kill_during_creation_is_replaced_by_a_plain_rerun_or_overwrite(hooked, clean, tmp_path):
    for k in (1, 2, 3):  # the root document, then the first arrays' metadata
        for flag in ({}, {"overwrite": True}):
            path = tmp_path / f"c{k}{len(flag)}"
            with pytest.raises(InjectedKill), fail_at_write(k):
                _capture(hooked, path)
            _capture(hooked, path, **flag)
            assert files(path) == files(clean)


CHILD = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, sys.argv[2])
    torch.set_num_threads(1)
    from faults import small_model, inputs, HOOKS, BATCH, CHUNK
    from saeno.store import capture
    hooked = small_model()
    hooked.add_hook("hook_out", lambda act, *, hook: time.sleep(0.05))
    capture(hooked, inputs(), HOOKS, sys.argv[1], batch_size=BATCH, chunk_size=CHUNK, progress=False)
    """
)


def test_random_sigkills_then_resume_give_the_clean_store(hooked, clean, tmp_path):
    rng = random.Random(20)
    for trial in range(3):
        path = tmp_path / f"t{trial}"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(Path(__file__).parent)])
        deadline = time.monotonic() + 120
        while not (path / "zarr.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _capture(hooked, path, resume=True)
        assert files(path) == files(clean)


def test_a_full_disk_is_a_clean_error_and_resume_finishes(hooked, clean, tmp_path):
    path = tmp_path / "full"
    writes = _n_writes(hooked, tmp_path)
    with pytest.raises(StoreError, match="disk .* is full.*--resume"), fail_at_write(writes - 5, enospc()):
        _capture(hooked, path)
    _capture(hooked, path, resume=True)
    assert files(path) == files(clean)


# ------------------------------------------------------------------ corruption of every file kind
def _root(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


def _edit_attrs(path: Path, **changes) -> None:
    doc = _root(path)
    doc["attributes"].update(changes)
    (path / "zarr.json").write_text(json.dumps(doc))


def _chunk(path: Path, array: str, i: int) -> Path:
    return path / array / "c" / str(i) / "0" / "0" / "0"


def _copy(clean: Path, tmp_path: Path, name: str) -> Path:
    import shutil

    return Path(shutil.copytree(clean, tmp_path / name))


def _stats_without_last_chunk(path: Path) -> dict:
    doc = _root(path)
    stats = doc["attributes"]["stats"]
    hook = HOOKS[0]
    stats[hook]["count"] = [c - 2 * 144 for c in stats[hook]["count"]]
    return stats


CORRUPTIONS = {
    "zarr.json truncated": (
        lambda p: (p / "zarr.json").write_bytes((p / "zarr.json").read_bytes()[:200]),
        "zarr.json",
    ),
    "rows_written -5": (lambda p: _edit_attrs(p, rows_written=-5), "rows_written"),
    "stats.m2 null": (
        lambda p: _edit_attrs(
            p,
            stats={h: {**s, "m2": [None] * len(s["m2"])} for h, s in _root(p)["attributes"]["stats"].items()},
        ),
        "m2",
    ),
    "stats behind rows_written": (lambda p: _edit_attrs(p, stats=_stats_without_last_chunk(p)), "count"),
    "commit edited": (lambda p: _edit_attrs(p, complete=False), "commit"),
    "chunk byte flipped": (lambda p: _flip(_chunk(p, "acts/blocks.1.hook_out", 1)), "chunk 1"),
    "chunk deleted": (lambda p: _chunk(p, "acts/blocks.1.hook_out", 1).unlink(), "chunk 1.*missing"),
    "chunk truncated": (lambda p: _truncate(_chunk(p, "y_pred", 0)), "'y_pred', chunk 0"),
    "chunks swapped": (lambda p: _swap(_chunk(p, "x", 0), _chunk(p, "x", 1)), "'x', chunk 0"),
    "array folder deleted": (lambda p: __import__("shutil").rmtree(p / "index"), "index"),
}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_every_corruption_is_named_on_read(clean, tmp_path, case):
    damage, pattern = CORRUPTIONS[case]
    path = _copy(clean, tmp_path, "s")
    damage(path)
    with pytest.raises(SaenoError, match=pattern):
        store = ActivationStore.open(path)
        for name in store.array_names():
            store.read(name)
        for _ in store.loader(HOOKS[1], batch_size=4):
            pass


@pytest.mark.parametrize(
    "case",
    [
        "chunk byte flipped",
        "chunk deleted",
        "chunk truncated",
        "chunks swapped",
        "stats behind rows_written",
        "commit edited",
    ],
)
def test_resume_repairs_damaged_stores_to_the_clean_bytes(hooked, clean, tmp_path, case):
    damage, _ = CORRUPTIONS[case]
    path = _copy(clean, tmp_path, "s")
    damage(path)
    _capture(hooked, path, resume=True)
    assert files(path) == files(clean)


def test_metadata_of_an_old_kill_is_repaired_on_resume(hooked, clean, tmp_path):
    """The bug of separate writes: rows_written one chunk ahead of the statistics."""
    path = tmp_path / "old"
    _capture(hooked, path)
    doc = _root(path)
    doc["attributes"]["stats"] = _stats_without_last_chunk(path)
    doc["attributes"].pop("commit")  # a store written before the commit record
    doc["attributes"]["complete"] = False
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="count"):
        ActivationStore.open(path)
    _capture(hooked, path, resume=True)
    assert ActivationStore.open(path).attrs["stats"] == ActivationStore.open(clean).attrs["stats"]


# ------------------------------------------------------------------------ data, writers, values
def test_resume_with_other_data_of_the_same_shape_is_refused(hooked, tmp_path):
    path = tmp_path / "a"
    with pytest.raises(InjectedKill), fail_at_write(_n_writes(hooked, tmp_path) - 3):
        _capture(hooked, path)
    assert ActivationStore.open(path).n_rows > 0
    with pytest.raises(StoreError, match="other inputs than the store holds"):
        _capture(hooked, path, resume=True, x=inputs(seed=2))


def test_a_second_writer_is_refused_while_a_capture_holds_the_store(hooked, clean, tmp_path):
    path = _copy(clean, tmp_path, "s")
    lock = WriterLock(path, str(path)).acquire()
    try:
        for flags in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(StoreError, match="another capture"):
                _capture(hooked, path, **flags)
        assert files(path).keys() - {".saeno-writer.lock"} == files(clean).keys()
    finally:
        lock.release()
    _capture(hooked, path, overwrite=True)


def test_float16_overflow_is_named_overflow(tmp_path):
    hooked = small_model()
    hooked.add_hook("lifting.hook_out", lambda act, *, hook: act * 1e6)
    with pytest.raises(NonFiniteActivationError, match="overflows float16.*finite"):
        capture(hooked, inputs(), ["lifting.hook_out"], tmp_path / "s", dtype="float16", progress=False)


def test_batch_size_zero_touches_nothing(hooked, tmp_path):
    with pytest.raises(StoreError, match="batch_size"):
        capture(hooked, inputs(), HOOKS, tmp_path / "s", batch_size=0, progress=False)
    assert not (tmp_path / "s").exists()


def test_a_huge_chunk_size_is_bounded_by_memory(hooked, tmp_path, monkeypatch):
    x = inputs(4)
    store = capture(hooked, x, HOOKS, tmp_path / "t", chunk_size=10**7, progress=False)
    assert store["x"].chunks[0] == 4  # clamped to the samples there are
    cap = sys.modules["saeno.store.capture_target"]
    monkeypatch.setattr(cap, "_memory_bytes", lambda: 8 * 2**10)  # a machine with 8 KiB of memory
    with pytest.raises(StoreError, match="chunk_size=4 needs .* at most 1 samples"):
        capture(hooked, x, HOOKS, tmp_path / "s", chunk_size=4, progress=False)


def test_readers_during_a_capture_see_only_committed_rows(hooked, clean, tmp_path):
    path = tmp_path / "r"
    reference = ActivationStore.open(clean)
    for k in range(5, _n_writes(hooked, tmp_path), 4):
        with pytest.raises(InjectedKill), fail_at_write(k):
            _capture(hooked, path, overwrite=path.exists())
        try:
            store = ActivationStore.open(path)
        except StoreError:
            continue
        rows = store.n_rows
        for name in store.array_names():
            assert np.array_equal(store.read(name), reference.read(name, slice(0, rows)))
    zarr.open_group(str(path))  # still a valid group


def test_overwrite_replaces_a_store_whose_root_document_is_truncated(hooked, clean, tmp_path):
    path = _copy(clean, tmp_path, "s")
    CORRUPTIONS["zarr.json truncated"][0](path)
    for flags in ({}, {"resume": True}):
        with pytest.raises(StoreError, match="zarr.json is damaged"):
            _capture(hooked, path, **flags)
    _capture(hooked, path, overwrite=True)
    assert files(path) == files(clean)
