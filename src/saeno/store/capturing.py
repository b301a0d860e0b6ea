"""``saeno.capture``: run a hooked FNO over data and stream its activation fields into a Zarr store.

The forward pass runs in the calling thread; a :class:`~saeno.store.writer.BackgroundWriter` thread
behind a queue of ``QUEUE_BATCHES`` batches casts, checks, compresses and writes whole chunks and
commits them (see :mod:`saeno.store.writer`), so the forward does not wait on disk and memory does
not grow with the number of samples. The store layout is described in :mod:`saeno.store.layout`.

Determinism: rows are the data's samples in order; the chunking depends only on per-sample sizes;
batches of a tensor or Dataset start at multiples of ``batch_size`` from row 0, and a resumed
capture re-runs the batch that holds its first missing row, so a killed-and-resumed capture equals an
uninterrupted one bit for bit. (Forward passes of the same sample in batches of different sizes can
differ in the last float bit on CPU, so a resumed capture keeps the ``batch_size`` recorded in the
store.)
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from saeno.deprecation import UNSET, renamed
from saeno.errors import ShapeError, StoreError
from saeno.store import commit, layout
from saeno.store.activation_store import (
    ActivationStore,
    format_bytes,
    open_group,
    store_url,
)
from saeno.store.lock import WriterLock
from saeno.store.repair import check_same_data, verify_and_repair
from saeno.store.running_stats import RunningStats
from saeno.store.sources import Batch, dataset_of, iter_batches, length_of
from saeno.store.writer import BackgroundWriter, ChunkSink
from saeno.store.xarray_dims import dimension_names, write_grid_coords

#: batches the writer queue holds before the forward pass waits
QUEUE_BATCHES = 4
#: codec of every array: blosc lz4 with bit shuffling compressed FNO activations (64x64, hidden 32)
#: to 0.79 of their size, better than zstd level 1 (0.91) and three to four times faster on 2 cores
COMPRESSOR = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"}

_DTYPES = {"float32": np.float32, "float16": np.float16}


def _model_of(hooked: Any) -> torch.nn.Module:
    model = getattr(hooked, "model", None)
    return model if isinstance(model, torch.nn.Module) else hooked


def _fingerprint(hooked: Any) -> str:
    try:
        from saeno.hooking import fingerprint
    except ImportError as exc:  # pragma: no cover - the hooking package is part of saeno
        raise StoreError("saeno.hooking.fingerprint is not available: reinstall saeno") from exc
    return str(fingerprint(_model_of(hooked)))


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _json_safe(value: Any) -> Any:
    """Copy of ``value`` with only JSON types (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _attr(ds: Any, name: str) -> Any:
    """A dataset attribute of the ``saeno.datasets`` contract, None when absent or not data."""
    value = getattr(ds, name, None) if ds is not None else None
    return None if callable(value) else value


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _check_disk(url: str, needed: int) -> None:
    path = Path(url.removeprefix("file://")).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    if free < needed:
        raise StoreError(
            f"not enough disk space for the capture at {url}: it needs up to {format_bytes(needed)} "
            f"(uncompressed estimate) and {format_bytes(free)} are free; free some space, capture "
            "fewer samples (n=...), use dtype='float16' or choose another location"
        )


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _forward(
    hooked: Any, x: torch.Tensor, names: list[str], device: torch.device, pad_to: int | None = None
) -> tuple[Any, dict]:
    """Forward ``x`` and cache ``names``. A batch shorter than ``pad_to`` is padded with copies of
    its last sample (dropped again): every forward pass then has the same batch size, so the values do
    not depend on the thread count CPU kernels split a partial batch over."""
    n = int(x.shape[0])
    if pad_to is not None and 0 < n < pad_to:
        x = torch.cat([x, x[-1:].expand(pad_to - n, *x.shape[1:])])
    with torch.no_grad():
        out, cache = hooked.run_with_cache(x.to(device), names_filter=names)
    missing = [h for h in names if h not in cache]
    if missing:
        raise StoreError(
            f"hook(s) {missing} did not fire in the forward pass; capture only hooks the model runs"
        )
    if x.shape[0] != n:
        cache = {h: v[:n] for h, v in cache.items()}
        out = out[:n] if isinstance(out, torch.Tensor) else out
    return out, cache


def _rows(batch: Batch, out: Any, cache: dict, names: list[str], lo: int, hi: int) -> dict[str, np.ndarray]:
    """Array name -> numpy rows ``lo:hi`` of the batch (one device-to-host copy each)."""
    rows = {layout.hook_path(h): _to_numpy(cache[h][lo:hi]) for h in names}
    rows[layout.X] = _to_numpy(batch.x[lo:hi])
    if batch.y is not None:
        rows[layout.Y] = _to_numpy(batch.y[lo:hi])
    if not isinstance(out, torch.Tensor):
        raise ShapeError(f"the model returned {type(out).__name__}; capture needs a tensor output")
    rows[layout.Y_PRED] = _to_numpy(out[lo:hi])
    index = batch.index if batch.index is not None else np.arange(batch.start, batch.start + len(batch))
    rows[layout.INDEX] = np.asarray(index[lo:hi], dtype=np.int64)
    for name, values in batch.params.items():
        rows[layout.param_path(name)] = np.asarray(values[lo:hi], dtype=np.float64)
    return rows


def _array_specs(rows: dict[str, np.ndarray], names: list[str], dtype: np.dtype) -> dict[str, tuple]:
    """Array name -> (per-sample shape, stored dtype)."""
    hook_arrays = {layout.hook_path(h) for h in names}
    specs = {}
    for name, value in rows.items():
        if name in hook_arrays:
            stored = np.dtype(np.complex64) if np.iscomplexobj(value) else np.dtype(dtype)
        elif np.iscomplexobj(value):
            stored = np.dtype(np.complex64)
        elif name in (layout.INDEX,):
            stored = np.dtype(np.int64)
        elif name.startswith(layout.PARAMS_GROUP + "/"):
            stored = np.dtype(np.float64)
        else:
            stored = np.dtype(np.float32)
        specs[name] = (tuple(value.shape[1:]), stored)
    return specs


def _hook_info(specs: dict[str, tuple], names: list[str], hooked: Any = None) -> dict[str, dict]:
    info = {}
    axes_of = getattr(hooked, "field_axes", None)
    for h in names:
        shape, stored = specs[layout.hook_path(h)]
        n_space = len(shape) - 1
        # what each axis of a sample is (a grid, a model's latent grid, a point cloud), as hooking names it
        axes = (
            axes_of(h, n_space) if callable(axes_of) else ["channel"] + [f"grid_{i}" for i in range(n_space)]
        )
        info[h] = {
            "shape": list(shape),
            "grid": list(shape[1:]),
            "axes": list(axes),
            "dtype": str(stored),
            "complex": "complex64" if stored.kind == "c" else None,
        }
    return info


def _check_compatible(attrs: dict, *, fingerprint: str, names: list[str], dtype: str, specs: dict) -> None:
    problems = []
    if attrs.get("fingerprint") != fingerprint:
        problems.append(
            f"model fingerprint {attrs.get('fingerprint')!r} in the store, {fingerprint!r} now "
            "(another model or other weights)"
        )
    if list(attrs.get("hooks", [])) != names:
        problems.append(f"hooks {attrs.get('hooks')} in the store, {names} now")
    if attrs.get("dtype") != dtype:
        problems.append(f"dtype {attrs.get('dtype')!r} in the store, {dtype!r} now")
    if specs is not None:
        stored = attrs.get("array_shapes", {})
        now = {name: list(shape) for name, (shape, _) in specs.items()}
        if stored != now:
            diff = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
            problems.append(
                "per-sample shapes differ for "
                + ", ".join(f"{k}: {stored.get(k)} in the store, {now.get(k)} now" for k in diff)
            )
    if problems:
        raise StoreError(
            "cannot resume or append: the store was made by a different capture: "
            + "; ".join(problems)
            + ". Capture into a new store (another path) or pass the original model, hooks and data."
        )


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
    if dtype not in _DTYPES:
        raise StoreError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StoreError(f"batch_size must be a positive number of samples, got {batch_size!r}")
    if n is not None and n < 1:
        raise StoreError(f"n_rows must be a positive number of samples, got {n}")
    if chunk_size is not None and chunk_size < 1:
        raise StoreError(f"chunk_size must be at least 1, got {chunk_size}")
    if resume and overwrite:
        raise StoreError("resume and overwrite exclude each other: pick one")
    url = store_url(store)
    names = list(hooked.resolve(hooks))
    if not names:
        raise StoreError(f"the hook filter {hooks!r} matches no hook; see hooked.hook_names")
    model = _model_of(hooked)
    dev = torch.device(device) if device is not None else _model_device(model)
    fingerprint = _fingerprint(hooked)

    total = length_of(data)
    if n is not None:
        total = n if total is None else min(n, total)
    if total is None:
        raise StoreError(
            "the data has no length (an iterable dataset): pass n=... with the number of samples"
        )
    if total == 0:
        raise StoreError("the data holds no samples")

    lock = WriterLock(Path(url.removeprefix("file://")) if _is_local(url) else None, url)
    try:
        group, attrs = _open_target(url, resume=resume, overwrite=overwrite, lock=lock)
        return _capture_into(
            group, attrs, url, hooked, data, names, model, dev, fingerprint, total,
            batch_size=batch_size, dtype=dtype, allow_nonfinite=allow_nonfinite,
            progress=progress, dataset_card=dataset_card, chunk_size=chunk_size,
        )  # fmt: skip
    except OSError as exc:
        raise _os_error(exc, url) from None
    finally:
        lock.release()


def _os_error(exc: OSError, url: str) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError(
            f"the disk holding {url} is full ({exc.strerror}); the rows committed before stay "
            "readable: free some space and resume the capture (--resume)"
        )
    return StoreError(
        f"cannot write the store at {url}: {exc.strerror or exc} ({exc.filename or url}); "
        "choose a location you can write to"
    )


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


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
        _check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=None)
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
    card = dataset_card if dataset_card is not None else _attr(ds, "card")
    sink: ChunkSink | None = None
    writer: BackgroundWriter | None = None
    bar = None
    pad_to = data.batch_size if isinstance(data, torch.utils.data.DataLoader) else batch_size
    try:
        for batch in iter_batches(data, batch_size, start, total):
            end = batch.start + len(batch)
            if end <= start:  # a DataLoader batch already written: check it is the same data
                _check_skipped(group, batch, url)
                continue
            out, cache = _forward(hooked, batch.x, names, dev, pad_to=pad_to)
            rows = _rows(
                batch, out, cache, names, max(0, start - batch.start), min(len(batch), total - batch.start)
            )
            del out, cache
            if writer is None:
                specs = _array_specs(rows, names, _DTYPES[dtype])
                if attrs is None:
                    attrs = _create_store(
                        group, specs, names, fingerprint=fingerprint, model=model, hooked=hooked,
                        dtype=dtype, total=total, batch_size=batch_size, chunk_size=chunk_size, batch=batch,
                        ds=ds, card=card, split=_attr(ds, "split"), allow_nonfinite=allow_nonfinite,
                    )  # fmt: skip
                else:
                    _check_compatible(attrs, fingerprint=fingerprint, names=names, dtype=dtype, specs=specs)
                per_sample = sum(int(np.prod(s)) * d.itemsize for s, d in specs.values())
                needed = (total - start) * per_sample
                if _is_local(url):
                    _check_disk(url, needed)
                if progress:
                    print(
                        f"saeno capture: {total - start} samples x {format_bytes(per_sample)} = up to "
                        f"{format_bytes(needed)} (uncompressed) -> {url}",
                        file=sys.stderr,
                    )
                sink, writer, bar = _start_writer(
                    group, attrs, specs, names, start, allow_nonfinite, progress, total
                )
            writer.submit(rows)
            if bar is not None:
                bar.update(len(rows[layout.X]))
                bar.set_postfix_str(f"written {format_bytes(sink.bytes_written)}", refresh=False)
        if writer is None:
            raise StoreError(f"the data ended before row {start}: nothing to capture")
        writer.close(finish=True)
        if sink.rows_written < total:  # the data held fewer samples than its length said
            _shrink(group, sink)
    except BaseException:
        if writer is not None and not writer.failed:
            writer.close(finish=False)  # commit the full chunks already queued, then stop
        raise
    finally:
        if bar is not None:
            bar.close()
    return ActivationStore.open(url)


