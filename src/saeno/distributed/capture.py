"""Sharded capture: every rank of a torchrun job writes its own chunk-aligned rows of ONE store.

Layout of the work. The store's ``chunk_size`` fixes ``n_chunks = ceil(N / chunk_size)``; rank ``r``
owns the contiguous chunks :func:`saeno.distributed.env.split_evenly` gives it, i.e. rows
``[lo_r, hi_r)`` with ``lo_r`` a multiple of ``chunk_size``, so no two ranks ever write one chunk.
Each rank runs exactly the forward batches a single-process capture runs (batches start at multiples
of ``batch_size`` from row 0; a batch that straddles two regions is run by both ranks, each keeping
its own rows), which makes the stored bytes identical to a single-process capture.

Order of events:

1. rank 0 creates the store (arrays and root metadata, as :func:`saeno.capture` does) and a progress
   group ``_saeno_distributed`` holding one ``rank_<r>`` group per rank and, per hook, an array of
   per-chunk statistics ``(n_chunks, 4, C)`` (count, mean real, mean imaginary, m2; float64);
2. all ranks agree that this worked (a collective; a failure on rank 0 stops every rank);
3. each rank captures its rows through the store's :class:`~saeno.store.writer.ChunkSink` and, after
   every chunk, writes that chunk's statistics, then its own ``rows_done`` (its progress record); the
   root metadata is not touched, so ranks never write one key;
4. all ranks agree that every region is written; rank 0 merges the per-chunk statistics in chunk order
   (the same pairwise merges, in the same order, as the single-process writer: bit-identical
   results), writes ``rows_written``, ``complete`` and ``stats`` and deletes the progress group.

Resume (``resume=True``, the same world size): every rank continues from its own ``rows_done``.
"""

from __future__ import annotations

import math
import sys
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from saeno.deprecation import UNSET, renamed
from saeno.distributed import env
from saeno.distributed.env import DistInfo, DistributedError
from saeno.errors import StoreError
from saeno.store import layout
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
    resolve_hooks,
)
from saeno.store.capture_target import (
    check_compatible,
    check_disk,
    create_store,
    dataset_attr,
    is_local,
    open_target,
    remove_partial_files,
)
from saeno.store.running_stats import RunningStats
from saeno.store.sources import dataset_of, iter_batches, length_of
from saeno.store.writer import QUEUE_BATCHES, BackgroundWriter, ChunkSink

#: the group holding the ranks' progress records while a distributed capture runs
PROGRESS_GROUP = "_saeno_distributed"


def _stats_path(hook: str) -> str:
    return f"{PROGRESS_GROUP}/stats/{hook}"


def _pack(stats: RunningStats) -> np.ndarray:
    """``(4, C)`` float64: count, mean (real part), mean (imaginary part), m2."""
    mean = np.asarray(stats.mean)
    imag = mean.imag if np.iscomplexobj(mean) else np.zeros_like(stats.count)
    return np.stack([stats.count, mean.real, imag, stats.m2]).astype(np.float64)


def _unpack(rows: np.ndarray, complex_: bool) -> RunningStats:
    mean = rows[1] + 1j * rows[2] if complex_ else rows[1].copy()
    return RunningStats(rows[0].copy(), mean, rows[3].copy())


class _RegionSink(ChunkSink):
    """A :class:`ChunkSink` that records per-chunk statistics and this rank's ``rows_done`` in the
    progress group instead of committing the root metadata (which rank 0 writes at the end)."""

    def __init__(
        self,
        group: zarr.Group,
        arrays: dict,
        names: list[str],
        hook_info: dict,
        chunk_size: int,
        start_row: int,
        region_start: int,
        dtypes: dict,
        allow_nonfinite: bool,
        rank: int,
        on_commit: Any = None,
        stats_by_sample: bool = True,
    ) -> None:
        self._complex = {h: hook_info[h]["complex"] is not None for h in names}
        self._channels = {h: int(hook_info[h]["shape"][0]) for h in names}
        super().__init__(
            group,
            arrays,
            hooks={h: layout.hook_path(h) for h in names},
            stats=self._fresh(),
            chunk_size=chunk_size,
            start_row=start_row,
            dtypes=dtypes,
            allow_nonfinite=allow_nonfinite,
            on_commit=on_commit,
            stats_by_sample=stats_by_sample,
        )
        self.region_start = region_start
        self._recorded = start_row
        self._record = group[f"{PROGRESS_GROUP}/rank_{rank}"]
        self._stats_arrays = {h: group[_stats_path(h)] for h in names}

    def _fresh(self) -> dict[str, RunningStats]:
        return {h: RunningStats.empty(self._channels[h], self._complex[h]) for h in self._channels}

    def _commit(self, complete: bool) -> None:
        if self.rows_written == self._recorded:
            return
        # ChunkSink merged exactly one chunk into fresh (empty) statistics: they are that chunk's
        chunk = self._recorded // self.chunk_size
        for hook, array in self._stats_arrays.items():
            array[chunk] = _pack(self.stats[hook])
        self.stats = self._fresh()
        self._recorded = self.rows_written
        self._record.attrs.update({"rows_done": self.rows_written - self.region_start})
        if self.on_commit is not None:
            self.on_commit(self.rows_written, self.bytes_written)


