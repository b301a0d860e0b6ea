"""Chunk integrity: content checksums, missing-chunk detection and checked chunk reads.

Every chunk is protected twice: the Zarr ``crc32c`` codec checks the compressed bytes of each chunk
file (a flipped or truncated byte fails to decode), and the commit record holds the CRC-32 of each
chunk's *uncompressed* bytes (``chunk_crc``), which also catches chunk files swapped or copied from
another store. Every committed chunk is written, so a chunk file that is absent is an error too
(Zarr alone would read it as zeros). Errors name the store, the array, the chunk and its rows.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from saeno.errors import StoreError


def content_crc(values: np.ndarray) -> int:
    """CRC-32 of an array's bytes in C order (what ``chunk_crc`` records per chunk)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(values)).cast("B"))


def _rows_text(lo: int, hi: int) -> str:
    return f"rows {lo}..{hi - 1}"


def damaged(url: str, name: str, chunk: int, lo: int, hi: int, problem: str) -> StoreError:
    """The error for one damaged chunk."""
    return StoreError(
        f"the store at {url} is damaged: array {name!r}, chunk {chunk} ({_rows_text(lo, hi)}) "
        f"{problem}. Resume the capture (--resume) to recapture from the first damaged chunk, or "
        "capture again (--overwrite)"
    )


def read_chunk(
    array: zarr.Array, url: str, name: str, chunk: int, n_rows: int, crcs: list[int] | None
) -> np.ndarray:
    """Rows of one committed chunk, decoded and checked against its recorded checksum."""
    cs = int(array.chunks[0])
    lo, hi = chunk * cs, min((chunk + 1) * cs, n_rows)
    try:
        block = np.asarray(array[lo:hi])
    except Exception as exc:  # noqa: BLE001 - any decode failure is a damaged file
        raise damaged(url, name, chunk, lo, hi, f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    if crcs is not None and chunk < len(crcs) and content_crc(block) != crcs[chunk]:
        raise damaged(
            url,
            name,
            chunk,
            lo,
            hi,
            "holds other values than were written (its content "
            "checksum differs: a chunk file was replaced or swapped)",
        )
    return block


def chunk_keys(array: zarr.Array, n_chunks: int) -> list[str]:
    """Store keys of the first ``n_chunks`` chunks along samples."""
    rest = (0,) * (len(array.shape) - 1)
    prefix = array.store_path.path
    keys = [array.metadata.encode_chunk_key((i, *rest)) for i in range(n_chunks)]
    return [f"{prefix}/{k}" if prefix else k for k in keys]


async def _list(store: Any, prefix: str) -> set[str]:
    return {k async for k in store.list_prefix(prefix)}


def check_chunks_present(group: zarr.Group, names: list[str], n_rows: int, url: str) -> None:
    """Raise when a committed chunk of one of ``names`` has no file."""
    for name in names:
        array = group[name]
        cs = int(array.chunks[0])
        n_chunks = -(-n_rows // cs)
        if n_chunks == 0:
            continue
        keys = chunk_keys(array, n_chunks)
        store = array.store_path.store
        try:
            present = sync(_list(store, array.store_path.path + "/" if array.store_path.path else ""))
        except (NotImplementedError, TypeError):  # a store that cannot list: check key by key
            present = {k for k in keys if sync(store.exists(k))}
        for i, key in enumerate(keys):
            if key not in present:
                lo, hi = i * cs, min((i + 1) * cs, n_rows)
                raise damaged(url, name, i, lo, hi, "is missing (its chunk file was deleted)")
