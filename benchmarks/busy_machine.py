"""Speed that survives a busy machine: the demo's steps under each thread / wait-policy setting, idle and
beside two busy processes, in one run.

    python benchmarks/busy_machine.py [--quick] [--busy-seconds 400] [--out benchmarks/results/busy_machine.md]

For each condition (``idle``: nothing started by the benchmark; ``busy``: two CPU-bound Python processes that
the benchmark starts, bounds by ``--busy-seconds`` and stops) and each setting of :mod:`saeno.threads`
(``passive``: the default, passive waiting with all threads; ``spectral1``: passive waiting, one thread
inside neuraloperator's spectral convolutions; ``spin``: OpenMP's default policy, all threads;
``passive1``: passive waiting, one thread), a fresh child process times:

- ``fno_fit``: training steps of the darcy zoo FNO (hidden 32, 8x8 modes, 4 layers, batch 32, 32x32), run as
  the zoo runs them (``saeno.zoo.training.cpu_threads`` with the recipe's one thread, which takes effect under
  passive waiting only); median over steps after a warm-up;
- ``capture``: ``saeno capture`` of the ``example-fno2d`` model's four block outputs over 64 random 64x64
  fields into a local store (the writer thread compresses while the model runs);
- ``train_sae``: ``saeno train`` of a pointwise SAE (256 concepts, k 16, batch 4096) on that store;
- ``train_sae_fno``: ``saeno train`` of an SAE-FNO (64 concepts, 8 modes, batch 8) on that store.

Each child also prints the 1-minute load average when it started (the machine may be loaded by others: the
ratios between settings in the same run are what counts). Prints a Markdown table and writes it to ``--out``.
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

SETTINGS = ("passive", "spectral1", "spin", "passive1")
STEPS = ("fno_fit", "capture", "train_sae", "train_sae_fno")
BUSY = "import time\nend = time.time() + {s}\nx = 0\nwhile time.time() < end:\n    x += 1\n"


def child(setting: str, quick: bool) -> dict:
    """Time the demo's steps in this process under ``setting`` (the environment was set by the parent)."""
    from saeno import threads

    threads.configure(None if setting == "spin" else setting)  # before torch loads
    import torch
    from neuralop.models import FNO

    from saeno.cli.main import main
    from saeno.zoo.training import cpu_threads

    load = os.getloadavg()[0]
    out: dict = {"setting": setting, "load": load}
    threads.apply(setting if setting != "spin" else "spin")
    torch.manual_seed(0)
    model = FNO(n_modes=(8, 8), hidden_channels=32, n_layers=4, in_channels=1, out_channels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 1, 32, 32), torch.randn(32, 1, 32, 32)
    times = []
    from dataclasses import fields

    from saeno.zoo.specs import FitRecipe

    recipe_threads = next(f.default for f in fields(FitRecipe) if f.name == "cpu_threads")
    with cpu_threads(recipe_threads):  # as the zoo's recipes train
        for _ in range(4 if quick else 7):
            t = time.perf_counter()
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
    out["fno_fit"] = statistics.median(times[1:])
    threads.remove()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "fields.pt"
        torch.save({"x": torch.randn(64, 64, 64), "y": torch.randn(64, 64, 64)}, data)
        store = Path(tmp) / "acts.zarr"
        common = ["--no-progress"]
        runs = {
            "capture": [
                "capture",
                "--model",
                "example-fno2d",
                "--dataset",
                str(data),
                "--hooks",
                "blocks.*.hook_out",
                "--out",
                str(store),
                "--batch-size",
                "16",
                *common,
            ],
            "train_sae": [
                "train",
                "--store",
                str(store),
                "--hook",
                "blocks.1.hook_out",
                "--arch",
                "sae",
                "--concepts",
                "256",
                "--k",
                "16",
                "--steps",
                "20" if quick else "60",
                "--batch-size",
                "4096",
                "--out",
                str(Path(tmp) / "sae"),
                *common,
            ],
            "train_sae_fno": [
                "train",
                "--store",
                str(store),
                "--hook",
                "blocks.1.hook_out",
                "--arch",
                "sae-fno",
                "--concepts",
                "64",
                "--k",
                "8",
                "--modes",
                "8",
                "--steps",
                "4" if quick else "12",
                "--batch-size",
                "8",
                "--out",
                str(Path(tmp) / "saefno"),
                *common,
            ],
        }
        for name, argv in runs.items():
            t = time.perf_counter()
            code = main(argv)
            out[name] = time.perf_counter() - t
            if code:
                raise SystemExit(f"{name} failed with exit code {code}")
    return out


def run_child(setting: str, quick: bool) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    env["SAENO_THREADS"] = setting
    if setting != "spin":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    cmd = [sys.executable, __file__, "--child", setting] + (["--quick"] if quick else [])
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode or not lines:
        raise SystemExit(f"child {setting} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    p.add_argument("--busy-seconds", type=float, default=400, help="upper bound on the busy processes' life")
    p.add_argument("--conditions", default="idle,busy")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--out", default=None, help="write the Markdown table here")
    args = p.parse_args()
    if args.child:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            result = child(args.child, args.quick)
        print(json.dumps(result), flush=True)
        return
    results: dict[str, dict[str, dict]] = {}
    for condition in args.conditions.split(","):
        busy = []
        if condition == "busy":
            code = BUSY.format(s=args.busy_seconds)
            busy = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
        try:
            for setting in args.settings.split(","):
                r = run_child(setting, args.quick)
                results.setdefault(condition, {})[setting] = r
                print(condition, json.dumps(r), flush=True)
        finally:
            for proc in busy:
                proc.terminate()
            for proc in busy:
                proc.wait(timeout=30)
    table = format_table(results)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Seconds per step (fno_fit) or per verb, and each setting's time over the best in its condition."""
    rows = [
        "| condition | setting | load avg (1 min) at start | "
        + " | ".join(STEPS)
        + " | worst ratio to best |",
        "|---|---|---|" + "---|" * (len(STEPS) + 1),
    ]
    for condition, by_setting in results.items():
        best = {s: min(r[s] for r in by_setting.values()) for s in STEPS}
        for setting, r in by_setting.items():
            cells = [f"{r[s]:.2f} s ({r[s] / best[s]:.2f}x)" for s in STEPS]
            worst = max(r[s] / best[s] for s in STEPS)
            rows.append(
                f"| {condition} | {setting} | {r['load']:.1f} | " + " | ".join(cells) + f" | {worst:.2f}x |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
