"""The chunk sink's per-batch work against the whole-chunk path stores had before ``stats_method``.

A capture copies each batch's rows into a chunk buffer, checksums them with a running CRC and
summarises them sample by sample. A store written with ``stats_method`` absent (what every store
before it holds, made here by unsetting ``saeno.store.layout.STATS_METHOD``) keeps its statistics of
whole chunks (``RunningStats.from_array``), also when it is resumed. Both kinds hold the same arrays
and content checksums, statistics equal to float64 rounding, and checksums that equal the chunks read
back. Chunks of 5 rows over batches of 4: every chunk spans two batches, the last one is partial.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from faults import fail_at_batch, files
from saeno.errors import StoreError
from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, RunningStats, capture, layout, writer
from saeno.store.layout import hook_path
from saeno.store.repair import chunk_checksums

HOOKS = ["lifting.hook_out", "blocks.1.hook_out"]
N, BATCH, CHUNK = 13, 4, 5


@pytest.fixture(scope="module")
def hooked():
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=6, n_layers=2).eval()
    return HookedOperator(model)


@pytest.fixture(scope="module")
def x():
    return torch.randn(N, 1, 12, 12, generator=torch.Generator().manual_seed(3))


def _capture(hooked, x, path, **kw):
    return capture(hooked, x, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False, **kw)


def _per_chunk(a: np.ndarray, summarise) -> RunningStats:
    stats = RunningStats.empty(a.shape[1])
    for lo in range(0, len(a), CHUNK):
        stats = stats.merge(summarise(a[lo : lo + CHUNK]))
    return stats


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_new_and_old_statistics_methods_store_the_same_data(hooked, x, tmp_path, monkeypatch, dtype):
    new = _capture(hooked, x, tmp_path / "new", dtype=dtype)
    monkeypatch.setattr(layout, "STATS_METHOD", None)
    old = _capture(hooked, x, tmp_path / "old", dtype=dtype)
    assert new.attrs["stats_method"] == "sample" and old.attrs.get("stats_method") is None
    assert new.attrs["chunk_crc"] == old.attrs["chunk_crc"]
    for store in (new, old):
        # the running checksums equal the CRC-32 of every chunk read back from its file
        names = list(store.attrs["array_shapes"])
        assert chunk_checksums(store.group, names, N, store.url) == store.attrs["chunk_crc"]
    for h in HOOKS:
        a = new.read(h)
        assert a.dtype == np.dtype(dtype) and np.array_equal(a, old.read(h))
        # each store's statistics are its own method's, bit for bit (the old: whole chunks)
        for store, summarise in ((new, RunningStats.from_samples), (old, RunningStats.from_array)):
            want, got = _per_chunk(a, summarise), store.running_stats(h)
            for field in ("count", "mean", "m2"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        # and the two methods agree to float64 rounding
        np.testing.assert_allclose(new.stats(h)[0], old.stats(h)[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(new.stats(h)[1], old.stats(h)[1], rtol=1e-12)
    for name in ("x", "y_pred", "index"):
        assert np.array_equal(new.read(name), old.read(name))


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_an_old_store_resumes_with_its_own_method_bit_for_bit(hooked, x, tmp_path, monkeypatch, caplog, mode):
    """A store of the old method killed after its first chunk: the resume neither repairs it (its
    statistics verify as they are) nor mixes methods; it ends equal to an uninterrupted old capture."""
    monkeypatch.setattr(writer, "WRITER_MODE", mode)
    monkeypatch.setattr(layout, "STATS_METHOD", None)
    _capture(hooked, x, tmp_path / "clean")
    flush = writer.ChunkSink._flush
    calls = []

    def failing_flush(self):
        calls.append(self.rows_written)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        flush(self)

    monkeypatch.setattr(writer.ChunkSink, "_flush", failing_flush)
    path = tmp_path / "killed"
    with pytest.raises(StoreError, match="full"):
        _capture(hooked, x, path)
    monkeypatch.setattr(writer.ChunkSink, "_flush", flush)
    monkeypatch.setattr(layout, "STATS_METHOD", "sample")  # the current version resumes it
    assert ActivationStore.open(path).n_rows == CHUNK
    with caplog.at_level(logging.WARNING, logger="saeno.store.repair"):
        done = _capture(hooked, x, path, resume=True)
    assert not [r for r in caplog.records if r.name == "saeno.store.repair"]
    assert done.complete and files(path) == files(tmp_path / "clean")


def test_a_store_of_an_unknown_statistics_method_is_not_resumed(hooked, x, tmp_path):
    import zarr

    bad = x.clone()
    bad[7, 0, 0, 0] = float("nan")  # stops the capture after its first chunk
    with pytest.raises(writer.NonFiniteActivationError):
        _capture(hooked, bad, tmp_path / "s")
    zarr.open_group(tmp_path / "s", mode="r+").update_attributes({"stats_method": "moments-v9"})
    with pytest.raises(StoreError, match="stats_method='moments-v9'.*saeno version that wrote it"):
        _capture(hooked, x, tmp_path / "s", resume=True)


def test_a_nonfinite_value_in_a_later_piece_of_a_chunk_names_its_row(hooked, x, tmp_path):
    """Row 6 lies in the second batch piece of chunk 1 (rows 5..9): the error names it and the
    pieces already summarised are dropped with the chunk."""
    from saeno.store.writer import NonFiniteActivationError

    bad = x.clone()
    bad[9, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteActivationError, match="at row 9 .* the 5 rows before its chunk"):
        _capture(hooked, bad, tmp_path / "s")
    partial = ActivationStore.open(tmp_path / "s")
    assert partial.n_rows == CHUNK
    assert (
        partial.attrs["chunk_crc"][hook_path(HOOKS[0])]
        == _capture(hooked, x, tmp_path / "ok").attrs["chunk_crc"][hook_path(HOOKS[0])][:1]
    )


def _kill_at_write(monkeypatch, k: int) -> dict:
    """Make the k-th write of a local store raise and write nothing more: the store's files are left
    as a kill at that write leaves them (the capture's attempt to commit on the error is disabled)."""
    from zarr.storage import LocalStore

    from faults import InjectedKill
    from saeno.store import capturing

    original = LocalStore._set
    seen = {"n": 0, "keys": []}

    async def _set(self, key, value, *args, **kwargs):
        seen["n"] += 1
        if seen["n"] >= k:
            raise InjectedKill(key)
        seen["keys"].append(key)
        return await original(self, key, value, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "_set", _set)
    monkeypatch.setattr(capturing, "_commit_written", lambda sink: None)
    return seen


def test_a_kill_loses_at_most_the_chunks_written_since_the_last_commit(hooked, x, tmp_path, monkeypatch):
    """Commits every two chunks (COMMIT_BYTES of two chunks of every array): a kill at every write
    leaves the rows of the last commit readable, at most two chunks behind the chunks on disk, and
    a resume then gives the uninterrupted store's files."""
    import json

    from faults import InjectedKill

    monkeypatch.setattr(writer, "WRITER_MODE", "inline")
    per_row = sum(int(np.prod(s)) * 4 for s in [(6, 12, 12)] * 2 + [(1, 12, 12)] * 2) + 8
    monkeypatch.setattr(writer, "COMMIT_BYTES", 2 * CHUNK * per_row)
    monkeypatch.setattr(writer, "COMMIT_SECONDS", None)
    clean = tmp_path / "clean"
    _capture(hooked, x, clean)
    n_writes = sum(1 for p in clean.rglob("*") if p.is_file())  # at least one write per file
    commits_seen = set()
    for k in range(1, n_writes + 12):
        path = tmp_path / f"k{k}"
        with monkeypatch.context() as m:
            seen = _kill_at_write(m, k)
            try:
                _capture(hooked, x, path)
            except InjectedKill:
                pass
            else:
                break  # k is past the last write
        chunks_on_disk = {key.split("/c/")[1].split("/")[0] for key in seen["keys"] if "hook_out/c/" in key}
        written = CHUNK * len(chunks_on_disk)
        try:
            rows = json.loads((path / "zarr.json").read_text())["attributes"].get("rows_written", 0)
        except (FileNotFoundError, KeyError):
            rows = 0
        assert rows % CHUNK == 0 or rows == N
        assert written - rows <= 2 * CHUNK + CHUNK, (k, rows, written)  # two chunks, one half-written
        commits_seen.add(rows)
        _capture(hooked, x, path, resume=True)
        assert files(path) == files(clean), k
    # one intermediate commit, after two chunks (a commit after every chunk would also show 5)
    assert commits_seen == {0, 2 * CHUNK}


def test_an_error_commits_the_chunks_written_since_the_last_commit(hooked, x, tmp_path, monkeypatch):
    """With commits far apart, a capture stopped by an error (not a kill) still commits every chunk
    it wrote before: here the model fails at its fourth batch, after chunks 0 and 1."""
    monkeypatch.setattr(writer, "COMMIT_BYTES", 2**40)
    monkeypatch.setattr(writer, "COMMIT_SECONDS", None)
    fail_at_batch(monkeypatch, hooked, 4)
    with pytest.raises(RuntimeError, match="the model failed"):
        _capture(hooked, x, tmp_path / "s")
    assert ActivationStore.open(tmp_path / "s").n_rows == 2 * CHUNK


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_chunks_encoded_by_the_sink_are_the_files_zarr_writes(hooked, x, tmp_path, monkeypatch, dtype):
    """The sink encodes whole chunks itself (saeno.store.chunk_encoding); every file equals the
    store written through zarr.Array.__setitem__, and the encoder is really used."""
    from saeno.store import chunk_encoding

    used = []
    encode = chunk_encoding.ChunkEncoder.encode

    def counting(self, values, chunk):
        used.append(chunk)
        return encode(self, values, chunk)

    monkeypatch.setattr(chunk_encoding.ChunkEncoder, "encode", counting)
    _capture(hooked, x, tmp_path / "direct", dtype=dtype)
    assert sorted(set(used)) == [0, 1]  # the two whole chunks; the partial third goes through zarr
    monkeypatch.setattr(writer, "ENCODE_CHUNKS", False)
    _capture(hooked, x, tmp_path / "zarr", dtype=dtype)
    direct, plain = files(tmp_path / "direct"), files(tmp_path / "zarr")
    assert sorted(direct) == sorted(plain)
    assert len([k for k in direct if "/c/" in k and not k.startswith("grid_")]) == 3 * 5  # 5 arrays
    for key, content in plain.items():
        assert direct[key] == content, key


def test_an_untested_zarr_release_writes_through_zarr(hooked, x, tmp_path, monkeypatch):
    """The sink's own encoder uses Zarr's internals: with a release it was not tested against the
    sink writes every chunk through zarr.Array.__setitem__, and the store is the same."""
    import zarr

    from saeno.store import chunk_encoding

    assert chunk_encoding.zarr_release_tested("3.1.6") and not chunk_encoding.zarr_release_tested("4.0.0")
    assert not chunk_encoding.zarr_release_tested("dev")
    _capture(hooked, x, tmp_path / "tested")
    used = []
    monkeypatch.setattr(chunk_encoding.ChunkEncoder, "encode", lambda *a: used.append(a))
    monkeypatch.setattr(zarr, "__version__", "9.0.0")
    _capture(hooked, x, tmp_path / "untested")
    assert used == []
    tested, untested = files(tmp_path / "tested"), files(tmp_path / "untested")
    assert sorted(tested) == sorted(untested)
    for key, content in tested.items():
        if "/c/" in key:
            assert untested[key] == content, key