def region(n_rows: int, chunk_size: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` that ``rank`` captures: whole chunks, contiguous, balanced to one chunk."""
    n_chunks = math.ceil(n_rows / chunk_size)
    c0, c1 = env.split_evenly(n_chunks, world_size, rank)
    return min(c0 * chunk_size, n_rows), min(c1 * chunk_size, n_rows)


def capture_distributed(
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
    info: DistInfo | None = None,
    n: Any = UNSET,
) -> ActivationStore:
    """Capture with every rank of the process group writing its own share of one store.

    Every rank calls it with the same arguments (as ``torchrun ... -m saeno capture`` does). The
    arguments are those of :func:`saeno.capture`; the finished store equals the store a
    single-process ``saeno.capture`` with the same arguments writes, bit for bit (arrays and
    metadata).

    Parameters
    ----------
    hooked, data, hooks, store, batch_size, dtype, n_rows, resume, allow_nonfinite, device, progress,
    dataset_card, chunk_size, overwrite
        As in :func:`saeno.capture` (``n`` is the deprecated old name of ``n_rows``). ``data`` must have a length (a tensor, a Dataset or a
        DataLoader over one); ``store`` must be a location every rank reaches (a shared file
        system or an object-store URL). ``resume`` continues every rank from its own progress
        record and needs the world size of the interrupted run. ``progress`` shows rank 0's bar.
    info
        The process group to use (default: :func:`saeno.distributed.env.current`; without an
        initialised group this is a single process writing every chunk).

    Returns
    -------
    ActivationStore
        The finished store, opened for reading (on every rank).

    Raises
    ------
    StoreError
        As :func:`saeno.capture`, and for a resume with another world size.
    DistributedError
        Another rank failed (the failing rank raises its own error).
    """
    n = renamed(n_rows, n, new="n_rows", old="n")
    info = info or env.current()
    check_arguments(
        batch_size=batch_size, dtype=dtype, n=n, chunk_size=chunk_size, resume=resume, overwrite=overwrite
    )
    url = store_url(store)
    names = resolve_hooks(hooked, hooks)
    model = model_of(hooked)
    dev = torch.device(device) if device is not None else model_device(model)
    fingerprint = model_fingerprint(hooked)
    total = length_of(data)
    if total is None:
        raise StoreError(
            "a distributed capture needs data with a length (a tensor, a Dataset or a "
            "DataLoader over one): every rank must know where its rows are"
        )
    if n is not None:
        total = min(n, total)
    if total == 0:
        raise StoreError("the data holds no samples")

    # 1-2: rank 0 prepares the store, every rank learns whether that worked
    error: BaseException | None = None
    if info.is_main:
        try:
            _prepare(
                hooked,
                data,
                names,
                url,
                dev=dev,
                fingerprint=fingerprint,
                model=model,
                dtype=dtype,
                total=total,
                batch_size=batch_size,
                chunk_size=chunk_size,
                resume=resume,
                overwrite=overwrite,
                dataset_card=dataset_card,
                world_size=info.world_size,
                progress=progress,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the others
            error = exc
    _agree(info, error, "preparing the store")

    # 3: every rank writes its region
    group = zarr.open_group(url, mode="r+")
    attrs = dict(group.attrs)
    if not attrs.get("complete"):
        try:
            _capture_region(
                hooked,
                data,
                names,
                group,
                attrs,
                info,
                dev=dev,
                total=total,
                batch_size=batch_size,
                fingerprint=fingerprint,
                dtype=dtype,
                allow_nonfinite=allow_nonfinite,
                progress=progress,
            )
        except BaseException as exc:  # noqa: BLE001
            error = exc
        _agree(info, error, "capturing")
        # 4: rank 0 merges the statistics and commits the store
        if info.is_main:
            try:
                _finish(group, attrs)
            except BaseException as exc:  # noqa: BLE001
                error = exc
        _agree(info, error, "finishing the store")
    return ActivationStore.open(url)


def _agree(info: DistInfo, error: BaseException | None, what: str) -> None:
    failed = env.all_ok(info, error is None)
    if error is not None:
        raise error
    if failed:
        raise DistributedError(
            f"rank(s) {failed} failed while {what}; their own error messages say "
            "why. Fix that and run again with --resume to keep the rows written"
        )


def _prepare(
    hooked: Any,
    data: Any,
    names: list[str],
    url: str,
    *,
    dev: torch.device,
    fingerprint: str,
    model: torch.nn.Module,
    dtype: str,
    total: int,
    batch_size: int,
    chunk_size: int | None,
    resume: bool,
    overwrite: bool,
    dataset_card: dict | None,
    world_size: int,
    progress: bool,
) -> None:
    """Rank 0: create the store and the progress records, or check the ones to resume."""
    existing = open_group(url, mode="r", missing_ok=True) if resume else None
    if existing is not None:
        attrs = dict(existing.attrs)
        if not layout.is_store_attrs(attrs):
            raise StoreError(f"{url} is not a saeno activation store: cannot resume it")
        check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=None)
        if int(attrs["n_planned"]) != total:
            raise StoreError(
                f"the store at {url} was started for {attrs['n_planned']} samples, this "
                f"call asks for {total}: resume with n_rows={attrs['n_planned']} (or the same data)"
            )
        if attrs.get("complete"):
            return
        members = dict(existing.members())
        if PROGRESS_GROUP in members:
            planned = int(members[PROGRESS_GROUP].attrs["world_size"])
            if planned != world_size:
                raise StoreError(
                    f"the capture at {url} was started with {planned} processes; resume "
                    f"it with torchrun --nproc-per-node/--nnodes giving {planned} in all "
                    f"(not {world_size})"
                )
            if is_local(url):
                remove_partial_files(Path(url.removeprefix("file://")))
            return
        if int(attrs.get("rows_written", 0)):
            raise StoreError(
                f"{url} is a single-process capture with {attrs['rows_written']} rows: "
                "resume it without torchrun (saeno capture --resume)"
            )
        overwrite = True  # created, then stopped before any progress record: start afresh
    group, _ = open_target(url, resume=False, overwrite=overwrite)
    first = next(iter_batches(data, batch_size, 0, total))
    out, cache = forward_batch(hooked, first.x, names, dev)
    rows = batch_rows(first, out, cache, names, 0, min(len(first), total))
    specs = array_specs(rows, names, DTYPES[dtype])
    if is_local(url):
        per_sample = sum(int(np.prod(s)) * d.itemsize for s, d in specs.values())
        check_disk(url, total * per_sample)
        if progress:
            print(
                f"saeno capture: {total} samples x {format_bytes(per_sample)} = up to "
                f"{format_bytes(total * per_sample)} (uncompressed) -> {url}, {world_size} "
                "processes",
                file=sys.stderr,
            )
    ds = None if isinstance(data, torch.Tensor) else dataset_of(data)
    card = dataset_card if dataset_card is not None else dataset_attr(ds, "card")
    attrs = create_store(
        group,
        specs,
        names,
        fingerprint=fingerprint,
        model=model,
        hooked=hooked,
        dtype=dtype,
        total=total,
        batch_size=batch_size,
        chunk_size=chunk_size,
        batch=first,
        ds=ds,
        card=card,
        split=dataset_attr(ds, "split"),
    )
    n_chunks = math.ceil(total / int(attrs["chunk_size"]))
    progress_group = group.create_group(PROGRESS_GROUP)
    for hook in names:
        c = int(attrs["hook_info"][hook]["shape"][0])
        progress_group.create_array(
            f"stats/{hook}", shape=(n_chunks, 4, c), chunks=(1, 4, c), dtype=np.float64, fill_value=np.nan
        )
    for r in range(world_size):
        progress_group.create_group(f"rank_{r}").attrs.update({"rows_done": 0})
    progress_group.attrs.update({"world_size": world_size, "n_chunks": n_chunks})


def _capture_region(
    hooked: Any,
    data: Any,
    names: list[str],
    group: zarr.Group,
    attrs: dict,
    info: DistInfo,
    *,
    dev: torch.device,
    total: int,
    batch_size: int,
    fingerprint: str,
    dtype: str,
    allow_nonfinite: bool,
    progress: bool,
) -> None:
    """Capture this rank's rows from its progress record on."""
    check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=None)
    if int(attrs["batch_size"]) != batch_size:
        if info.is_main:
            warnings.warn(
                f"resuming with the store's batch_size={attrs['batch_size']} (not "
                f"{batch_size}) so that the store equals an uninterrupted capture bit "
                "for bit",
                stacklevel=3,
            )
        batch_size = int(attrs["batch_size"])
    cs = int(attrs["chunk_size"])
    lo, hi = region(total, cs, info.world_size, info.rank)
    done = int(group[f"{PROGRESS_GROUP}/rank_{info.rank}"].attrs["rows_done"])
    start = lo + done
    if start >= hi:
        return
    stop = min(-(-hi // batch_size) * batch_size, total)  # end of the single-process batch holding hi-1
    shapes = attrs["array_shapes"]
    arrays = {name: layout.writable(group, name) for name in shapes}
    dtypes = {name: np.dtype(array.dtype) for name, array in arrays.items()}
    bar = None
    if progress and info.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=hi - lo,
            initial=done,
            unit="sample",
            dynamic_ncols=True,
            desc=f"capture (rank 0 of {info.world_size})",
        )
    sink = _RegionSink(
        group,
        arrays,
        names,
        attrs["hook_info"],
        cs,
        start,
        lo,
        dtypes,
        allow_nonfinite,
        info.rank,
        stats_by_sample=layout.stats_by_sample(attrs),
    )
    writer = BackgroundWriter(sink.consume, sink.finish, maxsize=QUEUE_BATCHES)
    try:
        for batch in iter_batches(data, batch_size, start, stop):
            end = batch.start + len(batch)
            if end <= start:  # a DataLoader batch before this region
                continue
            if batch.start >= hi:
                break
            out, cache = forward_batch(hooked, batch.x, names, dev, pad_to=batch_size)
            a, b = max(0, start - batch.start), min(len(batch), hi - batch.start)
            rows = batch_rows(batch, out, cache, names, a, b)
            del out, cache
            got = {name: tuple(v.shape[1:]) for name, v in rows.items()}
            want = {name: tuple(s) for name, s in shapes.items()}
            if got != want:
                raise StoreError(
                    f"rank {info.rank}: the data gives other arrays or shapes ({got}) "
                    f"than the store holds ({want}): every rank needs the same data"
                )
            writer.submit(rows)
            if bar is not None:
                bar.update(b - a)
        writer.close(finish=True)
    except BaseException:
        if not writer.failed:
            writer.close(finish=False)
        raise
    finally:
        if bar is not None:
            bar.close()
    if sink.rows_written < hi:
        raise StoreError(
            f"rank {info.rank}: the data ended at row {sink.rows_written}, before the "
            f"end of its region ({hi}); the data holds fewer samples than its length"
        )


def _finish(group: zarr.Group, attrs: dict) -> None:
    """Rank 0: merge the per-chunk statistics in chunk order, commit, drop the progress records."""
    total = int(attrs["n_planned"])
    merged = {}
    for hook in attrs["hooks"]:
        info = attrs["hook_info"][hook]
        per_chunk = np.asarray(group[_stats_path(hook)][:])
        if np.isnan(per_chunk[:, 0]).any():
            missing = np.flatnonzero(np.isnan(per_chunk[:, 0, 0])).tolist()
            raise StoreError(
                f"chunks {missing[:10]} have no statistics: a rank did not finish; run again with --resume"
            )
        stats = RunningStats.empty(int(info["shape"][0]), info["complex"] is not None)
        for rows in per_chunk:
            stats = stats.merge(_unpack(rows, info["complex"] is not None))
        merged[hook] = stats.to_json()
    from saeno.store.commit import write_commit
    from saeno.store.repair import chunk_checksums

    crc = chunk_checksums(group, list(attrs["array_shapes"]), total, str(group.store_path))
    write_commit(group, total, True, merged, crc)  # one write of the root metadata
    del group[PROGRESS_GROUP]
