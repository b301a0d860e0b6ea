"""LAPACK's banded Cholesky solve ``dpbsv`` called without holding Python's GIL, for solving many systems
at once on several threads.

``scipy.linalg.solveh_banded`` calls LAPACK's ``dpbsv`` through f2py, which keeps the GIL for the
whole call, so Python threads cannot share the solves between cores. This module calls the very same
routine of the very same library (scipy's LAPACK, through the function pointer that
``scipy.linalg.cython_lapack`` exports) with ``ctypes``, which releases the GIL during a foreign call.
Each system is solved by one call with the same inputs as ``solveh_banded``'s, so every solution is
bit-identical to it whatever the number of threads (``tests/test_pde_darcy.py``); the threads only
decide which core runs which system.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_INT = ctypes.c_int
_PTR_INT = ctypes.POINTER(_INT)
_PTR_DOUBLE = ctypes.POINTER(ctypes.c_double)


@functools.lru_cache(maxsize=1)
def _dpbsv() -> Callable[..., None] | None:
    """``dpbsv`` of scipy's LAPACK as a ctypes function (GIL released while it runs), or None."""
    try:
        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__["dpbsv"]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype = ctypes.c_char_p
        get_name.argtypes = [ctypes.py_object]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype = ctypes.c_void_p
        get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        address = get_pointer(capsule, get_name(capsule))
    except (ImportError, KeyError, AttributeError, ValueError):  # pragma: no cover - unusual scipy builds
        return None
    if not address:  # pragma: no cover
        return None
    proto = ctypes.CFUNCTYPE(
        None,
        ctypes.c_char_p,
        _PTR_INT,
        _PTR_INT,
        _PTR_INT,
        _PTR_DOUBLE,
        _PTR_INT,
        _PTR_DOUBLE,
        _PTR_INT,
        _PTR_INT,
    )
    return proto(address)


def available() -> bool:
    """Whether the GIL-free ``dpbsv`` could be found (else :func:`solve_banded_many` uses scipy serially)."""
    return _dpbsv() is not None


def _solve_one(ab: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """One upper banded SPD system ``(kd + 1, n)`` by ``dpbsv``, as ``solveh_banded(ab, rhs)``."""
    from numpy.linalg import LinAlgError

    fn = _dpbsv()
    assert fn is not None
    kd1, n = ab.shape
    a = np.array(ab, dtype=np.float64, order="F")  # overwritten by the factor
    x = np.array(rhs, dtype=np.float64, order="F")  # overwritten by the solution
    n_, kd_, nrhs, ldab, ldb, info = _INT(n), _INT(kd1 - 1), _INT(1), _INT(kd1), _INT(max(1, n)), _INT(0)
    fn(
        b"U",
        ctypes.byref(n_),
        ctypes.byref(kd_),
        ctypes.byref(nrhs),
        a.ctypes.data_as(_PTR_DOUBLE),
        ctypes.byref(ldab),
        x.ctypes.data_as(_PTR_DOUBLE),
        ctypes.byref(ldb),
        ctypes.byref(info),
    )
    if info.value > 0:
        raise LinAlgError(f"{info.value}th leading minor not positive definite")
    if info.value < 0:  # pragma: no cover - the arguments are built here
        raise ValueError(f"illegal value in {-info.value}th argument of internal pbsv")
    return x


def default_threads() -> int:
    """Threads for :func:`solve_banded_many`: the CPU cores this process may run on (at most 4)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def solve_banded_many(
    systems: Sequence[tuple[np.ndarray, np.ndarray]], threads: int | None = None
) -> list[np.ndarray]:
    """Solve upper banded SPD systems ``(ab, rhs)`` (``solveh_banded``'s storage), in order.

    Parameters
    ----------
    systems : sequence of (numpy.ndarray, numpy.ndarray)
        Each ``ab`` ``(kd + 1, n)`` in LAPACK's upper banded storage and its right-hand side ``(n,)``.
    threads : int, optional
        Threads sharing the systems (default :func:`default_threads`); 1 solves them in the calling
        thread. The solutions are the same, bit for bit, for any count.

    Returns
    -------
    list of numpy.ndarray
        The solutions, bit-identical to ``scipy.linalg.solveh_banded(ab, rhs, check_finite=False)``.
    """
    threads = default_threads() if threads is None else max(1, int(threads))
    if not available():  # pragma: no cover - unusual scipy builds
        from scipy.linalg import solveh_banded

        return [solveh_banded(ab, rhs, check_finite=False) for ab, rhs in systems]
    if threads == 1 or len(systems) < 2:
        return [_solve_one(ab, rhs) for ab, rhs in systems]
    with ThreadPoolExecutor(min(threads, len(systems)), thread_name_prefix="saeno-solve") as pool:
        return list(pool.map(lambda s: _solve_one(*s), systems))
