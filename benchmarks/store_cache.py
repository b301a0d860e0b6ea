"""Training from a store with and without decoded chunks kept in memory (``TrainConfig.cache_mib``).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/store_cache.py --stores <demo out>/stores [--steps 500]
        [--pairs 3] [--busy 0|2] [--loader-epochs 3]

``--stores``: a finished demo's ``stores`` folder (its ``train_32.zarr`` and ``train_64.zarr``).

First, one loader per store and grid: wall and process CPU time of each epoch (400 fields, batches of
16, shuffle buffer 256) reading the store every time and with a :class:`saeno.store.chunk_cache.ChunkCache`.
Then the demo's SAE-FNO training (64 concepts, 8 modes, k 64, batch 16, both stores, ``deterministic()``)
in fresh processes, ``cache_mib=0`` and the default alternating, ``--pairs`` times: wall and CPU time of
each, their ratios, and a checksum of the trained weights (the same in every run, or the benchmark
fails). ``--busy 2`` starts two CPU-bound Python processes for the training pairs (a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HOOK = "blocks.2.hook_out"

CHILD = """
import json, sys, time, warnings
import torch, saeno
from saeno.threads import deterministic
warnings.simplefilter("ignore")
stores, steps, cache_mib = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stores = [saeno.ActivationStore.open(s) for s in stores]
torch.manual_seed(0)
sae = saeno.SAEFNO(32, 64, ndim=2, modes=8, sparsity={**saeno.sae.sae_fno.DEFAULT_SPARSITY, "k": 64})
t, c = time.perf_counter(), time.process_time()
with deterministic():
    r = saeno.train_sae(sae, stores, hook=sys.argv[4], steps=steps, batch_size=16, progress=False, seed=0,
                        cache_mib=None if cache_mib == "default" else int(cache_mib))
wall, cpu = time.perf_counter() - t, time.process_time() - c
check = sum(float(p.double().sum()) for p in r.sae.parameters())
print(json.dumps({"wall": wall, "cpu": cpu, "check": repr(check)}))
"""


def loader_epochs(stores: list[Path], epochs: int) -> None:
    import saeno
    from saeno.store.chunk_cache import ChunkCache

    print("| store | reads | epoch wall, s | epoch CPU, s |")
    print("|---|---|---|---|")
    for path in stores:
        store = saeno.ActivationStore.open(str(path))
        for label, cache in (("store every epoch", None), ("chunk cache", ChunkCache(2**32))):
            walls, cpus = [], []
            loader = store.loader(HOOK, batch_size=16, shuffle_buffer=256, seed=0, cache=cache)
            for _ in range(epochs):
                t, c = time.perf_counter(), time.process_time()
                for _batch in loader:
                    pass
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            fmt = lambda xs: ", ".join(f"{x:.3f}" for x in xs)  # noqa: E731
            print(f"| {path.name} | {label} | {fmt(walls)} | {fmt(cpus)} |")


def train_pairs(stores: list[Path], steps: int, pairs: int, busy: int) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)
    ]  # stopped below
    try:
        rows: dict[str, list[dict[str, float]]] = {"0": [], "default": []}
        checks = set()
        for _ in range(pairs):
            for mode in ("0", "default"):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        json.dumps([str(s) for s in stores]),
                        str(steps),
                        mode,
                        HOOK,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                res = json.loads(out.strip().splitlines()[-1])
                rows[mode].append(res)
                checks.add(res["check"])
    finally:
        for p in procs:
            p.kill()
            p.wait()
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"\n{steps} SAE-FNO steps, {busy} busy processes beside (load average at the end {load})\n")
    print("| pair | wall, no cache | wall, cache | no cache / cache | CPU, no cache | CPU, cache | ratio |")
    print("|---|---|---|---|---|---|---|")
    for i, (a, b) in enumerate(zip(rows["0"], rows["default"]), 1):
        print(
            f"| {i} | {a['wall']:.1f} | {b['wall']:.1f} | {a['wall'] / b['wall']:.2f} "
            f"| {a['cpu']:.1f} | {b['cpu']:.1f} | {a['cpu'] / b['cpu']:.2f} |"
        )
    wall = statistics.median(a["wall"] / b["wall"] for a, b in zip(rows["0"], rows["default"]))
    cpu = statistics.median(a["cpu"] / b["cpu"] for a, b in zip(rows["0"], rows["default"]))
    print(f"\nmedian of the pairs: wall {wall:.2f}x, CPU {cpu:.2f}x; weights' checksums: {sorted(checks)}")
    if len(checks) != 1:
        raise SystemExit("the trained weights differ between runs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", type=Path, required=True, help="a demo's stores folder")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside the training pairs")
    ap.add_argument("--loader-epochs", type=int, default=3, help="0 skips the loader table")
    args = ap.parse_args()
    stores = [args.stores / f"train_{r}.zarr" for r in (32, 64)]
    missing = [str(s) for s in stores if not s.is_dir()]
    if missing:
        raise SystemExit(f"no store at {', '.join(missing)}: pass --stores <a finished demo's out>/stores")
    if args.loader_epochs:
        loader_epochs(stores, args.loader_epochs)
    if args.pairs:
        train_pairs(stores, args.steps, args.pairs, args.busy)


if __name__ == "__main__":
    main()
