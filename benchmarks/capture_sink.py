"""CPU seconds the capture's sink spends per sample, without the forward's own cost, against a baseline.

The small-model case of ``benchmarks/capture.py`` (hidden-16 FNO at 32x32, batch 8, 2 hooks): the
model's forward is run once for a pool of 16 batches; the capture then gets a fresh copy of one of
them per batch instead of running the model (the copy brings it into cache, as a forward leaves
its output), so what is timed is what the capture adds to a forward: rows, the sink (copies,
checksums, statistics, chunk writes, commits) and the store's creation. Process CPU time counts
every thread (Zarr's pool included). The writer runs inline (as under OpenMP's default policy).

``--baseline SRC [SRC ...]`` runs the same measurement in a subprocess with ``PYTHONPATH=SRC``
(other checkouts' ``src``), alternating with this checkout, ``--rounds`` times each; the table
gives each and the ratios. CPU time is far steadier than wall time on a shared machine, but still varies
with the load (cache and memory bandwidth), hence the alternation.

Run: ``python benchmarks/capture_sink.py --n 2400 --rounds 5 --baseline /path/to/main/src``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture import build_fno  # noqa: E402

HOOKS = ["blocks.1.hook_out", "blocks.3.hook_out"]


def measure(n: int) -> dict:
    """One capture of ``n`` samples from the pool of cached forwards; CPU and wall seconds."""
    from saeno.hooking import HookedOperator
    from saeno.store import capture, writer

    torch.set_num_threads(1)
    model = build_fno(16, 12)
    hooked = HookedOperator(model)
    pool = []
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(16):
            xb = torch.randn(8, 1, 32, 32, generator=gen)
            pool.append(hooked.run_with_cache(xb, names_filter=HOOKS))
    calls = [0]

    def cached(xb, names_filter=None):
        out, cache = pool[calls[0] % len(pool)]
        calls[0] += 1
        return out.clone(), {h: v.clone() for h, v in cache.items()}

    hooked.run_with_cache = cached
    writer.WRITER_MODE = "inline"
    x = torch.randn(n, 1, 32, 32, generator=gen)
    with tempfile.TemporaryDirectory(prefix="saeno-bench-") as tmp:
        capture(hooked, x[:64], HOOKS, Path(tmp) / "warm", batch_size=8, progress=False)
        c, w = time.process_time(), time.perf_counter()
        capture(hooked, x, HOOKS, Path(tmp) / "s", batch_size=8, progress=False)
        cpu, wall = time.process_time() - c, time.perf_counter() - w
    # the copies that stand in for the forward, timed alone
    c = time.process_time()
    for _ in range(n // 8):
        cached(None)
    copies = time.process_time() - c
    return {"cpu": cpu - copies, "wall": wall, "n": n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2400)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--baseline", nargs="*", default=[], help="other checkouts' src folders to compare with")
    p.add_argument("--once", action="store_true", help="one measurement, printed as JSON (internal)")
    args = p.parse_args()
    if args.once:
        print(json.dumps(measure(args.n)))
        return
    here = str(Path(__file__).resolve().parents[1] / "src")  # this checkout, not an installed saeno
    trees = {f"baseline {i + 1}": src for i, src in enumerate(args.baseline)}
    trees["this"] = here
    runs: dict[str, list[float]] = {k: [] for k in trees}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, src in trees.items():
            env = dict(os.environ, OMP_NUM_THREADS="1")
            env["PYTHONPATH"] = src
            out = subprocess.run(
                [sys.executable, __file__, "--once", "--n", str(args.n)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            got = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(got["cpu"] / got["n"] * 1e3)
    loads.append(os.getloadavg()[0])
    print(f"\n{args.n} samples, small model, sink inline, {args.rounds} alternating rounds, load average "
          f"{loads[0]:.1f} -> {loads[1]:.1f}\n")  # fmt: skip
    print("| tree | capture CPU per sample beyond the forward, median (ms) | per round |")
    print("|---|---|---|")
    for name, values in runs.items():
        label = f"{name} ({trees[name]})"
        print(f"| {label} | {statistics.median(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    for name in runs:
        if name != "this":
            ratios = [t / b for t, b in zip(runs["this"], runs[name])]
            print(
                f"| this / {name} | {statistics.median(ratios):.3f} | {', '.join(f'{r:.2f}' for r in ratios)} |"
            )


if __name__ == "__main__":
    main()
