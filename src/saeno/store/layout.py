"""The on-disk layout of an activation store: format version, array names and metadata schema.

A store is a Zarr v3 group::

    <root>/zarr.json              root attributes: all metadata below (JSON)
    <root>/acts/<hook>            one array per hook, (N, C, *grid), chunked along samples
    <root>/x                      model inputs (N, C_in, *grid_in)
    <root>/y                      dataset targets (N, C_out, *grid), only when the data had them
    <root>/y_pred                 model outputs (N, C_out, *grid)
    <root>/index                  dataset sample index of each row (N,), int64
    <root>/params/<name>          per-sample parameters (N,), float64

Every array has the same chunk length along samples (``chunk_size`` whole samples per chunk) and
blosc compression (lz4 with bit shuffling: see ``saeno.store.capture_target.COMPRESSOR``). Hook activations are stored in ``dtype`` (float32 or
float16); complex activations (``complex_data=True`` FNOs) are stored as complex64 whatever ``dtype``
is, recorded as ``"complex": "complex64"`` in the hook's entry of ``hook_info``.

Root attributes (keys of :data:`ATTR_KEYS`):

``format``, ``format_version``
    :data:`FORMAT_NAME` and :data:`FORMAT_VERSION`.
``fingerprint``, ``model_config``, ``model_class``
    ``saeno.hooking.fingerprint(model)``, the model's ``.saeno_config`` (or null) and class name.
``hooks``, ``hook_info``
    Hook names in capture order; per hook ``{"shape": [C, *grid], "grid": [...], "dtype": str,
    "complex": null | "complex64"}``.
``grid``, ``resolution``
    Grid of the model inputs and the dataset's resolution (or the input grid when unknown).
``dataset``
    ``{"name", "card", "split"}`` of the data when known (else nulls).
``dtype``, ``chunk_size``, ``batch_size``, ``n_planned``
    Requested storage dtype for activations, samples per chunk, the forward batch size (batches are
    aligned to multiples of it from row 0, which makes resumed runs bit-identical), samples planned.
``rows_written``
    Number of rows fully written: every array's chunks and the statistics for them are committed.
    Readers see only these rows. ``complete``: true once the capture has finished.
``stats``
    Per hook ``{"count": [..], "mean": [..], "m2": [..]}`` (per channel; see
    :class:`saeno.store.running_stats.RunningStats`) over the first ``rows_written`` rows.
``stats_method``
    How each chunk's statistics were computed: ``"sample"`` (:data:`STATS_METHOD`: per-sample
    moments combined per chunk, :meth:`saeno.store.running_stats.RunningStats.from_samples`).
    Absent in stores written by saeno 0.x before it, whose chunks were summarised whole
    (``RunningStats.from_array``); both give the same statistics to float64 rounding, and a resume
    or repair recomputes a chunk with the store's own method, bit for bit.
``params``, ``labels``
    Names of the per-sample parameter arrays and the dataset's categorical labels.
"""

from __future__ import annotations

from typing import Any

from saeno.errors import StoreError

FORMAT_NAME = "saeno.activation_store"
FORMAT_VERSION = 1
#: the ``stats_method`` of new stores (see the module docstring)
STATS_METHOD = "sample"

ACTS_GROUP = "acts"
PARAMS_GROUP = "params"
X = "x"
Y = "y"
Y_PRED = "y_pred"
INDEX = "index"

#: target size of one chunk of the largest per-sample array, in bytes (uncompressed)
TARGET_CHUNK_BYTES = 4 * 2**20
#: the most samples in one chunk (keeps commit granularity and per-chunk memory small)
MAX_CHUNK_SAMPLES = 256

ATTR_KEYS = (
    "format",
    "format_version",
    "saeno_version",
    "fingerprint",
    "model_class",
    "model_config",
    "hooks",
    "hook_info",
    "grid",
    "resolution",
    "dataset",
    "dtype",
    "chunk_size",
    "batch_size",
    "n_planned",
    "rows_written",
    "complete",
    "stats",
    "stats_method",
    "params",
    "labels",
)


def hook_path(hook: str) -> str:
    """Path of a hook's array inside the store group."""
    return f"{ACTS_GROUP}/{hook}"


def param_path(name: str) -> str:
    """Path of a per-sample parameter array inside the store group."""
    return f"{PARAMS_GROUP}/{name}"


def default_chunk_size(per_sample_bytes: int) -> int:
    """Samples per chunk so that the largest array's chunk holds about :data:`TARGET_CHUNK_BYTES`.

    Parameters
    ----------
    per_sample_bytes
        Uncompressed bytes of one sample of the largest array.

    Returns
    -------
    int
        Between 1 and :data:`MAX_CHUNK_SAMPLES`; depends only on the per-sample size, never on the
        batch size, so that two captures of the same model lay out their bytes identically.
    """
    if per_sample_bytes <= 0:
        return MAX_CHUNK_SAMPLES
    return int(max(1, min(MAX_CHUNK_SAMPLES, TARGET_CHUNK_BYTES // per_sample_bytes)))


def stats_by_sample(attrs: dict[str, Any], url: str = "the store") -> bool:
    """Whether a store's chunk statistics are per-sample moments (True) or whole-chunk ones (an older
    store without ``stats_method``); StoreError for a method this version does not know."""
    method = attrs.get("stats_method")
    if method is None:
        return False
    if method != STATS_METHOD:
        raise StoreError(
            f"{url} records stats_method={method!r}, which this saeno version does not know: resume "
            "or repair it with the saeno version that wrote it, or capture again (--overwrite)"
        )
    return True


def is_store_attrs(attrs: dict[str, Any]) -> bool:
    """Whether a group's attributes describe a saeno activation store."""
    return attrs.get("format") == FORMAT_NAME


def writable(group, name: str):
    """Array ``name`` of ``group`` opened for writing: every chunk is written, also one equal to the
    fill value (a missing chunk file then always means damage; zarr skips such chunks by default)."""
    return group[name].with_config({"write_empty_chunks": True})
