"""``ActivationStore``: read access to a captured store (arrays, metadata, statistics, loaders)."""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.errors import NodeNotFoundError

from saeno.errors import HookNameError, StoreError
from saeno.store import checks, commit, layout
from saeno.store.chunk_cache import ChunkCache
from saeno.store.integrity import check_chunks_present, read_chunk
from saeno.store.loader import StoreLoader
from saeno.store.running_stats import RunningStats


def store_url(store: str | PathLike) -> str:
    """The location as a string Zarr understands (local paths made absolute)."""
    text = str(store)
    if "://" in text:
        return text
    return str(Path(text).expanduser().absolute())


def format_bytes(n: float) -> str:
    """Human-readable byte count (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def open_group(url: str, mode: str = "r", missing_ok: bool = False) -> zarr.Group | None:
    """Open the Zarr group at ``url``; None (``missing_ok``) or StoreError when there is none."""
    if "://" not in url and not Path(url).exists():
        if missing_ok:
            return None
        raise StoreError(f"no store at {url}: check the path, or run `saeno capture` to make one")
    try:
        return zarr.open_group(url, mode=mode)
    except (FileNotFoundError, NodeNotFoundError):
        if missing_ok:
            return None
        raise StoreError(
            f"no store at {url}: check the path or URL, or run `saeno capture` to make one"
        ) from None
    except (ValueError, TypeError) as exc:  # a zarr.json that is not JSON or not Zarr metadata
        raise StoreError(
            f"{url}/zarr.json is damaged ({type(exc).__name__}: {exc}); capture again (--overwrite)"
        ) from None
    except NotADirectoryError:
        raise StoreError(f"no store at {url}: it is a file, not a store folder") from None


class ActivationStore:
    """A captured activation store, read-only.

    Use :meth:`open`. Only the first ``n_rows`` rows (those fully written and committed) are
    exposed by :meth:`read`, :attr:`params` and :meth:`loader`; ``store[name]`` gives the raw
    Zarr array (of a hook, or of ``"x"``, ``"y"``, ``"y_pred"``, ``"index"``, ``"params/<name>"``).
    """

    def __init__(self, group: zarr.Group, url: str, check_chunks: bool = True) -> None:
        attrs = dict(group.attrs)
        if not layout.is_store_attrs(attrs):
            raise StoreError(f"{url} is a Zarr group but not a saeno activation store")
        version = attrs.get("format_version")
        if version != layout.FORMAT_VERSION:
            raise StoreError(
                f"{url} has store format version {version}; this saeno reads version "
                f"{layout.FORMAT_VERSION}: install the saeno version that wrote it "
                f"({attrs.get('saeno_version')}) or capture again"
            )
        commit.validate(attrs, url)
        self.group = group
        self.url = url
        self._attrs: dict[str, Any] = dict(attrs)
        names = self._stored_arrays()
        if check_chunks:
            check_chunks_present(group, names, self.n_rows, url)

    def _stored_arrays(self) -> list[str]:
        """Paths of every array the metadata promises, checked against the group."""
        shapes = self._attrs.get("array_shapes") or {
            layout.hook_path(h): self._attrs["hook_info"][h]["shape"] for h in self._attrs["hooks"]
        }
        n, cs = int(self._attrs["n_planned"]), int(self._attrs["chunk_size"])
        for name, shape in shapes.items():
            try:
                node = self.group[name]
            except KeyError:
                raise StoreError(
                    f"the store at {self.url} is damaged: array {name!r} is missing "
                    "(its folder was deleted); capture again (--overwrite)"
                ) from None
            if (
                not isinstance(node, zarr.Array)
                or tuple(node.shape) != (n, *shape)
                or int(node.chunks[0]) != cs
            ):
                raise StoreError(
                    f"the store at {self.url} is damaged: array {name!r} does not have "
                    f"the shape {[n, *shape]} and {cs} samples per chunk its metadata records"
                )
        return list(shapes)

    @classmethod
    def open(cls, path_or_url: str | PathLike) -> ActivationStore:
        """Open a store for reading (a local path or any URL Zarr and fsspec accept)."""
        url = store_url(path_or_url)
        return cls(open_group(url, mode="r"), url)

    # -- metadata ----------------------------------------------------------------------------

    @property
    def attrs(self) -> dict[str, Any]:
        """All metadata (the root group's attributes, as read at open)."""
        return dict(self._attrs)

    @property
    def hooks(self) -> list[str]:
        """Names of the captured hooks."""
        return list(self._attrs["hooks"])

    @property
    def n_rows(self) -> int:
        """Rows fully written (all arrays and statistics committed)."""
        return int(self._attrs["rows_written"])

    @property
    def complete(self) -> bool:
        """Whether the capture finished."""
        return bool(self._attrs.get("complete"))

    @property
    def grid(self) -> tuple[int, ...]:
        """Grid of the model inputs (each hook's own grid is in :meth:`hook_info`)."""
        return tuple(self._attrs["grid"])

    def grid_of(self, hook: str) -> tuple[int, ...]:
        """Grid of one hook's fields, which differs from :attr:`grid` where a model rescales (a UNO block)."""
        info = self.hook_info(hook)
        return tuple(info.get("grid", info["shape"][1:]))

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the model that produced the store."""
        return str(self._attrs["fingerprint"])

    @property
    def dtype(self) -> str:
        """Storage dtype requested for hook activations."""
        return str(self._attrs["dtype"])

    @property
    def labels(self) -> dict[str, list[str]]:
        """Category names of the dataset's categorical factors (may be empty)."""
        return dict(self._attrs.get("labels") or {})

    def hook_info(self, hook: str) -> dict[str, Any]:
        """Per-sample shape ``[C, *grid]``, grid, stored dtype and complex treatment of a hook."""
        self._check_hook(hook)
        return dict(self._attrs["hook_info"][hook])

    def _check_hook(self, hook: str) -> None:
        if hook not in self._attrs["hooks"]:
            checks.resolve_hook(self, hook)

    # -- checks a verb makes on the store it is given (see saeno.store.checks) ----------------

    def resolve_hook(self, hook: str | None = None, *, default: str | None = None) -> str:
        """The hook to use: ``hook``; when None, ``default`` (an SAE's hook), else the only hook.

        Raises
        ------
        HookNameError
            The hook is not in the store, or none is named and the store holds several.
        """
        return checks.resolve_hook(self, hook, default=default)

    def check_model(self, model: Any) -> str:
        """The fingerprint of ``model`` (a module or HookedOperator); ModelMismatchError unless it
        is the model that produced this store."""
        return checks.check_model(self, model)

    def check_sae(self, sae: Any) -> None:
        """ModelMismatchError when ``sae`` records a model fingerprint other than this store's."""
        checks.check_sae(self, sae)

    def check_same_model(self, other: Any) -> None:
        """ModelMismatchError when ``other`` (a store) was captured from another model."""
        checks.check_same_model(self, other)

    def label_codes(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """Per-row label codes and category names of the factors (LabelError when unlabelled)."""
        return checks.label_codes(self)

    # -- arrays ------------------------------------------------------------------------------

    def array_names(self) -> list[str]:
        """Every array: hooks first, then x, y, y_pred, index and params/<name>."""
        names = self.hooks + [n for n in (layout.X, layout.Y, layout.Y_PRED, layout.INDEX) if n in self]
        return names + [layout.param_path(p) for p in self._attrs.get("params", [])]

    def __contains__(self, name: str) -> bool:
        if name in self._attrs["hooks"]:
            return True
        try:
            self.group[name]
        except KeyError:
            return False
        return True

    def __getitem__(self, name: str) -> zarr.Array:
        """The Zarr array of a hook, or of ``x``, ``y``, ``y_pred``, ``index``, ``params/<name>``."""
        path = layout.hook_path(name) if name in self._attrs["hooks"] else name
        try:
            node = self.group[path]
        except KeyError:
            raise HookNameError(
                f"{name!r} is neither a hook nor an array of this store; it holds {self.array_names()}"
            ) from None
        if not isinstance(node, zarr.Array):
            raise HookNameError(f"{name!r} is a group, not an array; arrays: {self.array_names()}")
        return node

    def _rows(self, rows: Any) -> Any:
        n = self.n_rows
        if rows is None:
            return slice(0, n)
        if isinstance(rows, (int, np.integer)):
            if not -n <= rows < n:
                raise StoreError(f"row {rows} is outside the store's {n} rows")
            return int(rows) % n
        if isinstance(rows, slice):
            return slice(*rows.indices(n))
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise StoreError(f"a boolean row mask must have shape ({n},), got {idx.shape}")
            return np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise StoreError(f"rows must lie in 0..{n - 1} (the store's committed rows)")
        return idx % n if n else idx

    def read(self, name: str, rows: Any = None) -> np.ndarray:
        """Rows of an array as numpy (default all committed rows).

        Parameters
        ----------
        name
            A hook, or ``"x"``, ``"y"``, ``"y_pred"``, ``"index"``, ``"params/<name>"``.
        rows
            An int, a slice, an integer array or a boolean mask over the committed rows.
        """
        array = self[name]
        sel = self._rows(rows)
        if isinstance(sel, (int, np.integer)):
            return self._gather(name, array, np.array([sel]))[0]
        if isinstance(sel, slice):
            sel = np.arange(self.n_rows, dtype=np.int64)[sel]
        if sel.size == 0:
            return np.empty((0, *array.shape[1:]), dtype=array.dtype)
        return self._gather(name, array, sel)

    def chunk_reader(self, name: str) -> Any:
        """``read(chunk) -> rows`` of one committed chunk of ``name``, decoded and checksum-checked."""
        array = self[name]
        path = layout.hook_path(name) if name in self._attrs["hooks"] else name
        crcs = (self._attrs.get("chunk_crc") or {}).get(path)
        n = self.n_rows

        def read(chunk: int) -> np.ndarray:
            return read_chunk(array, self.url, path, chunk, n, crcs)

        return read

    def cached_reader(self, name: str, cache: ChunkCache) -> Any:
        """:meth:`chunk_reader` of ``name`` served from ``cache`` (keyed by this store and its rows)."""
        return cache.reader((str(self.url), name, self.n_rows), self.chunk_reader(name))

    def _gather(self, name: str, array: zarr.Array, sel: np.ndarray) -> np.ndarray:
        cs = int(array.chunks[0])
        read = self.chunk_reader(name)
        chunks = sel // cs
        out = np.empty((sel.size, *array.shape[1:]), dtype=array.dtype)
        for c in np.unique(chunks):
            where = np.flatnonzero(chunks == c)
            out[where] = read(int(c))[sel[where] - int(c) * cs]
        return out

    def verify(self) -> None:
        """Read every committed chunk of every array and check it (StoreError at the first bad one)."""
        for name in self._stored_arrays():
            array = self.group[name]
            crcs = (self._attrs.get("chunk_crc") or {}).get(name)
            for chunk in range(-(-self.n_rows // int(array.chunks[0]))):
                read_chunk(array, self.url, name, chunk, self.n_rows, crcs)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Per-sample parameters of the committed rows: ``{name: (n_rows,)}``."""
        return {p: self.read(layout.param_path(p)) for p in self._attrs.get("params", [])}

    @property
    def index(self) -> np.ndarray:
        """Dataset sample index of each committed row."""
        return self.read(layout.INDEX)

    def nbytes_stored(self) -> int:
        """Bytes the store occupies (compressed)."""
        return int(sum(self[name].nbytes_stored() for name in self.array_names()))

    # -- statistics and loading --------------------------------------------------------------

    def running_stats(self, hook: str) -> RunningStats:
        """The mergeable statistics of a hook over the committed rows."""
        self._check_hook(hook)
        return RunningStats.from_json(self._attrs["stats"][hook])

    def stats(self, hook: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and population variance ``(C,)`` over committed rows and grid points."""
        s = self.running_stats(hook)
        return s.mean.copy(), s.var

    def loader(
        self,
        hook: str,
        view: str = "field",
        batch_size: int = 32,
        shuffle_buffer: int = 0,
        normalize: bool = False,
        seed: int = 0,
        rows: Any = None,
        drop_last: bool = False,
        return_index: bool = False,
        prefetch: int = 4,
        cache: ChunkCache | None = None,
    ) -> StoreLoader:
        """Stream torch batches of one array chunk by chunk (see :class:`StoreLoader`).

        Parameters
        ----------
        hook
            A hook (or another array such as ``"x"``).
        view
            ``"field"``: ``(B, C, *grid)``; ``"points"``: ``(B, C)``, one row per sample and grid point.
        batch_size
            Samples (field) or points per batch.
        shuffle_buffer
            Samples (field) or points mixed at a time; 0 keeps store order.
        normalize
            Apply ``(a - mean) / sqrt(var)`` with the stored per-channel statistics (hooks only;
            channels with zero variance are only centred).
        seed
            Shuffling seed; each new iteration is a new epoch.
        rows
            Store rows to use (int array, boolean mask or slice), e.g. a train split.
        drop_last
            Drop each epoch's last, smaller batch.
        return_index
            Also yield each sample's store row (and, for points, its flat grid position).
        prefetch
            Batches prepared ahead in the prefetch thread.
        cache
            Keep the decoded chunks in this :class:`~saeno.store.chunk_cache.ChunkCache` for later
            loaders (the next epochs); the batches are the same with or without it.
        """
        mean = scale = None
        if normalize:
            if hook not in self._attrs["hooks"]:
                raise StoreError(f"normalize=True needs a hook's statistics; {hook!r} is not a hook")
            m, var = self.stats(hook)
            if not np.all(np.isfinite(var)) or not np.all(np.isfinite(m)):
                raise StoreError(f"the statistics of {hook!r} are not finite: load it with normalize=False")
            sd = np.sqrt(var)
            scale = np.where(sd > 0, sd, 1.0).astype(np.float32)
            mean = m.astype(np.complex64 if np.iscomplexobj(m) else np.float32)
        return StoreLoader(
            self[hook],
            self.n_rows,
            view=view,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            mean=mean,
            scale=scale,
            seed=seed,
            rows=rows,
            drop_last=drop_last,
            return_index=return_index,
            prefetch=prefetch,
            read_chunk=self.chunk_reader(hook) if cache is None else self.cached_reader(hook, cache),
        )

    # -- summaries ---------------------------------------------------------------------------

    def summary(self) -> str:
        """Several lines describing the store (what ``saeno store info`` prints)."""
        a = self._attrs
        ds = a.get("dataset") or {}
        lines = [
            f"store      {self.url}",
            f"format     {a['format']} v{a['format_version']} (saeno {a.get('saeno_version')})",
            f"rows       {self.n_rows} of {a.get('n_planned')} ({'complete' if self.complete else 'incomplete: resume to finish'})",
            f"model      {a.get('model_class')} fingerprint {str(a.get('fingerprint'))[:16]}",
            f"dataset    {ds.get('name')} split {ds.get('split')} resolution {a.get('resolution')}",
            f"dtype      {a['dtype']}, {a['chunk_size']} samples per chunk",
        ]
        for hook in self.hooks:
            info = a["hook_info"][hook]
            mean, var = self.stats(hook)
            lines.append(
                f"hook       {hook}: {info['shape']} {info['dtype']}"
                f"  mean|{_fmt(np.abs(mean).mean())}| sd {_fmt(np.sqrt(np.nanmean(var)))}"
            )
        for name in self.array_names()[len(self.hooks) :]:
            arr = self[name]
            lines.append(f"array      {name}: {list(arr.shape[1:])} {arr.dtype}")
        if self.labels:
            lines.append(f"labels     {self.labels}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ActivationStore({self.url!r}, hooks={self.hooks}, n_rows={self.n_rows})"

    def __len__(self) -> int:
        return self.n_rows


def _fmt(v: float) -> str:
    return "nan" if not math.isfinite(float(v)) else f"{float(v):.4g}"
