"""The commit record of an activation store, and the validation of its metadata.

A capture commits every few chunks (``saeno.store.writer.COMMIT_BYTES`` and ``COMMIT_SECONDS``), at
its end and when it stops on an error: the statistics, ``rows_written``, ``complete`` and the content
checksum of every chunk written so far (``chunk_crc``: array name -> CRC-32 of each chunk's
uncompressed bytes, in row order) go into the root ``zarr.json`` in **one** write (zarr's
``LocalStore`` writes a temporary file and renames it, so a kill leaves the old or the new document,
never a mix). The same write holds ``commit``: ``{"rows_written", "complete", "digest"}``, the digest
being the SHA-256 of the canonical JSON of those four keys; a store whose digest does not match was
edited or damaged after its last commit and is refused on open.

:func:`validate` checks the whole metadata document against the schema of
:mod:`saeno.store.layout` before any of it is used, so a damaged store gives one message naming the
store and the key instead of a traceback or a silently wrong result.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import zarr

from saeno.errors import StoreError
from saeno.store import layout
from saeno.store.running_stats import RunningStats

#: root attributes written by every commit
COMMIT_KEYS = ("rows_written", "complete", "stats", "chunk_crc")


def digest(rows_written: int, complete: bool, stats: dict[str, Any], chunk_crc: Any) -> str:
    """SHA-256 of the canonical JSON of one commit's content."""
    doc = {"rows_written": rows_written, "complete": complete, "stats": stats, "chunk_crc": chunk_crc}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def commit_attrs(
    rows_written: int,
    complete: bool,
    stats: dict[str, RunningStats] | dict[str, Any],
    chunk_crc: dict[str, list[int]] | None,
) -> dict[str, Any]:
    """The root attributes one commit writes (``stats`` as RunningStats or their JSON)."""
    stats_json = {h: (s.to_json() if isinstance(s, RunningStats) else s) for h, s in stats.items()}
    crc = None if chunk_crc is None else {k: [int(c) for c in v] for k, v in chunk_crc.items()}
    return {
        "rows_written": int(rows_written),
        "complete": bool(complete),
        "stats": stats_json,
        "chunk_crc": crc,
        "commit": {
            "rows_written": int(rows_written),
            "complete": bool(complete),
            "digest": digest(int(rows_written), bool(complete), stats_json, crc),
        },
    }


def write_commit(
    group: zarr.Group,
    rows_written: int,
    complete: bool,
    stats: dict[str, RunningStats] | dict[str, Any],
    chunk_crc: dict[str, list[int]] | None,
    extra: dict[str, Any] | None = None,
) -> dict:
    """Commit in one write of the root attributes; returns the attributes written."""
    new = commit_attrs(rows_written, complete, stats, chunk_crc)
    if extra:
        new.update(extra)
    group.update_attributes(new)  # one zarr.json write (attrs.update writes once per key)
    return new


