"""The store side of a capture: open or create the target, check it against the capture, and size it.

:func:`open_target` decides what happens to what lies at the location (refuse, resume, replace), and
:func:`create_store` writes the arrays and the first root metadata in one step; both are shared by
:func:`saeno.capture` and the sharded capture of :mod:`saeno.distributed.capture`.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec
from zarr.core.sync import sync

from saeno.errors import StoreError
from saeno.store import commit, layout
from saeno.store.activation_store import format_bytes, open_group
from saeno.store.lock import WriterLock
from saeno.store.running_stats import RunningStats
from saeno.store.sources import Batch
from saeno.store.writer import ChunkSink, gather_all
from saeno.store.xarray_dims import dimension_names, grid_coords

#: blosc settings of every array: lz4 with bit shuffling compressed FNO activations (64x64, hidden 32)
#: to 0.79 of their size, better than zstd level 1 (0.91) and three to four times faster on 2 cores.
#: None stores the chunks uncompressed (still checksummed), about 1.4 ms/MiB less writer work;
#: readers decode either, the codec being recorded per array
COMPRESSOR: dict | None = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"}


def codecs() -> list:
    """The compressors of every array of a new store: blosc (:data:`COMPRESSOR`, unless None), then a
    crc32c of the stored bytes, so that a flipped or truncated byte in a chunk file fails to decode."""
    return ([BloscCodec(**COMPRESSOR)] if COMPRESSOR else []) + [Crc32cCodec()]


def json_safe(value: Any) -> Any:
    """Copy of ``value`` with only JSON types (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dataset_attr(ds: Any, name: str) -> Any:
    """A dataset attribute of the ``saeno.datasets`` contract, None when absent or not data."""
    value = getattr(ds, name, None) if ds is not None else None
    return None if callable(value) else value


def is_local(url: str) -> bool:
    """Whether ``url`` is a local path (a ``file://`` URL included)."""
    return "://" not in url or url.startswith("file://")


def check_disk(url: str, needed: int) -> None:
    """Raise StoreError when the disk holding ``url`` has fewer than ``needed`` bytes free."""
    path = Path(url.removeprefix("file://")).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    if free < needed:
        raise StoreError(
            f"not enough disk space for the capture at {url}: it needs up to {format_bytes(needed)} "
            f"(uncompressed estimate) and {format_bytes(free)} are free; free some space, capture "
            "fewer samples (n_rows=...), use dtype='float16' or choose another location"
        )


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


def check_compatible(attrs: dict, *, fingerprint: str, names: list[str], dtype: str, specs: dict) -> None:
    """Raise StoreError when a store to resume or append was made by another capture.

    ``specs`` (array name -> per-sample shape and dtype) None skips the shape check.
    """
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


def os_error(exc: OSError, url: str) -> StoreError:
    """The StoreError, naming the fix, for a failed write to the store at ``url``."""
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


def _existing_group(url: str, overwrite: bool = False) -> zarr.Group | None | bool:
    """The group at ``url``, None when there is none, False when its root document is damaged and
    ``overwrite`` allows replacing it; a damaged root document is an error otherwise."""
    try:
        return open_group(url, mode="r", missing_ok=True)
    except StoreError:
        if overwrite and is_local(url) and (Path(url.removeprefix("file://")) / "zarr.json").exists():
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


def open_target(
    url: str, *, resume: bool, overwrite: bool, lock: WriterLock | None = None
) -> tuple[zarr.Group, dict | None]:
    """Open the store for writing; returns (group, attrs of an existing store or None)."""
    lock = lock or WriterLock(None, url)
    if is_local(url):
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
            if is_local(url):
                remove_partial_files(Path(url.removeprefix("file://")))
            return zarr.open_group(url, mode="r+"), attrs
        if is_store and (overwrite or _never_committed(attrs)):
            return _create_target(url, lock), None
        raise StoreError(
            f"{url} already holds "
            + (f"a saeno store with {attrs.get('rows_written', 0)} rows" if is_store else "a Zarr group")
            + ": pass resume=True (--resume) to continue it, overwrite=True to replace it, or "
            "choose another location"
        )
    if is_local(url):
        path = Path(url.removeprefix("file://")).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StoreError(
                f"{path} exists and is not an empty folder or a saeno store; choose another location"
            )
    return _create_target(url, lock), None  # (resume with nothing there starts afresh)


def remove_partial_files(root: Path) -> None:
    """Delete the temporary files of writes a kill interrupted (Zarr's LocalStore writes
    ``<key>.<uuid>.partial`` and renames it; a kill between the two leaves the temporary behind)."""
    for p in root.rglob("*.partial"):
        p.unlink(missing_ok=True)


async def _create_arrays(
    group: zarr.Group, specs: dict[str, tuple], total: int, cs: int, input_grid: tuple
) -> None:
    """Create every array of the store and the grid coordinates at once (concurrent metadata writes)."""
    parents = sorted({name.rsplit("/", 1)[0] for name in specs if "/" in name})
    await gather_all(*(group._async_group.require_group(p) for p in parents))
    await gather_all(
        *(
            group._async_group.create_array(
                name,
                shape=(total, *shape),
                dimension_names=dimension_names(name, (total, *shape), input_grid),
                chunks=(cs, *shape),
                dtype=stored,
                compressors=codecs(),
                fill_value=0,
                # skip zarr's all-fill-value scan of every chunk (a full extra pass over the data)
                config={"write_empty_chunks": True},
            )
            for name, (shape, stored) in specs.items()
        ),
        # the grid's coordinates, for xarray (see saeno.store.xarray_dims)
        *(
            group._async_group.create_array(name, data=values, dimension_names=(name,), overwrite=True)
            for name, values in grid_coords(input_grid).items()
        ),
    )


def create_store(
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
    """Create every array and write the first root metadata in one write; returns the attributes."""
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
    sync(_create_arrays(group, specs, total, cs, input_grid))
    hook_info = _hook_info(specs, names, hooked)
    stats = {
        h: RunningStats.empty(hook_info[h]["shape"][0], hook_info[h]["complex"] is not None) for h in names
    }
    grid = list(specs[layout.X][0][1:])
    resolution = dataset_attr(ds, "resolution")
    attrs = {
        "format": layout.FORMAT_NAME,
        "format_version": layout.FORMAT_VERSION,
        "saeno_version": __version__,
        "fingerprint": fingerprint,
        "model_class": type(model).__name__,
        "model_config": json_safe(getattr(model, "saeno_config", None)),
        "hooks": names,
        "hook_info": hook_info,
        "array_shapes": {name: list(shape) for name, (shape, _) in specs.items()},
        "grid": grid,
        "resolution": json_safe(resolution) if resolution is not None else grid,
        "dataset": {
            "name": json_safe(dataset_attr(ds, "name")),
            "card": json_safe(card),
            "split": json_safe(split),
        },
        "dtype": dtype,
        "chunk_size": cs,
        "batch_size": batch_size,
        "n_planned": total,
        "allow_nonfinite": bool(allow_nonfinite),
        "stats_method": layout.STATS_METHOD,
        "state": "ready",
        **commit.commit_attrs(0, False, stats, {name: [] for name in specs}),
        "params": sorted(k.split("/", 1)[1] for k in specs if k.startswith(layout.PARAMS_GROUP + "/")),
        "labels": json_safe(dataset_attr(ds, "labels") or {}),
    }
    group.update_attributes(attrs)  # one write: the store is either being created or ready
    return dict(group.attrs)


def shrink(group: zarr.Group, sink: ChunkSink) -> None:
    """Cut every array to the rows written and commit the store complete (the data was shorter)."""
    rows = sink.rows_written
    for array in sink.arrays.values():
        array.resize((rows, *array.shape[1:]))
    commit.write_commit(group, rows, True, sink.stats, sink.chunk_crc, extra={"n_planned": rows})
