"""Writing captured batches: a background thread behind a bounded queue, and chunk-wise commits.

:class:`BackgroundWriter` runs a consumer function in a thread; :meth:`~BackgroundWriter.submit`
blocks only while the queue is full (so memory stays bounded), and any exception raised in the
thread is re-raised in the caller at its next ``submit`` or at ``close``.

:class:`ChunkSink` (the consumer used by :func:`saeno.capture`) gathers rows into whole chunks and,
for each chunk, in this order: computes the hooks' statistics (stopping at non-finite values),
writes the chunk of every array, then commits the merged statistics, ``rows_written`` and the
chunks' content checksums in one write of the root attributes (see :mod:`saeno.store.commit`). A kill at any moment therefore leaves a store whose first
``rows_written`` rows are complete and whose statistics describe exactly those rows.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from saeno.errors import SaenoError
from saeno.store.commit import write_commit
from saeno.store.integrity import content_crc
from saeno.store.running_stats import RunningStats

_STOP = object()

#: batches the writer queue holds before the forward pass waits
QUEUE_BATCHES = 4
#: niceness the writer thread adds to its own (Linux; 0 keeps the caller's). A positive value lets the
#: forward pass's threads keep their cores, the writer running in their gaps; off by default until it
#: is measured to help (benchmarks/capture.py compares both in one run)
WRITER_NICE = 0


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


class ChunkSink:
    """Gather rows into whole chunks and commit them (the consumer of :class:`BackgroundWriter`).

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
        self.bytes_written = 0
        self.chunk_crc = {name: list((chunk_crc or {}).get(name, [])) for name in arrays}
        self._pending: dict[str, list[np.ndarray]] = {name: [] for name in arrays}
        self._n_pending = 0

    def consume(self, batch: dict[str, np.ndarray]) -> None:
        """Add the rows of one batch (array name -> ``(B, ...)``), committing full chunks."""
        n = {len(v) for v in batch.values()}
        if len(n) != 1 or set(batch) != set(self.arrays):
            raise ValueError("a batch must hold the same number of rows for every array")
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

    def _flush(self) -> None:
        start = self.rows_written
        stop = start + self._n_pending
        data, raw = {}, {}
        for name, parts in self._pending.items():
            value = parts[0] if len(parts) == 1 else np.concatenate(parts)
            raw[name] = value
            with np.errstate(over="ignore"):  # an overflow is reported below, by name
                data[name] = np.asarray(value, dtype=self.dtypes.get(name, value.dtype))
        chunk_stats = {}
        for hook, name in self.hooks.items():
            values = data[name]
            if not self.allow_nonfinite:
                bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
                if bad.any():
                    row = start + int(np.argmax(bad))
                    _raise_if_overflow(hook, raw[name], values, row, start)
                    raise NonFiniteActivationError(
                        f"hook {hook!r} produced NaN or infinite values at row {row} (sample "
                        f"number {row} of the capture); the {start} rows before its chunk are "
                        "written and readable. Check the model and its inputs, or pass "
                        "allow_nonfinite=True (--allow-nonfinite) to keep such values."
                    )
            chunk_stats[hook] = RunningStats.from_array(values, skip_nonfinite=self.allow_nonfinite)
        crcs = {name: content_crc(value) for name, value in data.items()}
        sync(self._write_all(data, start, stop))
        for name, crc in crcs.items():
            self.chunk_crc[name].append(crc)
        for hook, part in chunk_stats.items():
            self.stats[hook] = self.stats[hook].merge(part)
        self.rows_written = stop
        self.bytes_written += sum(v.nbytes for v in data.values())
        self._pending = {name: [] for name in self.arrays}
        self._n_pending = 0
        self._commit(complete=False)

    async def _write_all(self, data: dict[str, np.ndarray], start: int, stop: int) -> None:
        # all arrays of a chunk at once: their compression runs in parallel in zarr's threads
        await asyncio.gather(
            *(
                self.arrays[name].async_array.setitem(slice(start, stop), value)
                for name, value in data.items()
            )
        )

    def _commit(self, complete: bool) -> None:
        # statistics that skipped non-finite values are marked so (validation then allows lower counts)
        extra = {"allow_nonfinite": True} if self.allow_nonfinite else None
        write_commit(self.group, self.rows_written, complete, self.stats, self.chunk_crc, extra=extra)
        if self.on_commit is not None:
            self.on_commit(self.rows_written, self.bytes_written)


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
