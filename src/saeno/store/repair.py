"""Verify a store before a resume continues it, and repair its commit from the chunks themselves.

A resume reads every committed chunk of every array (decoding checks the ``crc32c`` codec), stops
at the first chunk that is missing or damaged, recomputes the statistics and content checksums of
the intact prefix in chunk order (the order the capture merged them, and with the store's own
``stats_method``, so the result is bit-identical to what an uninterrupted capture commits), and
writes a new commit when anything differed: a store whose metadata ran ahead of its statistics, or
whose chunk was damaged, is rolled back to its last intact chunk and the resume recaptures from
there.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import zarr

from saeno.errors import StoreError
from saeno.store import commit, layout
from saeno.store.integrity import content_crc, read_chunk
from saeno.store.running_stats import RunningStats
from saeno.store.sources import iter_batches

log = logging.getLogger(__name__)


def _rows_claimed(attrs: dict[str, Any]) -> int:
    rows = attrs.get("rows_written")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        return 0
    return min(rows, int(attrs["n_planned"]))


def _digest_ok(attrs: dict[str, Any]) -> bool:
    rec = attrs.get("commit")
    return isinstance(rec, dict) and rec.get("digest") == commit._safe_digest(attrs)


def verify_and_repair(group: zarr.Group, attrs: dict[str, Any], url: str) -> dict[str, Any]:
    """Check every committed chunk; commit the intact prefix again when the metadata disagrees.

    Returns the (possibly rewritten) root attributes.
    """
    names = list(attrs.get("array_shapes") or [layout.hook_path(h) for h in attrs["hooks"]])
    hooks = list(attrs["hooks"])
    cs, n_planned = int(attrs["chunk_size"]), int(attrs["n_planned"])
    claimed = _rows_claimed(attrs)
    trusted_crc = (attrs.get("chunk_crc") or {}) if _digest_ok(attrs) else {}
    nonfinite = bool(attrs.get("allow_nonfinite", False))
    summarise = RunningStats.from_samples if layout.stats_by_sample(attrs, url) else RunningStats.from_array
    stats = {
        h: RunningStats.empty(
            int(attrs["hook_info"][h]["shape"][0]), attrs["hook_info"][h].get("complex") is not None
        )
        for h in hooks
    }
    crcs: dict[str, list[int]] = {name: [] for name in names}
    arrays = {}
    for name in names:
        try:
            arrays[name] = group[name]
        except KeyError:
            raise StoreError(
                f"the store at {url} is damaged: array {name!r} is missing; capture again (--overwrite)"
            ) from None
    good = 0
    reason = None
    for chunk in range(math.ceil(claimed / cs)):
        blocks = {}
        try:
            for name in names:
                blocks[name] = read_chunk(arrays[name], url, name, chunk, claimed, trusted_crc.get(name))
                if not _chunk_file_exists(arrays[name], chunk):
                    raise StoreError(f"array {name!r}, chunk {chunk} is missing")
        except StoreError as exc:
            reason = str(exc)
            break
        for h in hooks:
            part = summarise(blocks[layout.hook_path(h)], skip_nonfinite=nonfinite)
            stats[h] = stats[h].merge(part)
        for name in names:
            crcs[name].append(content_crc(blocks[name]))
        good = min((chunk + 1) * cs, claimed)
    complete = bool(attrs.get("complete")) and good == n_planned
    new = commit.commit_attrs(good, complete, stats, crcs)
    if all(attrs.get(k) == new[k] for k in (*commit.COMMIT_KEYS, "commit")):
        return attrs
    if reason is not None:
        log.warning("store %s: %s; resuming from row %d", url, reason, good)
    else:
        log.warning(
            "store %s: its commit did not describe its chunks (rows_written %s, statistics "
            "or checksums); repaired from the %d intact rows",
            url,
            attrs.get("rows_written"),
            good,
        )
    commit.write_commit(group, good, complete, stats, crcs)
    return dict(group.attrs)


def _chunk_file_exists(array: zarr.Array, chunk: int) -> bool:
    from zarr.core.sync import sync

    from saeno.store.integrity import chunk_keys

    key = chunk_keys(array, chunk + 1)[-1]
    return bool(sync(array.store_path.store.exists(key)))


def check_same_data(group: zarr.Group, attrs: dict[str, Any], data: Any, batch_size: int, url: str) -> None:
    """Refuse a resume whose data gives other inputs than the committed rows hold.

    The inputs of every committed chunk are read from ``data`` again (no forward pass) and their
    content checksum compared with the one recorded at capture.
    """
    crcs = (attrs.get("chunk_crc") or {}).get(layout.X)
    rows = int(attrs["rows_written"])
    if (
        not crcs
        or rows == 0
        or not isinstance(data, (torch.Tensor, torch.utils.data.Dataset))
        and not hasattr(data, "__getitem__")
    ):
        return
    if isinstance(data, torch.utils.data.DataLoader):
        return  # DataLoader batches are checked by their sample index as they are skipped
    cs = int(attrs["chunk_size"])
    dtype = np.dtype(group[layout.X].dtype)
    pending: list[np.ndarray] = []
    have = 0
    chunk = 0
    for batch in iter_batches(data, batch_size, 0, rows):
        x = batch.x.detach().cpu().numpy()
        if tuple(x.shape[1:]) != tuple(group[layout.X].shape[1:]):
            return  # other shapes: the capture's shape check names them
        pending.append(x)
        have += len(x)
        while have >= min(cs, rows - chunk * cs) and chunk * cs < rows:
            need = min(cs, rows - chunk * cs)
            block = np.concatenate(pending)
            part, rest = block[:need], block[need:]
            if content_crc(np.asarray(part, dtype=dtype)) != crcs[chunk]:
                lo = chunk * cs
                raise StoreError(
                    f"cannot resume the store at {url}: the data gives other inputs than the store "
                    f"holds (rows {lo}..{lo + need - 1}, chunk {chunk} of array 'x'). Resume with the "
                    "same data file, split, resolution and order, or capture into a new store"
                )
            pending, have, chunk = [rest], len(rest), chunk + 1
        if chunk * cs >= rows:
            return


def chunk_checksums(group: zarr.Group, names: list[str], rows: int, url: str) -> dict[str, list[int]]:
    """Content checksums of the first ``rows`` rows of ``names``, chunk by chunk, read back (a store
    written by several processes, whose chunks no single process saw)."""
    out: dict[str, list[int]] = {}
    for name in names:
        array = group[name]
        n_chunks = math.ceil(rows / int(array.chunks[0]))
        out[name] = [content_crc(read_chunk(array, url, name, c, rows, None)) for c in range(n_chunks)]
    return out
