"""Writing captured batches: a background thread behind a bounded queue, and chunk-wise commits.

:class:`BackgroundWriter` runs a consumer function in a thread; :meth:`~BackgroundWriter.submit`
blocks only while the queue is full (so memory stays bounded), and any exception raised in the
thread is re-raised in the caller at its next ``submit`` or at ``close``.

:class:`ChunkSink` (the consumer used by :func:`saeno.capture`) gathers rows into whole chunks. A
full chunk is gathered into a reused buffer, checksummed and summarised per sample (stopping at
non-finite values) and written, every array at once; after every few chunks
(:data:`COMMIT_BYTES`, :data:`COMMIT_SECONDS`) the merged statistics, ``rows_written`` and the
chunks' content checksums are committed in one write of the root attributes (see
:mod:`saeno.store.commit`). A kill at any moment therefore leaves a store whose first
``rows_written`` rows are complete and whose statistics describe exactly those rows; it loses the
chunks written after the last commit, which a resume writes again.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from saeno.errors import SaenoError
from saeno.store.chunk_encoding import chunk_encoder
from saeno.store.commit import write_commit
from saeno.store.integrity import content_crc
from saeno.store.running_stats import RunningStats, SampleMoments, sample_moments

_STOP = object()

#: batches the writer queue holds before the forward pass waits
QUEUE_BATCHES = 4
#: niceness the writer thread adds to its own (Linux; 0 keeps the caller's). A positive value lets the
#: forward pass's threads keep their cores, the writer running in their gaps; off by default until it
#: is measured to help (benchmarks/capture.py compares both in one run)
WRITER_NICE = 0
#: where a capture writes: "thread" (a :class:`BackgroundWriter` beside the forward), "inline" (an
#: :class:`InlineWriter`, between forwards) or "auto" (inline when the forward's OpenMP threads spin
#: on every core, see :func:`saeno.store.capture_model.openmp_spins`; a thread otherwise). The
#: stored bytes do not depend on it
WRITER_MODE = "auto"
#: a capture commits at the end of the first chunk that brings the chunks written since its last
#: commit to at least this many uncompressed bytes, or that ends :data:`COMMIT_SECONDS` or more
#: after it (and at its end, or when it stops on an error). A kill loses the chunks written since
#: the last commit: under this many bytes, or that many seconds of capture, plus one chunk, plus
#: the rows gathered for the next chunk. 0 commits after every chunk
COMMIT_BYTES = 32 * 2**20
#: the most seconds between two commits, to the end of a chunk (see :data:`COMMIT_BYTES`); a
#: capture whose chunks take longer commits after every chunk
COMMIT_SECONDS = 1.0
#: encode whole chunks with the arrays' codecs in the sink's own threads and store the bytes
#: (:mod:`saeno.store.chunk_encoding`); False writes every chunk through ``zarr.Array.__setitem__``.
#: The chunk files are the same bytes either way
ENCODE_CHUNKS = True
#: rows of a chunk summarised at once: about this many bytes, so that their float64 copy stays in cache
_BLOCK_BYTES = 2**19


async def gather_all(*aws: Any) -> list[Any]:
    """``asyncio.gather`` that waits for every awaitable before raising the first error (in argument
    order): when a write fails, none of its siblings is still writing after the caller moves on."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _lower_own_priority(step: int) -> None:
    """Raise the calling thread's niceness by ``step`` (best effort; Linux schedules threads apart)."""
    if step <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except OSError:  # pragma: no cover - a platform that refuses: keep the priority
        pass


class NonFiniteActivationError(SaenoError, ValueError):
    """A hook produced NaN or infinite values (the capture stops; earlier rows stay readable)."""


class BackgroundWriter:
    """Run ``consume(item)`` for every submitted item in one background thread.

    Parameters
    ----------
    consume
        Called in the thread for each item, in submission order.
    finish
        Called in the thread after the last item when :meth:`close` is called with
        ``finish=True``.
    maxsize
        Items the queue holds before :meth:`submit` blocks.
    nice
        Niceness the thread adds to its own (default :data:`WRITER_NICE`; 0 keeps the caller's).
    """

    def __init__(
        self,
        consume: Callable[[Any], None],
        finish: Callable[[], None] | None = None,
        maxsize: int = 4,
        nice: int | None = None,
    ) -> None:
        self._nice = WRITER_NICE if nice is None else nice
        self._consume = consume
        self._finish = finish
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._do_finish = True
        self._thread = threading.Thread(target=self._run, name="saeno-store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _lower_own_priority(self._nice)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                self._consume(item)
            if self._do_finish and self._finish is not None:
                self._finish()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc
            # drain so that a producer blocked on put() wakes up and sees the error
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item: Any) -> None:
        """Queue ``item``; blocks while the queue is full; re-raises the thread's error."""
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                self._raise_if_failed()
                raise RuntimeError("the store writer thread has stopped")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self, finish: bool = True) -> None:
        """Wait for every queued item to be consumed; re-raise the thread's error if any.

        Parameters
        ----------
        finish
            Call the ``finish`` callback after the last item (False when aborting: the items
            already queued are still consumed, so everything submitted gets written).
        """
        self._do_finish = finish
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_if_failed()

    @property
    def failed(self) -> bool:
        """Whether the thread stopped with an error."""
        return self._error is not None


