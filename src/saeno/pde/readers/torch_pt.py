"""neuraloperator's ``.pt`` files: a dict with ``x`` and ``y`` tensors (``darcy_train_16.pt`` etc.).

neuraloperator stores them with the channel axis squeezed (``(N, *grid)``) by default; ``(N, C, *grid)`` and
channels last ``(N, *grid, C)`` are also read. The layout is inferred from the shapes
(:func:`~saeno.pde.readers.common.infer_layout`): a reading that is not the only plausible one is refused
with a message naming the option to pass, never guessed. The file is read with
``torch.load(weights_only=True)`` (plain tensors only, no pickle) and memory-mapped where the format allows,
so that shapes and dtypes are checked before any array is copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saeno.errors import DataFormatError, UntrustedFileError
from saeno.pde.readers.common import (
    check_array,
    infer_layout,
    layout_option,
    to_channels_first,
)


def _load(path: Path, trust: bool) -> Any:
    import pickle

    import torch

    def load(mmap: bool) -> Any:
        return torch.load(path, map_location="cpu", weights_only=not trust, mmap=mmap)

    try:
        try:
            return load(mmap=True)
        except RuntimeError as exc:  # the legacy (non-zip) format cannot be memory-mapped
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            return load(mmap=False)
    except pickle.UnpicklingError as exc:
        raise UntrustedFileError(
            f"{path}: this .pt file holds Python objects beyond tensors, and loading it would unpickle them, "
            "which can run arbitrary code. If you trust the file, pass trust=True (CLI: --trust)."
        ) from exc
    except (
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        MemoryError,
        OverflowError,
    ) as exc:  # torch raises many types for damaged files
        raise DataFormatError(f"{path}: not a readable torch file ({type(exc).__name__}: {exc})") from exc


def _as_numpy(value: Any, path: Path, key: str, m: int | None) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            value = value.float()
        m = check_array(_TorchShape(value), str(path), key, m, min_ndim=2)
        return value[:m].detach().to(torch.float32).numpy()
    if isinstance(value, np.ndarray):
        m = check_array(value, str(path), key, m, min_ndim=2)
        return np.asarray(value[:m], dtype=np.float32)
    raise DataFormatError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor or array")


class _TorchShape:
    """Shape and numpy dtype of a tensor, for :func:`check_array` (which must not copy the data)."""

    def __init__(self, t: Any) -> None:
        self.shape = tuple(t.shape)
        self.ndim = t.ndim
        try:
            self.dtype = np.dtype(str(t.dtype).replace("torch.", ""))
        except TypeError:  # torch-only dtypes (float8, ...)
            self.dtype = np.dtype("O")


def read_torch_pt(
    path: str | Path,
    n: int | None = None,
    x_key: str = "x",
    y_key: str = "y",
    channels_squeezed: bool | None = None,
    channels_last: bool | None = None,
    channels_first: bool | None = None,
    ndim: int | None = None,
    trust: bool = False,
) -> dict[str, Any]:
    """Read a neuraloperator ``.pt`` dict of tensors.

    Parameters
    ----------
    path : str or Path
        The ``.pt`` file.
    n : int, optional
        Read only the first ``n`` samples.
    x_key, y_key : str
        Dict keys of the input and output tensors.
    channels_squeezed, channels_last, channels_first : bool, optional
        The layout: ``(N, *grid)``, ``(N, *grid, C)`` or ``(N, C, *grid)`` (at most one). Default: inferred
        from the shapes; an ambiguous shape is refused with a message.
    ndim : int, optional
        Number of space axes, which settles most layout questions.
    trust : bool
        Allow unpickling (``weights_only=False``) for files that hold more than tensors. Only for files
        you trust: unpickling can run arbitrary code.

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}`` with arrays ``(N, C, *grid)``.
    """
    path = Path(path)
    data = _load(path, trust)
    if not isinstance(data, dict) or x_key not in data or y_key not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DataFormatError(
            f"{path}: expected a dict with tensors {x_key!r} and {y_key!r} (neuraloperator's layout), "
            f"found {found}; pass x_key=/y_key= (CLI --x-key/--y-key) to name other keys"
        )
    xs, ys = data[x_key], data[y_key]
    x_shape, y_shape = tuple(getattr(xs, "shape", ())), tuple(getattr(ys, "shape", ()))
    if len(x_shape) >= 1 and len(y_shape) >= 1 and x_shape[0] != y_shape[0]:
        raise DataFormatError(
            f"{path}: {x_key!r} has {x_shape[0]} samples and {y_key!r} {y_shape[0]}; "
            "they must pair one to one"
        )
    layout = layout_option(channels_last, channels_first, channels_squeezed, str(path))
    x = _as_numpy(xs, path, x_key, n)
    y = _as_numpy(ys, path, y_key, n)
    lx, ly = infer_layout(x.shape, y.shape, str(path), layout, ndim, x_key, y_key)
    if channels_squeezed is False and "squeezed" in (lx, ly):
        raise DataFormatError(
            f"{path}: channels_squeezed=False but {x_key!r} {x.shape} and {y_key!r} {y.shape} "
            "only read as arrays without a channel axis; pass channels_first/channels_last"
        )
    x, y = to_channels_first(x, lx), to_channels_first(y, ly)
    card = {"format": "neuraloperator-pt", "layout": {x_key: lx, y_key: ly}}
    return {"x": x, "y": y, "params": {}, "labels": {}, "card": card}
