"""The claims protocol on the planted-dictionary model (issue 14; docs/claims.md).

Each claim of the SAE-NO paper (and of its v3, arXiv 2509.03738v3) is re-tested on ``saeno.synthetic``
with 3 seeds, the ablation that isolates the claimed mechanism, a baseline and a null (the untrained
model's score). Settings and models come from :mod:`saeno.recovery`.

Commands::

    python benchmarks/recovery.py run [CLAIM ...]     # train what the claims need; rows -> JSONL
    python benchmarks/recovery.py report              # Markdown tables of the JSONL (recovery_report.py)
    python benchmarks/recovery.py quick               # the CI-size check, printed

Claims: ``lift`` (lifting recovers faster, per-model rate sweep), ``modes`` (truncated modes and smooth
atoms), ``grid`` (other grids: SAE-FNO, pointwise SAE, FlatSAE, SAE-CNN), ``sparsity`` (stability across
sparsity levels), ``local`` (localised patterns, peak picking). ``shift`` and ``usage`` are evaluated on
every trained field model and need no runs of their own. Field models first choose their learning rate
on a validation seed (9) that is never scored (``rates``). Rows are appended as each run ends, so a
partial run still yields rows, and ``run`` skips jobs whose rows exist.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from saeno import synthetic as S
from saeno.recovery import (
    TrainOptions,
    build_model,
    code_usage,
    localisation,
    model_atoms,
    rel_error,
    resolution_sweep,
    train_tracked,
)
from saeno.recovery.settings import get_setting

RESULTS = Path(__file__).resolve().parent / "results"
JSONL = RESULTS / "recovery_claims.jsonl"
SEEDS = (0, 1, 2)
VALIDATION_SEED = 9
RATES = (1e-2, 3e-2, 1e-1)
LIFT_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: field models of the claims: label -> (kind, build options)
FIELD_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "SAE-FNO": ("SAE-FNO", {"modes": 13}),
    "SAE-FNO all modes": ("SAE-FNO", {"modes": 32}),
    "SAE-CNN": ("SAE-CNN", {"kernel": 33}),
}
CLAIMS = ("rates", "lift", "modes", "grid", "local", "sparsity", "modes-long")
FIELD_STEPS = 600
NOISE_REL = 0.1  # noise shift: white noise at 10% of the test fields' standard deviation
AMP_SHIFT = (1.5, 3.0)  # amplitude shift: codes twice as strong on average (trained on 0.5..1.5)


# -- jobs --------------------------------------------------------------------------------------------


def _job(claim: str, setting: str, label: str, seed: int, lr: float, **kw: Any) -> dict[str, Any]:
    kind, opts = FIELD_MODELS.get(label, (label, {}))
    job = {
        "claim": claim,
        "setting": setting,
        "label": label,
        "kind": kind,
        "seed": seed,
        "lr": lr,
        "steps": kw.pop("steps", FIELD_STEPS),
        "batch": kw.pop("batch", 32),
        "eval_every": kw.pop("eval_every", 100),
        "build": {**opts, **kw},
    }
    return job


def job_key(job: dict[str, Any]) -> str:
    """What identifies a run (the claim tag is not part of it: claims share runs)."""
    return json.dumps(
        {k: job[k] for k in ("setting", "kind", "seed", "lr", "steps", "batch", "build")}, sort_keys=True
    )


def chosen_rates(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Best rate per (setting, label) on the validation seed: highest final recovery."""
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for r in rows:
        if r["job"]["claim"] != "rates" or r["job"]["steps"] != FIELD_STEPS:
            continue
        key = (r["job"]["setting"], r["job"]["label"])
        score = r["final"]["mean_cos"]
        if key not in best or score > best[key][0]:
            best[key] = (score, r["job"]["lr"])
    return {k: v[1] for k, v in best.items()}


