"""Scale out with torch.distributed: sharded capture into one store, data-parallel SAE training.

Launch with ``torchrun --nproc-per-node N -m saeno capture|train ...`` (see ``docs/distributed.md``).

- :mod:`saeno.distributed.env`: the process group from torchrun's environment (gloo or NCCL).
- :func:`capture_distributed`: every rank captures its own chunk-aligned rows of one store.
- :class:`ShardedBatches`: disjoint per-rank shards whose union per step is the global batch.
- :func:`train_distributed`: DistributedDataParallel training on those shards.
"""

from saeno.distributed.capture import capture_distributed
from saeno.distributed.data import ShardedBatches
from saeno.distributed.env import DistInfo, DistributedError, launched_by_torchrun, process_group
from saeno.distributed.train import train_distributed

__all__ = [
    "capture_distributed",
    "ShardedBatches",
    "train_distributed",
    "DistInfo",
    "DistributedError",
    "launched_by_torchrun",
    "process_group",
]
