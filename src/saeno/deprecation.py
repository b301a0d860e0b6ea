"""Old argument names that keep working for a while, with a warning that names the new one."""

from __future__ import annotations

import warnings
from typing import Any

from saeno.errors import SaenoError

#: a default that tells "not passed" apart from ``None``
UNSET: Any = object()


def renamed(new_value: Any, old_value: Any, *, new: str, old: str, stacklevel: int = 3) -> Any:
    """The value of an argument renamed from ``old`` to ``new``.

    Parameters
    ----------
    new_value, old_value
        What the caller passed under each name (``old_value`` is :data:`UNSET` when not passed).
    new, old
        The argument's current and former names, for the messages.
    stacklevel
        Passed to :func:`warnings.warn` (3: the caller of the function that calls this).

    Returns
    -------
    The new argument's value: ``old_value`` (with a ``DeprecationWarning``) when only it was passed.

    Raises
    ------
    SaenoError
        Both names were passed with different values.
    """
    if old_value is UNSET:
        return new_value
    warnings.warn(f"{old}= is deprecated: pass {new}= instead", DeprecationWarning, stacklevel=stacklevel)
    if new_value is not None and new_value != old_value:
        raise SaenoError(
            f"{old}= (deprecated) and {new}= were both passed, with different values: pass {new}= only"
        )
    return old_value


__all__ = ["UNSET", "renamed"]
