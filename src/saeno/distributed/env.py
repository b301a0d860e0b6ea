"""The process group from torchrun's environment: init, teardown, rank and world helpers.

``torchrun`` (``torch.distributed.run``) starts one process per rank and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`process_group` reads them
and initialises ``torch.distributed`` with the ``env://`` method: NCCL when CUDA is available (each
process then uses ``cuda:LOCAL_RANK``), gloo otherwise. Without torchrun (no ``WORLD_SIZE`` or a world
of one) every helper answers as a single process, so the distributed entry points also run alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from saeno.errors import SaenoError

BACKENDS = ("gloo", "nccl")


class DistributedError(SaenoError):
    """A distributed run that cannot start or cannot go on (bad environment, a failed rank)."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this machine.
    backend : str or None
        ``"gloo"`` or ``"nccl"``; None when no process group is in use (a single process).
    device : torch.device
        Device for this rank's work and for collectives (``cuda:LOCAL_RANK`` with NCCL).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the rank that writes shared files and prints)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(
            f"environment variable {name}={value!r} is not an integer: launch with torchrun, which sets it"
        ) from None


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def default_backend() -> str:
    """``"nccl"`` when CUDA is available (and NCCL built in), else ``"gloo"``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def current() -> DistInfo:
    """This process's :class:`DistInfo` (a single process when no group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        backend = str(dist.get_backend())
        local = _env_int("LOCAL_RANK", 0)
        device = torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend, device)
    return DistInfo(0, 1, 0, None, torch.device("cpu"))


def init(backend: str | None = None, timeout_s: float | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment variables.

    Parameters
    ----------
    backend
        ``"gloo"`` or ``"nccl"`` (default :func:`default_backend`). NCCL needs one CUDA device per
        local rank.
    timeout_s
        Collective timeout in seconds (default torch's).

    Returns
    -------
    DistInfo
        This process's place in the run; a single process when ``WORLD_SIZE`` is unset or 1 (no
        group is created then). An already initialised group is reused as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return current()
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed: install a build with it")
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise DistributedError(f"backend {backend!r} is not supported: use one of {BACKENDS}")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world} but {missing} are not set: launch with "
            "torchrun --nproc-per-node N -m saeno ..."
        )
    local = _env_int("LOCAL_RANK", 0)
    kwargs = {} if timeout_s is None else {"timeout": timedelta(seconds=timeout_s)}
    if backend == "nccl":
        if not torch.cuda.is_available() or local >= torch.cuda.device_count():
            raise DistributedError(
                f"NCCL needs a CUDA device for local rank {local}; this machine "
                f"has {torch.cuda.device_count()}: use --nproc-per-node "
                "<= the GPU count, or the gloo backend"
            )
        torch.cuda.set_device(local)
        kwargs["device_id"] = torch.device("cuda", local)
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return current()


def teardown() -> None:
    """Destroy the default process group (nothing when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(backend: str | None = None, timeout_s: float | None = None) -> Iterator[DistInfo]:
    """``with process_group() as info:`` :func:`init` on entry, :func:`teardown` on exit when this
    call created the group (a group that already existed is left alone)."""
    created = not (dist.is_available() and dist.is_initialized())
    info = init(backend, timeout_s)
    try:
        yield info
    finally:
        if created:
            teardown()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (nothing for a single process)."""
    if info.world_size > 1:
        if info.backend == "nccl":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_ok(info: DistInfo, ok: bool) -> list[int]:
    """Tell every rank whether this one succeeded; returns the ranks that failed (all ranks agree).

    Every rank must call it at the same point, failed or not: a rank that raises without calling it
    would leave the others waiting.
    """
    if info.world_size == 1:
        return [] if ok else [0]
    flags = torch.zeros(info.world_size, dtype=torch.int32, device=info.device)
    flags[info.rank] = 0 if ok else 1
    dist.all_reduce(flags, op=dist.ReduceOp.SUM)
    return [int(r) for r in torch.nonzero(flags.cpu()).flatten()]


def split_evenly(n: int, parts: int, index: int) -> tuple[int, int]:
    """Items ``[lo, hi)`` of part ``index`` when ``n`` items are cut into ``parts`` contiguous parts
    whose sizes differ by at most one (the first ``n % parts`` parts get one more)."""
    if parts < 1 or not 0 <= index < parts:
        raise ValueError(f"part {index} of {parts} does not exist")
    q, r = divmod(n, parts)
    lo = index * q + min(index, r)
    return lo, lo + q + (1 if index < r else 0)
