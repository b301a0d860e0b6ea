"""Supervised SAE on the labelled Burgers benchmark: compositional reconstruction and interventions.

Pipeline: generate ``burgers_labelled`` (3 factors x 3 categories, 30 training samples per combination
on average, fresh nuisances in the test split), train the benchmark FNO on every combination (cached),
capture one hook into Zarr stores, solve every sample's counterfactual (each factor moved to its next
category) in both splits, then:

0. **identifiability floors** (seed-independent): for each counterfactual target, the best relative L2
   that oracles seeing only the factual sample reach on the test pairs (fitted on the training pairs);
and for each seed:

1. hold out ``--holdout`` full label combinations (scored) and ``--val-combos`` more (validation; every
   pair of categories stays in training), and a ``--val-frac`` share of the other training rows;
2. **validation**: fit the supervised SAE for each decorrelation weight of ``--grid-decorrelate`` on the
   remaining training rows and keep the one whose interventions err least on the validation rows (all
   from the training split); the ridge regression from labels, the mean-difference steering vectors
   and an unsupervised SAE-FNO (TopK) are fitted on the same rows;
3. **held-out reconstruction**: explained variance on the test rows of the scored combinations;
   **probes** on the unsupervised SAE's concepts, scored on test rows of seen combinations and of the
   held-out combinations;
4. **interventions** on every test row, one factor at a time (category -> next category): the FNO's
   prediction with the edited activation against the solver's counterfactual (same nuisance, new labels),
   against the FNO on the counterfactual input, and as the share of the gap between doing nothing and
   the floor that the edit closes.

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
from saeno.pde.cards import load_card
from saeno.supervised import baselines, benchmark_data, identifiability, model_fno, training
from saeno.supervised import intervene as iv


def capture(hooked, split, hook: str, path: Path):
    return saeno.capture(hooked, split.dataset(), hook, path, batch_size=64, progress=False)


def next_category(codes: dict, factors: dict, f: str) -> dict:
    """Every sample's codes with factor ``f`` moved to the next category (the benchmark's edit)."""
    new = dict(codes)
    new[f] = (codes[f] + 1) % len(factors[f])
    return new


def input_map(x: np.ndarray, codes: dict, new: dict, factors: dict, f: str) -> np.ndarray | None:
    """The counterfactual input computed from the factual input alone, where the card makes it a known
    function of it (viscosity: the constant log10 nu channel; drift: the constant offset of u0); None for
    the initial-condition family, whose other profiles need shape coefficients the sample does not show."""
    p = load_card(benchmark_data.CARD)["parameters"]
    out = np.array(x, dtype=np.float32, copy=True)
    if f == "viscosity":
        nu = np.array([p["viscosity"][factors[f][c]] for c in new[f]])
        out[:, 1] = np.log10(nu)[:, None]
        return out
    if f == "drift":
        old = np.array([p["drift"][factors[f][c]] for c in codes[f]])
        nw = np.array([p["drift"][factors[f][c]] for c in new[f]])
        out[:, 0] += (nw - old)[:, None].astype(np.float32)
        return out
    return None


def counterfactuals(split, split_name: str, factors: dict, resolution: int) -> dict:
    """``{factor: (new codes, x_cf, y_cf)}`` for the benchmark's edit of every sample of a split."""
    out = {}
    for f in factors:
        new = next_category(split.codes, factors, f)
        x_cf, y_cf = benchmark_data.counterfactual(
            np.arange(len(split.x)), new, split=split_name, resolution=resolution
        )
        out[f] = (new, x_cf, y_cf)
    return out


def floors(train, test, cf_tr, cf_te, fno_cf_te, hooked, hook) -> dict:
    """The identifiability floor of every counterfactual target (test pairs, oracles fitted on the
    training pairs); see :mod:`saeno.supervised.identifiability`."""
    factors = train.factors
    g_tr = benchmark_data.combination_ids(train.codes, factors)
    g_te = benchmark_data.combination_ids(test.codes, factors)
    out = {}
    for f in factors:
        new_te, x_cf_te, y_cf_te = cf_te[f]
        extra = {}
        mapped = input_map(test.x, test.codes, new_te, factors, f)
        if mapped is not None:
            assert np.allclose(mapped, x_cf_te, atol=1e-5), (
                f"input map of {f} is not the counterfactual input"
            )
            extra["FNO(x_cf), x_cf computed from x"] = iv.run_edited(hooked, mapped, hook, None).numpy()
        fl = identifiability.floor(train.x, cf_tr[f][2], g_tr, test.x, y_cf_te, g_te, extra=extra)
        out[f] = {"value": fl.value, "best": fl.best, "oracles": fl.oracles}
    return out


