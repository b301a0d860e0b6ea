"""neuraloperator's ``.pt`` files: a dict with ``x`` and ``y`` tensors (``darcy_train_16.pt`` etc.).

neuraloperator stores them with the channel axis squeezed (``(N, *grid)``) by default; ``(N, C, *grid)`` is
also accepted. The file is read with ``torch.load(weights_only=True)``: plain tensors only, no pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saeno.errors import DataFormatError, UntrustedFileError
from saeno.pde.readers.common import limit


def _to_channels(a: np.ndarray, channels_squeezed: bool | None, ndim: int | None) -> np.ndarray:
    if ndim is not None:
        channels_squeezed = a.ndim == ndim + 1
    elif channels_squeezed is None:
        channels_squeezed = a.ndim <= 3  # neuraloperator's default layout (N, *grid) for 1D and 2D data
    return a[:, None] if channels_squeezed else a


def read_torch_pt(
    path: str | Path,
    n: int | None = None,
    x_key: str = "x",
    y_key: str = "y",
    channels_squeezed: bool | None = None,
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
    channels_squeezed : bool, optional
        Whether the arrays lack the channel axis. Default: guessed as neuraloperator writes them,
        ``(N, X)`` and ``(N, X, Y)`` squeezed, 4+ dimensions with channels. ``ndim`` overrides the guess.
    ndim : int, optional
        Number of spatial dimensions, which settles the channel question.
    trust : bool
        Allow unpickling (``weights_only=False``) for files that hold more than tensors. Only for files
        you trust: unpickling can run arbitrary code.

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}`` with arrays ``(N, C, *grid)``.
    """
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise UntrustedFileError(
            f"{path}: this .pt file holds Python objects beyond tensors, and loading it would unpickle them, "
            "which can run arbitrary code. If you trust the file, pass trust=True (CLI: --trust)."
        ) from exc
    except (OSError, RuntimeError) as exc:
        raise DataFormatError(f"{path}: not a readable torch file ({exc})") from exc
    if not isinstance(data, dict) or x_key not in data or y_key not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DataFormatError(
            f"{path}: expected a dict with tensors {x_key!r} and {y_key!r} (neuraloperator's layout), "
            f"found {found}; pass x_key=/y_key= (CLI --x-key/--y-key) to name other keys"
        )
    x = np.asarray(data[x_key].detach().cpu().float().numpy() if hasattr(data[x_key], "detach") else data[x_key])
    y = np.asarray(data[y_key].detach().cpu().float().numpy() if hasattr(data[y_key], "detach") else data[y_key])
    m = limit(x.shape[0], n)
    x = _to_channels(x[:m], channels_squeezed, ndim)
    y = _to_channels(y[:m], channels_squeezed, ndim)
    return {"x": x, "y": y, "params": {}, "labels": {}, "card": {"format": "neuraloperator-pt"}}