def _existing_group(url: str, overwrite: bool = False) -> zarr.Group | None | bool:
    """The group at ``url``, None when there is none, False when its root document is damaged and
    ``overwrite`` allows replacing it; a damaged root document is an error otherwise."""
    try:
        return open_group(url, mode="r", missing_ok=True)
    except StoreError:
        if overwrite and _is_local(url) and (Path(url.removeprefix("file://")) / "zarr.json").exists():
            return False
        raise


def _never_committed(attrs: dict) -> bool:
    """A saeno store killed while it was being created (no committed row to lose)."""
    return layout.is_store_attrs(attrs) and (
        attrs.get("state") == "creating" or not attrs.get("rows_written")
    )


def _create_target(url: str, lock: WriterLock) -> zarr.Group:
    """A fresh group (the previous content removed), locked, marked as being created."""
    marker = {"format": layout.FORMAT_NAME, "format_version": layout.FORMAT_VERSION, "state": "creating"}
    group = zarr.open_group(url, mode="w", attributes=marker)  # the group's first write holds the marker
    lock.release()
    lock.acquire()
    return group


def _open_target(
    url: str, *, resume: bool, overwrite: bool, lock: WriterLock | None = None
) -> tuple[zarr.Group, dict | None]:
    """Open the store for writing; returns (group, attrs of an existing store or None)."""
    lock = lock or WriterLock(None, url)
    if _is_local(url):
        path = Path(url.removeprefix("file://")).expanduser()
        for parent in (path, *path.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"cannot create the store at {url}: {parent} is a file, not a folder")
                if not os.access(parent, os.W_OK):
                    raise StoreError(f"cannot create the store at {url}: {parent} is not writable")
                break
    existing = _existing_group(url, overwrite=overwrite)
    if existing is False:  # a Zarr root document too damaged to read: --overwrite replaces it
        WriterLock(lock.root, url).acquire().release()  # unless a capture holds it
        return _create_target(url, lock), None
    if existing is not None:
        attrs = dict(existing.attrs)
        is_store = layout.is_store_attrs(attrs)
        if is_store:
            lock.acquire()  # before anything is changed: a running capture keeps its store
        if resume:
            if not is_store:
                raise StoreError(f"{url} is not a saeno activation store: cannot resume it")
            if _never_committed(attrs):
                return _create_target(url, lock), None
            if _is_local(url):
                _remove_partial_files(Path(url.removeprefix("file://")))
            return zarr.open_group(url, mode="r+"), attrs
        if is_store and (overwrite or _never_committed(attrs)):
            return _create_target(url, lock), None
        raise StoreError(
            f"{url} already holds "
            + (f"a saeno store with {attrs.get('rows_written', 0)} rows" if is_store else "a Zarr group")
            + ": pass resume=True (--resume) to continue it, overwrite=True to replace it, or "
            "choose another location"
        )
    if _is_local(url):
        path = Path(url.removeprefix("file://")).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StoreError(
                f"{path} exists and is not an empty folder or a saeno store; choose another location"
            )
    return _create_target(url, lock), None  # (resume with nothing there starts afresh)