def split_rows(train, factors, seed: int, n_holdout: int, n_val_combos: int, val_frac: float) -> dict:
    """Scored held-out combinations, validation combinations, and the training-split row sets.

    The scored combinations' rows (both splits) never reach any fit. Validation (to choose
    hyper-parameters) uses only training-split rows: those of ``n_val_combos`` further combinations and
    a ``val_frac`` share of the remaining rows (fresh samples of seen combinations); the fits see the
    rest. The test split is scored only after the choice.
    """
    picked = training.pick_holdout(factors, n_holdout + n_val_combos, seed=seed)
    scored, val_combos = picked[:n_holdout], picked[n_holdout:]
    held_tr = training.holdout_mask(train.codes, factors, scored)
    valc_tr = training.holdout_mask(train.codes, factors, val_combos)
    rng = np.random.default_rng([seed, 7])
    rest = np.flatnonzero(~held_tr & ~valc_tr)
    val_seen = np.zeros(len(held_tr), dtype=bool)
    val_seen[rng.choice(rest, size=int(round(val_frac * len(rest))), replace=False)] = True
    fit = ~held_tr & ~valc_tr & ~val_seen
    return {
        "scored": scored,
        "val_combos": val_combos,
        "fit": np.flatnonzero(fit),
        "val": np.flatnonzero(valc_tr | val_seen),
        "val_combo_rows": np.flatnonzero(valc_tr),
    }


def subset(codes: dict, rows: np.ndarray) -> dict:
    return {f: c[rows] for f, c in codes.items()}


def fit_candidate(args, a_tr, codes, factors, rows, scored, decorrelate: float, seed: int):
    return training.fit_supervised(
        a_tr,
        codes,
        factors,
        holdout=scored,
        rows=rows,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        decorrelate=decorrelate,
        block_size=args.block_size,
        nuisance_size=args.nuisance_size,
        modes=args.modes,
        nuisance_modes=args.nuisance_modes,
        hidden=args.hidden,
        seed=seed,
    )


def validation_score(sae, train, cf_tr, rows: np.ndarray, hooked, hook: str) -> dict:
    """Mean relative L2 (vs the solver's counterfactual) of the SAE's edit of every factor on
    training-split validation rows."""
    x = train.x[rows]
    codes = subset(train.codes, rows)
    per = {}
    for f, (new, _, y_cf) in cf_tr.items():
        pred = iv.run_edited(hooked, x, hook, iv.sae_edit(sae, codes, subset(new, rows)))
        per[f] = float(iv.rel_l2(pred, y_cf[rows]).mean())
    return {"mean": float(np.mean(list(per.values()))), **per}


