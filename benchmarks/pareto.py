"""Matched comparison of the SAE-FNO and the pointwise SAE on real FNO activations (issue 14).

For every codes-per-point budget ``c`` (default 2, 4, 8, 16), variant and seed: train an SAE on a store
captured from a zoo FNO (the demo's data: 400 training samples, ``blocks.2.hook_out``), evaluate it on
the held-out store at the training grid and at twice it, and record the faithfulness to the FNO
(``output_change = ||f(a_hat) - f(a)|| / ||f(a)||``), EV (against the channel mean and the mean field),
codes per point, domain fraction and never-firing share. Variants:

- ``fno``: the default :class:`~saeno.sae.SAEFNO` (bias field, spectral rate 0.1x, revive balancing),
  TopK over ``8c`` concepts per sample (at most all of them) sharing ``c`` codes per point
  (``domain_pool="sample"``);
- ``fno-nobias``: the same without the bias field;
- ``sae``: the pointwise SAE, TopK ``c`` per point, with its constant decoder bias;
- ``sae-bias``: the pointwise SAE with a bias field (trained on fields).

Rows are appended to ``--out`` (JSON lines) as they finish, so an interrupted run keeps its rows; the
dictionaries (atoms at the training grid, code maps of the first 16 held-out samples) go to
``--dicts`` for the stability analysis (``--report``: Hungarian-matched ``|cos|`` of atoms across seeds,
correlation of matched code maps, share of atoms reproduced at ``|cos| >= 0.9``).

``--both-grids`` trains every variant on the training grid and twice it (:class:`saeno.train.MultiGrid`,
batches alternating between the grids, equal points per batch unless ``--grid-batches fields``), with
the same steps and batch size (counted at the coarse grid) as the one-grid run; ``--unseen R ...`` also
scores on ``test_R.zarr`` stores of grids no model trained on.

Example (the runs behind ``benchmarks/results/pareto.md``)::

    python benchmarks/pareto.py capture --out /tmp/darcy       # stores (train 400 and test 100, @32 and @64)
    python benchmarks/pareto.py run --stores /tmp/darcy --k 4 --seeds 0 1 2 --out rows.jsonl
    python benchmarks/pareto.py run --stores /tmp/darcy --k 4 --both-grids --unseen 16 128 --out rows.jsonl
    python benchmarks/pareto.py report --rows rows.jsonl --dicts dicts --md pareto.md --plot pareto.png
    python benchmarks/pareto.py compare --rows rows.jsonl --variants fno sae-bias   # the ratios per grid
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HOOK = "blocks.2.hook_out"
VARIANTS = ("fno", "fno-nobias", "sae", "sae-bias")


def capture(
    out: str, zoo: str = "darcy-fno", n_train: int = 400, n_test: int = 100, hook: str = HOOK
) -> None:
    """Capture the demo's stores for ``zoo``: train and test at its grid and at twice it."""
    import saeno

    model = saeno.zoo.load(zoo, progress=False).eval()
    res = int(model.saeno_config["resolution"])
    pde = model.saeno_config.get("dataset", zoo.split("-fno")[0])
    hooked = saeno.HookedOperator(model)
    for r in (res, 2 * res):  # the same training inputs at the training grid and at twice it
        train = saeno.datasets.load(pde, split="train", resolution=r, n=n_train, progress=False)
        saeno.capture(hooked, train, [hook], f"{out}/train_{r}.zarr", progress=False, overwrite=True)
    for r in (res, 2 * res):
        ds = saeno.datasets.load(pde, split="test", resolution=r, n=n_test, progress=False)
        saeno.capture(hooked, ds, [hook], f"{out}/test_{r}.zarr", progress=False, overwrite=True)


