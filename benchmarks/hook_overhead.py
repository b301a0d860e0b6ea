"""Hook overhead: plain FNO forward versus ``run_with_cache`` of every block output, in the same run.

2D neuraloperator FNO (hidden 32, 16x16 modes, 4 layers) at 64x64, batch 16, CPU by default. The two
calls are interleaved (plain, cached, plain, cached, ...) after a warm-up, and the ratio of the medians
is printed. Target: at most 1.10.

Usage::

    python benchmarks/hook_overhead.py [--repeats 30] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from neuralop.models import FNO

from saeno import HookedOperator


def _timed(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    model = (
        FNO(n_modes=(16, 16), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4).to(device).eval()
    )
    hooked = HookedOperator(model)
    blocks = [f"blocks.{i}.hook_out" for i in range(model.n_layers)]
    x = torch.randn(args.batch, 1, args.resolution, args.resolution, device=device)

    with torch.no_grad():
        out, cache = hooked.run_with_cache(x, names_filter=blocks)
        assert torch.equal(out, model(x)) and list(cache) == blocks
        for _ in range(args.warmup):
            model(x)
            hooked.run_with_cache(x, names_filter=blocks)
        plain, cached, cached_all = [], [], []
        for _ in range(args.repeats):
            plain.append(_timed(lambda: model(x), sync))
            cached.append(_timed(lambda: hooked.run_with_cache(x, names_filter=blocks), sync))
            cached_all.append(_timed(lambda: hooked.run_with_cache(x), sync))
    p, c, a = (statistics.median(v) for v in (plain, cached, cached_all))
    print(
        f"FNO 2D hidden 32, modes 16x16, 4 layers, x {tuple(x.shape)} on {device}, "
        f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats (median)"
    )
    print(f"plain forward                       {p * 1e3:8.2f} ms")
    print(f"run_with_cache(blocks.i.hook_out)   {c * 1e3:8.2f} ms   ratio {c / p:.3f}  (target <= 1.10)")
    print(f"run_with_cache(all {len(hooked.hook_names)} hooks)        {a * 1e3:8.2f} ms   ratio {a / p:.3f}")


if __name__ == "__main__":
    main()
