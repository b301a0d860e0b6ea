"""Helpers of the fault-injection suite (tests/test_faults*.py): a small model, injected kills and
disk errors at exact writes, and byte-for-byte store comparison."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from zarr.storage import LocalStore

from saeno.hooking import HookedOperator

HOOKS = ["lifting.hook_out", "blocks.1.hook_out"]
N, BATCH, CHUNK = 10, 3, 4


class InjectedKill(Exception):
    """Raised in place of a write: the files are left exactly as a kill at that point leaves them."""


def small_model() -> HookedOperator:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2).eval()
    return HookedOperator(model)


def inputs(n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


def files(root: Path) -> dict[str, bytes]:
    """Every file of a store (Zarr's temporary ``.partial`` files aside)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".partial")
    }


@contextmanager
def fail_at_write(k: int, exc: BaseException | None = None) -> Iterator[dict]:
    """Make the ``k``-th write of any local Zarr store raise (``InjectedKill`` or ``exc``)."""
    original = LocalStore._set
    count = {"n": 0, "key": None}

    async def _set(self, key, value, *args, **kwargs):
        count["n"] += 1
        if count["n"] == k:
            count["key"] = key
            raise exc if exc is not None else InjectedKill(key)
        return await original(self, key, value, *args, **kwargs)

    LocalStore._set = _set
    try:
        yield count
    finally:
        LocalStore._set = original


def enospc(key: str = "chunk") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", key)


def fail_at_batch(monkeypatch, hooked: HookedOperator, k: int) -> None:
    """Make ``hooked.run_with_cache`` raise ``RuntimeError("the model failed")`` at its ``k``-th call."""
    calls = []
    original = hooked.run_with_cache

    def failing(xb, **kw):
        calls.append(len(xb))
        if len(calls) == k:
            raise RuntimeError("the model failed")
        return original(xb, **kw)

    monkeypatch.setattr(hooked, "run_with_cache", failing)
