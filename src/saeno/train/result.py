"""What a training run returns and reports: :class:`TrainResult`, its log rows and summary lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saeno.sae.base import SparseAutoencoder

__all__ = ["TrainResult", "log_row", "summary_lines"]


@dataclass
class TrainResult:
    """What :func:`train_sae` returns.

    Attributes
    ----------
    sae : SparseAutoencoder
        The trained model (``eval()`` mode).
    steps : int
        Optimiser steps done in total (resumed runs count the earlier ones).
    samples : int
        Rows (pointwise view) or fields consumed in total.
    elapsed_s : float
        Wall time of this call's training loop.
    samples_per_s : float
        Rows or fields per second in this call.
    history : list of dict
        The logged rows (also written to the CSV).
    checkpoint : Path or None
        The last checkpoint written.
    warnings : list of str
        Why the run looks unconverged (see :func:`convergence_warnings`); empty when it looks fine.
    """

    sae: SparseAutoencoder
    steps: int
    samples: int
    elapsed_s: float
    samples_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        """The last logged row (empty when nothing was logged)."""
        return self.history[-1] if self.history else {}


def summary_lines(
    res: TrainResult, sae: SparseAutoencoder, hook: str | None, processes: int = 1
) -> list[str]:
    """The end-of-run summary ``saeno train`` prints: steps, samples, the last log interval's metrics
    (with the learning rate) and the convergence warnings."""
    unit = "points" if sae.view == "points" else "fields"
    where = f" with {processes} processes" if processes > 1 else ""
    lines = [
        f"trained {sae.architecture} ({sae.n_concepts} concepts) on {hook}{where}: "
        f"{res.steps} steps, {res.samples} {unit} ({res.samples_per_s:.0f}/s)"
    ]
    final = res.final
    if final:
        parts = [
            f"explained variance {final['ev']:.3f}",
            f"mse {final['mse']:.4g} (normalised, summed over channels)",
            f"L0 {final['l0']:.3g}",
        ]
        if "l0_concepts" in final:
            parts.append(f"concepts per sample {final['l0_concepts']:.3g}")
        parts += [f"dead {100 * final['dead_fraction']:.1f}%", f"lr {final['lr']:.3g}"]
        lines.append("last log interval: " + ", ".join(parts))
    lines += [f"warning: {w}" for w in res.warnings]
    return lines


def log_row(
    step: int,
    samples: int,
    lr: float,
    acc: dict[str, Tensor],
    n: int,
    out: Any,
    since_fired: Tensor,
    dead_window: int,
) -> dict[str, Any]:
    """One log row (this is where the host synchronises with the device)."""
    with torch.no_grad():
        t = out.target
        dims = [d for d in range(t.dim()) if d != 1]
        var = (t - t.mean(dim=dims, keepdim=True)).pow(2).sum()
        ev = 1.0 - float((out.recon - t).pow(2).sum() / var.clamp_min(1e-12))
        codes = out.codes
        l0 = float((codes != 0).sum(1).double().mean())
        row = {"step": step, "samples": samples, "lr": lr}
        row.update({k: float(v) / max(n, 1) for k, v in acc.items()})
        row.update({"ev": ev, "l0": l0, "dead_fraction": float((since_fired >= dead_window).double().mean())})
        if codes.dim() > 2:
            row["l0_concepts"] = float((codes != 0).flatten(2).any(-1).sum(1).double().mean())
    return row
