"""Checks the training loop runs: arguments, resume compatibility and a finite loss.

- :func:`check_train_args`: sizes, rates and intervals before anything is built or read.
- :func:`check_resume`: a checkpoint continues only the run it was written by: the same SAE, the
  same activations (store fingerprint and hook) and the same optimisation settings (batch size,
  learning rate, seed, AuxK, dead window, schedule). A difference is named, not silently adopted.
- :class:`FiniteLossGuard`: records, on the device and without a host synchronisation per step, the
  first step whose loss is NaN or infinite; :meth:`~FiniteLossGuard.check` (called where the loop
  synchronises anyway: logging, checkpoints, the end) stops training there, naming the step, the
  batch and its store rows, so that no SAE trained through a non-finite loss is ever saved.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno.errors import SaenoError

#: signature keys a resume must match, with the argument (and CLI flag) that sets them
RESUME_KEYS = {
    "batch_size": "batch_size (--batch-size)",
    "lr": "lr (--lr)",
    "seed": "seed (--seed)",
    "aux_k": "aux_k (--aux-k)",
    "aux_coef": "aux_coef",
    "dead_window": "dead_window (--dead-window)",
    "lr_warmup_steps": "lr_warmup_steps",
    "lr_decay_frac": "lr_decay_frac",
    "resample_every": "resample_every",
    "grids": "the training grids (the stores given, one --store per grid)",
}


class ResumeMismatchError(SaenoError):
    """A checkpoint written by another run (other SAE, activations or settings)."""


class NonFiniteLossError(SaenoError, FloatingPointError):
    """The training loss became NaN or infinite."""


def _positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SaenoError(f"{name} must be a positive integer, got {value!r}")


def check_train_args(
    *,
    lr: float | None,
    batch_size: int | None,
    dead_window: int,
    checkpoint_every: int | None,
    log_every: int,
    keep_checkpoints: int,
    aux_k: int | None,
) -> None:
    """Refuse arguments that cannot train (zero or negative sizes, a non-finite learning rate)."""
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SaenoError(f"lr (--lr) must be a positive finite number, got {lr!r}")
    _positive_int("batch_size (--batch-size)", batch_size)
    _positive_int("dead_window (--dead-window)", dead_window, allow_none=False)
    _positive_int("checkpoint_every (--checkpoint-every)", checkpoint_every)
    _positive_int("log_every", log_every, allow_none=False)
    if not isinstance(keep_checkpoints, int) or keep_checkpoints < 0:
        raise SaenoError(f"keep_checkpoints must be 0 (keep all) or positive, got {keep_checkpoints!r}")
    if aux_k is not None and (not isinstance(aux_k, int) or aux_k < 0):
        raise SaenoError(f"aux_k (--aux-k) must be 0 (off) or positive, got {aux_k!r}")


def check_resume(
    checkpoint: Path,
    saved: dict[str, Any],
    signature: dict[str, Any],
    *,
    fingerprint: str | None,
    hook: str | None,
) -> None:
    """Raise :class:`ResumeMismatchError` naming every difference between the checkpoint's run and
    this call.

    Parameters
    ----------
    checkpoint
        The checkpoint folder (its ``cfg.json`` holds the SAE's hook and model fingerprint).
    saved
        The signature stored in the checkpoint's trainer state.
    signature
        This call's signature (``{"sae": config, batch_size, lr, ...}``).
    fingerprint, hook
        The model fingerprint of the activations and the hook this call trains on.
    """
    import json

    problems = []
    if saved.get("sae") != signature.get("sae"):
        problems.append(
            f"the SAE: {saved.get('sae')} in the checkpoint, {signature.get('sae')} now "
            "(build the same SAE: --arch, --concepts, --k, ...)"
        )
    for key, label in RESUME_KEYS.items():
        if saved.get(key) != signature.get(key):
            problems.append(f"{label}: {saved.get(key)!r} in the checkpoint, {signature.get(key)!r} now")
    try:
        cfg = json.loads((Path(checkpoint) / "cfg.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    old_fp, old_hook = cfg.get("model_fingerprint"), cfg.get("hook")
    if fingerprint is not None and old_fp is not None and old_fp != fingerprint:
        problems.append(
            f"the activations: model fingerprint {str(old_fp)[:16]} in the checkpoint, "
            f"{str(fingerprint)[:16]} for this store (another model's store: --store)"
        )
    if hook is not None and old_hook is not None and old_hook != hook:
        problems.append(f"the hook: {old_hook!r} in the checkpoint, {hook!r} now (--hook)")
    if problems:
        raise ResumeMismatchError(
            f"cannot resume from {checkpoint}: it was written by another run; "
            + "; ".join(problems)
            + ". Resume with the original settings, or train into a new folder (another --out)"
        )


class FiniteLossGuard:
    """The first step with a non-finite loss, tracked on the device (see the module docstring)."""

    def __init__(self, device: torch.device | str) -> None:
        self._first = torch.full((), -1, dtype=torch.long, device=device)
        self._count = torch.zeros((), dtype=torch.long, device=device)
        self._base: int | None = None
        self._epochs: dict[int, int] = {}  # epoch -> step at its first batch

    def update(self, loss: Tensor, step: int, epoch: int, batch_in_epoch: int) -> None:
        """Record one step's loss (``step``: steps done before this one)."""
        if self._base is None:
            self._base = step
        if epoch not in self._epochs:
            self._epochs[epoch] = step - batch_in_epoch
        bad = ~torch.isfinite(loss.detach())
        self._first = torch.where(bad & (self._first < 0), self._count, self._first)
        self._count += 1

    def check(self, source: Any = None) -> None:
        """Raise :class:`NonFiniteLossError` if any recorded loss was not finite (host sync)."""
        first = int(self._first)
        if first < 0:
            return
        step = (self._base or 0) + first  # steps done before the bad one
        epoch = max((e for e, s in self._epochs.items() if s <= step), default=0)
        batch = step - self._epochs.get(epoch, 0)
        rows = batch_rows(source, epoch, batch) if source is not None else None
        where = f" (store rows {_rows_text(rows)})" if rows is not None else ""
        raise NonFiniteLossError(
            f"training stopped: the loss is not finite at step {step + 1} (epoch {epoch}, batch "
            f"{batch} of the epoch{where}); no SAE or checkpoint was saved from that step on. The "
            "activations may hold NaN or infinite values (a store captured with --allow-nonfinite: "
            "check `saeno store info`), or the learning rate is too high (--lr)"
        )


def _rows_text(rows: np.ndarray) -> str:
    rows = np.unique(rows)
    text = ", ".join(str(r) for r in rows[:8].tolist())
    return text + (f", ... ({rows.size} rows)" if rows.size > 8 else "")


def batch_rows(source: Any, epoch: int, batch: int) -> np.ndarray | None:
    """Store rows of batch ``batch`` of epoch ``epoch`` of a store source (None otherwise)."""
    store = getattr(source, "store", None)
    if store is None or not hasattr(store, "loader"):
        return None
    try:
        loader = store.loader(
            source.hook,
            view=source.view,
            batch_size=source.batch_size,
            shuffle_buffer=source.shuffle_buffer,
            normalize=False,
            seed=source.seed + epoch,
            return_index=True,
        )
        item = next(itertools.islice(iter(loader), batch, None), None)
    except SaenoError:
        return None
    return None if item is None else np.asarray(item[1])
