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

import math
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
        for j in range(m):
            val = buf_v[j]
            if j >= k and not val > out_v[r, k - 1]:
                continue
            i = min(j, k - 1)  # the first k fill the list; later ones replace its last entry
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


def _select_kth(a: Any, m: int, k: int) -> Any:
    """The ``k``-th smallest (0-based) of ``a[:m]``, reordering ``a[:m]`` in place.

    Quickselect with a median-of-three pivot and a branch-free three-way split (below the pivot,
    equal to it, above it), so runs of equal values end the search at once.
    """
    lo, hi = 0, m - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        x0, x1, x2 = a[lo], a[mid], a[hi]
        if x0 > x1:
            x0, x1 = x1, x0
        if x1 > x2:
            x1, x2 = x2, x1
        if x0 > x1:
            x0, x1 = x1, x0
        piv = x1
        s = lo
        for i in range(lo, hi + 1):
            v = a[i]
            a[i] = a[s]
            a[s] = v
            s += v < piv
        e = s
        for i in range(s, hi + 1):
            v = a[i]
            a[i] = a[e]
            a[e] = v
            e += v == piv
        if k < s:
            hi = s - 1
        elif k >= e:
            lo = e
        else:
            return piv
    return a[k]


#: the selection :func:`_pooled_mask` calls (its compiled version once numba has compiled it)
_select_kth_jit = _select_kth

#: every ``SAMPLE_STRIDE``-th entry of a row estimates where its ``n``-th largest value lies
SAMPLE_STRIDE = 32


def _pooled_mask(x: Any, n: int, relu: bool, mask: Any, vals: Any, buf: Any, samp: Any) -> bool:
    """Mask of the ``n`` largest entries of each row of ``x`` (see :func:`pooled_mask`).

    ``relu``: negative entries are allowed (never kept) and ``vals`` receives the kept values
    (zero elsewhere); otherwise a negative entry returns False and ``vals`` is not written.
    """
    rows, length = x.shape
    stride = SAMPLE_STRIDE
    zero = x[0, 0] * 0
    rank = n / stride  # expected rank, from the top, of the n-th largest value in the sample
    spread = 4.0 * math.sqrt(rank) + 4.0
    r_hi = int(rank - spread)
    r_lo = int(rank + spread) + 1
    for r in range(rows):
        # a bracket [t_lo, t_hi] that probably holds the n-th largest value, from a strided sample
        ns = 0
        for j in range(0, length, stride):
            v = x[r, j]
            samp[ns] = v
            ns += v > 0
        t_lo = zero
        t_hi = zero + np.inf
        if 1 <= r_hi <= ns:
            t_hi = _select_kth_jit(samp, ns, ns - r_hi)
        if r_lo <= ns:
            t_lo = _select_kth_jit(samp, ns, ns - r_lo)
        above = 0
        inside = 0
        pos = 0
        bad = 0
        for c in range(length):
            a = x[r, c]
            above += a > t_hi
            inside += (a >= t_lo) & (a <= t_hi) & (a > 0)
            pos += a > 0
            bad += (a != a) | ((a < 0) & (not relu))  # NaN, or negative without relu
        if bad:
            return False
        if pos <= n:  # every positive entry is kept (zeros are never needed)
            t = zero
            for c in range(length):
                a = x[r, c]
                keep = a > t
                mask[r, c] = keep
                if relu:
                    vals[r, c] = a * keep
            continue
        lo = t_lo
        if not (above < n <= above + inside):  # the sample missed: search every positive entry
            above = 0
            lo = zero
            t_hi = zero + np.inf
        # the candidates, in column order; blocks of 16 holding none are skipped
        nb = 0
        for c0 in range(0, length - 15, 16):
            h = 0
            for j in range(16):
                a = x[r, c0 + j]
                h += (a >= lo) & (a <= t_hi) & (a > 0)
            if h:
                for c in range(c0, c0 + 16):
                    a = x[r, c]
                    buf[nb] = a
                    nb += (a >= lo) & (a <= t_hi) & (a > 0)
        for c in range(length - length % 16, length):
            a = x[r, c]
            buf[nb] = a
            nb += (a >= lo) & (a <= t_hi) & (a > 0)
        t = _select_kth_jit(buf, nb, nb - (n - above))  # the row's n-th largest value
        gt = above
        eq = 0
        for j in range(nb):
            gt += buf[j] > t
            eq += buf[j] == t
        ties = n - gt  # entries equal to t that are kept
        if eq == ties:
            for c in range(length):
                a = x[r, c]
                keep = a >= t
                mask[r, c] = keep
                if relu:
                    vals[r, c] = a * keep
        else:  # more entries equal t than are kept: the lower columns win
            for c in range(length):
                a = x[r, c]
                keep = a > t
                if a == t and ties > 0:
                    keep = True
                    ties -= 1
                mask[r, c] = keep
                if relu:
                    vals[r, c] = a * keep
    return True


