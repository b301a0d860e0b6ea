"""Encode one whole chunk of a Zarr v3 array with the array's own codecs, in the calling thread.

``zarr.Array.__setitem__`` of a chunk-aligned slice goes through Zarr's indexing and its batched,
asynchronous codec pipeline: several thread hand-offs and Python layers per chunk, which cost a
capture of a small model about as much CPU time as the compression. A capture writes only whole,
aligned chunks (the last partial one aside), so :class:`ChunkEncoder` runs the same codecs
synchronously (``_encode_sync`` of each, in pipeline order) in the thread that already holds the
chunk, and the sink then stores the bytes under the chunk's key with the store's own ``set``. The
chunk files are the bytes ``__setitem__`` writes (tested). These are Zarr's internals, so the
encoder is used only with the Zarr releases it was tested against (:data:`TESTED_ZARR`); with any
other release, or where the array's Zarr objects lack what this needs (a sharded or non-regular
array), :func:`chunk_encoder` returns None and the sink writes through ``__setitem__`` as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

#: Zarr releases (major, minor) whose codec internals the encoder's byte-identity test passed on
TESTED_ZARR = ((3, 0), (3, 1))


def zarr_release_tested(version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed Zarr's) is one of :data:`TESTED_ZARR`."""
    parts = (version or zarr.__version__).split(".")
    try:
        return (int(parts[0]), int(parts[1])) in TESTED_ZARR
    except (ValueError, IndexError):
        return False


class ChunkEncoder:
    """Encode whole chunks (along axis 0) of one array; see the module docstring."""

    def __init__(self, array: zarr.Array) -> None:
        from zarr.core.buffer import default_buffer_prototype

        inner = array.async_array
        pipeline: Any = inner.codec_pipeline  # BatchedCodecPipeline (checked below)
        self._array_array = tuple(pipeline.array_array_codecs)
        self._array_bytes = pipeline.array_bytes_codec
        self._bytes_bytes = tuple(pipeline.bytes_bytes_codecs)
        codecs = (*self._array_array, self._array_bytes, *self._bytes_bytes)
        if not all(callable(getattr(c, "_encode_sync", None)) for c in codecs):
            raise TypeError("a codec without a synchronous encoder")
        self._inner = inner
        self._prototype = default_buffer_prototype()
        self._rest = (0,) * (len(array.shape) - 1)
        self.chunk_shape = tuple(array.chunks)

    def encode(self, values: np.ndarray, chunk: int) -> tuple[Any, Any]:
        """The store path and the encoded bytes of chunk number ``chunk`` (``values`` its rows,
        exactly the chunk's shape, in the array's dtype)."""
        coords = (chunk, *self._rest)
        meta = self._inner.metadata
        spec = meta.get_chunk_spec(coords, self._inner.config, self._prototype)
        data: Any = self._prototype.nd_buffer.from_numpy_array(values)
        for codec in self._array_array:
            data = codec._encode_sync(data, spec)
            spec = codec.resolve_metadata(spec)
        data = self._array_bytes._encode_sync(data, spec)
        spec = self._array_bytes.resolve_metadata(spec)
        for codec in self._bytes_bytes:
            data = codec._encode_sync(data, spec)
            spec = codec.resolve_metadata(spec)
        return self._inner.store_path / meta.encode_chunk_key(coords), data


def chunk_encoder(array: zarr.Array) -> ChunkEncoder | None:
    """A :class:`ChunkEncoder` for ``array``, or None when this Zarr cannot encode it that way (or
    is not a release it was tested against)."""
    if not zarr_release_tested():
        return None
    try:
        from zarr.core.chunk_grids import RegularChunkGrid

        if not isinstance(array.metadata.chunk_grid, RegularChunkGrid):
            return None
        return ChunkEncoder(array)
    except (AttributeError, ImportError, TypeError):
        return None