class InlineWriter:
    """Run ``consume(item)`` in the calling thread, at :meth:`submit` (the interface of
    :class:`BackgroundWriter`, without a thread).

    A capture uses it when the forward pass's OpenMP threads wait actively (spin) and already hold
    every core: a writer thread running beside them would take a core from a spinning team member,
    stalling each parallel region it joins, whereas writing between two forwards costs only the
    writing itself. Everything submitted before a failure has been consumed; an exception raised by
    ``consume`` propagates from :meth:`submit`.
    """

    def __init__(self, consume: Callable[[Any], None], finish: Callable[[], None] | None = None) -> None:
        self._consume = consume
        self._finish = finish
        self._error: BaseException | None = None
        self._closed = False

    def submit(self, item: Any) -> None:
        """Consume ``item`` now; re-raises an earlier error of the consumer."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("the store writer is closed")
        try:
            self._consume(item)
        except BaseException as exc:
            self._error = exc
            raise

    def close(self, finish: bool = True) -> None:
        """Call the ``finish`` callback (when ``finish``); re-raise the consumer's error if any."""
        if self._error is not None:
            raise self._error
        if self._closed:
            return
        self._closed = True
        if finish and self._finish is not None:
            try:
                self._finish()
            except BaseException as exc:
                self._error = exc
                raise

    @property
    def failed(self) -> bool:
        """Whether the consumer raised."""
        return self._error is not None


def make_writer(
    consume: Callable[[Any], None],
    finish: Callable[[], None] | None = None,
    *,
    inline: bool,
    maxsize: int = QUEUE_BATCHES,
) -> BackgroundWriter | InlineWriter:
    """A :class:`BackgroundWriter` or, with ``inline``, an :class:`InlineWriter` (same interface)."""
    if inline:
        return InlineWriter(consume, finish)
    return BackgroundWriter(consume, finish, maxsize=maxsize)