def build(
    variant: str,
    channels: int,
    ndim: int,
    c: int,
    concepts: int,
    modes: int,
    fno_kw: dict | None = None,
    sparsity_kw: dict | None = None,
    sae_bias_modes: int | None = None,
):
    """The model of ``variant`` at ``c`` codes per point (``fno_kw``: extra SAEFNO arguments;
    ``sparsity_kw``: extra options of the SAE-FNO's concept TopK, e.g. ``{"balance": 0.01}``)."""
    from saeno.sae import SAE, SAEFNO

    if variant.startswith("fno"):
        from saeno.sae.sae_fno import DEFAULT_SPARSITY

        k = min(round(c / DEFAULT_SPARSITY["domain_frac"]), concepts)  # c codes per point
        sp = {**DEFAULT_SPARSITY, "k": k, "domain_frac": c / k, **(sparsity_kw or {})}
        bias = "modes" if variant == "fno" else None
        kw = {"bias_field": bias, **(fno_kw or {})}
        return SAEFNO(channels, concepts, ndim=ndim, modes=modes, sparsity=sp, **kw)
    sp = {"type": "topk", "k": c, "group": "point"}
    return SAE(
        channels,
        concepts,
        ndim=ndim,
        sparsity=sp,
        bias_field=(sae_bias_modes or modes) if variant == "sae-bias" else None,
    )


def run(args: argparse.Namespace) -> None:
    """Train and evaluate every (c, variant, seed); append JSON rows to ``args.out``."""
    import saeno
    from saeno.evaluation import evaluate
    from saeno.store import ActivationStore

    stores = Path(args.stores)
    res = min(int(p.stem.split("_")[1]) for p in stores.glob("train_*.zarr"))
    train_path = stores / f"train_{res}.zarr"
    train: Any = ActivationStore.open(train_path)
    if args.both_grids:  # every variant on the training grid and twice it, equal points per batch
        from saeno.train import MultiGrid

        fine = stores / f"train_{2 * res}.zarr"
        if not fine.exists():
            raise SystemExit(f"--both-grids needs {fine}: rerun `pareto.py capture`")
        train = MultiGrid([train, ActivationStore.open(fine)], grid_batches=args.grid_batches)
    test = ActivationStore.open(stores / f"test_{res}.zarr")
    others = [ActivationStore.open(stores / f"test_{2 * res}.zarr")]
    others += [ActivationStore.open(stores / f"test_{r}.zarr") for r in args.unseen]
    fno = saeno.zoo.load(args.zoo, progress=False)
    hooked = saeno.HookedOperator(fno).eval()
    hook = args.hook
    modes = args.modes or int(fno.saeno_config["fno"]["n_modes"][0])
    info = ActivationStore.open(train_path).hook_info(hook)
    channels, ndim = int(info["shape"][0]), len(info["shape"]) - 1
    dicts = Path(args.dicts) if args.dicts else None
    for c in args.k:
        for variant in args.variants:
            for seed in args.seeds:
                torch.manual_seed(seed)
                sae = build(
                    variant,
                    channels,
                    ndim,
                    c,
                    args.concepts,
                    modes,
                    json.loads(args.fno_kw) if args.fno_kw else None,
                    json.loads(args.sparsity_kw) if args.sparsity_kw else None,
                    args.sae_bias_modes,
                )
                field = sae.view == "field"
                batch = (
                    args.batch_fno
                    if variant.startswith("fno")
                    else (max(1, args.batch_sae // math.prod(info["shape"][1:])) if field else args.batch_sae)
                )
                steps = args.steps_fno if variant.startswith("fno") else args.steps_sae
                t0 = time.perf_counter()
                train_kw = json.loads(args.train_kw) if args.train_kw else {}
                result = saeno.train_sae(
                    sae,
                    train,
                    hook=hook,
                    steps=steps,
                    batch_size=batch,
                    seed=seed,
                    progress=False,
                    **train_kw,
                )
                train_s = time.perf_counter() - t0
                rep = evaluate(
                    result.sae,
                    test,
                    hook,
                    hooked=hooked,
                    other_stores=[] if args.no_other else others,
                    progress=False,
                )
                row = {
                    "zoo": args.zoo,
                    "hook": hook,
                    "variant": variant + (args.tag or ""),
                    "train_grids": [res, 2 * res] if args.both_grids else [res],
                    "c": c,
                    "seed": seed,
                    "steps": steps,
                    "batch": batch,
                    "train_s": round(train_s, 1),
                    "config": sae.config(),
                }
                for r in rep["results"]:
                    tag = "x".join(map(str, r["grid"]))
                    row[tag] = {
                        k: r.get(k)
                        for k in (
                            "output_change",
                            "explained_variance",
                            "explained_variance_mean_field",
                            "L0_per_point",
                            "L0_concepts",
                            "domain_fraction",
                            "dead_fraction",
                            "never_firing",
                            "rare_concepts",
                            "density_window_samples",
                            "loss_recovered",
                            "splice_added_abs",
                            "splice_added_error",
                            "L_clean",
                            "L_sae",
                        )
                    }
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(row, default=float) + "\n")
                g = "x".join([str(res)] * ndim)
                print(
                    f"{variant:10s} c={c:2d} seed={seed} out_chg={row[g]['output_change']:.4f} "
                    f"EV={row[g]['explained_variance']:.4f} L0pt={row[g]['L0_per_point']:.2f} "
                    f"dead={row[g]['dead_fraction']:.2f} ({train_s:.0f} s)",
                    flush=True,
                )
                if dicts is not None:
                    dicts.mkdir(parents=True, exist_ok=True)
                    with torch.no_grad():
                        a = torch.from_numpy(test.read(hook, slice(0, 16))).float()
                        atoms = result.sae.concepts((res,) * ndim).float()
                        codes = result.sae.encode(a).float()
                    torch.save(
                        {"atoms": atoms, "codes": codes},
                        dicts / f"{args.zoo}_{row['variant']}_c{c}_s{seed}.pt",
                    )


# ---------------------------------------------------------------------------------- report


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% t interval (0 for one value)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), 0.0
    from scipy import stats

    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def stability(paths: list[Path], shifts: bool, threshold: float = 0.9) -> dict[str, float]:
    """Dictionary stability over all seed pairs (:func:`saeno.sae.stability.compare_dictionaries`).

    ``atom_cos``/``code_corr``/``reproduced``: matched with ``shifts`` (periodic shifts of the
    rendered atoms for an SAE-FNO); ``atom_cos_plain``: matched without shifts; ``null``: the same
    matching after a random rotation of the second dictionary's channels (the chance level).
    """
    from saeno.sae.stability import compare_dictionaries, rotated_null_cos

    loaded = [torch.load(p) for p in paths]
    out: dict[str, list[float]] = {
        "atom_cos": [],
        "atom_cos_plain": [],
        "code_corr": [],
        "reproduced": [],
        "null": [],
    }
    for i in range(len(loaded)):
        for j in range(i + 1, len(loaded)):
            a, b = loaded[i], loaded[j]
            sc = compare_dictionaries(
                a["atoms"], b["atoms"], a["codes"], b["codes"], shifts=shifts, threshold=threshold
            )
            out["atom_cos"].append(sc.atom_cos)
            out["code_corr"].append(sc.code_corr)
            out["reproduced"].append(sc.reproduced)
            out["atom_cos_plain"].append(
                compare_dictionaries(a["atoms"], b["atoms"], shifts=False).atom_cos if shifts else sc.atom_cos
            )
            out["null"].append(rotated_null_cos(a["atoms"], b["atoms"], shifts=shifts, trials=2, seed=i + j))
    res = {k: float(np.nanmean(v)) for k, v in out.items()}
    res["pairs"] = len(out["atom_cos"])
    return res