def run_seed(seed: int, args, train, test, a_tr, a_te, hooked, cf_tr, cf_te, fno_cf_te) -> dict:
    factors = train.factors
    sp = split_rows(train, factors, seed, args.holdout, args.val_combos, args.val_frac)
    scored, rows = sp["scored"], sp["fit"]
    held_te = training.holdout_mask(test.codes, factors, scored)
    unseen_te = held_te | training.holdout_mask(test.codes, factors, sp["val_combos"])
    seen_te = ~unseen_te
    ctr = subset(train.codes, rows)

    # ---- hyper-parameters: chosen on the validation rows (training split), never on the scored rows
    t0 = time.perf_counter()
    candidates = []
    for w in args.grid_decorrelate:
        fit = fit_candidate(args, a_tr, train.codes, factors, rows, scored, w, seed)
        val = validation_score(fit.sae, train, cf_tr, sp["val"], hooked, args.hook)
        vc = sp["val_combo_rows"]
        with torch.no_grad():
            n_mean = fit.sae.nuisance(torch.as_tensor(a_tr[rows])).mean(0, keepdim=True)
            rec = fit.sae.decode_labels(subset(train.codes, vc), n_mean.expand(len(vc), -1, -1)).numpy()
        val["labels_only_ev_val_combos"] = baselines.explained_variance(a_tr[vc], rec)
        candidates.append((val["mean"], w, fit, val))
        print(json.dumps({"seed": seed, "decorrelate": w, "validation": val}), flush=True)
    _, chosen_w, fit, _ = min(candidates, key=lambda c: c[0])
    t_fit = time.perf_counter() - t0
    sae = fit.sae
    ridge = baselines.RidgeFromLabels(factors, alpha=args.ridge_alpha).fit(a_tr[rows], ctr)
    md = baselines.MeanDifference(factors).fit(a_tr[rows], ctr)
    uns = baselines.unsupervised_with_probes(
        a_tr[rows],
        ctr,
        {
            "seen combinations (test split)": (a_te[seen_te], subset(test.codes, np.flatnonzero(seen_te))),
            "held-out combinations (test split)": (
                a_te[held_te],
                subset(test.codes, np.flatnonzero(held_te)),
            ),
        },
        factors,
        n_concepts=32,
        k=8,
        modes=args.modes,
        steps=args.steps,
        seed=seed,
    )

    # ---- held-out reconstruction (test rows of the scored held-out combinations)
    cte_h = subset(test.codes, np.flatnonzero(held_te))
    a_h = a_te[held_te]
    with torch.no_grad():
        rec_sae = sae(torch.as_tensor(a_h), cte_h).numpy()
        n_mean = sae.nuisance(torch.as_tensor(a_tr[rows])).mean(0, keepdim=True)
        rec_lab = sae.decode_labels(cte_h, n_mean.expand(len(a_h), -1, -1)).numpy()
        rec_seen = sae(torch.as_tensor(a_te[seen_te]), subset(test.codes, np.flatnonzero(seen_te))).numpy()
    recon = {
        "supervised SAE (labels + nuisance)": baselines.explained_variance(a_h, rec_sae),
        "supervised SAE (labels only)": baselines.explained_variance(a_h, rec_lab),
        "ridge from labels": baselines.explained_variance(a_h, ridge.predict(cte_h)),
        "unsupervised SAE-FNO (k=8 of 32)": uns["ev"]["held-out combinations (test split)"],
        "training mean": baselines.explained_variance(a_h, np.broadcast_to(a_tr[rows].mean(0), a_h.shape)),
    }
    seen_ev = baselines.explained_variance(a_te[seen_te], rec_seen)

    # ---- interventions on all test rows, one factor at a time
    inter = {}
    x_te = torch.as_tensor(test.x)
    clean = iv.run_edited(hooked, x_te, args.hook, None)
    for f in factors:
        new, _, y_cf = cf_te[f]
        preds = {
            "do nothing": clean,
            "supervised SAE": iv.run_edited(hooked, x_te, args.hook, iv.sae_edit(sae, test.codes, new)),
            "ridge decoder": iv.run_edited(
                hooked, x_te, args.hook, iv.array_edit(ridge.intervene, test.codes, new)
            ),
            "mean-difference steering": iv.run_edited(
                hooked, x_te, args.hook, iv.array_edit(md.intervene, test.codes, new)
            ),
            "FNO(x_cf) (reference)": fno_cf_te[f],
        }
        tgt_held = training.holdout_mask(new, factors, scored)
        inter[f] = {
            name: {
                "vs_solver": float(iv.rel_l2(p, y_cf).mean()),
                "vs_fno_cf": float(iv.rel_l2(p, fno_cf_te[f]).mean()),
                "vs_solver_heldout_target": float(iv.rel_l2(p[tgt_held], y_cf[tgt_held]).mean())
                if tgt_held.any()
                else float("nan"),
            }
            for name, p in preds.items()
        }
    return {
        "seed": seed,
        "holdout": scored,
        "validation_combos": sp["val_combos"],
        "n_fit_rows": int(len(rows)),
        "n_validation_rows": int(len(sp["val"])),
        "n_heldout_test": int(held_te.sum()),
        "n_seen_test": int(seen_te.sum()),
        "validation": [{"decorrelate": w, **v} for _, w, _, v in candidates],
        "chosen_decorrelate": chosen_w,
        "fit_seconds": t_fit,
        "final_loss": float(np.mean(fit.losses[-50:])),
        "recon_ev_heldout": recon,
        "recon_ev_seen_test": seen_ev,
        "probe_accuracy": uns["probe_accuracy"],
        "interventions": inter,
    }


def mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


