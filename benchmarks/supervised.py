"""Supervised SAE on the labelled Burgers benchmark: compositional reconstruction and interventions.

Pipeline: generate ``burgers_labelled`` (3 factors x 3 categories, 30 training samples per combination
on average, fresh nuisances in the test split), train the benchmark FNO on every combination (cached),
capture one hook into Zarr stores, then for each seed:

1. hold out ``--holdout`` full label combinations (random, every pair of categories stays in training);
   fit the supervised SAE, the ridge regression from labels, the mean-difference steering vectors and an
   unsupervised SAE-FNO (TopK) on the training rows without them;
2. **held-out reconstruction**: explained variance on the test rows of the held-out combinations;
3. **interventions** on every test row, one factor at a time (category -> next category): the FNO's
   prediction with the edited activation against the solver's counterfactual (same nuisance, new labels)
   and against the FNO on the counterfactual input; "do nothing" is the FNO on the original input.

Usage::

    python benchmarks/supervised.py [--seeds 0 1 2] [--out benchmarks/results/supervised.md]

Writes a Markdown table (and ``.json`` beside it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import saeno
from saeno.supervised import baselines, benchmark_data, model_fno, training
from saeno.supervised import intervene as iv


def capture(hooked, split, hook: str, path: Path):
    return saeno.capture(hooked, split.dataset(), hook, path, batch_size=64, progress=False)


def run_seed(seed: int, args, train, test, a_tr, a_te, hooked) -> dict:
    factors = train.factors
    holdout = training.pick_holdout(factors, args.holdout, seed=seed)
    held_tr = training.holdout_mask(train.codes, factors, holdout)
    held_te = training.holdout_mask(test.codes, factors, holdout)
    rows = np.flatnonzero(~held_tr)
    ctr = {f: c[rows] for f, c in train.codes.items()}
    t0 = time.perf_counter()
    fit = training.fit_supervised(
        a_tr,
        train.codes,
        factors,
        holdout=holdout,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        decorrelate=args.decorrelate,
        block_size=args.block_size,
        nuisance_size=args.nuisance_size,
        modes=args.modes,
        nuisance_modes=args.nuisance_modes,
        hidden=args.hidden,
        seed=seed,
    )
    t_fit = time.perf_counter() - t0
    sae = fit.sae
    ridge = baselines.RidgeFromLabels(factors, alpha=args.ridge_alpha).fit(a_tr[rows], ctr)
    md = baselines.MeanDifference(factors).fit(a_tr[rows], ctr)
    uns = baselines.unsupervised_with_probes(
        a_tr[rows],
        ctr,
        a_te[held_te],
        {f: c[held_te] for f, c in test.codes.items()},
        factors,
        n_concepts=32,
        k=8,
        modes=args.modes,
        steps=args.steps,
        seed=seed,
    )

    # ---- held-out reconstruction (test rows of held-out combinations)
    cte_h = {f: c[held_te] for f, c in test.codes.items()}
    a_h = a_te[held_te]
    with torch.no_grad():
        at = torch.as_tensor(a_h)
        rec_sae = sae(at, cte_h).numpy()
        n_mean = sae.nuisance(torch.as_tensor(a_tr[rows])).mean(0, keepdim=True)
        rec_lab = sae.decode_labels(cte_h, n_mean.expand(len(a_h), -1, -1)).numpy()
        rec_seen = sae(
            torch.as_tensor(a_te[~held_te]), {f: c[~held_te] for f, c in test.codes.items()}
        ).numpy()
    recon = {
        "supervised SAE (labels + nuisance)": baselines.explained_variance(a_h, rec_sae),
        "supervised SAE (labels only)": baselines.explained_variance(a_h, rec_lab),
        "ridge from labels": baselines.explained_variance(a_h, ridge.predict(cte_h)),
        "unsupervised SAE-FNO (k=8 of 32)": uns["ev"],
        "training mean": baselines.explained_variance(a_h, np.broadcast_to(a_tr[rows].mean(0), a_h.shape)),
    }
    seen_ev = baselines.explained_variance(a_te[~held_te], rec_seen)

    # ---- interventions on all test rows, one factor at a time
    inter = {}
    x_te = torch.as_tensor(test.x)
    clean = iv.run_edited(hooked, x_te, args.hook, None)
    for f, cats in factors.items():
        new = dict(test.codes)
        new[f] = (test.codes[f] + 1) % len(cats)
        x_cf, y_cf = benchmark_data.counterfactual(
            np.arange(len(test.x)), new, split="test", resolution=args.resolution
        )
        fno_cf = iv.run_edited(hooked, x_cf, args.hook, None)
        preds = {
            "do nothing": clean,
            "supervised SAE": iv.run_edited(hooked, x_te, args.hook, iv.sae_edit(sae, test.codes, new)),
            "ridge decoder": iv.run_edited(
                hooked, x_te, args.hook, iv.array_edit(ridge.intervene, test.codes, new)
            ),
            "mean-difference steering": iv.run_edited(
                hooked, x_te, args.hook, iv.array_edit(md.intervene, test.codes, new)
            ),
            "FNO(x_cf) (reference)": fno_cf,
        }
        tgt_held = training.holdout_mask(new, factors, holdout)
        inter[f] = {
            name: {
                "vs_solver": float(iv.rel_l2(p, y_cf).mean()),
                "vs_fno_cf": float(iv.rel_l2(p, fno_cf).mean()),
                "vs_solver_heldout_target": float(iv.rel_l2(p[tgt_held], y_cf[tgt_held]).mean())
                if tgt_held.any()
                else float("nan"),
            }
            for name, p in preds.items()
        }
    return {
        "seed": seed,
        "holdout": holdout,
        "n_heldout_test": int(held_te.sum()),
        "fit_seconds": t_fit,
        "final_loss": float(np.mean(fit.losses[-50:])),
        "recon_ev_heldout": recon,
        "recon_ev_seen_test": seen_ev,
        "probe_accuracy_heldout": uns["probe_accuracy"],
        "interventions": inter,
    }


def mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


def write_table(results: list[dict], meta: dict, out: Path) -> str:
    lines = [
        "# Supervised SAE on labelled Burgers (issue 8)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Setup: {meta['setup']}",
        "",
        f"FNO `{model_fno.NAME}`: test relative L2 {meta['fno_test_rel_l2']:.4f} (trained on all "
        f"27 combinations). Hook `{meta['hook']}`. Seeds {meta['seeds']}; mean ± std over seeds. "
        f"Wall time {meta['seconds']:.0f} s ({meta['machine']}).",
        "",
        "## Held-out combinations: reconstruction (explained variance, test rows of held-out combinations)",
        "",
        "| method | sees the sample | EV |",
        "|---|---|---|",
    ]
    sees = {
        "supervised SAE (labels + nuisance)": "via the nuisance encoder",
        "supervised SAE (labels only)": "no (mean nuisance)",
        "ridge from labels": "no",
        "unsupervised SAE-FNO (k=8 of 32)": "yes (encoder)",
        "training mean": "no",
    }
    for name in results[0]["recon_ev_heldout"]:
        lines.append(
            f"| {name} | {sees[name]} | {mean_std([r['recon_ev_heldout'][name] for r in results])} |"
        )
    lines += [
        "",
        f"Supervised SAE on test rows of seen combinations: EV "
        f"{mean_std([r['recon_ev_seen_test'] for r in results])}.",
        "Linear probes (logistic regression on the unsupervised SAE's per-concept code norms), "
        "accuracy on the held-out rows: "
        + ", ".join(
            f"{f} {mean_std([r['probe_accuracy_heldout'][f] for r in results])}"
            for f in results[0]["probe_accuracy_heldout"]
        )
        + ".",
        "",
        "## Interventions: relative L2 of the edited FNO prediction (one factor changed to the "
        "next category, all test rows)",
        "",
        "| factor | method | vs solver counterfactual | vs FNO(x_cf) | vs solver, held-out target combos |",
        "|---|---|---|---|---|",
    ]
    for f in results[0]["interventions"]:
        for name in results[0]["interventions"][f]:
            cell = [
                mean_std([r["interventions"][f][name][k] for r in results])
                for k in ("vs_solver", "vs_fno_cf", "vs_solver_heldout_target")
            ]
            lines.append(f"| {f} | {name} | {cell[0]} | {cell[1]} | {cell[2]} |")
    lines += [
        "",
        "Held out per seed: "
        + "; ".join(
            f"seed {r['seed']}: " + ", ".join("/".join(h.values()) for h in r["holdout"]) for r in results
        ),
        "",
    ]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=810)
    p.add_argument("--fno-epochs", type=int, default=40)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--hook", default="blocks.1.hook_out")
    p.add_argument("--holdout", type=int, default=5, help="held-out full combinations per seed")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--decorrelate",
        type=float,
        default=10.0,
        help="weight of the nuisance-label decorrelation penalty (0: off)",
    )
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--nuisance-size", type=int, default=4)
    p.add_argument("--nuisance-modes", type=int, default=None)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--ridge-alpha", type=float, default=1e-2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/supervised.md")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train = benchmark_data.load("train", n=args.n_train, resolution=args.resolution)
    test = benchmark_data.load("test", n=args.n_train, resolution=args.resolution)
    fno = model_fno.load_or_train(n_train=args.n_train, epochs=args.fno_epochs, resolution=args.resolution)
    hooked = saeno.HookedOperator(fno).eval()
    with tempfile.TemporaryDirectory() as tmp:
        st_tr = capture(hooked, train, args.hook, Path(tmp) / "train.zarr")
        st_te = capture(hooked, test, args.hook, Path(tmp) / "test.zarr")
        codes_tr, _ = training.store_labels(st_tr)  # labels come back from the store
        assert all((codes_tr[f] == train.codes[f]).all() for f in train.factors)
        a_tr = st_tr.read(args.hook, np.arange(st_tr.n_rows))
        a_te = st_te.read(args.hook, np.arange(st_te.n_rows))
    results = []
    for seed in args.seeds:
        r = run_seed(seed, args, train, test, a_tr, a_te, hooked)
        print(json.dumps({"seed": seed, "recon": r["recon_ev_heldout"]}, indent=1))
        results.append(r)
    import os
    import platform
    import sys

    meta = {
        "command": "python " + " ".join(sys.argv),
        "hook": args.hook,
        "seeds": args.seeds,
        "fno_test_rel_l2": fno.saeno_record.get("test_rel_l2", float("nan")),
        "seconds": time.perf_counter() - t0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads",
        "setup": (
            f"{len(train.x)} training / {len(test.x)} test samples at {args.resolution} "
            f"points; {args.holdout} of 27 combinations held out per seed; supervised SAE "
            f"blocks d={args.block_size}, nuisance {args.nuisance_size} channels "
            f"(amortised band-limited encoder), decoder hidden {args.hidden}, {args.modes} "
            f"modes, {args.steps} steps of {args.batch_size}, decorrelation weight "
            f"{args.decorrelate}; unsupervised SAE-FNO 32 concepts TopK 8, "
            f"{args.steps} steps"
        ),
        "args": vars(args),
    }
    print(write_table(results, meta, Path(args.out)))


if __name__ == "__main__":
    main()
