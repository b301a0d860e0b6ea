"""``saeno.capture``: run a hooked FNO over data and stream its activation fields into a Zarr store.

The forward pass runs in the calling thread. A :class:`~saeno.store.writer.ChunkSink` gathers the
rows into whole chunks and casts, checks, compresses, writes and commits each (see
:mod:`saeno.store.writer`), so memory does not grow with the number of samples. The sink runs in a
:class:`~saeno.store.writer.BackgroundWriter` thread behind a queue of ``QUEUE_BATCHES`` batches, so
that the forward does not wait on the disk, except when the forward's OpenMP threads spin on every
core (OpenMP's default wait policy with as many torch threads as cores): a third runnable thread
would then stall the forward's parallel regions, and an :class:`~saeno.store.writer.InlineWriter`
writes each chunk between two forwards instead (``saeno.store.writer.WRITER_MODE`` overrides the
choice). The stored bytes are the same either way. The store layout is described in
:mod:`saeno.store.layout`.

Determinism: rows are the data's samples in order; the chunking depends only on per-sample sizes;
batches of a tensor or Dataset start at multiples of ``batch_size`` from row 0, and a resumed
capture re-runs the batch that holds its first missing row, so a killed-and-resumed capture equals an
uninterrupted one bit for bit. (Forward passes of the same sample in batches of different sizes can
differ in the last float bit on CPU, so a resumed capture keeps the ``batch_size`` recorded in the
store.)
"""

from __future__ import annotations

import sys
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from saeno.deprecation import UNSET, renamed
from saeno.errors import StoreError
from saeno.store import commit, layout
from saeno.store import writer as writer_mod
from saeno.store.activation_store import ActivationStore, format_bytes, open_group, store_url
from saeno.store.capture_model import (
    DTYPES,
    array_specs,
    batch_rows,
    check_arguments,
    forward_batch,
    model_device,
    model_fingerprint,
    model_of,
    openmp_spins,
    resolve_hooks,
)
from saeno.store.capture_target import (
    COMPRESSOR,
    check_compatible,
    check_disk,
    create_store,
    dataset_attr,
    is_local,
    open_target,
    os_error,
    shrink,
)
from saeno.store.lock import WriterLock
from saeno.store.repair import check_same_data, verify_and_repair
from saeno.store.running_stats import RunningStats
from saeno.store.sources import Batch, dataset_of, iter_batches, length_of
from saeno.store.writer import QUEUE_BATCHES, BackgroundWriter, ChunkSink, InlineWriter, make_writer

__all__ = ["COMPRESSOR", "capture"]