def write_table(results: list[dict], meta: dict, out: Path) -> str:
    fl = meta["floors"]
    lines = [
        "# Supervised SAE on labelled Burgers",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Setup: {meta['setup']}",
        "",
        f"FNO `{model_fno.NAME}`: test relative L2 {meta['fno_test_rel_l2']:.4f} (trained on all "
        f"27 combinations). Hook `{meta['hook']}`. Seeds {[r['seed'] for r in results]}; mean ± std over seeds. "
        f"Wall time {meta['seconds']:.0f} s ({meta['machine']}).",
        "",
        "## Hyper-parameters chosen on a validation split",
        "",
        "Per seed, the decorrelation weight is chosen among "
        f"{meta['args']['grid_decorrelate']} by the mean intervention error (vs the solver's "
        "counterfactual, all three factors) on validation rows of the *training* split: the rows of "
        f"{meta['args']['val_combos']} further held-out combinations and {meta['args']['val_frac']:.0%} "
        "of the other training rows. The fits see neither; the test split is scored once, after the choice.",
        "",
        "| seed | "
        + " | ".join(f"val. error, weight {w}" for w in meta["args"]["grid_decorrelate"])
        + " | chosen |",
        "|---|" + "---|" * (len(meta["args"]["grid_decorrelate"]) + 1),
    ]
    for r in results:
        cells = [f"{v['mean']:.3f}" for v in r["validation"]]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['chosen_decorrelate']} |")
    lines += [
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
    splits = list(results[0]["probe_accuracy"])
    factors = list(results[0]["probe_accuracy"][splits[0]])
    lines += [
        "",
        f"Supervised SAE on test rows of seen combinations: EV "
        f"{mean_std([r['recon_ev_seen_test'] for r in results])}.",
        "",
        "## Probes on the unsupervised SAE's concepts",
        "",
        "Logistic regression from the per-concept code norms to each factor, fitted on the training rows; "
        "accuracy on fresh test samples of combinations seen in training, and on test samples of the "
        "held-out combinations (chance 0.333).",
        "",
        "| split | rows per seed | " + " | ".join(factors) + " |",
        "|---|---|" + "---|" * len(factors),
    ]
    n_key = {
        "seen combinations (test split)": "n_seen_test",
        "held-out combinations (test split)": "n_heldout_test",
    }
    for sname in splits:
        n = "/".join(str(r[n_key[sname]]) for r in results) if sname in n_key else "-"
        lines.append(
            f"| {sname} | {n} | "
            + " | ".join(mean_std([r["probe_accuracy"][sname][f] for r in results]) for f in factors)
            + " |"
        )
    lines += [
        "",
        "## Identifiability floors of the counterfactual targets",
        "",
        "The best relative L2 (test pairs) that a predictor seeing only the factual sample and the labels "
        "reaches, over the oracles of `saeno.supervised.identifiability` fitted on the training split's "
        "pairs: shift-aligned nearest neighbours of the same combination (k = 1, 4, 16), ridge regression, "
        "and, where the counterfactual input is a known function of the factual one (viscosity: the "
        "constant log10 nu channel; drift: the offset of u0), the FNO on that input. An upper bound on the "
        "true floor. Seed-independent.",
        "",
        "| target | floor | reached by | " + " | ".join(fl[next(iter(fl))]["oracles"]) + " |",
        "|---|---|---|" + "---|" * len(fl[next(iter(fl))]["oracles"]),
    ]
    for f, v in fl.items():
        cells = [f"{v['oracles'].get(k, float('nan')):.3f}" for k in fl[next(iter(fl))]["oracles"]]
        lines.append(f"| {f} | {v['value']:.3f} | {v['best']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Interventions: relative L2 of the edited FNO prediction (one factor changed to the "
        "next category, all test rows)",
        "",
        "Gap closed: `(nothing - method) / (nothing - floor)` against the solver, the share of the "
        "reachable improvement that the edit achieves.",
        "",
        "| factor | floor | method | vs solver counterfactual | gap closed | vs FNO(x_cf) "
        "| vs solver, held-out target combos |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in results[0]["interventions"]:
        for name in results[0]["interventions"][f]:
            cell = [
                mean_std([r["interventions"][f][name][k] for r in results])
                for k in ("vs_solver", "vs_fno_cf", "vs_solver_heldout_target")
            ]
            nothing = np.array([r["interventions"][f]["do nothing"]["vs_solver"] for r in results])
            here = np.array([r["interventions"][f][name]["vs_solver"] for r in results])
            gap = mean_std(list((nothing - here) / (nothing - fl[f]["value"])))
            lines.append(
                f"| {f} | {fl[f]['value']:.3f} | {name} | {cell[0]} | {gap} | {cell[1]} | {cell[2]} |"
            )
    lines += [
        "",
        "Held out (scored) per seed: "
        + "; ".join(
            f"seed {r['seed']}: " + ", ".join("/".join(h.values()) for h in r["holdout"]) for r in results
        ),
        "",
        "Validation combinations per seed: "
        + "; ".join(
            f"seed {r['seed']}: " + ", ".join("/".join(h.values()) for h in r["validation_combos"])
            for r in results
        ),
        "",
    ]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return text


def merge(paths: list[str], out: Path) -> str:
    """One table from several runs' ``.json`` files (seeds run as separate processes)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keep = ("steps", "grid_decorrelate", "holdout", "val_combos", "val_frac", "hook", "modes")
    for r in runs[1:]:
        if any(r["meta"]["args"][k] != runs[0]["meta"]["args"][k] for k in keep):
            raise SystemExit("the runs to merge differ in their settings")
    meta = dict(runs[0]["meta"])
    meta["command"] = (
        "`; `".join(r["meta"]["command"] for r in runs)
        + "` (in parallel), then `python "
        + (" ".join(["benchmarks/supervised.py", "--merge", *paths, "--out", str(out)]))
    )
    meta["seconds"] = max(r["meta"]["seconds"] for r in runs)
    meta["seeds"] = [s for r in runs for s in r["meta"]["seeds"]]
    results = sorted((x for r in runs for x in r["results"]), key=lambda x: x["seed"])
    return write_table(results, meta, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=810)
    p.add_argument("--fno-epochs", type=int, default=40)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--hook", default="blocks.1.hook_out")
    p.add_argument("--holdout", type=int, default=5, help="scored held-out combinations per seed")
    p.add_argument("--val-combos", type=int, default=3, help="validation combinations per seed")
    p.add_argument("--val-frac", type=float, default=0.15, help="share of the other rows for validation")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--grid-decorrelate",
        type=float,
        nargs="+",
        default=[3.0, 10.0, 30.0],
        help="decorrelation weights tried; the validation rows choose one per seed",
    )
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--nuisance-size", type=int, default=4)
    p.add_argument("--nuisance-modes", type=int, default=None)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--ridge-alpha", type=float, default=1e-2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/supervised.md")
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="instead of running: combine the .json files of runs (one seed each, same settings) into --out",
    )
    args = p.parse_args()
    if args.merge:
        print(merge(args.merge, Path(args.out)))
        return
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
    cf_tr = counterfactuals(train, "train", train.factors, args.resolution)
    cf_te = counterfactuals(test, "test", train.factors, args.resolution)
    fno_cf_te = {f: iv.run_edited(hooked, cf_te[f][1], args.hook, None) for f in train.factors}
    fl = floors(train, test, cf_tr, cf_te, fno_cf_te, hooked, args.hook)
    print(json.dumps({"floors": fl}, indent=1), flush=True)
    import os
    import platform
    import sys

    meta = {
        "command": "python " + " ".join(sys.argv),
        "hook": args.hook,
        "seeds": args.seeds,
        "fno_test_rel_l2": fno.saeno_record.get("test_rel_l2", float("nan")),
        "seconds": 0.0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads",
        "setup": (
            f"{len(train.x)} training / {len(test.x)} test samples at {args.resolution} "
            f"points; {args.holdout} of 27 combinations held out and scored per seed, "
            f"{args.val_combos} more held out for validation; supervised SAE "
            f"blocks d={args.block_size}, nuisance {args.nuisance_size} channels "
            f"(amortised band-limited encoder), decoder hidden {args.hidden}, {args.modes} "
            f"modes, {args.steps} steps of {args.batch_size}, decorrelation weight chosen per seed "
            f"among {args.grid_decorrelate}; unsupervised SAE-FNO 32 concepts TopK 8, "
            f"{args.steps} steps; every method is fitted on the same training rows"
        ),
        "floors": fl,
        "args": vars(args),
    }
    results = []
    text = ""
    for seed in args.seeds:
        r = run_seed(seed, args, train, test, a_tr, a_te, hooked, cf_tr, cf_te, fno_cf_te)
        print(json.dumps({"seed": seed, "recon": r["recon_ev_heldout"]}, indent=1), flush=True)
        results.append(r)
        meta["seconds"] = time.perf_counter() - t0
        meta["seeds_done"] = [x["seed"] for x in results]
        text = write_table(results, meta, Path(args.out))  # after every seed: partial runs keep theirs
    print(text)


if __name__ == "__main__":
    main()
