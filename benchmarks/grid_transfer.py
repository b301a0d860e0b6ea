"""Where the SAE-FNO's loss at twice the training grid comes from (issue 14 diagnostic).

Trains one default SAE-FNO on the darcy training store (the pareto budgets: 500 steps of 16 fields) and
reports its reconstruction error, relative to the held-out activations' deviation from their mean field,
on four inputs:

- the held-out activations at the training grid (32x32);
- the held-out activations at twice it (64x64, captured from the FNO run at 64x64);
- the 32x32 activations spectrally upsampled to 64x64: the same functions on the finer grid, so any
  change is the SAE's own grid dependence;
- the 64x64 activations low-passed to the modes a 32x32 grid holds.

It also prints how far the FNO's own activations move between the grids (64x64 low-passed to 32x32
against the 32x32 capture). Stores: ``python benchmarks/pareto.py capture --out DIR``.

    python benchmarks/grid_transfer.py --stores /tmp/quality/darcy --seed 1

``--time-steps`` instead times 100 training steps of the default SAE-FNO on one grid and on both
(``saeno.train.MultiGrid`` with equal points and with equal fields per batch), alternating, twice:

    python benchmarks/grid_transfer.py --stores /tmp/multires/darcy --time-steps
"""

from __future__ import annotations

import argparse

import torch

HOOK = "blocks.2.hook_out"


def resample(x: torch.Tensor, n: int) -> torch.Tensor:
    """Band-limited resampling of periodic 2D fields ``(B, C, m, m)`` to ``n x n`` (Fourier modes kept)."""
    spec = torch.fft.rfft2(x, norm="forward")
    m = x.shape[-2]
    out = torch.zeros(*x.shape[:2], n, n // 2 + 1, dtype=spec.dtype)
    h = min(m, n) // 2
    out[..., :h, :h] = spec[..., :h, :h]
    out[..., -h:, :h] = spec[..., -h:, :h]
    return torch.fft.irfft2(out, s=(n, n), norm="forward")


def time_steps(stores: str, steps: int = 100) -> None:
    """Wall time of ``steps`` training steps on 32x32, and on 32x32 + 64x64 under both batch rules."""
    import time
    import warnings

    import saeno
    from saeno.sae import SAEFNO
    from saeno.store import ActivationStore
    from saeno.train import MultiGrid

    warnings.simplefilter("ignore")
    t32 = torch.from_numpy(ActivationStore.open(f"{stores}/train_32.zarr").read(HOOK)).float()
    t64 = torch.from_numpy(ActivationStore.open(f"{stores}/train_64.zarr").read(HOOK)).float()
    cases = [
        ("one grid", t32),
        ("both, equal points", MultiGrid([t32, t64])),
        ("both, equal fields", MultiGrid([t32, t64], grid_batches="fields")),
    ]
    for rep in range(2):
        for name, data in cases:
            torch.manual_seed(0)
            sae = SAEFNO(t32.shape[1], 64, ndim=2, modes=8)
            t0 = time.perf_counter()
            saeno.train_sae(sae, data, steps=steps, batch_size=16, progress=False)
            print(f"run {rep}: {name:20s} {time.perf_counter() - t0:.1f} s / {steps} steps", flush=True)


def main() -> None:
    import saeno
    from saeno.sae import SAEFNO
    from saeno.store import ActivationStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", required=True, help="folder with train_32.zarr, test_32.zarr, test_64.zarr")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--time-steps", action="store_true", help="time training steps on one and two grids")
    args = ap.parse_args()
    if args.time_steps:
        time_steps(args.stores)
        return
    train = ActivationStore.open(f"{args.stores}/train_32.zarr")
    t32 = torch.from_numpy(ActivationStore.open(f"{args.stores}/test_32.zarr").read(HOOK)).float()
    t64 = torch.from_numpy(ActivationStore.open(f"{args.stores}/test_64.zarr").read(HOOK)).float()
    torch.manual_seed(args.seed)
    sae = SAEFNO(t32.shape[1], 64, ndim=2, modes=8)
    sae = saeno.train_sae(
        sae, train, hook=HOOK, steps=args.steps, batch_size=16, seed=args.seed, progress=False
    ).sae
    sae.eval()

    def rel_error(x: torch.Tensor) -> float:
        with torch.no_grad():
            xn, rn = sae.normalize(x), sae.normalize(sae(x))
            return float((rn - xn).norm() / (xn - xn.mean(0, keepdim=True)).norm())

    shift = (resample(t64, 32) - t32).norm() / (t32 - t32.mean(0)).norm()
    print(f"FNO activations, 64x64 low-passed to 32x32 against the 32x32 capture: {float(shift):.4f}")
    cases = [
        ("held-out 32x32", t32),
        ("held-out 64x64", t64),
        ("32x32 upsampled to 64x64", resample(t32, 64)),
        ("64x64 low-passed to 32x32's modes", resample(resample(t64, 32), 64)),
    ]
    for name, x in cases:
        print(f"{name:36s} SAE-FNO reconstruction error (vs mean field) {rel_error(x):.4f}")


if __name__ == "__main__":
    main()
