"""Keep freed memory in the process for reuse instead of returning it to the system (glibc's malloc).

PyTorch's CPU tensors come from ``malloc``. glibc serves a block of more than its mmap threshold
(128 KiB at first, raised dynamically up to 32 MiB) by a fresh ``mmap`` and unmaps it when freed; a
block below it comes from the heap, whose free top is trimmed back to the system beyond the trim
threshold (128 KiB). A training step of the zoo FNO allocates and frees dozens of 1-4 MiB tensors,
so each step got fresh pages from the kernel, which faults them in one at a time and zero-fills
them: about 6,000 page faults and 16-20 ms of system time per half-batch step (of about 150 ms),
and 21 s of the demo's 168 s of CPU time were system time.

:func:`keep_freed_memory` raises both thresholds once (``mallopt``): blocks up to 32 MiB then come
from the heap, and freed ones stay there for the next allocation. Nothing computed changes (where a
tensor lives has no effect on its values); the process's resident memory stays at its peak instead
of shrinking after it. Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

logger = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc's ``malloc.h``)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc's largest mmap threshold on 64-bit systems)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at the top of the heap kept for reuse
TRIM_THRESHOLD = 1024 * 1024 * 1024

_state = {"done": False}


def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed blocks of up to 32 MiB instead of unmapping them (process-wide).

    Returns
    -------
    bool
        Whether the setting is in effect (False where the C library is not glibc). Calling it again
        changes nothing.
    """
    if _state["done"]:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - a glibc without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:  # pragma: no cover - glibc refuses only out-of-range values
        logger.info("mallopt refused the thresholds; freed memory is returned to the system as before")
        return False
    _state["done"] = True
    return True


__all__ = ["keep_freed_memory"]
