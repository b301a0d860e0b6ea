"""Scaling of ``saeno.distributed``: capture and DDP training with 1 and 2 processes in one run.

Part 1, scaling. The same work with 1 process and with 2 gloo processes (forked, one intra-op thread
each, joined through torchrun's environment variables), alternated ``--repeats`` times; best of the
repeats reported (the machine is shared):

- capture: ``capture_distributed`` of 4 hooks of a 2D FNO (hidden ``--hidden``, ``--res`` grid) over
  ``--samples`` samples into a local store; samples/s from a barrier before the call to its return
  (store creation, forward passes, compression, writes and the final statistics merge included);
- training: ``train_distributed`` of a pointwise TopK SAE (C = hidden, 512 concepts, k 16) on one hook
  of that store, global batch 4096 points, ``--steps`` steps; points/s of the training loop.

A third row, 1 process with 2 threads, is the other way to use 2 cores.

Part 2, sizing (``--sizing``): per-sample costs of capturing 4 hooks of a 64-channel FNO on a 128x128
grid (modes 16, 4 layers) in one process: forward and capture seconds per sample (wall and CPU: on a
shared machine the CPU seconds are the better estimate of a quiet one), compressed bytes per
sample, peak resident memory; and training points/s of a 64-channel SAE (2048 concepts, k 32, batch
4096). ``docs/distributed.md`` turns them into the table for 10k samples.

Run: ``python benchmarks/scaling.py`` (``--quick`` for a smoke run, ``--sizing`` for part 2).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

HOOKS = ["lifting.hook_out", "blocks.1.hook_out", "blocks.2.spectral.hook_out", "blocks.3.hook_out"]


def build_fno(hidden: int, modes: int) -> torch.nn.Module:
    from neuralop.models import FNO

    torch.manual_seed(0)
    return FNO(
        n_modes=(modes, modes), in_channels=1, out_channels=1, hidden_channels=hidden, n_layers=4
    ).eval()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, threads: int, fn, args) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(threads)
    fn(*args)


def launch(world: int, threads: int, fn, *args) -> None:
    """Run ``fn(*args)`` on ``world`` forked processes (a gloo group when world > 1)."""
    mp.start_processes(_entry, args=(world, _port(), threads, fn, args), nprocs=world, start_method="fork")


def _capture_job(x: torch.Tensor, hidden: int, modes: int, store: str, result: str) -> None:
    from saeno.distributed import capture_distributed, process_group
    from saeno.distributed.env import barrier
    from saeno.hooking import HookedOperator

    with process_group() as info:
        hooked = HookedOperator(build_fno(hidden, modes))
        barrier(info)
        t = time.perf_counter()
        capture_distributed(hooked, x, HOOKS, store, batch_size=16, progress=False, info=info)
        elapsed = time.perf_counter() - t
        if info.is_main:
            Path(result).write_text(json.dumps({"s": elapsed, "n": len(x)}))


def _train_job(store: str, steps: int, result: str) -> None:
    from saeno.distributed import process_group, train_distributed
    from saeno.sae import SAE
    from saeno.store import ActivationStore

    with process_group() as info:
        st = ActivationStore.open(store)
        torch.manual_seed(0)
        sae = SAE(st.hook_info(HOOKS[1])["shape"][0], 512, ndim=2, sparsity={"type": "topk", "k": 16})
        res = train_distributed(
            sae, st, hook=HOOKS[1], steps=steps, batch_size=4096, log_every=steps, progress=False, info=info
        )
        if info.is_main:
            Path(result).write_text(json.dumps({"s": res.elapsed_s, "n": res.samples}))


def scaling(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="saeno-scaling-"))
    x = torch.randn(args.samples, 1, args.res, args.res, generator=torch.Generator().manual_seed(0))
    configs = [(1, 1), (2, 1), (1, 2)]  # (processes, threads per process)
    best: dict[tuple[str, int, int], float] = {}
    try:
        for rep in range(args.repeats):
            for world, threads in configs:
                store = tmp / f"store-{world}-{threads}"
                shutil.rmtree(store, ignore_errors=True)
                out = tmp / "result.json"
                launch(world, threads, _capture_job, x, args.hidden, args.modes, str(store), str(out))
                r = json.loads(out.read_text())
                key = ("capture samples/s", world, threads)
                best[key] = max(best.get(key, 0.0), r["n"] / r["s"])
                launch(world, threads, _train_job, str(store), args.steps, str(out))
                r = json.loads(out.read_text())
                key = ("training points/s", world, threads)
                best[key] = max(best.get(key, 0.0), r["n"] / r["s"])
                print(f"repeat {rep}: {world} process(es) x {threads} thread(s) done", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{args.samples} samples, FNO hidden {args.hidden} at {args.res}x{args.res}, 4 hooks; "
        f"SAE 512 concepts k 16, global batch 4096 points, {args.steps} steps; best of {args.repeats}\n"
    )
    print("| work | 1 process x 1 thread | 2 processes x 1 thread | ratio 2p/1p | 1 process x 2 threads |")
    print("|---|---|---|---|---|")
    for what in ("capture samples/s", "training points/s"):
        one, two, thr = best[(what, 1, 1)], best[(what, 2, 1)], best[(what, 1, 2)]
        print(f"| {what} | {one:,.1f} | {two:,.1f} | **{two / one:.2f}** | {thr:,.1f} |")


def sizing(args: argparse.Namespace) -> None:
    from saeno.hooking import HookedOperator
    from saeno.sae import SAE
    from saeno.store import capture
    from saeno.train.trainer import train_sae

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="saeno-sizing-"))
    n, batch = args.sizing_samples, 4
    model = build_fno(64, 16)
    x = torch.randn(n, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            model(x[:batch])  # warm-up
            t, c = time.perf_counter(), time.process_time()
            for lo in range(0, n, batch):
                model(x[lo : lo + batch])
            fwd, fwd_cpu = (time.perf_counter() - t) / n, (time.process_time() - c) / n
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        t, c = time.perf_counter(), time.process_time()
        st = capture(HookedOperator(model), x, HOOKS, tmp / "store", batch_size=batch, progress=False)
        cap, cap_cpu = (time.perf_counter() - t) / n, (time.process_time() - c) / n
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        stored = st.nbytes_stored() / n
        raw = (
            sum(
                int(torch.tensor(st[name].shape[1:]).prod()) * st[name].dtype.itemsize
                for name in st.array_names()
            )
            / 1
        )
        torch.manual_seed(0)
        sae = SAE(64, 2048, ndim=2, sparsity={"type": "topk", "k": 32})
        c = time.process_time()
        res = train_sae(
            sae, st, hook=HOOKS[1], steps=args.steps, batch_size=4096, log_every=args.steps, progress=False
        )
        train_cpu = res.samples / (time.process_time() - c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "threads": args.threads,
                "samples": n,
                "batch": batch,
                "forward_s_per_sample": round(fwd, 4),
                "capture_s_per_sample": round(cap, 4),
                "forward_cpu_s_per_sample": round(fwd_cpu, 4),
                "capture_cpu_s_per_sample": round(cap_cpu, 4),
                "stored_MiB_per_sample": round(stored / 2**20, 3),
                "raw_MiB_per_sample": round(raw / 2**20, 3),
                "peak_rss_GiB_before_capture": round(rss0, 2),
                "peak_rss_GiB_after_capture": round(rss, 2),
                "sae_train_points_per_s": round(res.samples_per_s),
                "sae_train_points_per_cpu_s": round(train_cpu),
                "sae_steps": args.steps,
            },
            indent=1,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke run: 32 samples at 32x32, 10 steps")
    p.add_argument("--sizing", action="store_true", help="part 2: per-sample costs at 64ch 128x128")
    p.add_argument("--sizing-samples", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="threads of the sizing run")
    args = p.parse_args()
    if args.quick:
        args.samples, args.res, args.steps, args.repeats, args.modes = 64, 32, 10, 1, 8
        args.sizing_samples = 8
    sizing(args) if args.sizing else scaling(args)


if __name__ == "__main__":
    main()
