"""``saeno audit``: error attribution, off-distribution scores and moving concepts on shifted stores."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``audit`` verb."""
    p = subparsers.add_parser(
        "audit",
        help="audit an FNO through an SAE on shifted stores (audit.json + audit.html)",
        description="Attribute the FNO's error to concepts (bootstrap intervals), score every sample of "
        "the shifted stores for being off-distribution (SAE scores and two baselines: AUROC, Spearman "
        "with the error) and list the concepts each shift moves. Stores without targets get the scores "
        "only.",
    )
    p.add_argument(
        "--model", default=None, help="the FNO (zoo name or path) for the ablation part of the attribution"
    )
    p.add_argument("--sae", required=True, help="SAE folder written by `saeno train`")
    p.add_argument("--train-store", required=True, help="the store the SAE was trained on (reference)")
    p.add_argument(
        "--store",
        action="append",
        required=True,
        metavar="STORE",
        help="a shifted store of the same FNO and hook (repeatable)",
    )
    p.add_argument(
        "--id-store",
        default=None,
        metavar="STORE",
        help="in-distribution comparison store (e.g. the test split; default: a held-out "
        "share of the training store)",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.3,
        help="share of training rows held out without --id-store (default 0.3)",
    )
    p.add_argument("--hook", default=None, help="hook name (default: the SAE's)")
    p.add_argument("--out", required=True, help="output folder (audit.json, audit.html, figures/)")
    from saeno.cli.common import add_device_option, add_progress_option, add_rows_option

    add_rows_option(p, "use the first N rows of each store", old=("--n",))
    p.add_argument("--max-ablate", type=int, default=8, help="concepts ablated per store (default 8)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust"
    )
    p.add_argument("--batch-size", type=int, default=16)
    add_device_option(p, default="cpu")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the audit, write audit.json and the page, print the score table."""
    from saeno.audit import audit
    from saeno.audit.core import AuditError
    from saeno.cli.common import load_any_model
    from saeno.export.audit_page import write_audit_page
    from saeno.train.checkpoint import load_sae

    if not 0.0 < args.holdout < 1.0:
        raise AuditError(f"--holdout must be between 0 and 1, got {args.holdout}")
    sae = load_sae(args.sae)
    model = load_any_model(args.model, trust=args.trust).eval() if args.model else None
    try:
        result = audit(
            sae,
            args.train_store,
            args.store,
            model=model,
            hook=args.hook,
            id_store=args.id_store,
            holdout=args.holdout,
            n_rows=args.max_samples,
            max_ablate=args.max_ablate,
            n_boot=args.n_boot,
            level=args.level,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.no_progress,
        )
    except AuditError as exc:
        msg = str(exc).replace("pass hook=", "pass --hook").replace("holdout must", "--holdout must")
        raise AuditError(msg) from None
    path = result.save(args.out)
    page = write_audit_page(result, args.out)
    print(f"{'shift':24s} {'score':12s} {'AUROC':>6s} {'Spearman':>9s}")
    for row in result.table():
        auroc = "-" if row["auroc"] is None else f"{row['auroc']:.3f}"
        rho = "-" if row["spearman_pooled"] is None else f"{row['spearman_pooled']:+.3f}"
        print(f"{row['shift'][:24]:24s} {row['score']:12s} {auroc:>6s} {rho:>9s}")
    for s in [result.in_distribution, *result.shifts]:
        for note in s.notes:
            print(f"note ({s.name}): {note}")
    print(f"audit: {path}\npage: {page}")
    return 0
