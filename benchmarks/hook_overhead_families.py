"""Hook overhead on the other neuraloperator families: plain forward versus ``run_with_cache``, same run.

A 2D UNO (hidden 32, 4 layers, scalings 1, 1/2, 1, 2, default skip map) at 64x64 and a 2D GINO (hidden 32,
4 FNO layers on a 32x32 latent grid, 2048 input and 2048 output points), batch 4, CPU. Plain and cached
calls are interleaved after a warm-up; the ratio of the medians is printed for the block outputs and for
every hook point. ``--capture N`` also times ``saeno.capture`` of the GINO's block outputs (on its latent
grid) from N samples through ``saeno.hooking.gino_call`` against plain forwards over the same batches,
interleaved; ``--only capture`` skips the forward comparison.

Usage::

    python benchmarks/hook_overhead_families.py [--repeats 10] [--threads N] [--capture 16 [--only capture]]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch
from neuralop.models import GINO, UNO

import saeno
from saeno import HookedOperator
from saeno.hooking import gino_call


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _compare(label, model, args, kwargs, repeats, warmup):
    hooked = HookedOperator(model)
    blocks = hooked.resolve("blocks.*.hook_out")
    plain_out = model(*args, **kwargs)
    out, cache = hooked.run_with_cache(*args, names_filter=blocks, **kwargs)
    assert torch.equal(out, plain_out) and sorted(cache) == sorted(blocks)
    for _ in range(warmup):
        model(*args, **kwargs)
        hooked.run_with_cache(*args, **kwargs)
    plain, cached, cached_all = [], [], []
    for _ in range(repeats):
        plain.append(_timed(lambda: model(*args, **kwargs)))
        cached.append(_timed(lambda: hooked.run_with_cache(*args, names_filter=blocks, **kwargs)))
        cached_all.append(_timed(lambda: hooked.run_with_cache(*args, **kwargs)))
    p, c, a = (statistics.median(v) for v in (plain, cached, cached_all))
    print(
        f"{label}: plain {p * 1e3:.1f} ms, {len(blocks)} block outputs {c * 1e3:.1f} ms (ratio {c / p:.3f}), "
        f"all {len(hooked.hook_names)} hooks {a * 1e3:.1f} ms (ratio {a / p:.3f})"
    )


def _compare_capture(gino, geom, latent, queries, n, repeats, batch=4):
    """``saeno.capture`` of the block outputs through ``gino_call`` versus plain forwards of the same batches."""
    call = gino_call(gino, geom, latent, queries)
    hooked = HookedOperator(call)
    x = torch.randn(n, 1, geom.shape[-2])
    blocks = hooked.resolve("blocks.*.hook_out")
    plain, captured = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            plain.append(_timed(lambda: [call(x[i : i + batch]) for i in range(0, n, batch)]))
            store = Path(tmp) / f"g{r}.zarr"
            captured.append(
                _timed(lambda s=store: saeno.capture(hooked, x, blocks, s, batch_size=batch, progress=False))
            )
        opened = saeno.ActivationStore.open(store)
        grid = opened.grid_of(blocks[0])
        axes = opened.hook_info(blocks[0])["axes"]
    p, c = statistics.median(plain), statistics.median(captured)
    print(
        f"GINO capture via gino_call, {n} samples batch {batch}, {len(blocks)} block outputs on {grid} {axes}: "
        f"plain {p * 1e3:.1f} ms, capture {c * 1e3:.1f} ms (ratio {c / p:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--capture", type=int, default=0, help="samples for the GINO capture timing")
    parser.add_argument("--only", choices=["capture"], default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        uno = UNO(
            in_channels=1,
            out_channels=1,
            hidden_channels=32,
            lifting_channels=64,
            projection_channels=64,
            n_layers=4,
            uno_out_channels=[32, 32, 32, 32],
            uno_n_modes=[[16, 16], [8, 8], [8, 8], [16, 16]],
            uno_scalings=[[1, 1], [0.5, 0.5], [1, 1], [2, 2]],
            channel_mlp_skip="linear",
        ).eval()
    gino = GINO(
        in_channels=1,
        out_channels=1,
        gno_coord_dim=2,
        fno_n_modes=(12, 12),
        fno_hidden_channels=32,
        fno_n_layers=4,
        in_gno_radius=0.05,
        out_gno_radius=0.05,
        gno_use_open3d=False,
        gno_use_torch_scatter=False,
        in_gno_channel_mlp_hidden_layers=[32],
        out_gno_channel_mlp_hidden_layers=[32],
        fno_in_channels=3,
    ).eval()
    axes = torch.linspace(0, 1, 32)
    latent = torch.stack(torch.meshgrid(axes, axes, indexing="ij"), -1).unsqueeze(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats (median)"
    )
    geom, queries = torch.rand(1, 2048, 2), torch.rand(1, 2048, 2)
    if args.capture:
        with torch.no_grad():
            _compare_capture(gino, geom, latent, queries, args.capture, max(1, min(args.repeats, 3)))
    if args.only == "capture":
        return
    with torch.no_grad():
        _compare("UNO 2D 64x64 batch 4", uno, (torch.randn(4, 1, 64, 64),), {}, args.repeats, args.warmup)
        _compare(
            "GINO 2D latent 32x32 batch 4",
            gino,
            (torch.rand(1, 2048, 2),),
            {
                "latent_queries": latent,
                "output_queries": torch.rand(1, 2048, 2),
                "x": torch.randn(4, 2048, 1),
            },
            args.repeats,
            args.warmup,
        )


if __name__ == "__main__":
    main()
