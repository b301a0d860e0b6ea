"""The model side of a capture: checked arguments, the model's identity, one forward per batch and the
rows it gives.

Both :func:`saeno.capture` and the sharded :func:`saeno.distributed.capture.capture_distributed`
call the model only through :func:`forward_batch` and turn its output into store rows only through
:func:`batch_rows`, so a model with another calling convention needs a change here alone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from saeno.errors import ShapeError, StoreError
from saeno.store import layout
from saeno.store.sources import Batch

#: storage types of hook activations a capture accepts
DTYPES = {"float32": np.float32, "float16": np.float16}


def check_arguments(
    *,
    batch_size: Any,
    dtype: str,
    n: int | None,
    chunk_size: int | None,
    resume: bool,
    overwrite: bool,
) -> None:
    """Raise StoreError for an argument of a capture that cannot work (named as in the Python API)."""
    if dtype not in DTYPES:
        raise StoreError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StoreError(f"batch_size must be a positive number of samples, got {batch_size!r}")
    if n is not None and n < 1:
        raise StoreError(f"n_rows must be a positive number of samples, got {n}")
    if chunk_size is not None and chunk_size < 1:
        raise StoreError(f"chunk_size must be at least 1, got {chunk_size}")
    if resume and overwrite:
        raise StoreError("resume and overwrite exclude each other: pick one")


def resolve_hooks(hooked: Any, hooks: Any) -> list[str]:
    """The hook names a filter selects; StoreError when it selects none."""
    names = list(hooked.resolve(hooks))
    if not names:
        raise StoreError(f"the hook filter {hooks!r} matches no hook; see hooked.hook_names")
    return names


def model_of(hooked: Any) -> torch.nn.Module:
    """The ``torch.nn.Module`` inside a HookedOperator (or the module itself)."""
    model = getattr(hooked, "model", None)
    return model if isinstance(model, torch.nn.Module) else hooked


def model_fingerprint(hooked: Any) -> str:
    """The fingerprint of the model's architecture and weights that a store records."""
    try:
        from saeno.hooking import fingerprint
    except ImportError as exc:  # pragma: no cover - the hooking package is part of saeno
        raise StoreError("saeno.hooking.fingerprint is not available: reinstall saeno") from exc
    return str(fingerprint(model_of(hooked)))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def openmp_spins(device: torch.device) -> bool:
    """Whether a CPU forward's OpenMP threads wait actively on every core this process may use.

    True when the forward runs on the CPU with more than one intra-op thread, at least as many
    threads as usable cores, and OpenMP's wait policy is not passive (``OMP_WAIT_POLICY=PASSIVE``,
    ``GOMP_SPINCOUNT=0`` or ``KMP_BLOCKTIME=0``): the default of GNU and Intel OpenMP is to spin
    for a while after each parallel region, so every core is busy during the whole forward.
    """
    if device.type != "cpu":
        return False
    threads = torch.get_num_threads()
    if threads < 2 or threads < _usable_cores():
        return False
    env = os.environ
    passive = (
        env.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"
        or env.get("GOMP_SPINCOUNT", "").strip() == "0"
        or env.get("KMP_BLOCKTIME", "").strip() == "0"
    )
    return not passive


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def forward_batch(
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


def batch_rows(
    batch: Batch, out: Any, cache: dict, names: list[str], lo: int, hi: int
) -> dict[str, np.ndarray]:
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


def array_specs(rows: dict[str, np.ndarray], names: list[str], dtype: np.dtype) -> dict[str, tuple]:
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