def jobs_for(claim: str, rows: list[dict[str, Any]], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """The runs one claim needs (field claims read the rates chosen by ``rates``)."""
    if claim == "rates":
        return [
            _job("rates", setting, label, VALIDATION_SEED, lr)
            for setting in ("conv-smooth", "conv-noise")
            for label in FIELD_MODELS
            for lr in RATES
        ]
    if claim == "lift":
        return [
            _job("lift", "euclid-noise", "SAE", seed, lr, steps=300, batch=256, eval_every=25, lifting=lift)
            for lift in (None, 256)
            for lr in LIFT_RATES
            for seed in seeds
        ]
    rates = chosen_rates(rows)

    def lr(setting: str, label: str) -> float:
        return rates.get((setting, label), rates.get(("conv-smooth", label), 1e-2))

    if claim == "modes":
        return [
            _job("modes", s, label, seed, lr(s, label))
            for s in ("conv-smooth", "conv-noise", "conv-smooth-c4")
            for label in FIELD_MODELS
            for seed in seeds
        ]
    if claim == "modes-long":  # the same comparison with 2.5x the steps
        return [
            _job("modes-long", s, label, seed, lr(s, label), steps=1500, eval_every=250)
            for s in ("conv-smooth", "conv-noise")
            for label in ("SAE-FNO", "SAE-FNO all modes")
            for seed in seeds
        ]
    if claim == "sparsity":
        return [
            _job("sparsity", "conv-smooth", label, seed, lr("conv-smooth", label), k=k)
            for k in (1, 4)
            for label in FIELD_MODELS
            for seed in seeds
        ] + [
            _job("sparsity", "conv-smooth-c4", label, seed, lr("conv-smooth", label), k=k)
            for k in (1, 4)
            for label in ("SAE-FNO", "SAE-CNN")
            for seed in seeds
        ]
    if claim == "local":  # peak picking; the runs without it are the modes and grid claims' runs
        return [
            _job("local", setting, label, seed, lr("conv-smooth", label), peaks=1)
            for setting in ("conv-smooth", "conv-smooth-c4")
            for label in ("SAE-FNO", "SAE-CNN")
            for seed in seeds
        ]
    if claim == "grid":
        out = [
            _job("grid", "conv-smooth-c4", label, seed, lr("conv-smooth", label))
            for label in ("SAE-FNO", "SAE-CNN")
            for seed in seeds
        ]
        return out + [
            _job("grid", "conv-smooth-c4", label, seed, 1e-2)
            for label in ("SAE", "FlatSAE")
            for seed in seeds
        ]
    raise SystemExit(f"unknown claim {claim!r}: choose from {CLAIMS}")


# -- one run -----------------------------------------------------------------------------------------


def evaluate(model: Any, setting: Any, seed: int, *, full: bool) -> dict[str, Any]:
    """Test error, usage, localisation (and with ``full`` the shifted test sets and the grid sweeps)."""
    n = setting.n
    test = setting.data(seed, "test")
    clean = test.fields(n)
    out: dict[str, Any] = {"rel_error": rel_error(model, clean), "usage": code_usage(model, clean)}
    if setting.euclidean:
        return out
    out["local"] = localisation(model, test, n)
    if not full:
        return out
    amp = setting.data(seed, "shift", amplitude=AMP_SHIFT)
    noisy = S.SyntheticData(test.atoms, test.codes, noise_std=NOISE_REL * float(clean.std()), seed=77)
    out["shift"] = {
        "amplitude": rel_error(model, amp.fields(n)),
        "noise": rel_error(model, noisy.fields(n), clean=clean),
        "noise_floor": float((noisy.fields(n) - clean).norm() / clean.norm()),
    }
    out["usage_shift"] = code_usage(model, amp.fields(n))
    out["resolution"] = resolution_sweep(model, test, n)
    out["resolution_resampled"] = resolution_sweep(model, test, n, resampled=True)
    return out


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one model, evaluate it before and after; returns the JSONL row."""
    torch.set_num_threads(1)
    setting = get_setting(job["setting"])
    seed = job["seed"]
    train = setting.data(seed, "train")
    n = setting.n
    x, true = train.fields(n), train.dictionary(n)
    torch.manual_seed(seed)
    model = build_model(job["kind"], setting, **job["build"])
    shift = not setting.euclidean or job["kind"] in ("SAE-FNO", "SAE-CNN")
    null = evaluate(model, setting, seed, full=False)  # the untrained model (before normalisation)
    opts = TrainOptions(steps=job["steps"], batch=job["batch"], lr=job["lr"], eval_every=job["eval_every"])
    tracked = train_tracked(model, x, true, opts, shift=shift, seed=seed)
    row: dict[str, Any] = {"job": job, "key": job_key(job), **tracked}
    row["null"] = null
    if tracked["curve"]["step"]:
        atoms = model_atoms(model, n)
        row["final"] = S.match_atoms(atoms, true, shift_invariant=shift).as_dict()
        row["coherence"] = S.coherence(atoms)
        row["null"]["mean_cos"] = tracked["curve"]["mean_cos"][0]
    else:
        row["final"] = {"mean_cos": float("nan")}
    row["eval"] = evaluate(model, setting, seed, full=job["claim"] != "rates")
    row["true_coherence"] = S.coherence(true)
    return row


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (missing file: none; a torn last line is skipped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_claims(claims: list[str], path: Path, seeds: tuple[int, ...], workers: int) -> None:
    """Run the claims in order, appending one row per finished run, skipping runs already there."""
    t0 = time.perf_counter()
    for claim in claims:
        rows = load_rows(path)
        done = {r["key"] for r in rows}
        todo, seen = [], set()
        for job in jobs_for(claim, rows, seeds):
            if job_key(job) not in done and job_key(job) not in seen:
                todo.append(job)
                seen.add(job_key(job))
        print(f"[{time.perf_counter() - t0:6.0f}s] {claim}: {len(todo)} runs", flush=True)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for row in pool.map(run_job, todo):
                with path.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
                j = row["job"]
                print(
                    f"[{time.perf_counter() - t0:6.0f}s] {claim:8s} {j['setting']:14s} {j['label']:18s} "
                    f"seed {j['seed']} lr {j['lr']:g} {j['build']} |cos| {row['final']['mean_cos']:.3f} "
                    f"err {row['eval']['rel_error']:.3f} ({row['train_s']:.0f} s)",
                    flush=True,
                )


def quick() -> dict[str, Any]:
    """The CI-size check: the easy setting with a 2x overcomplete pointwise SAE, and the SAE-FNO's grids."""
    out: dict[str, Any] = {}
    easy = get_setting("euclid-noise").with_(n_samples=2048, n_test=64)
    train = easy.data(0)
    torch.manual_seed(0)
    sae = build_model("SAE", easy, p=32)
    tr = train_tracked(
        sae, train.fields(64), train.dictionary(64), TrainOptions(600, 256, 1e-3, 100), shift=False, seed=0
    )
    out["easy"] = tr["curve"]
    conv = get_setting("conv-smooth").with_(n_samples=512, n_test=64)
    train = conv.data(0)
    torch.manual_seed(0)
    fno = build_model("SAE-FNO", conv)
    train_tracked(
        fno, train.fields(64), train.dictionary(64), TrainOptions(150, 32, 1e-2, 50), shift=True, seed=0
    )
    out["resolution"] = resolution_sweep(fno, conv.data(0, "test"), 64)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the runs of some claims (default: all, in order)")
    r.add_argument("claims", nargs="*", default=list(CLAIMS), help=f"from {CLAIMS}")
    r.add_argument("--jsonl", type=Path, default=JSONL)
    r.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    r.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    rep = sub.add_parser("report", help="print the Markdown tables of a JSONL file")
    rep.add_argument("--jsonl", type=Path, default=JSONL)
    rep.add_argument("--plots", type=Path, default=None, help="also write the PNG plots to this folder")
    sub.add_parser("quick", help="the CI-size check, printed as JSON")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        unknown = sorted(set(args.claims) - set(CLAIMS))
        if unknown:
            raise SystemExit(f"unknown claims {unknown}: choose from {CLAIMS} (shift, usage need no runs)")
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        run_claims(args.claims, args.jsonl, tuple(args.seeds), args.workers)
        return 0
    if args.cmd == "report":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from recovery_report import report

        print(report(load_rows(args.jsonl), plots=args.plots), end="")
        return 0
    print(json.dumps(quick(), indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