def _remove_partial_files(root: Path) -> None:
    """Delete the temporary files of writes a kill interrupted (Zarr's LocalStore writes
    ``<key>.<uuid>.partial`` and renames it; a kill between the two leaves the temporary behind)."""
    for p in root.rglob("*.partial"):
        p.unlink(missing_ok=True)


def _create_store(
    group: zarr.Group,
    specs: dict[str, tuple],
    names: list[str],
    *,
    fingerprint: str,
    model: torch.nn.Module,
    hooked: Any = None,
    dtype: str,
    total: int,
    batch_size: int,
    chunk_size: int | None,
    batch: Batch,
    ds: Any,
    card: Any,
    split: Any,
    allow_nonfinite: bool = False,
) -> dict:
    from saeno import __version__

    largest = max(int(np.prod(s)) * d.itemsize for s, d in specs.values())
    cs = min(chunk_size, total) if chunk_size else layout.default_chunk_size(largest)
    per_sample = sum(int(np.prod(s)) * d.itemsize for s, d in specs.values())
    budget = _memory_bytes() // 8  # a chunk is held twice (pending rows, compression) per array
    if chunk_size and cs * per_sample > budget:
        raise StoreError(
            f"chunk_size={chunk_size} needs {format_bytes(cs * per_sample)} of memory per chunk, more "
            f"than the {format_bytes(budget)} allowed (an eighth of this machine's memory): use a "
            f"chunk size of at most {max(1, budget // per_sample)} samples (--chunk-size), or the default"
        )
    input_grid = specs[layout.X][0][1:]
    for name, (shape, stored) in specs.items():
        group.create_array(
            name,
            shape=(total, *shape),
            dimension_names=dimension_names(name, (total, *shape), input_grid),
            chunks=(cs, *shape),
            dtype=stored,
            # crc32c after compression: a flipped or truncated byte in a chunk file fails to decode
            compressors=[BloscCodec(**COMPRESSOR), Crc32cCodec()],
            fill_value=0,
            # skip zarr's all-fill-value scan of every chunk (a full extra pass over the data)
            config={"write_empty_chunks": True},
        )
    write_grid_coords(group, input_grid)
    hook_info = _hook_info(specs, names, hooked)
    stats = {
        h: RunningStats.empty(hook_info[h]["shape"][0], hook_info[h]["complex"] is not None) for h in names
    }
    grid = list(specs[layout.X][0][1:])
    resolution = _attr(ds, "resolution")
    attrs = {
        "format": layout.FORMAT_NAME,
        "format_version": layout.FORMAT_VERSION,
        "saeno_version": __version__,
        "fingerprint": fingerprint,
        "model_class": type(model).__name__,
        "model_config": _json_safe(getattr(model, "saeno_config", None)),
        "hooks": names,
        "hook_info": hook_info,
        "array_shapes": {name: list(shape) for name, (shape, _) in specs.items()},
        "grid": grid,
        "resolution": _json_safe(resolution) if resolution is not None else grid,
        "dataset": {
            "name": _json_safe(_attr(ds, "name")),
            "card": _json_safe(card),
            "split": _json_safe(split),
        },
        "dtype": dtype,
        "chunk_size": cs,
        "batch_size": batch_size,
        "n_planned": total,
        "allow_nonfinite": bool(allow_nonfinite),
        "state": "ready",
        **commit.commit_attrs(0, False, stats, {name: [] for name in specs}),
        "params": sorted(k.split("/", 1)[1] for k in specs if k.startswith(layout.PARAMS_GROUP + "/")),
        "labels": _json_safe(_attr(ds, "labels") or {}),
    }
    group.update_attributes(attrs)  # one write: the store is either being created or ready
    return dict(group.attrs)


def _start_writer(
    group: zarr.Group,
    attrs: dict,
    specs: dict[str, tuple],
    names: list[str],
    start: int,
    allow_nonfinite: bool,
    progress: bool,
    total: int,
) -> tuple[ChunkSink, BackgroundWriter, Any]:
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
    )
    writer = BackgroundWriter(sink.consume, sink.finish, maxsize=QUEUE_BATCHES)
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


def _shrink(group: zarr.Group, sink: ChunkSink) -> None:
    rows = sink.rows_written
    for array in sink.arrays.values():
        array.resize((rows, *array.shape[1:]))
    commit.write_commit(group, rows, True, sink.stats, sink.chunk_crc, extra={"n_planned": rows})
