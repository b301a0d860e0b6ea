"""``saeno explain``: explain every concept of an SAE by a probe field, scored on held-out samples."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``explain`` verb."""
    p = subparsers.add_parser(
        "explain",
        help="explain concepts by physical probe fields, with held-out scores and null controls",
        description=(
            "Compare each concept's code map with probe fields of the problem (input, solution, "
            "gradients, phases, shocks, vorticity, ...): the probe, its sign and quantile are chosen "
            "on one half of the samples and scored on the other (Spearman over points, AUROC of "
            "'concept active'), against a shuffled-sample null and random-init SAEs of the same "
            "shape. Writes explanations.json to --out."
        ),
    )
    p.add_argument("--sae", required=True, metavar="DIR", help="SAE folder written by `saeno train`")
    p.add_argument("--store", required=True, metavar="STORE", help="activation store (path or URL)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for explanations.json")
    p.add_argument(
        "--probes",
        nargs="+",
        default=None,
        metavar="NAME",
        help="probe names (default: every probe for the store's dataset; --list-probes)",
    )
    p.add_argument(
        "--list-probes", action="store_true", help="print the probes for the store's dataset and exit"
    )
    p.add_argument("--hook", default=None, help="hook the SAE was trained on (default: the SAE's)")
    from saeno.cli.common import add_device_option, add_progress_option, add_rows_option

    add_rows_option(p, "score the first N rows of the store (default 100)", default=100, old=("--n-rows",))
    p.add_argument("--seed", type=int, default=0, help="seed of the halves and the nulls")
    p.add_argument(
        "--floor",
        type=float,
        default=0.5,
        help="absolute floor on the held-out Spearman for 'explained' (default 0.5)",
    )
    p.add_argument(
        "--null-seeds",
        type=int,
        default=3,
        metavar="N",
        help="random-init SAEs pooled in the random-init null (default 3)",
    )
    p.add_argument(
        "--no-random-null", action="store_true", help="only the shuffled-sample null (faster, less strict)"
    )
    p.add_argument("--no-conjunctions", action="store_true", help="single probes only")
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help="the FNO the store was captured from: measures each concept's ablation effect "
        "and lists the concepts that matter but no probe explains",
    )
    p.add_argument("--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint")
    add_device_option(p, help="torch device (default: the SAE's)")
    add_progress_option(p, old=("--quiet",))
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Explain, print a summary, write explanations.json."""
    from saeno.explain import available_probes, explain_concepts
    from saeno.explain.core import store_card
    from saeno.explain.probes import ExplainError, dataset_key
    from saeno.store import ActivationStore

    store = ActivationStore.open(args.store)
    if args.list_probes:
        from saeno.explain import registry

        dataset = dataset_key(store_card(store))
        reg = registry()
        for name in available_probes(dataset):
            print(f"{name:22s} {reg[name].description}")
        return 0
    if args.max_samples < 2:
        raise ExplainError(f"--max-samples must be at least 2, got {args.max_samples}")
    if not 0 <= args.floor < 1:
        raise ExplainError(f"--floor must be in [0, 1), got {args.floor}")
    model = None
    if args.model:
        from saeno.cli.common import load_any_model

        model = load_any_model(args.model, trust=args.trust)
    ex = explain_concepts(
        args.sae,
        store,
        hook=args.hook,
        probes=args.probes,
        n_rows=args.max_samples,
        seed=args.seed,
        floor=args.floor,
        random_null=not args.no_random_null,
        null_seeds=args.null_seeds,
        conjunctions=not args.no_conjunctions,
        model=model,
        trust=args.trust,
        device=args.device,
        progress=not args.no_progress,
    )
    path = ex.save(args.out)
    s = ex.summary
    print(
        f"{s.n_concepts} concepts on {ex.store['hook']}, {s.n_live} live (active on at least "
        f"{ex.protocol['min_samples']} samples of each half), "
        f"{len(ex.protocol['rows_select'])} + {len(ex.protocol['rows_heldout'])} samples"
    )
    share = "n/a" if s.share_explained is None else f"{s.share_explained:.0%}"
    mean = "n/a" if s.mean_score is None else f"{s.mean_score:.2f}"
    print(f"explained: {s.n_explained} of {s.n_live} live concepts ({share}); mean held-out rho {mean}")
    if s.probe_counts:
        print("by probe: " + ", ".join(f"{k} {v}" for k, v in s.probe_counts.items()))
    for name, why in ex.skipped.items():
        print(f"probe {name} skipped: {why}")
    if args.model:
        if ex.protocol.get("effects_note"):
            print(f"ablation effects skipped: {ex.protocol['effects_note']}")
        elif s.unexplained_important:
            print(
                "matter but unexplained (look at these first): "
                + ", ".join(
                    f"{k} (output change {ex.concepts[k].effect:.3f})" for k in s.unexplained_important[:10]
                )
            )
        else:
            print("every concept that matters is explained")
    print(f"took {ex.seconds:.1f} s; explanations: {path}")
    return 0
