"""Training speed: saeno's trainer against SAELens's generic ``SAETrainer`` on identical data.

Both train a pointwise TopK SAE (same d_in, number of latents, k, batch size, steps, Adam, AuxK on)
on the same random activations, saved once to a ``.npy`` file. SAELens runs in its own virtual
environment (sae-lens pins transformer-lens < 4), created by this script on first use::

    python benchmarks/train_speed.py                 # creates /tmp/saeno-bench-saelens if needed
    python benchmarks/train_speed.py --venv /path/to/venv --steps 200 --threads 1

Prints the samples/s of each trainer and the ratio saeno / SAELens, measured in the same run,
alternating the two trainers ``--repeats`` times, with the fraction of the encoder-product floor.
Then the SAE-FNO: fields/s of ``train_sae`` on the default SAEFNO (32 channels, 32x32, 64 concepts,
K = 8, batch 16) with the fast path against the frozen copy of the step before it
(``benchmarks/sae_fno_baseline.py``), alternated in the same run, and the share of step time in
FFTs (``--fno-only`` runs only this part; ``--fno-steps 0`` skips it). ``--fno-interleave N``
adds the median time of single steps of the two models alternated step by step, which a shared
machine's changing load disturbs less::

    python benchmarks/train_speed.py --fno-only --fno-steps 20 --repeats 3 --fno-interleave 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SAELENS_RUNNER = r"""
import json, sys, time
import numpy as np
import torch
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
from sae_lens import SAETrainer
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

data = torch.from_numpy(np.load(cfg["data"]))
n, d_in = data.shape
bs = cfg["batch_size"]

def provider():
    epoch = 0
    while True:
        g = torch.Generator().manual_seed(epoch)
        shuffled = data[torch.randperm(n, generator=g)]
        for i in range(n // bs):
            yield shuffled[i * bs:(i + 1) * bs]
        epoch += 1

def run(steps):
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=cfg["latents"], k=cfg["k"],
                                                 dtype="float32", device="cpu"))
    tcfg = SAETrainerConfig(total_training_samples=steps * bs, train_batch_size_samples=bs,
                            lr=cfg["lr"], lr_end=cfg["lr"], device="cpu", logger=LoggingConfig(log_to_wandb=False),
                            n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False)
    trainer = SAETrainer(tcfg, sae, provider())
    t, c = time.perf_counter(), time.process_time()
    trainer.fit()
    return time.perf_counter() - t, time.process_time() - c

run(5)  # warm-up
elapsed, cpu = run(cfg["steps"])
print(json.dumps({"elapsed_s": elapsed, "samples_per_s": cfg["steps"] * bs / elapsed,
                  "samples_per_cpu_s": cfg["steps"] * bs / cpu}))
