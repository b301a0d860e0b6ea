"""Chunk buffering of the writer: arrays and statistics equal a plain run_with_cache reference bit for bit.

The reference is computed here without the store: the forward passes a capture makes (batches from
row 0, the last one padded to the batch size with copies of its last sample), then the statistics as
their definition says (each chunk of rows summarised from its samples' moments, the chunks merged in
row order), which the capture computes batch piece by batch piece. Chunks of 5 rows over batches of 4
make every chunk span two batches and leave a final partial chunk of 3 rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faults import fail_at_batch
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
        stats = stats.merge(RunningStats.from_samples(a[lo : lo + CHUNK]))
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


MODES = ["thread", "inline"]


@pytest.mark.parametrize("mode", MODES)
def test_buffered_chunks_equal_the_reference_bit_for_bit(setup, tmp_path, monkeypatch, mode):
    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_MODE", mode)
    store = capture(hooked, x, HOOKS, tmp_path / "s.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)
    check_against_reference(store, x, ref)


def test_both_writer_modes_write_the_same_bytes(setup, tmp_path, monkeypatch):
    """Every chunk file and the root metadata are byte-identical whichever writer ran."""
    hooked, x, _ = setup
    files = {}
    for mode in MODES:
        monkeypatch.setattr(writer, "WRITER_MODE", mode)
        root = tmp_path / mode
        capture(hooked, x, HOOKS, root, batch_size=BATCH, chunk_size=CHUNK, progress=False)
        files[mode] = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
    assert set(files["thread"]) == set(files["inline"])
    chunks = [k for k in files["thread"] if "/c/" in k]
    assert len(chunks) >= 3 * 5  # 3 chunks (the last partial) of every array
    for key, content in files["thread"].items():
        if key == "zarr.json":  # the root metadata records the saeno version and dataset, same here
            continue
        assert files["inline"][key] == content, key
    import json

    a, b = (json.loads(files[m]["zarr.json"]) for m in MODES)
    assert a == b


def test_invalid_writer_mode_is_named(setup, tmp_path, monkeypatch):
    from saeno.errors import StoreError

    hooked, x, _ = setup
    monkeypatch.setattr(writer, "WRITER_MODE", "fast")
    with pytest.raises(StoreError, match="WRITER_MODE"):
        capture(hooked, x, HOOKS, tmp_path / "s.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)


@pytest.mark.parametrize("mode", MODES)
def test_an_error_in_the_forward_keeps_the_full_chunks_and_resume_completes(
    setup, tmp_path, monkeypatch, mode
):
    """The model fails at its fourth batch (rows 12..): chunks 0 and 1 (rows 0..9) are committed,
    the rows 10..11 gathered for chunk 2 are not; resuming gives the reference."""
    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_MODE", mode)
    original = hooked.run_with_cache
    fail_at_batch(monkeypatch, hooked, 4)
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="the model failed"):
        capture(hooked, x, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False)
    partial = ActivationStore.open(path)
    assert partial.n_rows == 2 * CHUNK and not partial.complete
    for h in HOOKS:
        assert np.array_equal(partial.read(h), ref[h][: 2 * CHUNK])
    monkeypatch.setattr(hooked, "run_with_cache", original)
    store = capture(hooked, x, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, resume=True, progress=False)
    check_against_reference(store, x, ref)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row, value", [(7, float("nan")), (12, float("inf")), (0, float("-inf"))])
def test_a_nonfinite_activation_stops_at_its_row_in_every_mode(
    setup, tmp_path, monkeypatch, mode, row, value
):
    """The statistics of a chunk are the finiteness check: the error names the exact row, also the
    last row of the partial last chunk, and the chunks before it stay committed."""
    from saeno.store.writer import NonFiniteActivationError

    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_MODE", mode)
    bad = x.clone()
    bad[row, 0, 3, 4] = value
    path = tmp_path / "s.zarr"
    with pytest.raises(NonFiniteActivationError, match=f"at row {row} "):
        capture(hooked, bad, HOOKS, path, batch_size=BATCH, chunk_size=CHUNK, progress=False)
    partial = ActivationStore.open(path)
    committed = (row // CHUNK) * CHUNK
    assert partial.n_rows == committed and not partial.complete
    for h in HOOKS:
        assert np.array_equal(partial.read(h), ref[h][:committed])


def test_inline_writer_consumes_at_submit_and_keeps_its_error():
    seen, finished = [], []

    def consume(item):
        if item == "bad":
            raise ValueError("cannot write")
        seen.append(item)

    w = writer.InlineWriter(consume, lambda: finished.append(True))
    w.submit(1)
    assert seen == [1]  # consumed before submit returns
    with pytest.raises(ValueError, match="cannot write"):
        w.submit("bad")
    assert w.failed
    with pytest.raises(ValueError, match="cannot write"):
        w.submit(2)  # the first error again, nothing more consumed
    with pytest.raises(ValueError, match="cannot write"):
        w.close()
    assert seen == [1] and not finished

    w = writer.InlineWriter(seen.append, lambda: finished.append(True))
    w.submit(3)
    w.close(finish=False)  # an abort: no final chunk
    assert seen == [1, 3] and not finished
    w = writer.InlineWriter(seen.append, lambda: finished.append(True))
    w.close()
    w.close()
    assert finished == [True]


@pytest.mark.parametrize(
    "env, threads, cores, device, spins",
    [
        ({}, 2, 2, "cpu", True),  # OpenMP's default policy on every core: write between forwards
        ({"OMP_WAIT_POLICY": "passive"}, 2, 2, "cpu", False),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, 2, 2, "cpu", True),
        ({"GOMP_SPINCOUNT": "0"}, 2, 2, "cpu", False),
        ({"KMP_BLOCKTIME": "0"}, 4, 4, "cpu", False),
        ({}, 1, 2, "cpu", False),  # one torch thread: the writer has a core of its own
        ({}, 2, 8, "cpu", False),  # free cores
        ({}, 2, 2, "meta", False),  # the forward is not on the CPU
    ],
)
def test_openmp_spins_decides_the_writer_mode(monkeypatch, env, threads, cores, device, spins):
    from saeno.store import capture_model

    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(capture_model, "_usable_cores", lambda: cores)
    assert capture_model.openmp_spins(torch.device(device)) is spins


def test_writer_priority_does_not_change_the_store(setup, tmp_path, monkeypatch):
    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_MODE", "thread")
    monkeypatch.setattr(writer, "WRITER_NICE", 5)
    store = capture(hooked, x, HOOKS, tmp_path / "s.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)
    check_against_reference(store, x, ref)


@pytest.mark.parametrize("mode", MODES)
def test_crash_in_the_writer_then_resume_equals_the_reference(setup, tmp_path, monkeypatch, mode):
    hooked, x, ref = setup
    monkeypatch.setattr(writer, "WRITER_MODE", mode)
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


def test_an_uncompressed_store_holds_the_same_values(setup, tmp_path, monkeypatch):
    """``COMPRESSOR = None`` changes only the chunk files' encoding: values, statistics and content
    checksums equal the compressed store's, and the arrays record no blosc codec."""
    from saeno.store import capture_target

    hooked, x, ref = setup
    packed = capture(
        hooked, x, HOOKS, tmp_path / "z.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False
    )
    monkeypatch.setattr(capture_target, "COMPRESSOR", None)
    plain = capture(hooked, x, HOOKS, tmp_path / "p.zarr", batch_size=BATCH, chunk_size=CHUNK, progress=False)
    check_against_reference(plain, x, ref)
    assert plain.attrs["chunk_crc"] == packed.attrs["chunk_crc"]
    assert plain.attrs["stats"] == packed.attrs["stats"]
    names = [type(c).__name__ for c in plain[hook_path(HOOKS[1])].compressors]
    assert names == ["Crc32cCodec"]
    assert [type(c).__name__ for c in packed[hook_path(HOOKS[1])].compressors] == [
        "BloscCodec",
        "Crc32cCodec",
    ]
    assert plain.nbytes_stored() > packed.nbytes_stored()
