"""Would half-batch steps speed up the SAE-FNO's training on two cores? (issue 19, a null result)

The zoo's FNO fit computes each step's gradient as the sum of its two half batches', at once in two
worker threads on one intra-op thread each (``saeno.zoo.training.HalvesStep``). This measures the same
scheme on the demo's SAE-FNO (32 channels, 64 concepts, all kept with the pooled budget, 8 modes), one
training step's forward and backward (``saeno.train.trainer.sae_loss``) at the demo's two batch shapes
(16 fields at 32x32, 4 at 64x64), alternating step by step in one process:

- one pass on two intra-op threads (what the trainer does),
- one pass on one intra-op thread,
- the two halves at once, one intra-op thread each (their gradients summed).

Run under the CLI's policy (``OMP_WAIT_POLICY=PASSIVE``) and OpenMP's default::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/half_batch_steps.py [--stores DEMO_OUT/stores] [--steps 40]

``--stores``: a demo run's ``stores`` folder (its ``train_32.zarr`` and ``train_64.zarr``); without it
the fields are random. Results: ``benchmarks/results/train_speed.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import saeno
from saeno.train.trainer import sae_loss

HOOK = "blocks.2.hook_out"


def fields(stores: Path | None, grid: int, n: int) -> torch.Tensor:
    if stores is None:
        g = torch.Generator().manual_seed(grid)
        return torch.randn(n, 32, grid, grid, generator=g)
    store = saeno.ActivationStore.open(stores / f"train_{grid}.zarr")
    return torch.from_numpy(store.read(HOOK, slice(0, n))).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", type=Path, default=None)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    torch.manual_seed(0)
    sae = saeno.SAEFNO(32, 64, ndim=2, modes=8, sparsity={**saeno.sae.sae_fno.DEFAULT_SPARSITY, "k": 64})
    x32 = fields(args.stores, 32, 16)
    sae.set_normalization(x32.mean((0, 2, 3)), x32.std((0, 2, 3)))
    sae.bias_field.fit_(sae.normalize(x32).detach().double().mean(0))
    params = [q for q in sae.parameters() if q.requires_grad]
    dead = torch.zeros(64, dtype=torch.bool)
    pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))

    def grads(x: torch.Tensor, share: float) -> tuple[torch.Tensor | None, ...]:
        loss, *_ = sae_loss(sae, x, dead, False, 0, 0.0)
        return torch.autograd.grad(loss * share, params, allow_unused=True)

    def one_pass(threads: int, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return grads(x, 1.0)
        finally:
            torch.set_num_threads(old)

    def halves(x: torch.Tensor) -> list[torch.Tensor | None]:
        cut = len(x) // 2
        futures = [pool.submit(grads, part, len(part) / len(x)) for part in (x[:cut], x[cut:])]
        a, b = (f.result() for f in futures)
        return [None if g is None else g + h for g, h in zip(a, b)]  # the step's gradient

    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"OMP_WAIT_POLICY={policy}, data {'random' if args.stores is None else args.stores}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for grid, n in ((32, 16), (64, 4)):
        x = fields(args.stores, grid, n)
        variants = {
            "one pass, 2 threads": lambda x=x: one_pass(2, x),
            "one pass, 1 thread": lambda x=x: one_pass(1, x),
            "two halves at once": lambda x=x: halves(x),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for i in range(args.steps + 3):
            for name, fn in variants.items():
                t = time.perf_counter()
                fn()
                if i >= 3:
                    times[name].append(time.perf_counter() - t)
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        base = med["one pass, 2 threads"]
        print(f"{n} fields at {grid}x{grid}: " + "; ".join(
            f"{k} {v:.1f} ms ({base / v:.2f}x)" for k, v in med.items()))  # fmt: skip
    pool.shutdown()


if __name__ == "__main__":
    main()