_JIT = {"nogil": True, "boundscheck": False, "cache": True}
_KERNELS: Any = None


def _kernels() -> Any:
    global _KERNELS
    if _KERNELS is None:
        nb = _numba_module()
        global _select_kth_jit
        _select_kth_jit = nb.njit(**_JIT)(_select_kth)  # resolved when _pooled_mask compiles
        _KERNELS = (
            nb.njit(**_JIT)(_topk_rows),
            nb.njit(**_JIT)(_sparse_grads),
            nb.njit(**_JIT)(_pooled_mask),
        )
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


def _pooled_applies(x: Tensor, n: int) -> bool:
    return (
        available()
        and x.device.type == "cpu"
        and x.dim() == 2
        and x.dtype in (torch.float32, torch.float64)
        and not x.requires_grad
        and 1 <= n < x.shape[1]
        and x.numel() > 0
        and torch.get_num_threads() <= MAX_THREADS
    )


def _run_pooled(x: Tensor, n: int, relu: bool) -> tuple[Tensor, Tensor] | None:
    if not _pooled_applies(x, n):
        return None
    x = x.contiguous()
    xn = x.numpy()
    mask = torch.empty_like(x)
    vals = torch.empty_like(x) if relu else x.new_empty((1, 1))
    buf = np.empty(x.shape[1], xn.dtype)
    samp = np.empty(x.shape[1] // SAMPLE_STRIDE + 1, xn.dtype)
    if not _kernels()[2](xn, int(n), relu, mask.numpy(), vals.numpy(), buf, samp):
        return None
    return mask, vals


def pooled_mask(x: Tensor, n: int) -> Tensor | None:
    """0/1 mask (``x``'s dtype) of the ``n`` largest entries of each row of ``x``, or None to fall back.

    The kept set is exactly the ``n`` largest entries of the row, as ``torch.topk`` keeps them, except
    that zeros are never kept: a row with at most ``n`` positive entries keeps exactly those. For
    non-negative codes whose zeros carry no gradient (ReLU) the masked codes and their gradients are
    the same. Among entries equal to the ``n``-th largest value the lower columns win
    (``torch.topk`` leaves that choice open).

    How: every ``SAMPLE_STRIDE``-th entry of the row gives a bracket that probably holds the
    ``n``-th largest value (the sample's order statistics four standard deviations either side of
    the expected rank). One pass counts the entries above and inside the bracket; when the bracket
    does hold the ``n``-th value, only the entries inside it (a few percent of the row) are copied
    and searched by quickselect, otherwise all positive entries are. One more pass writes the mask.

    Parameters
    ----------
    x : Tensor
        ``(R, L)`` float32 or float64 CPU tensor, non-negative (detached).
    n : int
        Entries kept per row, ``1 <= n < L``.

    Returns
    -------
    Tensor or None
        ``(R, L)`` mask; None when numba is absent or disabled, the tensor is not a CPU float
        tensor, more than :data:`MAX_THREADS` threads run, or a row holds a negative value or a NaN.
    """
    out = _run_pooled(x, n, relu=False)
    return None if out is None else out[0]


def relu_pooled(x: Tensor, n: int) -> tuple[Tensor, Tensor] | None:
    """``(relu(x) * mask, mask)`` with ``mask = pooled_mask(relu(x), n)``, in one pass, or None.

    As :func:`pooled_mask` of ``relu(x)`` (negative entries are never kept), without forming
    ``relu(x)``; None in the same cases, except that negative entries are allowed.
    """
    out = _run_pooled(x, n, relu=True)
    return None if out is None else (out[1], out[0])


__all__ = [
    "LANES",
    "MAX_THREADS",
    "applies",
    "available",
    "pooled_mask",
    "relu_pooled",
    "sparse_grads",
    "topk_rows",
]
