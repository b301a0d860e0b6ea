"""Where a capture's wall time goes: the forward, the sink (statistics, checksums, writes, commits), the
store's creation, against the plain forward of the same run.

The small-model case of ``benchmarks/capture.py`` (hidden-16 FNO at 32x32, batch 8, 2 hooks) captured in
one writer mode (default ``inline``, where the sink runs in the calling thread, so its time is wall
time the capture adds). Each step's wall time and the process CPU time over it (every thread) are
summed over the last repetition.

With ``--threads 1`` the forward runs on one thread, so one core stays free on a shared machine and
the sink's process CPU time (its own thread and Zarr's pool) is comparable between runs; the last
line gives it per sample, summed over every repetition. To compare with another checkout, run the
same script with ``PYTHONPATH=<that checkout>/src``.

Run: ``python benchmarks/capture_split.py --n 480 --reps 3 [--mode inline|thread] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture import build_fno, time_capture, time_forward  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=480)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--mode", default="inline", choices=["inline", "thread"])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from saeno.hooking import HookedOperator
    from saeno.store import capturing, writer

    acc: dict[str, list[float]] = {}
    sink_cpu = [0.0]  # over every repetition

    def timed(owner, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def call(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return inner(*a, **k)
            finally:
                step = acc.setdefault(label, [0.0, 0.0])
                step[0] += time.perf_counter() - w
                step[1] += time.process_time() - c
                if label.startswith("sink"):
                    sink_cpu[0] += time.process_time() - c

        setattr(owner, name, call)

    sink = writer.InlineWriter if args.mode == "inline" else writer.BackgroundWriter
    timed(capturing, "forward_batch", "forward (run_with_cache)")
    timed(capturing, "batch_rows", "rows of a batch")
    timed(sink, "submit", f"sink: submit ({args.mode})")
    timed(sink, "close", "sink: close (last chunk, final commit)")
    timed(capturing, "open_target", "open the target")
    timed(capturing, "create_store", "create the store")
    model = build_fno(16, 12)
    hooked = HookedOperator(model)
    hooks = ["blocks.1.hook_out", "blocks.3.hook_out"]
    x = torch.randn(args.n, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    fwd, cap, fwd_cpu = [], [], []
    with tempfile.TemporaryDirectory(prefix="saeno-bench-") as tmp:
        time_capture(hooked, x[:64], 8, Path(tmp), hooks, mode=args.mode)  # warm-up
        sink_cpu[0] = 0.0
        for rep in range(args.reps):
            c = time.process_time()
            fwd.append(time_forward(model, x, 8))
            fwd_cpu.append(time.process_time() - c)
            if rep == args.reps - 1:
                acc.clear()
            cap.append(time_capture(hooked, x, 8, Path(tmp), hooks, mode=args.mode))
    print(f"{args.n} samples, mode {args.mode}, {torch.get_num_threads()} torch threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"plain forward {', '.join(f'{v:.3f}' for v in fwd)} s; capture {', '.join(f'{v:.3f}' for v in cap)} s; "
          f"ratios {', '.join(f'{c / f:.2f}' for c, f in zip(cap, fwd))}\n")  # fmt: skip
    print("| step (last repetition) | wall s | process CPU s |")
    print("|---|---|---|")
    print(f"| plain forward (model(x), no hooks) | {fwd[-1]:.3f} | {fwd_cpu[-1]:.3f} |")
    for label, (w, c) in acc.items():
        print(f"| {label} | {w:.3f} | {c:.3f} |")
    print(f"| whole capture | {cap[-1]:.3f} | |")
    import saeno

    print(f"\nsink CPU per sample (every repetition, {Path(saeno.__file__).parent}): "
          f"{sink_cpu[0] / (args.n * args.reps) * 1e3:.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
