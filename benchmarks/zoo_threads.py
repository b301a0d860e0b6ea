"""Why the zoo trains with one thread on CPU: neuraloperator FNO training steps and batched matmuls
on permuted operands, timed with 1 and with N intra-op threads in the same run.

    python benchmarks/zoo_threads.py [--threads 2] [--repeats 10]

Prints median milliseconds and the ratio N threads / 1 thread (above 1: one thread is faster). The
result depends on OpenMP's wait policy: run it with and without OMP_WAIT_POLICY=PASSIVE (saeno's CLI sets it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402


def fno_step(modes: int, batch: int = 32, grid: int = 32, hidden: int = 32):
    from neuralop.models import FNO

    torch.manual_seed(0)
    model = FNO(n_modes=(modes, modes), hidden_channels=hidden, n_layers=4, in_channels=1, out_channels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, grid, grid), torch.randn(batch, 1, grid, grid)

    def step():
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    a = torch.randn(64, 16, 120).permute(2, 1, 0)  # (120, 16, 64), permuted view
    b = torch.randn(128, 64, 120).permute(2, 1, 0)  # (120, 64, 128)
    cases = {
        "bmm, permuted operands": lambda: torch.bmm(a, b),
        "bmm, contiguous operands": lambda: torch.bmm(a.contiguous(), b.contiguous()),
        "FNO training step, 8 modes": fno_step(8),
        "FNO training step, 12 modes": fno_step(12),
    }
    print(f"{'case':32s} {args.threads} threads   1 thread   ratio")
    for name, fn in cases.items():
        torch.set_num_threads(args.threads)
        many = median_ms(fn, args.repeats)
        torch.set_num_threads(1)
        one = median_ms(fn, args.repeats)
        print(f"{name:32s} {many:9.1f} ms {one:8.1f} ms   {many / one:5.2f}", flush=True)


if __name__ == "__main__":
    main()