def report(args: argparse.Namespace) -> None:
    """Aggregate rows (mean and 95% interval over seeds) into a Markdown table and a plot."""
    rows = [json.loads(line) for f in args.rows for line in Path(f).read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["zoo"], r["variant"], r["c"]), []).append(r)
    lines = [
        (
            "| FNO | model | c | seeds | grid | output change | EV | EV vs mean field | codes/point | "
            "domain | never firing | loss rec. | error added (abs) |"
        ),
        "|" + "---|" * 13,
    ]
    stab_lines = [
        "| FNO | model | c | seed pairs | atoms |cos| | unshifted |cos| | null |cos| | code corr. | "
        "reproduced (|cos| >= 0.9) |",
        "|" + "---|" * 9,
    ]
    summary: dict[tuple, dict] = {}
    for (zoo, variant, c), rs in sorted(groups.items()):
        grids = [k for k in rs[0] if isinstance(rs[0][k], dict) and k[0].isdigit()]
        stab = {}
        if args.dicts:
            paths = sorted(Path(args.dicts).glob(f"{zoo}_{variant}_c{c}_s*.pt"))
            if len(paths) > 1:
                stab = stability(paths, shifts=variant.startswith("fno"))
                stab_lines.append(
                    f"| {zoo} | {variant} | {c} | {stab['pairs']} | {stab['atom_cos']:.2f} | "
                    f"{stab['atom_cos_plain']:.2f} | {stab['null']:.2f} | {stab['code_corr']:.2f} | "
                    f"{stab['reproduced']:.2f} |"
                )
        for g in grids:
            stat = {
                k: _mean_ci([r[g][k] for r in rs])
                for k in (
                    "output_change",
                    "explained_variance",
                    "explained_variance_mean_field",
                    "L0_per_point",
                    "domain_fraction",
                    "dead_fraction",
                    "loss_recovered",
                    "splice_added_abs",
                )
            }
            summary[(zoo, variant, c, g)] = stat

            def f(k: str, d: int = 3, stat: dict = stat) -> str:
                m, h = stat[k]
                return "-" if not np.isfinite(m) else f"{m:.{d}f} ± {h:.{d}f}"

            lines.append(
                f"| {zoo} | {variant} | {c} | {len(rs)} | {g} | {f('output_change', 4)} | "
                f"{f('explained_variance')} | {f('explained_variance_mean_field')} | "
                f"{f('L0_per_point', 2)} | {f('domain_fraction', 2)} | "
                f"{f('dead_fraction', 2)} | {f('loss_recovered')} | "
                f"{f('splice_added_abs', 4)} |"
            )
    text = "\n".join(lines) + "\n"
    if len(stab_lines) > 2:
        text += "\nStability across seeds:\n\n" + "\n".join(stab_lines) + "\n"
    if args.md:
        Path(args.md).write_text(text)
    print(text)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [
            ("output_change", "output change ||f(â)-f(a)||/||f(a)||"),
            ("explained_variance", "EV"),
            ("dead_fraction", "never-firing share"),
        ]
        zoos = sorted({k[0] for k in summary})
        fig, axes = plt.subplots(len(zoos), 3, figsize=(13, 3.4 * len(zoos)), squeeze=False)
        for row_axes, zoo in zip(axes, zoos):
            g0 = min({k[3] for k in summary if k[0] == zoo}, key=lambda s: int(s.split("x")[0]))
            for variant in sorted({k[1] for k in summary if k[0] == zoo}):
                pts = sorted(
                    (k[2], v) for k, v in summary.items() if k[0] == zoo and k[1] == variant and k[3] == g0
                )
                for ax, (key, label) in zip(row_axes, keys):
                    x = [p[1]["L0_per_point"][0] for p in pts]
                    y = [p[1][key][0] for p in pts]
                    e = [p[1][key][1] for p in pts]
                    color = f"C{VARIANTS.index(variant)}" if variant in VARIANTS else None
                    ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=variant, color=color)
                    ax.set_xlabel("codes per point")
                    ax.set_title(f"{zoo} ({g0}): {label}", fontsize=9)
                    ax.set_xscale("log", base=2)
                    ax.set_xlim(1.6, 20)
            row_axes[0].set_yscale("log")
            row_axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


