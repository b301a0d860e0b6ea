"""Benchmark of ``saeno.capture`` and the store loader; every ratio is against a baseline of the same run.

1. capture / forward: wall time of capturing 4 hooks of a 2D FNO (hidden 32) at 64x64 into a local
   Zarr store, divided by the plain forward pass over the same samples in the same batches (target
   <= 1.1), in each writer mode (``auto``, what a user gets; ``thread``; ``inline``, see
   ``saeno.store.writer.WRITER_MODE``). Repetitions are interleaved (forward, captures, naive,
   forward, ...); medians are reported, with the ratio of every repetition.
2. capture / naive: the same against a naive capture that keeps every activation in RAM and writes
   the Zarr arrays once at the end (same codec).
3. memory: peak resident memory (VmHWM from /proc/self/status) of a fresh subprocess capturing 1k
   and 8k samples (tiny FNO, 16x16 grid, 4 hooks); the growth must stay < 100 MB.
4. loader: points/s streamed by ``store.loader(view="points", shuffle_buffer=..., normalize=True)``
   against the points/s a pointwise TopK SAE training step consumes (Linear C->p, top-k, Linear
   p->C, MSE, Adam) on batches already in memory; ratio > 1 means the loader keeps up.

5. ``--small N``: only the small-model case (hidden 16, 32x32, batch 8, 2 hooks, N samples) through
   the Python API, each writer mode against the plain forward (target <= 1.3): every capture runs
   between two plain forwards, and is also divided by their mean.

Run: ``python benchmarks/capture.py`` (``--quick`` for a smoke run). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

HOOKS = ["lifting.hook_out", "blocks.1.hook_out", "blocks.2.spectral.hook_out", "blocks.3.hook_out"]
#: writer modes timed against the plain forward (see time_capture); "auto" is what a user gets
MODES = (
    "auto-raw",
    "thread",
    "inline",
    "auto",
)  # "auto" last: the store measured afterwards is the default one


def build_fno(hidden: int, modes: int, seed: int = 0) -> torch.nn.Module:
    from neuralop.models import FNO

    torch.manual_seed(seed)
    return FNO(
        n_modes=(modes, modes), in_channels=1, out_channels=1, hidden_channels=hidden, n_layers=4
    ).eval()


def time_forward(model: torch.nn.Module, x: torch.Tensor, batch: int) -> float:
    t = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            model(x[lo : lo + batch])
    return time.perf_counter() - t


def time_capture(
    hooked,
    x: torch.Tensor,
    batch: int,
    root: Path,
    hooks: list[str] = HOOKS,
    nice: int | None = None,
    mode: str | None = None,
) -> float:
    """Wall time of one capture; ``nice`` overrides the writer thread's niceness (0: the caller's),
    ``mode`` the writer's mode (``saeno.store.writer.WRITER_MODE``: auto, thread or inline; with the
    suffix ``-raw`` the chunks are stored uncompressed, ``capture_target.COMPRESSOR = None``)."""
    from saeno.store import capture, capture_target, writer

    path = root / "capture.zarr"
    shutil.rmtree(path, ignore_errors=True)
    defaults = writer.WRITER_NICE, writer.WRITER_MODE, capture_target.COMPRESSOR
    raw = mode is not None and mode.endswith("-raw")
    writer.WRITER_NICE = defaults[0] if nice is None else nice
    writer.WRITER_MODE = defaults[1] if mode is None else mode.removesuffix("-raw")
    capture_target.COMPRESSOR = None if raw else defaults[2]
    try:
        t = time.perf_counter()
        capture(hooked, x, hooks, path, batch_size=batch, progress=False)
        return time.perf_counter() - t
    finally:
        writer.WRITER_NICE, writer.WRITER_MODE, capture_target.COMPRESSOR = defaults


def auto_mode() -> str:
    """The writer mode ``WRITER_MODE="auto"`` picks for a CPU forward in this process."""
    from saeno.store.capture_model import openmp_spins

    return "inline" if openmp_spins(torch.device("cpu")) else "thread"


def print_mode_rows(runs: dict[str, list[float]], med: dict[str, float], label: str, target: float) -> None:
    """The table head and one row per writer mode: median time against the plain forward, per rep."""
    f = med["forward"]
    print("| measure | value | baseline | ratio | ratio per rep |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        per_rep = ", ".join(f"{c / fw:.2f}" for c, fw in zip(runs[mode], runs["forward"]))
        print(f"| {label} ({mode}) vs plain forward (target <= {target}) | {med[mode]:.2f} s | {f:.2f} s | "
              f"{med[mode] / f:.3f} | {per_rep} |")  # fmt: skip


def small_model(n: int, reps: int) -> None:
    """The small-model case: hidden-16 FNO at 32x32, batch 8, 2 hooks, through the Python API."""
    from saeno.hooking import HookedOperator

    model = build_fno(16, 12)
    hooked = HookedOperator(model)
    hooks = ["blocks.1.hook_out", "blocks.3.hook_out"]
    x = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    runs = {"forward": [], **{m: [] for m in MODES}}
    neighbours: dict[str, list[float]] = {m: [] for m in MODES}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="saeno-bench-") as tmp:
        time_forward(model, x[:64], 8)  # warm-up
        time_capture(hooked, x[:64], 8, Path(tmp), hooks)
        forward = time_forward(model, x, 8)
        for _ in range(reps):  # forward, capture, forward, capture, ...: each capture between two forwards
            for mode in MODES:
                runs["forward"].append(forward)
                runs[mode].append(time_capture(hooked, x, 8, Path(tmp), hooks, mode=mode))
                after = time_forward(model, x, 8)
                neighbours[mode].append(0.5 * (forward + after))
                forward = after
        load.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nsmall model: hidden 16, 32x32, batch 8, 2 hooks, {n} samples, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, {torch.get_num_threads()} torch threads, auto = "
          f"{auto_mode()}, reps {reps} (median), load average {load[0]:.1f} -> {load[1]:.1f}\n")  # fmt: skip
    print_mode_rows(runs, med, "small: capture", 1.3)
    print("\nEach capture against the mean of the plain forwards just before and just after it (the")
    print("machine's speed drifts over tens of seconds; the neighbours share the capture's):\n")
    print("| mode | median of capture / neighbouring forwards | per capture |")
    print("|---|---|---|")
    for mode in MODES:
        ratios = [c / f for c, f in zip(runs[mode], neighbours[mode])]
        print(f"| {mode} | {statistics.median(ratios):.3f} | {', '.join(f'{r:.2f}' for r in ratios)} |")


def time_naive(hooked, x: torch.Tensor, batch: int, root: Path) -> float:
    """Keep everything in RAM, then write each array once (same codec as capture)."""
    import zarr
    from zarr.codecs import BloscCodec

    from saeno.store.capture_target import COMPRESSOR

    path = root / "naive.zarr"
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    kept: dict[str, list[np.ndarray]] = {h: [] for h in HOOKS}
    outs = []
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            out, cache = hooked.run_with_cache(x[lo : lo + batch], names_filter=HOOKS)
            for h in HOOKS:
                kept[h].append(cache[h].numpy())
            outs.append(out.numpy())
    group = zarr.open_group(path, mode="w")
    arrays = {f"acts/{h}": np.concatenate(v) for h, v in kept.items()}
    arrays["x"] = x.numpy()
    arrays["y_pred"] = np.concatenate(outs)
    for name, value in arrays.items():
        a = group.create_array(name, shape=value.shape, chunks=(16, *value.shape[1:]), dtype=value.dtype,
                               compressors=BloscCodec(**COMPRESSOR) if COMPRESSOR else None, config={"write_empty_chunks": True})  # fmt: skip
        a[:] = value
    return time.perf_counter() - t


MEMORY_CHILD = textwrap.dedent(
    """
    import sys, torch
    from neuralop.models import FNO
    from saeno.hooking import HookedOperator
    from saeno.store import capture
    n, path = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=4).eval()
    class Inputs(torch.utils.data.Dataset):  # generated on the fly: the inputs take no memory
        def __len__(self): return n
        def __getitem__(self, i):
            return torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(i))
    capture(HookedOperator(model), Inputs(), HOOKS, path, batch_size=64, progress=False)
    status = open("/proc/self/status").read()
    print([line for line in status.splitlines() if line.startswith("VmHWM")][0].split()[1])
    """
)


def peak_rss_kib(n: int, root: Path) -> int:
    path = root / f"mem{n}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    script = f"HOOKS = {HOOKS!r}\n" + MEMORY_CHILD
    out = subprocess.run(
        [sys.executable, "-c", script, str(n), str(path)], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def sae_points_per_s(channels: int, batch: int, steps: int, latents: int, k: int) -> float:
    torch.manual_seed(0)
    enc, dec = torch.nn.Linear(channels, latents), torch.nn.Linear(latents, channels)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    data = torch.randn(steps, batch, channels)

    def step(a: torch.Tensor) -> None:
        z = torch.relu(enc(a))
        top = torch.topk(z, k, dim=-1)
        z = torch.zeros_like(z).scatter_(-1, top.indices, top.values)
        loss = ((dec(z) - a) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(data[0])  # warm-up
    t = time.perf_counter()
    for a in data:
        step(a)
    return steps * batch / (time.perf_counter() - t)


def loader_points_per_s(store, hook: str, batch: int, shuffle_buffer: int) -> float:
    loader = store.loader(
        hook, view="points", batch_size=batch, shuffle_buffer=shuffle_buffer, normalize=True
    )
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=128, help="samples for the timing runs (default 128)")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--mem", type=int, nargs=2, default=[1000, 8000], help="sample counts of the memory test")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--small", type=int, default=0, metavar="N",
                   help="only the small-model case (hidden 16, 32x32, batch 8, 2 hooks) over N samples")  # fmt: skip
    args = p.parse_args()
    if args.quick:
        args.n, args.res, args.reps, args.mem = 16, 32, 1, [200, 800]
    if args.threads:
        torch.set_num_threads(args.threads)
    from saeno.hooking import HookedOperator
    from saeno.store import ActivationStore

    if args.small:
        small_model(args.small, args.reps)
        return
    print(f"# capture benchmark: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    model = build_fno(args.hidden, args.modes)
    hooked = HookedOperator(model)
    x = torch.randn(args.n, 1, args.res, args.res, generator=torch.Generator().manual_seed(1))
    per_sample = 4 * args.hidden * args.res**2 * 4
    runs = {"forward": [], **{m: [] for m in MODES}, "naive": []}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="saeno-bench-") as tmp:
        root = Path(tmp)
        time_forward(model, x[: args.batch], args.batch)  # warm-up
        for _ in range(args.reps):  # interleaved: forward, capture in each writer mode, naive, forward, ...
            runs["forward"].append(time_forward(model, x, args.batch))
            for mode in MODES:
                runs[mode].append(time_capture(hooked, x, args.batch, root, mode=mode))
            runs["naive"].append(time_naive(hooked, x, args.batch, root))
        load.append(os.getloadavg()[0])
        store = ActivationStore.open(root / "capture.zarr")
        stored = store.nbytes_stored()
        med = {k: statistics.median(v) for k, v in runs.items()}
        c, nv = med["auto"], med["naive"]
        print(f"\n{args.n} samples, {args.res}x{args.res}, hidden {args.hidden}, modes {args.modes}, batch "
              f"{args.batch}, 4 hooks = {per_sample / 2**20:.2f} MiB/sample; stored {stored / 2**20:.1f} MiB "
              f"for {args.n * per_sample / 2**20:.1f} MiB of activations; OMP_WAIT_POLICY="
              f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, auto = {auto_mode()}; reps {args.reps} (median); "
              f"load average {load[0]:.1f} -> {load[1]:.1f}\n")  # fmt: skip
        print_mode_rows(runs, med, "capture", 1.1)
        print(f"| capture vs naive in-RAM + save once | {c:.2f} s | {nv:.2f} s | {c / nv:.3f} | |")
        print(
            f"| capture throughput | {args.n / c:.1f} samples/s, {args.n * per_sample / c / 2**20:.0f} MiB/s | | | |"
        )

        lo, hi = args.mem
        m_lo, m_hi = peak_rss_kib(lo, root), peak_rss_kib(hi, root)
        print(f"| peak RSS (VmHWM) {lo} -> {hi} samples (target growth < 100 MB) | {m_hi / 1024:.0f} MiB | "
              f"{m_lo / 1024:.0f} MiB | growth {(m_hi - m_lo) / 1024:.1f} MiB | |")  # fmt: skip

        hook, bs = "blocks.1.hook_out", 4096
        lp = loader_points_per_s(store, hook, bs, shuffle_buffer=2**16)
        sp = sae_points_per_s(args.hidden, bs, steps=30, latents=4 * args.hidden, k=8)
        print(f"| loader points/s (points view, shuffle 65536, normalize) vs TopK SAE step (C={args.hidden}, "
              f"p={4 * args.hidden}, k=8, batch {bs}) | {lp:,.0f} | {sp:,.0f} | {lp / sp:.2f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
