"""saeno's spectral convolution: per-mode products as contiguous real batched matmuls
(``saeno.sae.spectral.mix_modes``) versus PyTorch's complex ``einsum``, in the same run.

    python benchmarks/spectral_mix.py [--repeats 20]

Times forward + backward of the mode mixing alone and of a whole SAE-FNO training step (the demo's
shape: 32 channels, 64 concepts, 8 modes, 16 fields of 32x32), once with ``mix_modes`` and once with
the einsum it replaced patched in. Prints median milliseconds and the ratio einsum / mix_modes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402

import saeno.sae.spectral as spectral


def einsum_mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bi...,io...->bo...", x, w)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    import saeno

    torch.manual_seed(0)
    x = torch.randn(16, 32, 15, 8, dtype=torch.cfloat, requires_grad=True)
    w = torch.randn(32, 64, 15, 8, dtype=torch.cfloat, requires_grad=True)
    sae = saeno.SAEFNO(32, 64, ndim=2, modes=8, sparsity={"type": "topk", "k": 8, "group": "concept"})
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    a = torch.randn(16, 32, 32, 32)

    def mix_step(fn):
        return lambda: fn(x, w).real.sum().backward()

    def sae_step():
        out = sae.forward_train(a)
        loss = (out.recon - out.target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'case':40s} {'einsum':>10s} {'mix_modes':>10s}  ratio")
    for name, (slow, fast) in {
        "mode mixing, forward + backward": (mix_step(einsum_mix), mix_step(spectral.mix_modes)),
        "SAE-FNO training step": (None, sae_step),
    }.items():
        t_fast = median_ms(fast, args.repeats)
        if slow is None:
            original = spectral.mix_modes
            spectral.mix_modes = einsum_mix  # the forward looks the function up at call time
            try:
                t_slow = median_ms(sae_step, args.repeats)
            finally:
                spectral.mix_modes = original
        else:
            t_slow = median_ms(slow, args.repeats)
        print(f"{name:40s} {t_slow:8.1f} ms {t_fast:8.1f} ms  {t_slow / t_fast:5.2f}", flush=True)


if __name__ == "__main__":
    main()