class ChunkSink:
    """Gather rows into whole chunks and commit them (the consumer of :class:`BackgroundWriter`).

    A batch's rows are kept as views until their chunk is full. The chunk is then, for every array
    at once in Zarr's thread pool: gathered (and cast) into a buffer allocated once per capture,
    checksummed (``chunk_crc``) and, for a hook, summarised sample by sample in blocks of rows small
    enough to stay in cache (:func:`~saeno.store.running_stats.sample_moments`, which also finds
    non-finite values); then every array's chunk is written, and every few chunks committed.

    Parameters
    ----------
    group
        The store's root group (opened for writing).
    arrays
        Array name -> Zarr array; every array has ``chunk_size`` samples per chunk.
    hooks
        Hook name -> array name, for the arrays whose statistics are kept.
    stats
        Hook name -> statistics of the rows already committed (updated in place).
    chunk_size
        Samples per chunk.
    start_row
        First row to write (the committed row count; a multiple of ``chunk_size``).
    dtypes
        Array name -> dtype to cast rows to before writing.
    allow_nonfinite
        Keep NaN/inf activations (statistics skip them) instead of stopping.
    on_commit
        Called as ``on_commit(rows_written, uncompressed_bytes)`` after each commit.
    chunk_crc
        Array name -> content checksums of the chunks already committed (extended in place).
    commit_bytes, commit_seconds
        Commit once the chunks written since the last commit hold at least ``commit_bytes``
        (uncompressed) or ``commit_seconds`` have passed since it (default 0 and None: after every
        chunk). :meth:`commit_written` commits them at any other time.
    stats_by_sample
        Summarise each chunk sample by sample (:meth:`RunningStats.from_samples`, the store
        attribute ``stats_method = "sample"``); False keeps the statistics of stores written before
        it (:meth:`RunningStats.from_array` over each whole chunk), so that resuming such a store
        gives the bits an uninterrupted capture gave.
    """

    def __init__(
        self,
        group: zarr.Group,
        arrays: dict[str, zarr.Array],
        hooks: dict[str, str],
        stats: dict[str, RunningStats],
        chunk_size: int,
        start_row: int,
        dtypes: dict[str, np.dtype],
        allow_nonfinite: bool = False,
        on_commit: Callable[[int, int], None] | None = None,
        chunk_crc: dict[str, list[int]] | None = None,
        stats_by_sample: bool = True,
        commit_bytes: int = 0,
        commit_seconds: float | None = None,
    ) -> None:
        if start_row % chunk_size:
            raise ValueError(f"start_row {start_row} is not a multiple of chunk_size {chunk_size}")
        self.group = group
        self.arrays = arrays
        self.hooks = hooks
        self.stats = stats
        self.chunk_size = chunk_size
        self.rows_written = start_row
        self.dtypes = dtypes
        self.allow_nonfinite = allow_nonfinite
        self.on_commit = on_commit
        self.stats_by_sample = stats_by_sample
        self.commit_bytes = commit_bytes
        self.commit_seconds = commit_seconds
        self.rows_committed = start_row
        self._uncommitted_bytes = 0
        self._last_commit = time.monotonic()
        self.bytes_written = 0
        self.chunk_crc = {name: list((chunk_crc or {}).get(name, [])) for name in arrays}
        self._hook_of = {name: hook for hook, name in hooks.items()}
        # allocated at the first batch (its shapes), reused for every chunk
        self._buffers: dict[str, np.ndarray] = {}
        self._moments: dict[str, SampleMoments] = {}
        self._pending: dict[str, list[np.ndarray]] = {name: [] for name in arrays}
        self._n_pending = 0
        self._encoders = {
            name: chunk_encoder(array) if ENCODE_CHUNKS else None for name, array in arrays.items()
        }

    def _allocate(self, batch: dict[str, np.ndarray]) -> None:
        cs = self.chunk_size
        for name, value in batch.items():
            dtype = np.dtype(self.dtypes.get(name, value.dtype))
            self._buffers[name] = np.empty((cs, *value.shape[1:]), dtype=dtype)
            if name in self._hook_of:
                channels = value.shape[1]
                acc = np.complex128 if dtype.kind == "c" else np.float64
                self._moments[name] = SampleMoments(
                    np.zeros((cs, channels)), np.zeros((cs, channels), dtype=acc), np.zeros((cs, channels))
                )

    def consume(self, batch: dict[str, np.ndarray]) -> None:
        """Add the rows of one batch (array name -> ``(B, ...)``), committing full chunks."""
        n = {len(v) for v in batch.values()}
        if len(n) != 1 or set(batch) != set(self.arrays):
            raise ValueError("a batch must hold the same number of rows for every array")
        if not self._buffers:
            self._allocate(batch)
        rows = n.pop()
        offset = 0
        while offset < rows:
            take = min(rows - offset, self.chunk_size - self._n_pending)
            for name, value in batch.items():
                self._pending[name].append(value[offset : offset + take])
            self._n_pending += take
            offset += take
            if self._n_pending == self.chunk_size:
                self._flush()

    def finish(self, complete: bool = True) -> None:
        """Write the last (partial) chunk and commit; ``complete`` marks the capture finished."""
        if self._n_pending:
            self._flush()
        self._commit(complete=complete)

    def _prepare(self, name: str, n: int, chunk: int) -> tuple[int, Any]:
        """Gather one array's rows into its chunk buffer (cast to the stored dtype); return their
        checksum and, for a whole chunk, its encoded bytes with their store path (None when Zarr
        writes it); for a hook, fill its per-sample moments, block by block while in cache."""
        parts, values = self._pending[name], self._buffers[name][:n]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by name
            if len(parts) == 1:
                np.copyto(values, parts[0], casting="unsafe")
            else:
                np.concatenate(parts, out=values, casting="unsafe")
        crc = content_crc(values)
        if name in self._moments:
            m = self._moments[name]
            step = max(1, _BLOCK_BYTES // max(1, values[:1].nbytes))
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                part = sample_moments(values[lo:hi], skip_nonfinite=self.allow_nonfinite)
                m.count[lo:hi], m.total[lo:hi], m.m2[lo:hi] = part.count, part.total, part.m2
        encoder = self._encoders[name]
        if encoder is None or values.shape != encoder.chunk_shape:
            return crc, None
        return crc, encoder.encode(values, chunk)

    async def _prepare_all(self, n: int, chunk: int) -> dict[str, tuple[int, Any]]:
        names = list(self.arrays)
        done = await gather_all(*(asyncio.to_thread(self._prepare, name, n, chunk) for name in names))
        return dict(zip(names, done))

    def _chunk_stats(self, name: str, n: int) -> RunningStats:
        if not self.stats_by_sample:
            return RunningStats.from_array(self._buffers[name][:n], skip_nonfinite=self.allow_nonfinite)
        m = self._moments[name]
        return RunningStats.from_moments(SampleMoments(m.count[:n], m.total[:n], m.m2[:n]))

    def _flush(self) -> None:
        start = self.rows_written
        n = self._n_pending
        stop = start + n
        # gathering, checksums and statistics of every array at once, in zarr's threads (numpy's
        # copies and reductions and zlib's CRC release the GIL), then the writes, also at once
        prepared = sync(self._prepare_all(n, start // self.chunk_size))
        data = {name: buffer[:n] for name, buffer in self._buffers.items()}
        if not self.allow_nonfinite:
            for name, hook in self._hook_of.items():
                m = self._moments[name]
                if not (np.isfinite(m.total[:n]).all() and np.isfinite(m.m2[:n]).all()):
                    _raise_nonfinite(hook, np.concatenate(self._pending[name]), data[name], start)
        chunk_stats = {hook: self._chunk_stats(name, n) for name, hook in self._hook_of.items()}
        sync(self._write_all(data, {name: enc for name, (_, enc) in prepared.items()}, start, stop))
        for name in self.arrays:
            self.chunk_crc[name].append(prepared[name][0])
        for hook, part in chunk_stats.items():
            self.stats[hook] = self.stats[hook].merge(part)
        self.rows_written = stop
        chunk_bytes = sum(v.nbytes for v in data.values())
        self.bytes_written += chunk_bytes
        self._uncommitted_bytes += chunk_bytes
        self._pending = {name: [] for name in self.arrays}
        self._n_pending = 0
        if self._uncommitted_bytes >= self.commit_bytes or (
            self.commit_seconds is not None and time.monotonic() - self._last_commit >= self.commit_seconds
        ):
            self._commit(complete=False)

    def commit_written(self) -> None:
        """Commit the chunks written since the last commit, if any (a capture that stops on an error
        keeps them; the rows gathered for the next chunk are dropped)."""
        if self.rows_written > self.rows_committed:
            self._commit(complete=False)

    async def _write_all(
        self, data: dict[str, np.ndarray], encoded: dict[str, Any], start: int, stop: int
    ) -> None:
        # all arrays of a chunk at once: chunks encoded in _prepare are stored as they are, the
        # others (a last partial chunk) go through zarr, whose compression runs in its threads
        await gather_all(
            *(
                encoded[name][0].set(encoded[name][1])
                if encoded.get(name) is not None
                else self.arrays[name].async_array.setitem(slice(start, stop), value)
                for name, value in data.items()
            )
        )

    def _commit(self, complete: bool) -> None:
        # statistics that skipped non-finite values are marked so (validation then allows lower counts)
        extra = {"allow_nonfinite": True} if self.allow_nonfinite else None
        write_commit(self.group, self.rows_written, complete, self.stats, self.chunk_crc, extra=extra)
        self.rows_committed = self.rows_written
        self._uncommitted_bytes = 0
        self._last_commit = time.monotonic()
        if self.on_commit is not None:
            self.on_commit(self.rows_written, self.bytes_written)


def _raise_nonfinite(hook: str, raw: np.ndarray, values: np.ndarray, start: int) -> None:
    """Raise NonFiniteActivationError naming the first row of ``values`` (a chunk starting at row
    ``start``) that holds NaN or infinity (an overflow of the cast when ``raw`` was finite)."""
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    row = start + int(np.argmax(bad))
    _raise_if_overflow(hook, raw, values, row, start)
    raise NonFiniteActivationError(
        f"hook {hook!r} produced NaN or infinite values at row {row} (sample "
        f"number {row} of the capture); the {start} rows before its chunk are "
        "written and readable. Check the model and its inputs, or pass "
        "allow_nonfinite=True (--allow-nonfinite) to keep such values."
    )


def _raise_if_overflow(hook: str, raw: np.ndarray, stored: np.ndarray, row: int, start: int) -> None:
    """A NonFiniteActivationError naming an overflow when the values were finite before the cast."""
    if stored.dtype == raw.dtype or not np.isfinite(raw).all():
        return
    peak = float(np.abs(raw).max())
    limit = float(np.finfo(stored.dtype).max)
    raise NonFiniteActivationError(
        f"hook {hook!r} overflows {stored.dtype} at row {row}: the model's values are finite but "
        f"reach {peak:.4g}, beyond the largest {stored.dtype} ({limit:.6g}); the {start} rows before "
        "its chunk are written and readable. Capture with dtype='float32' (--dtype float32)."
    )
