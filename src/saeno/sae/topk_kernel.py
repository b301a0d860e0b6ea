"""Exact row-wise TopK on the CPU, compiled with numba when it is installed (``saeno[fast]``).

``torch.topk`` on the CPU copies every row into a buffer of (value, index) pairs and partially
sorts it, about ten times the cost of one pass over the row. The kernel here reads each row twice
while it is in cache:

1. the maxima of ``LANES`` interleaved lanes (column ``c`` belongs to lane ``c % LANES``). They are
   ``LANES`` distinct entries of the row, so their ``k``-th largest value ``t`` is at most the
   row's ``k``-th largest value: every entry of the TopK is ``>= t``;
2. the entries ``>= t`` (about ``k`` to ``2k`` of them) are appended to a small buffer without
   branching, and the TopK of that buffer is taken by insertion.

The result is the exact TopK set. Among equal values the lower column wins; ``torch.topk`` leaves
that choice unspecified, so on ties the two may keep different columns with the same values. A row
holding a NaN makes the whole call return ``None`` so that the caller falls back to ``torch.topk``
(which orders NaN above every number).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

#: set to False to run the torch operations instead (numba is imported on first use, not at import)
enabled = True
_UNSET = object()
_numba: Any = _UNSET


def _numba_module() -> Any:
    """numba, imported on first use (about a second), or None when it is not installed."""
    global _numba
    if _numba is _UNSET:
        try:  # optional: pip install "saeno[fast]"
            import numba
        except ImportError:  # pragma: no cover - depends on the environment
            numba = None
        _numba = numba
    return _numba


#: interleaved lanes of the threshold pass (``k`` must not exceed it)
LANES = 32
#: the kernel is serial; with more intra-op threads than this, ``torch.topk`` (parallel over rows) is used
MAX_THREADS = 4


def _topk_rows(x: Any, q: Any, k: int, out_v: Any, out_i: Any, buf_v: Any, buf_i: Any) -> bool:
    """Row-wise TopK of ``x`` given its lane maxima ``q`` (see the module docstring)."""
    n, p = x.shape
    lanes = q.shape[1]
    for r in range(n):
        # t: the k-th largest lane maximum, by insertion into a descending list of k
        for j in range(k):
            out_v[r, j] = -np.inf
        for j in range(lanes):
            val = q[r, j]
            if val != val:
                return False
            if val > out_v[r, k - 1]:
                i = k - 1
                while i > 0 and out_v[r, i - 1] < val:
                    out_v[r, i] = out_v[r, i - 1]
                    i -= 1
                out_v[r, i] = val
        t = out_v[r, k - 1]
        # every entry >= t, in column order: blocks of 16 are tested at once, and only
        # those holding one are copied (without branching)
        m = 0
        for c0 in range(0, p - 15, 16):
            h = 0
            for j in range(16):
                h += x[r, c0 + j] >= t
            if h:
                for c in range(c0, c0 + 16):
                    a = x[r, c]
                    buf_v[m] = a
                    buf_i[m] = c
                    m += a >= t
        for c in range(p - p % 16, p):
            a = x[r, c]
            buf_v[m] = a
            buf_i[m] = c
            m += a >= t
        # the TopK of the buffer (m >= k): descending insertion, the lower column first
        for j in range(k):
            val = buf_v[j]
            i = j
            while i > 0 and out_v[r, i - 1] < val:
                out_v[r, i] = out_v[r, i - 1]
                out_i[r, i] = out_i[r, i - 1]
                i -= 1
            out_v[r, i] = val
            out_i[r, i] = buf_i[j]
        for j in range(k, m):
            val = buf_v[j]
            if val > out_v[r, k - 1]:
                i = k - 1
                while i > 0 and out_v[r, i - 1] < val:
                    out_v[r, i] = out_v[r, i - 1]
                    out_i[r, i] = out_i[r, i - 1]
                    i -= 1
                out_v[r, i] = val
                out_i[r, i] = buf_i[j]
    return True


def _sparse_grads(
    x: Any, g: Any, w_dec: Any, idx: Any, vals: Any, gw_enc_t: Any, gw_dec: Any, gb_enc: Any
) -> None:
    """The gradients of :func:`sparse_grads`, accumulated into the zeroed outputs."""
    n, k = idx.shape
    c = x.shape[1]
    for r in range(n):
        for s in range(k):
            v = vals[r, s]
            if v > 0:  # zero codes (ReLU) carry no gradient
                j = idx[r, s]
                d = w_dec[j, 0] * g[r, 0]
                for ch in range(1, c):
                    d += w_dec[j, ch] * g[r, ch]
                gb_enc[j] += d
                for ch in range(c):
                    gw_enc_t[j, ch] += d * x[r, ch]
                    gw_dec[j, ch] += v * g[r, ch]


_JIT = {"nogil": True, "boundscheck": False, "cache": True}
_KERNELS: Any = None


def _kernels() -> Any:
    global _KERNELS
    if _KERNELS is None:
        nb = _numba_module()
        _KERNELS = (nb.njit(**_JIT)(_topk_rows), nb.njit(**_JIT)(_sparse_grads))
    return _KERNELS


def available() -> bool:
    """Whether the compiled kernels can be used (numba is installed and ``enabled``)."""
    return enabled and _numba_module() is not None


def applies(x: Tensor, k: int) -> bool:
    """Whether :func:`topk_rows` handles ``x`` ``(N, p)`` with this ``k`` (else use ``torch.topk``)."""
    return (
        x.device.type == "cpu"
        and x.dim() == 2
        and x.dtype in (torch.float32, torch.float64)
        and not x.requires_grad
        and 1 <= k <= LANES
        and x.shape[1] % LANES == 0
        and x.shape[1] >= 2 * LANES
        and torch.get_num_threads() <= MAX_THREADS
        and available()
    )


def topk_rows(x: Tensor, k: int) -> tuple[Tensor, Tensor] | None:
    """The ``k`` largest entries of each row of ``x`` and their columns, or None to fall back.

    Parameters
    ----------
    x : Tensor
        ``(N, p)`` float32 or float64 CPU tensor (see :func:`applies`).
    k : int
        Entries kept per row.

    Returns
    -------
    (values, indices) or None
        ``(N, k)`` values in descending order and their int64 columns; None when the kernel does
        not apply or a row holds a NaN.
    """
    if not applies(x, k):
        return None
    kernel = _kernels()[0]
    x = x.contiguous()
    n, p = x.shape
    # lane maxima: column c is in lane c % LANES (a NaN anywhere in a row shows in them)
    q = x.view(n, p // LANES, LANES).amax(1)
    xn = x.numpy()
    vals = torch.empty((n, k), dtype=x.dtype)
    idx = torch.empty((n, k), dtype=torch.int64)
    buf_v = np.empty(p, xn.dtype)
    buf_i = np.empty(p, np.int64)
    if not kernel(xn, q.numpy(), k, vals.numpy(), idx.numpy(), buf_v, buf_i):
        return None
    return vals, idx


def sparse_grads(
    x: Tensor, g: Tensor, w_dec: Tensor, idx: Tensor, vals: Tensor, p: int
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Gradients of a TopK SAE's parameters from the ``N k`` kept codes, or None to fall back.

    With ``d[n, s] = <g_n, W_d[idx_ns]>`` where ``vals[n, s] > 0`` (else 0): ``dL/db_e[j]`` is
    the sum of ``d`` over the entries of concept ``j``, ``dL/dW_e[:, j]`` the sum of ``d x_n`` and
    ``dL/dW_d[j]`` the sum of ``vals g_n``, all in one pass over the kept entries.

    Parameters
    ----------
    x : Tensor
        Centred inputs ``(N, C)``.
    g : Tensor
        ``dL/dy`` ``(N, C)``.
    w_dec : Tensor
        Decoder ``(p, C)``.
    idx, vals : Tensor
        ``(N, k)`` kept concepts and codes.
    p : int
        Number of concepts.

    Returns
    -------
    (gw_enc_t, gw_dec, gb_enc) or None
        ``(p, C)`` (the transpose of ``dL/dW_e``), ``(p, C)`` and ``(p,)``; None when numba is
        absent or the tensors are not CPU float32/float64 of one dtype.
    """
    ts = (x, g, w_dec, vals)
    if (
        not available()
        or any(t.device.type != "cpu" or t.dtype != x.dtype for t in ts)
        or x.dtype not in (torch.float32, torch.float64)
        or torch.get_num_threads() > MAX_THREADS
    ):
        return None
    x, g, w_dec, vals, idx = (t.detach().contiguous() for t in (*ts, idx))
    c = x.shape[1]
    gw_enc_t = x.new_zeros(p, c)
    gw_dec = x.new_zeros(p, c)
    gb_enc = x.new_zeros(p)
    _kernels()[1](
        x.numpy(),
        g.numpy(),
        w_dec.numpy(),
        idx.numpy(),
        vals.numpy(),
        gw_enc_t.numpy(),
        gw_dec.numpy(),
        gb_enc.numpy(),
    )
    return gw_enc_t, gw_dec, gb_enc


__all__ = ["LANES", "MAX_THREADS", "applies", "available", "sparse_grads", "topk_rows"]