def capture(
    hooked: Any,
    data: Any,
    hooks: Any,
    store: str | PathLike,
    *,
    batch_size: int = 32,
    dtype: str = "float32",
    n_rows: int | None = None,
    resume: bool = False,
    allow_nonfinite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    dataset_card: dict | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    n: Any = UNSET,
) -> ActivationStore:
    """Run ``hooked`` over ``data`` and write the fields of ``hooks`` to a Zarr store.

    Parameters
    ----------
    hooked
        A :class:`saeno.HookedOperator` (anything with ``run_with_cache`` and ``resolve``).
    data
        Model inputs: a tensor ``(N, C, *grid)``, a Dataset or a DataLoader yielding tensors,
        ``(x, y)`` pairs or dicts ``{"x", "y", "index", "params"}``.
    hooks
        Hook name, glob, list or predicate, resolved with ``hooked.resolve``.
    store
        Where to write: a local path or any URL Zarr and fsspec accept (``memory://...``,
        ``s3://...``).
    batch_size
        Samples per forward pass (tensors and Datasets; a DataLoader keeps its own batches).
    dtype
        Storage type of the hook activations: ``"float32"`` or ``"float16"`` (complex activations
        are stored as complex64). Inputs and outputs are kept in float32.
    n_rows
        Capture only the first ``n_rows`` samples (default: all). ``n`` is its deprecated old name.
    resume
        Continue a store left unfinished (killed, stopped at a non-finite value). The finished
        store equals an uninterrupted capture bit for bit. A store made by another model, with
        other hooks, dtype or shapes is refused.
    allow_nonfinite
        Keep NaN and infinite activations (statistics skip them) instead of stopping.
    device
        Device of the forward pass (default: the model's). Activations are copied to the host
        once per batch.
    progress
        Show a tqdm bar (samples/s, bytes written) and print the size estimate.
    dataset_card
        Metadata of the data to record (default: ``data.card`` when it has one).
    chunk_size
        Samples per chunk (default: about 4 MiB of the largest array per chunk).
    overwrite
        Replace an existing saeno store at ``store`` (never anything else).

    Returns
    -------
    ActivationStore
        The finished store, opened for reading.

    Raises
    ------
    StoreError
        The location holds data (without ``resume``/``overwrite``), the store is incompatible
        with this capture, or the disk is too small.
    NonFiniteActivationError
        A hook produced NaN/inf (rows committed before the chunk holding it stay readable).
    """
    n = renamed(n_rows, n, new="n_rows", old="n")
    check_arguments(
        batch_size=batch_size, dtype=dtype, n=n, chunk_size=chunk_size, resume=resume, overwrite=overwrite
    )
    url = store_url(store)
    names = resolve_hooks(hooked, hooks)
    model = model_of(hooked)
    dev = torch.device(device) if device is not None else model_device(model)
    fingerprint = model_fingerprint(hooked)

    total = length_of(data)
    if n is not None:
        total = n if total is None else min(n, total)
    if total is None:
        raise StoreError(
            "the data has no length (an iterable dataset): pass n_rows=... with the number of samples"
        )
    if total == 0:
        raise StoreError("the data holds no samples")

    lock = WriterLock(Path(url.removeprefix("file://")) if is_local(url) else None, url)
    try:
        group, attrs = open_target(url, resume=resume, overwrite=overwrite, lock=lock)
        return _capture_into(
            group, attrs, url, hooked, data, names, model, dev, fingerprint, total,
            batch_size=batch_size, dtype=dtype, allow_nonfinite=allow_nonfinite,
            progress=progress, dataset_card=dataset_card, chunk_size=chunk_size,
        )  # fmt: skip
    except OSError as exc:
        raise os_error(exc, url) from None
    finally:
        lock.release()


def _capture_into(
    group: zarr.Group,
    attrs: dict | None,
    url: str,
    hooked: Any,
    data: Any,
    names: list[str],
    model: torch.nn.Module,
    dev: torch.device,
    fingerprint: str,
    total: int,
    *,
    batch_size: int,
    dtype: str,
    allow_nonfinite: bool,
    progress: bool,
    dataset_card: dict | None,
    chunk_size: int | None,
) -> ActivationStore:
    start = 0
    if attrs is not None:
        commit.validate_static(attrs, url)
        check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=None)
        attrs = verify_and_repair(group, attrs, url)
        start = int(attrs["rows_written"])
        if attrs.get("complete"):
            if int(attrs["n_planned"]) != total:
                raise StoreError(
                    f"the store at {url} is complete with {start} rows; this call asks for {total}: "
                    "capture other samples into a new store"
                )
            return ActivationStore.open(url)
        if int(attrs["n_planned"]) != total:
            raise StoreError(
                f"the store at {url} was started for {attrs['n_planned']} samples, this call asks "
                f"for {total}: resume with n={attrs['n_planned']} (or the same data)"
            )
        if int(attrs["batch_size"]) != batch_size:
            warnings.warn(
                f"resuming with the store's batch_size={attrs['batch_size']} (not {batch_size}) so "
                "that the finished store equals an uninterrupted capture bit for bit",
                stacklevel=2,
            )
            batch_size = int(attrs["batch_size"])
        check_same_data(group, attrs, data, batch_size, url)

        if start >= total:  # killed between the last chunk's commit and the final one
            commit.write_commit(group, start, True, attrs["stats"], attrs.get("chunk_crc"))
            return ActivationStore.open(url)

    ds = None if isinstance(data, torch.Tensor) else dataset_of(data)
    card = dataset_card if dataset_card is not None else dataset_attr(ds, "card")
    sink: ChunkSink | None = None
    writer: BackgroundWriter | InlineWriter | None = None
    bar = None
    pad_to = data.batch_size if isinstance(data, torch.utils.data.DataLoader) else batch_size
    try:
        for batch in iter_batches(data, batch_size, start, total):
            end = batch.start + len(batch)
            if end <= start:  # a DataLoader batch already written: check it is the same data
                _check_skipped(group, batch, url)
                continue
            out, cache = forward_batch(hooked, batch.x, names, dev, pad_to=pad_to)
            rows = batch_rows(
                batch, out, cache, names, max(0, start - batch.start), min(len(batch), total - batch.start)
            )
            del out, cache
            if writer is None:
                specs = array_specs(rows, names, DTYPES[dtype])
                if attrs is None:
                    attrs = create_store(
                        group, specs, names, fingerprint=fingerprint, model=model, hooked=hooked, dtype=dtype,
                        total=total, batch_size=batch_size, chunk_size=chunk_size, batch=batch,
                        ds=ds, card=card, split=dataset_attr(ds, "split"), allow_nonfinite=allow_nonfinite,
                    )  # fmt: skip
                else:
                    check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=specs)
                per_sample = sum(int(np.prod(s)) * d.itemsize for s, d in specs.values())
                needed = (total - start) * per_sample
                if is_local(url):
                    check_disk(url, needed)
                if progress:
                    print(
                        f"saeno capture: {total - start} samples x {format_bytes(per_sample)} = up to "
                        f"{format_bytes(needed)} (uncompressed) -> {url}",
                        file=sys.stderr,
                    )
                sink, writer, bar = _start_writer(
                    group, attrs, specs, names, start, allow_nonfinite, progress, total, dev
                )
            writer.submit(rows)
            if bar is not None:
                bar.update(len(rows[layout.X]))
                bar.set_postfix_str(f"written {format_bytes(sink.bytes_written)}", refresh=False)
        if writer is None:
            raise StoreError(f"the data ended before row {start}: nothing to capture")
        writer.close(finish=True)
        if sink.rows_written < total:  # the data held fewer samples than its length said
            shrink(group, sink)
    except BaseException:
        if writer is not None:
            try:
                if not writer.failed:
                    writer.close(finish=False)  # write the full chunks already queued, then stop
            finally:
                _commit_written(sink)
        raise
    finally:
        if bar is not None:
            bar.close()
    # every committed chunk was just written (or verified, resuming): no listing of the chunk files
    written = open_group(url, mode="r")
    assert written is not None  # missing_ok=False: a missing store raises
    return ActivationStore(written, url, check_chunks=False)