# ----------------------------------------------------------------------------------- schema
def _fail(url: str, key: str, problem: str) -> StoreError:
    return StoreError(
        f"the store at {url} has damaged metadata: {key} {problem}. The file {url}/zarr.json was "
        "edited or damaged; resume the capture (--resume) to repair it from the chunks, or capture "
        "again (--overwrite)"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(attrs: dict, key: str, url: str, lo: int = 0) -> int:
    v = attrs.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise _fail(url, key, f"is {v!r}, expected an integer >= {lo}")
    return v


def _floats(value: Any, n: int, url: str, key: str, allow_null: bool) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise _fail(url, key, f"is not a list of {n} numbers")
    out = []
    for v in value:
        if v is None:
            if not allow_null:
                raise _fail(
                    url, key, "holds null (a non-finite value) in a store captured without --allow-nonfinite"
                )
            out.append(math.nan)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(url, key, f"holds {v!r}, not a number")
        else:
            out.append(float(v))
    return out


def validate_static(attrs: dict[str, Any], url: str) -> None:
    """Check the keys written once at creation (hooks, shapes, sizes)."""
    hooks = attrs.get("hooks")
    if not isinstance(hooks, list) or not hooks or not all(isinstance(h, str) for h in hooks):
        raise _fail(url, "hooks", f"is {hooks!r}, expected a non-empty list of hook names")
    info = attrs.get("hook_info")
    if not isinstance(info, dict) or set(info) != set(hooks):
        raise _fail(url, "hook_info", "does not describe exactly the store's hooks")
    for h in hooks:
        shape = info[h].get("shape") if isinstance(info[h], dict) else None
        if not isinstance(shape, list) or not shape or not all(_is_int(s) and s > 0 for s in shape):
            raise _fail(url, f"hook_info[{h!r}].shape", f"is {shape!r}, expected positive sizes")
    n_planned = _int(attrs, "n_planned", url, lo=1)
    _int(attrs, "chunk_size", url, lo=1)
    _int(attrs, "batch_size", url, lo=1)
    shapes = attrs.get("array_shapes")
    if shapes is not None and not (
        isinstance(shapes, dict)
        and all(isinstance(s, list) and all(_is_int(d) and d > 0 for d in s) for s in shapes.values())
    ):
        raise _fail(url, "array_shapes", "is not a mapping of array names to positive sizes")
    del n_planned


def validate_commit(attrs: dict[str, Any], url: str) -> None:
    """Check the last commit: digest, row counts and statistics that describe those rows."""
    n_planned = int(attrs["n_planned"])
    cs = int(attrs["chunk_size"])
    rows = _int(attrs, "rows_written", url)
    if rows > n_planned:
        raise _fail(url, "rows_written", f"is {rows}, more than the {n_planned} rows planned")
    if rows % cs and rows != n_planned:
        raise _fail(
            url,
            "rows_written",
            f"is {rows}, neither a multiple of the chunk size {cs} nor the planned {n_planned}",
        )
    complete = attrs.get("complete")
    if not isinstance(complete, bool):
        raise _fail(url, "complete", f"is {complete!r}, expected true or false")
    if complete and rows != n_planned:
        raise _fail(url, "complete", f"is true with {rows} of {n_planned} rows written")
    stats = attrs.get("stats")
    if not isinstance(stats, dict) or set(stats) != set(attrs["hooks"]):
        raise _fail(url, "stats", "does not hold statistics for exactly the store's hooks")
    nonfinite = bool(attrs.get("allow_nonfinite", False))
    for h in attrs["hooks"]:
        shape = attrs["hook_info"][h]["shape"]
        channels, points = shape[0], math.prod(shape[1:])
        s = stats[h]
        if not isinstance(s, dict):
            raise _fail(url, f"stats[{h!r}]", "is not a mapping")
        count = _floats(s.get("count"), channels, url, f"stats[{h!r}].count", allow_null=False)
        _floats(s.get("mean"), channels, url, f"stats[{h!r}].mean", allow_null=nonfinite)
        m2 = _floats(s.get("m2"), channels, url, f"stats[{h!r}].m2", allow_null=nonfinite)
        if "mean_imag" in s:
            _floats(s["mean_imag"], channels, url, f"stats[{h!r}].mean_imag", allow_null=nonfinite)
        expected = float(rows * points)
        if any(c != expected for c in count) if not nonfinite else any(c > expected or c < 0 for c in count):
            raise _fail(
                url,
                f"stats[{h!r}].count",
                f"is {count[:4]}..., but {rows} rows of {points} "
                f"grid points give {expected:.0f} values per channel (the statistics do not "
                "describe the committed rows)",
            )
        if any(v < 0 for v in m2 if not math.isnan(v)):
            raise _fail(url, f"stats[{h!r}].m2", "holds negative sums of squares")
    crc = attrs.get("chunk_crc")
    if crc is not None:
        n_chunks = -(-rows // cs)
        if not isinstance(crc, dict) or not all(
            isinstance(v, list) and len(v) == n_chunks and all(_is_int(c) for c in v) for v in crc.values()
        ):
            raise _fail(url, "chunk_crc", f"does not hold {n_chunks} checksums per array")
    record = attrs.get("commit")
    if record is not None and (not isinstance(record, dict) or record.get("digest") != _safe_digest(attrs)):
        raise _fail(
            url, "commit", "does not match rows_written, complete, stats and chunk_crc (its digest differs)"
        )


def _safe_digest(attrs: dict[str, Any]) -> str | None:
    try:
        return digest(
            attrs.get("rows_written"), attrs.get("complete"), attrs.get("stats"), attrs.get("chunk_crc")
        )
    except (TypeError, ValueError):
        return None


def validate(attrs: dict[str, Any], url: str) -> None:
    """Check a store's root attributes; :class:`StoreError` naming the key when they are damaged."""
    if not layout.is_store_attrs(attrs):
        raise StoreError(f"{url} is a Zarr group but not a saeno activation store")
    if attrs.get("state") == "creating" or "rows_written" not in attrs:
        raise StoreError(
            f"the store at {url} was never finished being created (the capture stopped before its "
            "first commit): capture again with --overwrite (overwrite=True)"
        )
    validate_static(attrs, url)
    validate_commit(attrs, url)
