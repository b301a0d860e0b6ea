"""The demo's two slowest first-run steps, old and new execution side by side in one run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/demo_steps.py solve [--samples N]
    OMP_WAIT_POLICY=PASSIVE python benchmarks/demo_steps.py fit [--epochs E] [--threads T] [--modes halves,fast,plain]
    SAENO_HOME=<the demo's home> python benchmarks/demo_steps.py report --run <demo out folder>
    SAENO_HOME=<the demo's home> python benchmarks/demo_steps.py eval --run <demo out folder>
    OMP_WAIT_POLICY=PASSIVE python benchmarks/demo_steps.py memory [--steps N] [--repeats R]

``solve``: Darcy solves of the dataset's first training samples at the solve resolution, by the
sparse LU of :func:`saeno.pde.darcy.darcy_matrix` (the old solver), by the banded Cholesky of
:func:`saeno.pde.darcy.solve_darcy` (one BLAS thread each), with the largest difference, and by
:func:`saeno.pde.darcy.solve_darcy_many` on two threads (compared bit for bit).
``fit``: the darcy-fno recipe's fit with the fast forward and half-batch steps in parallel
(``halves``, the default), the fast forward in one pass per step (``fast``) and the plain forward
(``plain``), same data and seed; wall and process CPU time per step (all threads; the CPU time is the steadier figure
on a shared machine) and the test relative L2 at 32x32 on the recipe's 200 test samples.
``report`` and ``eval``: the demo's report of its SAE-FNO (compute, then figures, with the time of
each figure kind) and ``saeno.evaluate`` of both SAEs, on the stores and SAEs of a finished demo run
(its ``darcy-fno`` loaded from ``SAENO_HOME``). Run them under two checkouts' interpreters, one after
the other, for a same-run comparison.
``memory``: half-batch steps of the darcy-fno recipe's fit (16 fields at 32x32, one thread, the fast
forward, random data) in fresh processes, alternately with glibc's default and with
:func:`saeno.memory.keep_freed_memory` (a process-wide setting, hence one process each): wall, user
and system time and minor page faults per step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import saeno
from saeno.pde import darcy
from saeno.pde.cards import load_card
from saeno.zoo.specs import get_spec
from saeno.zoo.training import evaluate_rel_l2, fit

HOOK = "blocks.2.hook_out"  # the demo's SAE hook


def bench_solve(samples: int) -> None:
    import scipy.sparse.linalg as spla
    from threadpoolctl import threadpool_limits

    card = load_card("darcy")
    p, n = card["parameters"], int(card["solve_resolution"])
    coeffs = [
        darcy.sample_coefficients(
            1, n, np.random.default_rng([card["seed"], 0, i]), p["alpha"], p["tau"], p["high"], p["low"]
        )[0]
        for i in range(samples)
    ]
    rhs = np.full((n - 1) ** 2, 1.0 / n**2)
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        old = [spla.spsolve(darcy.darcy_matrix(a), rhs, permc_spec="MMD_AT_PLUS_A") for a in coeffs]
        t1 = time.perf_counter()
        new = [darcy.solve_darcy(a, 1.0)[1:, 1:].ravel() for a in coeffs]
        t2 = time.perf_counter()
        c2 = time.process_time()
        many = darcy.solve_darcy_many(np.stack(coeffs), 1.0, threads=2)
        t3, c3 = time.perf_counter(), time.process_time()
    diff = max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(old, new))
    same = all(np.array_equal(u[1:, 1:].ravel(), b) for u, b in zip(many, new))
    print(
        f"{samples} darcy solves at {n}x{n}: sparse LU {1e3 * (t1 - t0) / samples:.1f} ms/sample, "
        f"banded Cholesky {1e3 * (t2 - t1) / samples:.1f} ms/sample ({(t1 - t0) / (t2 - t1):.2f}x), "
        f"max relative difference {diff:.1e}; banded Cholesky on 2 threads "
        f"{1e3 * (t3 - t2) / samples:.1f} ms/sample wall, {1e3 * (c3 - c2) / samples:.1f} ms/sample CPU "
        f"({(t2 - t1) / (t3 - t2):.2f}x), bit-identical to one thread: {same}"
    )


def bench_fit(epochs: int | None, modes: str) -> None:
    spec = get_spec("darcy-fno")
    if epochs:
        spec["train"]["epochs"] = epochs
    hp = spec["train"]
    train = saeno.datasets.load("darcy", split="train", resolution=32, n=hp["n_train"], progress=False)
    test = saeno.datasets.load("darcy", split="test", resolution=32, n=hp["n_train"], progress=False)
    xt, yt = test.tensors()
    steps = hp["epochs"] * -(-hp["n_train"] // hp["batch_size"])
    print(f"threads {torch.get_num_threads()}, {steps} steps of batch {hp['batch_size']}")
    for mode in modes.split(","):
        t0 = time.perf_counter()
        model, history = fit(
            spec, train.tensors(), progress=False, fast=mode != "plain", halves=mode == "halves"
        )
        wall = time.perf_counter() - t0
        err = evaluate_rel_l2(model, xt[: hp["n_test"]], yt[: hp["n_test"]])
        print(
            f"{mode:6s} fit {wall:6.1f} s  {1e3 * wall / steps:6.1f} ms/step  "
            f"CPU {history['cpu_time_s']:6.1f} s  {1e3 * history['cpu_time_s'] / steps:6.1f} ms/step  "
            f"final train loss {history['train_loss'][-1]:.4f}  test rel. L2 (32) {err:.4f}",
            flush=True,
        )


def bench_report(run: str, out: str) -> None:
    from saeno.export import figures
    from saeno.export.compute import compute_concepts
    from saeno.export.writing import write_export
    from saeno.store import ActivationStore

    hooked = saeno.HookedOperator(saeno.zoo.load("darcy-fno", progress=False))
    store = ActivationStore.open(f"{run}/stores/test_32.zarr")
    sae = saeno.load_sae(f"{run}/sae/sae-fno")
    t0 = time.perf_counter()
    data = compute_concepts(
        sae, store, hook=HOOK, model=hooked, max_concepts=12, progress=False, evaluation=False
    )
    t1 = time.perf_counter()
    spent: dict[str, float] = {}
    for name in (
        "plot_atom",
        "plot_channel_vector",
        "plot_spectrum",
        "plot_code_maps",
        "plot_examples",
        "write_thumbnail",
        "plot_density",
        "plot_effect",
        "plot_density_overview",
    ):

        def timed(*a, _f=getattr(figures, name), _n=name, **k):
            s = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                spent[_n] = spent.get(_n, 0.0) + time.perf_counter() - s

        setattr(figures, name, timed)
    write_export(data, out, progress=False)
    t2 = time.perf_counter()
    print(f"report: compute {t1 - t0:.2f} s, figures and files {t2 - t1:.2f} s; by figure kind (s):")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in spent.items()))


def bench_eval(run: str) -> None:
    from saeno.store import ActivationStore

    hooked = saeno.HookedOperator(saeno.zoo.load("darcy-fno", progress=False))
    stores = [ActivationStore.open(f"{run}/stores/test_{r}.zarr") for r in (32, 64)]
    for name in ("sae-fno", "sae"):
        sae = saeno.load_sae(f"{run}/sae/{name}")
        t0 = time.perf_counter()
        rep = saeno.evaluate(sae, stores[0], HOOK, hooked=hooked, other_stores=stores[1:], progress=False)
        changes = ", ".join(f"{r['output_change']:.6f}" for r in rep["results"])
        print(f"evaluate {name} at 32 and 64: {time.perf_counter() - t0:.2f} s (output change {changes})")


def memory_child(mode: str, steps: int) -> None:
    import resource

    from neuralop.models import FNO

    from saeno.memory import keep_freed_memory
    from saeno.metrics import relative_l2
    from saeno.zoo.fast_forward import fast_forward
    from saeno.zoo.operator import ZooOperator

    if mode == "keep":
        keep_freed_memory()
    torch.set_num_threads(1)
    spec = get_spec("darcy-fno")
    torch.manual_seed(0)
    fno = FNO(**dict(spec["fno"], n_modes=tuple(spec["fno"]["n_modes"]), in_channels=1, out_channels=1))
    model = ZooOperator(fno, 1, 1)
    x, y = torch.randn(16, 1, 32, 32), torch.randn(16, 1, 32, 32)
    params = list(model.parameters())

    def step() -> None:
        loss = relative_l2(model(x), y).sum() / 32
        torch.autograd.grad(loss, params)

    with fast_forward(model):
        for _ in range(3):
            step()
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            step()
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{mode:5s} {1e3 * wall / steps:6.1f} ms/step wall, user {1e3 * (r1.ru_utime - r0.ru_utime) / steps:6.1f} ms, "
        f"sys {1e3 * (r1.ru_stime - r0.ru_stime) / steps:5.1f} ms, "
        f"{(r1.ru_minflt - r0.ru_minflt) / steps:6.0f} page faults per step",
        flush=True,
    )


def bench_memory(steps: int, repeats: int) -> None:
    import subprocess
    import sys

    for _ in range(repeats):
        for mode in ("plain", "keep"):
            subprocess.run(
                [sys.executable, __file__, "_memory", "--mode", mode, "--steps", str(steps)], check=True
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["solve", "fit", "report", "eval", "memory", "_memory"])
    parser.add_argument("--mode", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help="memory: fit steps per process")
    parser.add_argument("--repeats", type=int, default=3, help="memory: alternations")
    parser.add_argument("--run", help="report, eval: a finished demo's output folder")
    parser.add_argument("--out", default="/tmp/demo_steps_report", help="report: export folder")
    parser.add_argument("--samples", type=int, default=100, help="solve: how many samples")
    parser.add_argument("--epochs", type=int, default=None, help="fit: epochs (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=None, help="fit: torch intra-op threads")
    parser.add_argument(
        "--modes", default="halves,fast,plain", help="fit: which executions (halves, fast, plain), in order"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.step == "solve":
        bench_solve(args.samples)
    elif args.step == "fit":
        bench_fit(args.epochs, args.modes)
    elif args.step == "memory":
        bench_memory(args.steps, args.repeats)
    elif args.step == "_memory":
        memory_child(args.mode, args.steps)
    elif args.step == "report":
        bench_report(args.run, args.out)
    else:
        bench_eval(args.run)


if __name__ == "__main__":
    main()
