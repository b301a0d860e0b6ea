"""The ``capture`` and ``train`` verbs under torchrun (``WORLD_SIZE`` > 1).

``saeno.cli.capture_cmd`` and ``saeno.cli.train_cmd`` call these when
:func:`saeno.distributed.env.launched_by_torchrun` is true; they initialise the process group, run
the distributed function, print on rank 0 only and tear the group down.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from saeno.distributed import env
from saeno.distributed.env import DistInfo


def rank_device(requested: str | None, info: DistInfo) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` with NCCL, else ``requested`` (default CPU).

    A requested ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process).
    """
    if info.backend == "nccl":
        return info.device
    if requested is None:
        return torch.device("cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", info.local_rank)
    return dev


def capture_from_args(args: argparse.Namespace, model: torch.nn.Module, data: Any) -> int:
    """``torchrun ... -m saeno capture``: :func:`capture_distributed` with the parsed arguments."""
    from saeno.distributed.capture import capture_distributed
    from saeno.hooking import HookedOperator
    from saeno.store.activation_store import format_bytes

    with env.process_group() as info:
        device = rank_device(args.device, info)
        store = capture_distributed(
            HookedOperator(model.to(device)),
            data,
            args.hooks,
            args.out,
            batch_size=args.batch_size,
            dtype=args.dtype,
            n_rows=args.max_samples,
            resume=args.resume,
            overwrite=args.overwrite,
            allow_nonfinite=args.allow_nonfinite,
            device=device,
            chunk_size=args.chunk_size,
            progress=not args.no_progress,
            info=info,
        )
        if info.is_main:
            print(
                f"captured {store.n_rows} samples of {len(store.hooks)} hooks to {store.url} "
                f"with {info.world_size} processes ({format_bytes(store.nbytes_stored())} stored)"
            )
    return 0


def train_from_args(args: argparse.Namespace, sae: Any, store: Any, hook: str, out: Path) -> int:
    """``torchrun ... -m saeno train``: :func:`train_distributed`; rank 0 saves the SAE to ``out``."""
    from saeno.distributed.train import train_distributed
    from saeno.train.checkpoint import save_sae
    from saeno.train.config import config_from_args
    from saeno.train.trainer import ConvergenceWarning, summary_lines

    with env.process_group() as info:
        device = rank_device(args.device, info)
        config = config_from_args(args, out, hook=hook, device=str(device))
        with warnings.catch_warnings():  # the summary prints them
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = train_distributed(sae, store, config, info=info)
        if info.is_main:
            save_sae(
                res.sae,
                out,
                metadata={
                    "store": str(args.store),
                    "steps": res.steps,
                    "samples": res.samples,
                    "world_size": info.world_size,
                    "train_config": config.record(),
                },
            )
            for line in summary_lines(res, sae, hook, info.world_size):
                print(line)
            print(f"saved: {out}", file=sys.stdout)
        env.barrier(info)
    return 0