"""


def ensure_venv(venv: Path) -> Path:
    """The venv's python, creating the venv with torch==2.13.0 and sae-lens when missing."""
    py = venv / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import sae_lens"], capture_output=True).returncode == 0
        if ok:
            return py
    print(f"creating {venv} with sae-lens (once; several minutes)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)  # CPU wheel first: never pull CUDA builds
    subprocess.run(pip + ["sae-lens"], check=True)
    return py


def run_saelens(py: Path, cfg: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(SAELENS_RUNNER)
    env = {**os.environ, "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    out = subprocess.run([str(py), fh.name, json.dumps(cfg)], capture_output=True, text=True, env=env)
    os.unlink(fh.name)
    if out.returncode != 0:
        raise RuntimeError(f"SAELens run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_saeno(cfg: dict, dense: bool = False, kernels: bool = True) -> dict:
    """saeno's trainer; ``dense=True`` runs the dense TopK step it had before the sparse path,
    ``kernels=False`` the sparse path with torch operations only (as without numba)."""
    import contextlib

    import torch

    from saeno.sae import SAE, topk_kernel
    from saeno.sae.base import SparseAutoencoder
    from saeno.train.trainer import train_sae

    torch.set_num_threads(cfg["threads"])
    data = torch.from_numpy(np.load(cfg["data"]))
    if kernels and not topk_kernel.available():
        print("  (numba is not installed: saeno runs without its compiled kernels)")

    def run(steps: int) -> tuple[float, float]:
        torch.manual_seed(0)
        sae = SAE(data.shape[1], cfg["latents"], sparsity={"type": "topk", "k": cfg["k"]})
        if dense:
            sae.forward_train = lambda a: SparseAutoencoder.forward_train(sae, a)
        with contextlib.ExitStack() as stack:
            if not kernels:
                stack.callback(setattr, topk_kernel, "enabled", True)
                topk_kernel.enabled = False
            return _timed_train(sae, data, steps, cfg, train_sae)

    run(5)
    elapsed, cpu = run(cfg["steps"])
    n = cfg["steps"] * cfg["batch_size"]
    return {"elapsed_s": elapsed, "samples_per_s": n / elapsed, "samples_per_cpu_s": n / cpu}


def _timed_train(sae: Any, data: Any, steps: int, cfg: dict, train_sae: Any) -> tuple[float, float]:
    """Wall and CPU seconds of one ``train_sae`` call (statistics pass and shuffles included)."""
    t, c = time.perf_counter(), time.process_time()
    train_sae(
        sae,
        data,
        steps=steps,
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        progress=False,
        log_every=100,
        normalize="channel",
        lr_decay_frac=0.0,
    )
    return time.perf_counter() - t, time.process_time() - c


def encoder_floor(cfg: dict, d_in: int) -> float:
    """Samples/s if a step cost only its dense encoder product, at this machine's measured speed."""
    import torch

    torch.set_num_threads(cfg["threads"])
    x = torch.randn(cfg["batch_size"], d_in)
    w, b = torch.randn(d_in, cfg["latents"]), torch.randn(cfg["latents"])
    for _ in range(3):
        torch.addmm(b, x, w)
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        torch.addmm(b, x, w)
        best = min(best, time.perf_counter() - t)
    return cfg["batch_size"] / best


FNO_SHAPE = {"channels": 32, "grid": (32, 32), "concepts": 64, "modes": 8, "batch": 16}
#: ``--fno-sparsity``: the SAEFNO default, or the previous one (16 concepts, each on its own quarter)
FNO_SPARSITY: dict[str, dict | None] = {
    "default": None,
    "k16": {"k": 16, "domain_frac": 0.25, "domain_pool": "concept"},
}
_fno_sparsity: dict | None = None
#: ops that are transforms: full FFTs (baseline) and the truncated-DFT products (fast path)
_FFT_OPS = ("fft",)


def _fno_model(baseline: bool) -> Any:
    """The default SAEFNO at FNO_SHAPE (with ``--fno-sparsity k16``: the previous sparsity)."""
    import torch

    from saeno.sae import SAEFNO
    from saeno.sae.sae_fno import DEFAULT_SPARSITY

    torch.manual_seed(0)
    sparsity = None if _fno_sparsity is None else {**DEFAULT_SPARSITY, **_fno_sparsity}
    sae = SAEFNO(
        FNO_SHAPE["channels"], FNO_SHAPE["concepts"], ndim=2, modes=FNO_SHAPE["modes"], sparsity=sparsity
    )
    if baseline:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from sae_fno_baseline import freeze

        freeze(sae)
    return sae


def _fno_data() -> Any:
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(256, FNO_SHAPE["channels"], *FNO_SHAPE["grid"], generator=g)


def run_sae_fno(threads: int, steps: int, baseline: bool, old_adam: bool = False) -> dict:
    """fields/s of ``train_sae`` on the default SAE-FNO.

    ``baseline``: the frozen old compute; ``old_adam``: with the optimiser built as before too
    (the whole step as it was).
    """
    import contextlib

    import torch

    from saeno.train.trainer import train_sae

    torch.set_num_threads(threads)
    x, bs = _fno_data(), FNO_SHAPE["batch"]
    sae = _fno_model(baseline)
    ctx = contextlib.nullcontext()
    if old_adam:
        from sae_fno_baseline import todays_optimizer

        ctx = todays_optimizer()
    with ctx:
        return _time_fno(sae, x, bs, steps, train_sae)


def _time_fno(sae: Any, x: Any, bs: int, steps: int, train_sae: Any) -> dict:
    train_sae(sae, x, steps=2, batch_size=bs, progress=False)
    t, c = time.perf_counter(), time.process_time()
    train_sae(sae, x, steps=steps, batch_size=bs, progress=False, log_every=100)
    el, cpu = time.perf_counter() - t, time.process_time() - c
    n_points = FNO_SHAPE["grid"][0] * FNO_SHAPE["grid"][1]
    return {
        "fields_per_s": steps * bs / el,
        "points_per_s": steps * bs * n_points / el,
        "fields_per_cpu_s": steps * bs / cpu,  # CPU time: less sensitive to other jobs' load
    }


def _fno_step(baseline: bool, x: Any) -> Any:
    """One SAE-FNO training step on the batch ``x`` as a closure (its model, optimizer and loss)."""
    import torch

    from saeno.train.trainer import build_optimizer, sae_loss

    sae = _fno_model(baseline)
    sae.set_normalization(x.mean((0, 2, 3)), x.std((0, 2, 3)))
    opt = build_optimizer(sae, 1e-3)
    dead = torch.zeros(sae.n_concepts, dtype=torch.bool)

    def step() -> None:
        loss, *_ = sae_loss(sae, x, dead, False, 32, 1 / 32)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.normalize_decoder_()

    return step


def fno_transform_share(threads: int, steps: int, baseline: bool) -> dict:
    """Share of the self CPU time of training steps spent in FFTs and in the DFT products.

    The fast path runs no FFT; its truncated-DFT products (``to_modes``/``from_modes``, forward
    and backward) are timed under profiler labels installed for this measurement only.
    """
    import contextlib

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    import saeno.sae.sae_fno as fno_mod
    from saeno.sae import spectral

    torch.set_num_threads(threads)
    x = _fno_data()[: FNO_SHAPE["batch"]]
    step = _fno_step(baseline, x)

    originals = {"to_modes": spectral.to_modes, "from_modes": spectral.from_modes}

    def labelled(name):
        fn = originals[name]

        def wrapper(*args, **kw):
            with record_function(f"dft::{name}"):
                return fn(*args, **kw)

        return wrapper

    for _ in range(3):
        step()
    patched = contextlib.ExitStack()
    for mod in (spectral, fno_mod):
        for name in originals:
            if hasattr(mod, name):
                old = getattr(mod, name)
                setattr(mod, name, labelled(name))
                patched.callback(setattr, mod, name, old)
    with patched, profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    fft = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in _FFT_OPS))
    # forward DFT products: the CPU time inside the labels (their children)
    dft = sum(e.cpu_time_total for e in events if e.key.startswith("dft::"))
    return {"fft_share": fft / total, "dft_forward_share": dft / total}


def fno_interleaved_steps(threads: int, steps: int) -> dict:
    """Median wall time of one training step, fast path and frozen baseline alternated step by step.

    Both models train in this process on the same batch (``sae_loss``, backward, Adam, the
    decoder's renormalisation: what ``train_sae`` does per step, without its loader and logging).
    Alternating single steps exposes both to the same load, so their ratio drifts less than that
    of whole runs on a shared machine.
    """
    import statistics

    import torch

    torch.set_num_threads(threads)
    x = _fno_data()[: FNO_SHAPE["batch"]]
    fast, base = _fno_step(False, x), _fno_step(True, x)
    for _ in range(3):
        fast()
        base()
    t_fast, t_base = [], []
    for _ in range(steps):
        t = time.perf_counter()
        fast()
        t_fast.append(time.perf_counter() - t)
        t = time.perf_counter()
        base()
        t_base.append(time.perf_counter() - t)
    return {"fast_ms": 1e3 * statistics.median(t_fast), "base_ms": 1e3 * statistics.median(t_base)}


def report_sae_fno(args: argparse.Namespace) -> None:
    """SAE-FNO fields/s, fast path against the frozen baseline, alternated in this run."""
    global _fno_sparsity
    _fno_sparsity = FNO_SPARSITY[args.fno_sparsity]
    sp = _fno_model(False).sparsity.config()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    print(
        f"SAE-FNO 2D (C=32, 32x32, p=64, K=8, bias field, --fno-sparsity {args.fno_sparsity}: "
        f"TopK {sp['k']} concepts, domain_frac {sp['domain_frac']}, "
        f"domain_pool {sp.get('domain_pool', 'concept')}; batch 16; steps={args.fno_steps} threads={args.threads})"
    )
    fast, base, fast_cpu, base_cpu, old, old_cpu = [], [], [], [], [], []
    for r in range(args.repeats):
        o = run_sae_fno(args.threads, args.fno_steps, baseline=True, old_adam=True)
        b = run_sae_fno(args.threads, args.fno_steps, baseline=True)
        f = run_sae_fno(args.threads, args.fno_steps, baseline=False)
        old.append(o["fields_per_s"])
        base.append(b["fields_per_s"])
        fast.append(f["fields_per_s"])
        old_cpu.append(o["fields_per_cpu_s"])
        base_cpu.append(b["fields_per_cpu_s"])
        fast_cpu.append(f["fields_per_cpu_s"])
        print(
            f"  repeat {r}: fast {fast[-1]:.1f} fields/s, baseline compute {base[-1]:.1f}, "
            f"baseline step with its old Adam {old[-1]:.1f}; ratios {fast[-1] / base[-1]:.2f}, "
            f"{fast[-1] / old[-1]:.2f}; per CPU second: fast {fast_cpu[-1]:.1f}, baseline "
            f"{base_cpu[-1]:.1f}, old step {old_cpu[-1]:.1f}, ratios "
            f"{fast_cpu[-1] / base_cpu[-1]:.2f}, {fast_cpu[-1] / old_cpu[-1]:.2f}"
        )
    print(
        f"best, whole step as before (old compute and old Adam): {max(old):.1f} fields/s, "
        f"{max(old_cpu):.1f} per CPU second; ratio fast / old step {max(fast) / max(old):.2f} "
        f"(per CPU second {max(fast_cpu) / max(old_cpu):.2f})"
    )
    n_points = FNO_SHAPE["grid"][0] * FNO_SHAPE["grid"][1]
    print(
        f"best: fast {max(fast):.1f} fields/s ({max(fast) * n_points:,.0f} grid points/s), "
        f"baseline {max(base):.1f} fields/s; ratio fast / baseline {max(fast) / max(base):.2f}; "
        f"per CPU second {max(fast_cpu):.1f} vs {max(base_cpu):.1f}, "
        f"ratio {max(fast_cpu) / max(base_cpu):.2f}"
    )
    if args.fno_interleave > 0:
        for r in range(args.repeats):
            st = fno_interleaved_steps(args.threads, args.fno_interleave)
            print(
                f"  interleaved steps, repeat {r} ({args.fno_interleave} of each, load "
                f"{os.getloadavg()[0]:.1f}): median step fast {st['fast_ms']:.1f} ms, baseline "
                f"{st['base_ms']:.1f} ms; ratio {st['base_ms'] / st['fast_ms']:.2f}"
            )
    sb = fno_transform_share(args.threads, 5, baseline=True)
    sf = fno_transform_share(args.threads, 5, baseline=False)
    print(
        f"share of step time in FFTs: baseline {sb['fft_share']:.0%}, fast {sf['fft_share']:.0%} "
        f"(fast path: truncated-DFT products, forward pass only, {sf['dft_forward_share']:.0%})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default="/tmp/saeno-bench-saelens", help="SAELens virtual env")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--latents", type=int, default=1024)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fno-steps", type=int, default=20)
    ap.add_argument("--fno-only", action="store_true", help="only the SAE-FNO comparison")
    ap.add_argument(
        "--fno-interleave",
        type=int,
        default=0,
        help="also time this many single SAE-FNO steps of each model, alternated step by step",
    )
    ap.add_argument(
        "--fno-sparsity",
        choices=sorted(FNO_SPARSITY),
        default="default",
        help="the SAEFNO default, or k16: the previous 16 concepts each on its own quarter",
    )
    ap.add_argument("--dense", action="store_true", help="also time the dense TopK step of before")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="the final explained variance")  # short timing runs
    if args.fno_only:
        report_sae_fno(args)
        return 0

    py = ensure_venv(Path(args.venv))
    tmp = Path(tempfile.mkdtemp(prefix="saeno-bench-"))
    rng = np.random.default_rng(0)
    # sparse combinations of a random dictionary plus noise and a per-channel offset
    dic = rng.standard_normal((4 * args.d_in, args.d_in)).astype(np.float32)
    codes = (rng.random((args.rows, dic.shape[0])) < 0.02) * rng.random((args.rows, dic.shape[0]))
    acts = (
        codes.astype(np.float32) @ dic
        + 0.1 * rng.standard_normal((args.rows, args.d_in))
        + rng.standard_normal(args.d_in)
    ).astype(np.float32)
    np.save(tmp / "acts.npy", acts)
    cfg = {
        "data": str(tmp / "acts.npy"),
        "latents": args.latents,
        "k": args.k,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "threads": args.threads,
        "lr": 2e-4,
    }
    print(
        f"pointwise TopK SAE: d_in={args.d_in} latents={args.latents} k={args.k} "
        f"batch={args.batch_size} steps={args.steps} threads={args.threads}; "
        f"load average at the start: {os.getloadavg()[0]:.1f}"
    )
    ours, theirs, torch_only, before, floors = [], [], [], [], []
    ours_cpu, theirs_cpu, torch_only_cpu = [], [], []
    for r in range(args.repeats):
        sl = run_saelens(py, cfg)
        fast = run_saeno(cfg)
        plain = run_saeno(cfg, kernels=False)
        theirs.append(sl["samples_per_s"])
        theirs_cpu.append(sl["samples_per_cpu_s"])
        ours.append(fast["samples_per_s"])
        ours_cpu.append(fast["samples_per_cpu_s"])
        torch_only.append(plain["samples_per_s"])
        torch_only_cpu.append(plain["samples_per_cpu_s"])
        if args.dense:
            before.append(run_saeno(cfg, dense=True)["samples_per_s"])
        floors.append(encoder_floor(cfg, args.d_in))
        dense_txt = f", dense step {before[-1]:,.0f}" if args.dense else ""
        print(
            f"  repeat {r}: saeno {ours[-1]:,.0f} samples/s, without numba kernels {torch_only[-1]:,.0f}"
            f"{dense_txt}, SAELens {theirs[-1]:,.0f}; ratio {ours[-1] / theirs[-1]:.2f} "
            f"(without kernels {torch_only[-1] / theirs[-1]:.2f}); per CPU second: saeno "
            f"{ours_cpu[-1]:,.0f}, without kernels {torch_only_cpu[-1]:,.0f}, SAELens "
            f"{theirs_cpu[-1]:,.0f}, ratios {ours_cpu[-1] / theirs_cpu[-1]:.2f} and "
            f"{torch_only_cpu[-1] / theirs_cpu[-1]:.2f}; encoder-product floor {floors[-1]:,.0f}"
        )
    best_ours, best_theirs, best_plain = max(ours), max(theirs), max(torch_only)
    print(
        f"best: saeno {best_ours:,.0f} samples/s, without numba kernels {best_plain:,.0f}, "
        f"SAELens {best_theirs:,.0f} samples/s" + (f", dense step {max(before):,.0f}" if args.dense else "")
    )
    print(
        f"ratio saeno / SAELens (best of {args.repeats}): {best_ours / best_theirs:.2f} "
        f"(without kernels {best_plain / best_theirs:.2f}); per CPU second "
        f"{max(ours_cpu) / max(theirs_cpu):.2f} (without kernels "
        f"{max(torch_only_cpu) / max(theirs_cpu):.2f}); fraction of the encoder-product floor "
        f"{best_ours / max(floors):.2f} (without kernels {best_plain / max(floors):.2f})"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.fno_steps > 0:
        report_sae_fno(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