def compare(args: argparse.Namespace) -> None:
    """Per seed and grid: output change of two variants, their ratio, and each grid's over the first.

    The acceptance figures of issue 14: ``A / B`` (the SAE-FNO against the pointwise SAE, target at most
    0.8) and ``grid / training grid`` per variant (target at most 1.1).
    """
    rows = [json.loads(line) for f in args.rows for line in Path(f).read_text().splitlines() if line.strip()]
    by = {(r["variant"], r["seed"]): r for r in rows if r["c"] == args.c}
    a, b = args.variants
    seeds = sorted({s for v, s in by if v == a} & {s for v, s in by if v == b})
    if not seeds:
        raise SystemExit(f"no seed has rows of both {a} and {b} at c={args.c}")
    grids = [k for k in by[(a, seeds[0])] if isinstance(by[(a, seeds[0])][k], dict) and k[0].isdigit()]
    first = grids[0]
    lines = [
        f"| grid | {a} | {b} | {a} / {b} (per seed) | {a}: grid / {first} | {b}: grid / {first} |",
        "|---|---|---|---|---|---|",
    ]
    for g in grids:
        oa = [by[(a, s)][g]["output_change"] for s in seeds]
        ob = [by[(b, s)][g]["output_change"] for s in seeds]
        ra = [by[(a, s)][g]["output_change"] / by[(a, s)][first]["output_change"] for s in seeds]
        rb = [by[(b, s)][g]["output_change"] / by[(b, s)][first]["output_change"] for s in seeds]
        ratio = [x / y for x, y in zip(oa, ob)]

        def cell(v: list[float], d: int = 4) -> str:
            m, h = _mean_ci(v)
            return f"{m:.{d}f} ± {h:.{d}f}"

        per_seed = ", ".join(f"{x:.2f}" for x in ratio)
        lines.append(
            f"| {g} | {cell(oa)} | {cell(ob)} | {np.mean(oa) / np.mean(ob):.2f} ({per_seed}) | "
            f"{np.mean(oa) / np.mean([by[(a, s)][first]['output_change'] for s in seeds]):.2f} "
            f"({', '.join(f'{x:.2f}' for x in ra)}) | "
            f"{np.mean(ob) / np.mean([by[(b, s)][first]['output_change'] for s in seeds]):.2f} "
            f"({', '.join(f'{x:.2f}' for x in rb)}) |"
        )
    print(f"seeds {seeds}, c = {args.c}\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--out", required=True)
    c.add_argument("--zoo", default="darcy-fno")
    c.add_argument("--hook", default=HOOK)
    c.add_argument("--n-train", type=int, default=400)
    c.add_argument("--n-test", type=int, default=100)
    r = sub.add_parser("run")
    r.add_argument("--stores", required=True)
    r.add_argument("--zoo", default="darcy-fno")
    r.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16])
    r.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--concepts", type=int, default=64)
    r.add_argument("--hook", default=HOOK)
    r.add_argument("--modes", type=int, default=None, help="SAE modes (default: the FNO's)")
    r.add_argument("--steps-fno", type=int, default=500)
    r.add_argument("--steps-sae", type=int, default=600)
    r.add_argument("--batch-fno", type=int, default=16)
    r.add_argument("--batch-sae", type=int, default=4096, help="rows (fields of as many points)")
    r.add_argument("--out", required=True)
    r.add_argument("--dicts", default=None)
    r.add_argument("--fno-kw", default=None, help="JSON dict of extra SAEFNO arguments")
    r.add_argument("--sparsity-kw", default=None, help="JSON dict of extra SAE-FNO TopK options")
    r.add_argument("--train-kw", default=None, help="JSON dict of extra train_sae options (every variant)")
    r.add_argument("--sae-bias-modes", type=int, default=None, help="bias-field modes of sae-bias")
    r.add_argument("--tag", default=None, help="suffix of the variant name in the rows")
    r.add_argument("--no-other", action="store_true", help="skip the evaluation at twice the grid")
    r.add_argument(
        "--both-grids",
        action="store_true",
        help="train every variant on train_RES and train_2RES (saeno.train.MultiGrid), same steps",
    )
    r.add_argument(
        "--grid-batches",
        default="points",
        choices=["points", "fields"],
        help="with --both-grids: equal points per batch (default) or equal fields",
    )
    r.add_argument(
        "--unseen",
        type=int,
        nargs="*",
        default=[],
        metavar="R",
        help="also evaluate on test_R.zarr (grids no model trained on)",
    )
    s = sub.add_parser("report")
    s.add_argument("--rows", required=True, nargs="+")
    s.add_argument("--dicts", default=None)
    s.add_argument("--md", default=None)
    s.add_argument("--plot", default=None)
    m = sub.add_parser("compare", help="output-change ratios of two variants, per grid and seed")
    m.add_argument("--rows", required=True, nargs="+")
    m.add_argument("--variants", required=True, nargs=2, metavar=("A", "B"))
    m.add_argument("--c", type=int, default=4)
    args = p.parse_args()
    if args.cmd == "capture":
        capture(args.out, args.zoo, args.n_train, args.n_test, args.hook)
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "compare":
        compare(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
