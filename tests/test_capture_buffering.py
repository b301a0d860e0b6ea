"""Chunk buffering of the writer: arrays and statistics equal a plain run_with_cache reference bit for bit.

The reference is computed here without the store: the forward passes a capture makes (batches from
row 0, the last one padded to the batch size with copies of its last sample), then the statistics as
their definition says (per chunk of rows, merged in row order). Chunks of 5 rows over batches of 4
make every chunk span two batches and leave a final partial chunk of 3 rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, RunningStats, capture, writer
from saeno.store.layout import hook_path

HOOKS = ["lifting.hook_out", "blocks.1.hook_out"]
N, BATCH, CHUNK = 13, 4, 5


def tiny_fno() -> torch.nn.Module:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=6, n_layers=2).eval()


@pytest.fixture(scope="module")
def setup():
    model = tiny_fno()
    x = torch.randn(N, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    hooked = HookedOperator(model)
    acts = {h: [] for h in HOOKS}
    outs = []
    with torch.no_grad():
        for lo in range(0, N, BATCH):
            xb = x[lo : lo + BATCH]
            n = len(xb)
            padded = torch.cat([xb, xb[-1:].expand(BATCH - n, *xb.shape[1:])]) if n < BATCH else xb
            out, cache = hooked.run_with_cache(padded, names_filter=HOOKS)
            for h in HOOKS:
                acts[h].append(cache[h][:n].numpy().copy())
            outs.append(out[:n].numpy().copy())
    ref = {h: np.concatenate(v) for h, v in acts.items()}
    ref["y_pred"] = np.concatenate(outs)
    return hooked, x, ref


def reference_stats(a: np.ndarray) -> RunningStats:
    stats = RunningStats.empty(a.shape[1])
    for lo in range(0, len(a), CHUNK):
        stats = stats.merge(RunningStats.from_array(a[lo : lo + CHUNK]))
    return stats


def check_against_reference(store: ActivationStore, x: torch.Tensor, ref: dict) -> None:
    assert store.complete and store.n_rows == N and store["x"].chunks[0] == CHUNK
    for h in HOOKS:
        got = store.read(h)
        assert got.dtype == ref[h].dtype and np.array_equal(got, ref[h]), h
        want = reference_stats(ref[h])
        got_stats = store.running_stats(h)
        for field in ("count", "mean", "m2"):
            np.testing.assert_array_equal(
                getattr(got_stats, field), getattr(want, field), err_msg=f"{h} {field}"
            )
        # and the statistics are what they claim (an independent float64 computation)
        a = ref[h].astype(np.float64)
        np.testing.assert_allclose(store.stats(h)[0], a.mean(axis=(0, 2, 3)), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(store.stats(h)[1], a.var(axis=(0, 2, 3)), rtol=1e-9, atol=1e-12)
    assert np.array_equal(store.read("x"), x.numpy())
    assert np.array_equal(store.read("y_pred"), ref["y_pred"])
    np.testing.assert_array_equal(store.index, np.arange(N))


def test_buffered_chunks_equal_the_reference_bit_for_bit(setup, tmp_path):
    hooked, x, ref = setup
    store = capture(hooked, x, HOOKS, tmp_path / "s.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)
    check_against_reference(store, x, ref)


def test_writer_priority_does_not_change_the_store(setup, tmp_path, monkeypatch):
    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_NICE", 5)
    store = capture(hooked, x, HOOKS, tmp_path / "s.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)
    check_against_reference(store, x, ref)


def test_crash_in_the_writer_then_resume_equals_the_reference(setup, tmp_path, monkeypatch):
    hooked, x, ref = setup
    flush = writer.ChunkSink._flush
    calls = []

    def failing_flush(self):
        calls.append(self.rows_written)
        if len(calls) == 2:  # the second chunk: rows 5..9 never reach the disk
            raise OSError(28, "No space left on device")
        flush(self)

    monkeypatch.setattr(writer.ChunkSink, "_flush", failing_flush)
    path = tmp_path / "s.zarr"
    with pytest.raises(Exception, match="full|space"):
        capture(hooked, x, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False)
    partial = ActivationStore.open(path)
    assert partial.n_rows == CHUNK and not partial.complete  # the first chunk is committed, no more
    assert np.array_equal(partial.read(HOOKS[1]), ref[HOOKS[1]][:CHUNK])
    monkeypatch.setattr(writer.ChunkSink, "_flush", flush)
    store = capture(hooked, x, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, resume=True, progress=False)
    check_against_reference(store, x, ref)
    assert (
        store.attrs["chunk_crc"]
        == capture(
            hooked, x, HOOKS, tmp_path / "u.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False
        ).attrs["chunk_crc"]
    )
    assert hook_path(HOOKS[0]) in store.attrs["chunk_crc"]
