"""Worker of the distributed tests and benchmark, launched by torchrun (one process per rank).

``torchrun --nproc-per-node 2 tests/distributed_worker.py capture STORE [--resume] [--crash-row R]``
captures the tiny FNO of :func:`tiny_fno` over :func:`inputs`; ``... train STORE OUT [--resume]
[--crash-step S]`` trains :func:`tiny_sae` with DDP and rank 0 saves it to OUT/final. The crash
options make rank 1 kill itself (SIGKILL, as a node failure would) at that data row or step.
:func:`launch` runs the same functions on forked gloo ranks from inside a test (no interpreter
start-up per rank).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

N, BATCH, CHUNK = 37, 5, 4
HOOKS = ["lifting.hook_out", "blocks.1.hook_out"]
TRAIN = {
    "steps": 12,
    "batch_size": 64,
    "lr": 3e-3,
    "aux_k": 8,
    "dead_window": 2,
    "log_every": 3,
    "checkpoint_every": 4,
    "seed": 3,
}


def tiny_fno() -> torch.nn.Module:
    """FNO with hidden width 8 on a 16x16 grid (fixed weights)."""
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2).eval()


def inputs(n: int = N, res: int = 16) -> torch.Tensor:
    """Fixed random inputs ``(n, 1, res, res)``."""
    return torch.randn(n, 1, res, res, generator=torch.Generator().manual_seed(1))


def tiny_sae() -> torch.nn.Module:
    """Pointwise TopK SAE (64 concepts, k=2) for the 8 hidden channels (fixed initial weights)."""
    from saeno.sae import SAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        return SAE(8, 64, ndim=2, sparsity={"type": "topk", "k": 2})


class Inputs(Dataset):
    """:func:`inputs` as a Dataset; rank ``crash_rank`` kills itself when asked for row ``crash_row``."""

    def __init__(self, crash_row: int | None = None, crash_rank: int = 1) -> None:
        self.x = inputs()
        self.crash_row, self.crash_rank = crash_row, crash_rank

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == self.crash_row and int(os.environ.get("RANK", 0)) == self.crash_rank:
            time.sleep(1.0)  # let the writer thread commit what it holds, then die hard
            os.kill(os.getpid(), signal.SIGKILL)
        return self.x[i]


def run_capture(store: str, resume: bool = False, crash_row: int | None = None) -> None:
    """Capture :data:`HOOKS` of :func:`tiny_fno` over :class:`Inputs` with every rank."""
    from saeno.distributed import capture_distributed, process_group
    from saeno.hooking import HookedOperator

    with process_group():
        capture_distributed(
            HookedOperator(tiny_fno()),
            Inputs(crash_row),
            HOOKS,
            store,
            batch_size=BATCH,
            chunk_size=CHUNK,
            resume=resume,
            progress=False,
        )


def run_train(store: str, out: str, resume: bool = False, crash_step: int | None = None) -> None:
    """Train :func:`tiny_sae` on ``blocks.1.hook_out`` with DDP; rank 0 saves it to ``out/final``."""
    import saeno.distributed.train as dtrain
    from saeno.distributed import process_group, train_distributed
    from saeno.store import ActivationStore
    from saeno.train.checkpoint import save_sae

    with process_group() as info:
        if crash_step is not None and info.rank == 1:

            class Crashing(dtrain.ShardedBatches):
                def epoch(self, epoch: int, skip: int = 0):
                    for i, b in enumerate(super().epoch(epoch, skip), start=skip):
                        if i == crash_step:
                            time.sleep(1.0)  # rank 0 reaches the next all-reduce and waits there
                            os.kill(os.getpid(), signal.SIGKILL)
                        yield b

            dtrain.ShardedBatches = Crashing
        res = train_distributed(
            tiny_sae(),
            ActivationStore.open(store),
            hook=HOOKS[1],
            checkpoint_dir=os.path.join(out, "checkpoints"),
            log_csv=os.path.join(out, "log.csv"),
            resume=resume,
            progress=False,
            info=info,
            **TRAIN,
        )
        if info.is_main:
            save_sae(res.sae, os.path.join(out, "final"))


# ------------------------------------------------------------------ launching from a test
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, errors: str, fn, args) -> None:
    """One forked rank: torchrun's environment, one intra-op thread, errors written to a file."""
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    try:
        fn(*args)
    except BaseException as exc:
        Path(errors, f"rank{rank}.txt").write_text(f"{type(exc).__name__}: {exc}\n" + traceback.format_exc())
        raise


def launch(tmp: Path, fn, *args, world: int = 2) -> dict[int, str]:
    """Run ``fn(*args)`` on ``world`` forked gloo ranks (torchrun's variables, a free port).

    Returns ``{rank: what went wrong}``: the error a rank raised, or ``"killed: SIGKILL"`` for the
    first rank that died by a signal (torch.multiprocessing then terminates the others). Empty when
    every rank succeeded.
    """
    errors = tmp / f"errors-{free_port()}"
    errors.mkdir()
    failed: dict[int, str] = {}
    try:
        mp.start_processes(
            _entry, args=(world, free_port(), str(errors), fn, args), nprocs=world, start_method="fork"
        )
    except mp.ProcessExitedException as exc:
        if exc.signal_name:
            failed[exc.error_index] = f"killed: {exc.signal_name}"
    except mp.ProcessRaisedException:
        pass  # the raising ranks wrote their errors
    failed.update({int(p.stem[4:]): p.read_text() for p in errors.glob("rank*.txt")})
    return failed


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("verb", choices=["capture", "train"])
    p.add_argument("store")
    p.add_argument("out", nargs="?")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--crash-row", type=int, default=None)
    p.add_argument("--crash-step", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.verb == "capture":
        run_capture(args.store, args.resume, args.crash_row)
    else:
        run_train(args.store, args.out, args.resume, args.crash_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
