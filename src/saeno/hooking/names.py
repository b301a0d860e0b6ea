"""Resolve a names filter (name, glob, list, callable) against a model's hook names."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Union

from saeno.errors import HookNameError

NamesFilter = Union[None, str, Iterable[str], Callable[[str], bool]]

_GLOB_CHARS = set("*?[")


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a dotted-name glob: ``*`` and ``?`` stay within one dotted segment, ``**`` crosses dots.

    ``[...]`` is a character class as in ``fnmatch`` (``[!...]`` negates it).
    """
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^.]*")
        elif ch == "?":
            out.append("[^.]")
        elif ch == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _one(pattern: str, names: Sequence[str]) -> list[str]:
    if pattern in names:
        return [pattern]
    if _GLOB_CHARS & set(pattern):
        regex = glob_regex(pattern)
        found = [n for n in names if regex.match(n)]
        if not found:
            raise HookNameError(
                f"hook pattern {pattern!r} matches no hook point. Valid names: {_listing(names)} "
                "(list them all with `saeno hooks --model ...` or `hooked.hook_names`)."
            )
        return found
    near = difflib.get_close_matches(pattern, names, n=5, cutoff=0.5)
    hint = f"Did you mean {', '.join(repr(n) for n in near)}?" if near else f"Valid names: {_listing(names)}."
    raise HookNameError(f"unknown hook name {pattern!r}. {hint}")


def resolve_names(names_filter: NamesFilter, names: Sequence[str]) -> list[str]:
    """Hook names selected by a filter, in the model's order.

    Parameters
    ----------
    names_filter : None, str, iterable of str, or callable
        ``None`` selects every name; a string is an exact name or a glob over dotted names; an
        iterable selects the union of its names and globs; a callable ``f(name) -> bool`` selects where
        true. In a glob ``*`` and ``?`` stay within one dotted segment and ``**`` crosses dots:
        ``"blocks.*.hook_out"`` selects the block outputs only, ``"blocks.**"`` every point under
        ``blocks`` (spectral, skip, mlp and block outputs), ``"**.hook_out"`` every ``hook_out``.
    names : sequence of str
        Every hook name of the model, in order.

    Returns
    -------
    list of str
        The selected names, without duplicates, in the order of ``names``.

    Raises
    ------
    HookNameError
        An unknown exact name (with the nearest valid names), or a filter that selects nothing.
    """
    if names_filter is None:
        return list(names)
    if isinstance(names_filter, str):
        chosen = set(_one(names_filter, names))
    elif callable(names_filter):
        chosen = {n for n in names if names_filter(n)}
        if not chosen:
            raise HookNameError(
                f"the names filter {names_filter!r} selects no hook point of {_listing(names)}."
            )
    elif isinstance(names_filter, Iterable):
        items = list(names_filter)
        if not items:
            raise HookNameError(
                "an empty list of hook names selects nothing; pass None to select every hook."
            )
        chosen = set()
        for item in items:
            if not isinstance(item, str):
                raise HookNameError(f"hook names must be strings, got {item!r} in the names filter.")
            chosen.update(_one(item, names))
    else:
        raise HookNameError(
            f"a names filter must be None, a name or glob, a list of them, or a callable; got {names_filter!r}."
        )
    return [n for n in names if n in chosen]
