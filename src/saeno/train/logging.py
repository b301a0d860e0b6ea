"""Training logs: a CSV file, and TensorBoard or wandb when installed and asked for."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError


class TrainLogger:
    """Write rows of scalars to a CSV file (appending on resume) and optional TensorBoard/wandb.

    Parameters
    ----------
    csv_path : path or None
        CSV file; None for no CSV.
    tensorboard : bool or path
        True (or a log directory) to also log to TensorBoard (needs the ``tensorboard`` package).
    wandb : bool
        True to also log to Weights & Biases (``wandb.init`` with ``config``; needs ``wandb``).
    config : dict
        Run configuration for wandb.
    resume : bool
        Append to an existing CSV instead of overwriting it.
    resume_step : int, optional
        The step a resumed run continues from: rows of later steps (logged by the interrupted run
        after its last checkpoint) are dropped, so the CSV holds each step once, in order.
    """

    def __init__(
        self,
        csv_path: str | Path | None = None,
        *,
        tensorboard: bool | str | Path = False,
        wandb: bool = False,
        config: dict[str, Any] | None = None,
        resume: bool = False,
        resume_step: int | None = None,
    ) -> None:
        self.csv_path = Path(csv_path) if csv_path else None
        if self.csv_path is not None and resume and resume_step is not None:
            truncate_csv(self.csv_path, resume_step)
        self._fields: list[str] | None = None
        self._resume = resume
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise SaenoError(
                    "tensorboard logging was asked for but the tensorboard package "
                    "is not installed: pip install tensorboard"
                ) from None
            logdir = (
                tensorboard
                if not isinstance(tensorboard, bool)
                else (self.csv_path.parent / "tensorboard" if self.csv_path else None)
            )
            self._tb = SummaryWriter(log_dir=None if logdir is None else str(logdir))
        if wandb:
            try:
                import wandb as _wandb
            except ImportError:
                raise SaenoError(
                    "wandb logging was asked for but wandb is not installed: pip install wandb"
                ) from None
            self._wandb = _wandb.init(project="saeno", config=config or {})

    def log(self, row: dict[str, Any]) -> None:
        """Record one row (must contain ``step``)."""
        if self.csv_path is not None:
            if self._fields is None:
                self._fields = list(row)
                exists = self.csv_path.exists() and self.csv_path.stat().st_size > 0
                mode = "a" if (self._resume and exists) else "w"
                self.csv_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.csv_path, mode, newline="") as fh:
                    if mode == "w":
                        csv.DictWriter(fh, self._fields).writeheader()
            with open(self.csv_path, "a", newline="") as fh:
                csv.DictWriter(fh, self._fields, extrasaction="ignore").writerow(row)
        step = int(row["step"])
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=step)

    def close(self) -> None:
        """Flush and close the optional back-ends."""
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_csv(path: Path, last_step: int) -> None:
    """Keep the header and the rows with ``step <= last_step`` (atomic rewrite; no-op if absent)."""
    import os

    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or "step" not in rows[0]:
        return
    col = rows[0].index("step")

    def keep(row: list[str]) -> bool:
        try:
            return int(float(row[col])) <= last_step
        except (IndexError, ValueError):
            return False  # a row torn by a kill

    kept = [rows[0]] + [r for r in rows[1:] if keep(r)]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
