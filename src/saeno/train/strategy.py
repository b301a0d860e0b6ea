"""How :func:`saeno.train_sae` runs: in one process, or data-parallel (see ``saeno.distributed``).

A strategy answers the few questions where one process and a process group differ; the training
loop itself is the same. :class:`SingleProcess` is the no-op strategy;
:class:`saeno.distributed.train.DataParallel` implements the same methods over torch.distributed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from saeno.errors import SaenoError
from saeno.train.checkpoint import latest_checkpoint
from saeno.train.data import make_source


class SingleProcess:
    """Train in this process: every method is the identity or a direct answer."""

    world_size = 1
    rank = 0
    is_main = True
    label = "train_sae"

    def device(self, requested: str | torch.device | None, model: nn.Module) -> torch.device:
        """The training device: ``requested``, else the model's."""
        if requested is not None:
            return torch.device(requested)
        return next(model.parameters()).device

    def source(
        self,
        data: Any,
        *,
        view: str,
        batch_size: int,
        seed: int,
        hook: str | None,
        shuffle_buffer: int | None,
    ) -> Any:
        """The batch source of ``data`` (:func:`saeno.train.data.make_source`)."""
        return make_source(
            data, view=view, batch_size=batch_size, seed=seed, hook=hook, shuffle_buffer=shuffle_buffer
        )

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module whose forward computes the loss (here: ``module`` itself)."""
        return module

    def any_rank(self, mask: Tensor) -> Tensor:
        """``mask`` true where any rank's is (one rank: ``mask``)."""
        return mask

    def mean_over_ranks(self, sums: Tensor) -> Tensor:
        """``sums`` averaged over the ranks (in place; one rank: unchanged)."""
        return sums

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Make every rank's parameters rank 0's (one rank: nothing to do)."""

    def barrier(self) -> None:
        """Wait for every rank (one rank: return)."""

    def resume_point(self, checkpoint_dir: Path | None, resume: bool | str | Path) -> Path | None:
        """The checkpoint to resume from (None: a fresh run)."""
        if not resume:
            return None
        if resume is not True:
            return Path(resume)
        if checkpoint_dir is None:
            raise SaenoError("resume=True needs checkpoint_dir (CLI: --out DIR --resume)")
        return latest_checkpoint(checkpoint_dir)

    def check_resume(self, checkpoint: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
        """Refuse a checkpoint this strategy cannot continue (one process: any)."""

    def record(self) -> dict[str, Any]:
        """What the run record stores about the strategy."""
        return {"world_size": 1}