def _commit_written(sink: ChunkSink | None) -> None:
    """Commit the chunks written since the sink's last commit, when the capture stops on an error
    (best effort: the error that stopped it is the one raised)."""
    if sink is None:
        return
    try:
        sink.commit_written()
    except Exception:  # noqa: BLE001 - e.g. the disk is full: the earlier commit stands
        pass


def _start_writer(
    group: zarr.Group,
    attrs: dict,
    specs: dict[str, tuple],
    names: list[str],
    start: int,
    allow_nonfinite: bool,
    progress: bool,
    total: int,
    dev: torch.device,
) -> tuple[ChunkSink, BackgroundWriter | InlineWriter, Any]:
    arrays = {name: layout.writable(group, name) for name in specs}
    stats = {h: RunningStats.from_json(attrs["stats"][h]) for h in names}
    crc = attrs.get("chunk_crc") or {}
    sink = ChunkSink(
        group,
        arrays,
        hooks={h: layout.hook_path(h) for h in names},
        stats=stats,
        chunk_size=int(attrs["chunk_size"]),
        start_row=start,
        dtypes={name: d for name, (_, d) in specs.items()},
        allow_nonfinite=allow_nonfinite,
        chunk_crc={name: list(crc.get(name, [])) for name in specs},
        stats_by_sample=layout.stats_by_sample(attrs),
        commit_bytes=writer_mod.COMMIT_BYTES,
        commit_seconds=writer_mod.COMMIT_SECONDS,
    )
    mode = writer_mod.WRITER_MODE
    if mode not in ("auto", "thread", "inline"):
        raise StoreError(f"saeno.store.writer.WRITER_MODE must be 'auto', 'thread' or 'inline', got {mode!r}")
    inline = mode == "inline" or (mode == "auto" and openmp_spins(dev))
    writer = make_writer(sink.consume, sink.finish, inline=inline, maxsize=QUEUE_BATCHES)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, unit="sample", desc="capture", dynamic_ncols=True)
    return sink, writer, bar


def _check_skipped(group: zarr.Group, batch: Batch, url: str) -> None:
    if batch.index is None:
        return
    stored = group[layout.INDEX][batch.start : batch.start + len(batch)]
    if not np.array_equal(stored, batch.index):
        raise StoreError(
            f"the data gives other samples than the store at {url} holds (rows {batch.start}.."
            f"{batch.start + len(batch) - 1}): resume with the same data in the same order "
            "(a DataLoader with shuffle=False)"
        )
