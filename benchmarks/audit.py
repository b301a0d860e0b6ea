"""Audit benchmark: can the SAE tell, from inside the FNO, which inputs are shifted and which
predictions not to trust, better than two baselines on the raw hook activations?

For darcy-fno and burgers-fno (the zoo models, cached): capture one hook on ``--n-train`` training
samples (the reference), ``--n-id`` test samples (in-distribution comparison set) and ``--n-shift``
samples of every shifted variant in the dataset card (generated with seed 1, so no shifted sample
shares its random field with a training sample). Then for each seed train an SAE-FNO and a pointwise
SAE with the demo's sizes for ``--steps-*`` steps and run ``saeno.audit``: the AUROC of test vs shifted
samples and the Spearman correlation of every score with the FNO's per-sample error (pooled over test
and shifted samples, and within the shift), for the three SAE scores and the two baselines.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/audit.py [--seeds 0 1 2] [--out benchmarks/results/audit.md]

Writes a Markdown table and ``audit.json`` beside it (``--page DIR``: also the audit page of the
first model, architecture and seed).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import saeno
from saeno.audit.scores import ALL_SCORES, BASELINE_SCORES, SAE_SCORES

MODELS = {
    "darcy-fno": {"dataset": "darcy", "hook": "blocks.2.hook_out", "ndim": 2, "modes": 8},
    "burgers-fno": {"dataset": "burgers", "hook": "blocks.2.hook_out", "ndim": 1, "modes": 16},
}


def capture_stores(model_name: str, root: Path, args: argparse.Namespace) -> dict:
    spec = MODELS[model_name]
    model = saeno.zoo.load(model_name)
    hooked = saeno.HookedOperator(model)
    ds_name = spec["dataset"]
    kw = {"progress": False}
    stores = {
        "train": saeno.capture(
            hooked,
            saeno.datasets.load(ds_name, split="train", n=args.n_train, **kw),
            [spec["hook"]],
            root / "train.zarr",
            progress=False,
        ),
        "id": saeno.capture(
            hooked,
            saeno.datasets.load(ds_name, split="test", n=args.n_id, **kw),
            [spec["hook"]],
            root / "test.zarr",
            progress=False,
        ),
    }
    shifts = {}
    for variant in saeno.datasets.card(ds_name)["variants"]:
        ds = saeno.datasets.load(ds_name, variant=variant, split="train", n=args.n_shift, seed=1, **kw)
        shifts[variant] = saeno.capture(hooked, ds, [spec["hook"]], root / f"{variant}.zarr", progress=False)
    return {"model": model, "hooked": hooked, "stores": stores, "shifts": shifts}


def train_sae(arch: str, model_name: str, store, seed: int, args: argparse.Namespace):
    spec = MODELS[model_name]
    channels = store.hook_info(spec["hook"])["shape"][0]
    torch.manual_seed(seed)
    if arch == "sae-fno":
        sae = saeno.SAEFNO(
            channels,
            64,
            ndim=spec["ndim"],
            modes=spec["modes"],
            sparsity={"type": "topk", "k": 8, "group": "concept"},
        )
        steps, batch = args.steps_sae_fno, 16
    else:
        sae = saeno.SAE(channels, 64, ndim=spec["ndim"], sparsity={"type": "topk", "k": 8, "group": "point"})
        steps, batch = args.steps_sae, 4096
    result = saeno.train_sae(
        sae, store, hook=spec["hook"], steps=steps, batch_size=batch, seed=seed, progress=False
    )
    return result.sae


def summarise(rows: list[dict]) -> dict:
    """Mean and standard deviation over seeds per (model, arch, shift, score)."""
    out: dict = {}
    for r in rows:
        key = (r["model"], r["arch"], r["shift"], r["score"])
        out.setdefault(key, {"auroc": [], "spearman_pooled": [], "spearman_within": [], "error": []})
        for m in ("auroc", "spearman_pooled", "spearman_within", "error"):
            out[key][m].append(np.nan if r[m] is None else r[m])
    return out


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if np.all(np.isnan(v)):
        return "-"
    return f"{np.nanmean(v):.2f} ± {np.nanstd(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def markdown(rows: list[dict], meta: dict) -> str:
    summary = summarise(rows)
    lines = [
        "# Audit: off-distribution scores from inside the FNO\n",
        (
            f"Command: `{meta['command']}` ({meta['wall_s']:.0f} s on a shared 2-core CPU machine under "
            f"load). Sizes: {meta['sizes']}. Mean ± standard deviation over seeds {meta['seeds']} (SAE "
            "initialisation and training order; the data and the FNO are fixed).\n"
        ),
    ]
    for model in MODELS:
        for arch in ("sae-fno", "sae"):
            keys = [k for k in summary if k[0] == model and k[1] == arch]
            if not keys:
                continue
            shifts = list(dict.fromkeys(k[2] for k in keys))
            lines.append(f"\n## {model}, {arch}: AUROC (test vs shifted samples)\n")
            lines.append(
                "| shift | FNO error (test -> shift) | "
                + " | ".join(ALL_SCORES)
                + " | best SAE > both baselines |"
            )
            lines.append("|---|---|" + "---|" * len(ALL_SCORES) + "---|")
            for shift in shifts:
                cells, means = [], {}
                for score in ALL_SCORES:
                    vals = summary[(model, arch, shift, score)]["auroc"]
                    means[score] = np.nanmean(vals)
                    cells.append(fmt(vals))
                err = summary[(model, arch, shift, ALL_SCORES[0])]["error"]
                best_sae = max(means[s] for s in SAE_SCORES)
                beats = "yes" if best_sae > max(means[s] for s in BASELINE_SCORES) else "**no**"
                lines.append(
                    f"| {shift} | {meta['id_error'][model]:.3f} -> {np.nanmean(err):.3f} | "
                    + " | ".join(cells)
                    + f" | {beats} |"
                )
            lines.append(
                f"\n{model}, {arch}: Spearman correlation of each score with the FNO's per-sample "
                "relative L2 error, pooled over test and shifted samples (within the shift in "
                "brackets)\n"
            )
            lines.append("| shift | " + " | ".join(ALL_SCORES) + " |")
            lines.append("|---|" + "---|" * len(ALL_SCORES))
            for shift in shifts:
                cells = []
                for score in ALL_SCORES:
                    s = summary[(model, arch, shift, score)]
                    cells.append(f"{fmt(s['spearman_pooled'])} ({fmt(s['spearman_within'])})")
                lines.append(f"| {shift} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--archs", nargs="+", default=["sae-fno", "sae"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-id", type=int, default=100)
    parser.add_argument("--n-shift", type=int, default=100)
    parser.add_argument("--steps-sae-fno", type=int, default=200)
    parser.add_argument("--steps-sae", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=300)
    parser.add_argument("--max-ablate", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/audit.md")
    parser.add_argument("--page", default=None, help="write the audit page of the first run here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    t_start = time.perf_counter()
    rows, id_error = [], {}
    page_done = args.page is None
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models:
            t0 = time.perf_counter()
            cap = capture_stores(model_name, Path(tmp) / model_name, args)
            print(f"{model_name}: captured in {time.perf_counter() - t0:.0f} s", flush=True)
            for arch in args.archs:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    sae = train_sae(arch, model_name, cap["stores"]["train"], seed, args)
                    t1 = time.perf_counter()
                    # the scores need no model; the ablation (one FNO pass per concept) only for the page
                    with_model = not page_done
                    res = saeno.audit(
                        sae,
                        cap["stores"]["train"],
                        list(cap["shifts"].values()),
                        model=cap["hooked"] if with_model else None,
                        id_store=cap["stores"]["id"],
                        seed=seed,
                        n_boot=args.n_boot,
                        max_ablate=args.max_ablate,
                        progress=False,
                    )
                    id_error[model_name] = res.in_distribution.mean_error
                    for variant, shift in zip(cap["shifts"], res.shifts):
                        for score in ALL_SCORES:
                            d = shift.detection[score]
                            rows.append(
                                {
                                    "model": model_name,
                                    "arch": arch,
                                    "seed": seed,
                                    "shift": variant,
                                    "score": score,
                                    "auroc": d["auroc"],
                                    "spearman_pooled": d["spearman_pooled"],
                                    "spearman_within": d["spearman_within"],
                                    "error": shift.mean_error,
                                    "moved": shift.moves["n_significant"],
                                }
                            )
                    print(
                        f"{model_name} {arch} seed {seed}: train {t1 - t0:.0f} s, audit "
                        f"{time.perf_counter() - t1:.0f} s",
                        flush=True,
                    )
                    if not page_done:
                        from saeno.export.audit_page import write_audit_page

                        res.save(args.page)
                        write_audit_page(
                            res, args.page, stores=[cap["stores"]["id"], *cap["shifts"].values()]
                        )
                        page_done = True
    wall = time.perf_counter() - t_start
    import sys

    meta = {
        "command": "python benchmarks/audit.py " + " ".join(sys.argv[1:]),
        "wall_s": wall,
        "seeds": args.seeds,
        "id_error": id_error,
        "sizes": (
            f"{args.n_train} training samples (reference), {args.n_id} test samples, "
            f"{args.n_shift} per shift; SAE-FNO and pointwise SAE with 64 concepts, TopK 8, "
            f"{args.steps_sae_fno} steps of 16 fields (SAE-FNO) and {args.steps_sae} steps of "
            f"4096 points (pointwise); {args.n_boot} bootstrap resamples"
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(rows, meta))
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(out.read_text())


if __name__ == "__main__":
    main()
