"""``saeno eval``: reconstruction, sparsity and operator loss recovered of a trained SAE."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``eval`` verb."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate an SAE on a store (and on stores at other resolutions)",
        description="Explained variance (against the channel mean and against the mean field), "
        "relative L2, L0 (concepts, per point), domain fraction, never-firing and rare concepts (from "
        "densities over the evaluated samples, the window column) and, with --model, the splice's "
        "output change ||f(a_hat) - f(a)|| / ||f(a)|| (out_chg, the headline), operator loss "
        "recovered and the error added by splicing (absolute and relative).",
    )
    p.add_argument("--sae", required=True, help="SAE folder written by `saeno train`")
    p.add_argument("--store", required=True, help="store at the training resolution")
    p.add_argument(
        "--other-store",
        action="append",
        default=[],
        metavar="STORE",
        help="a store of the same FNO at another resolution (repeatable)",
    )
    p.add_argument("--hook", default=None, help="hook name (default: the one the SAE was trained on)")
    p.add_argument(
        "--model", default=None, help="the FNO (zoo name or path) to splice into for operator loss recovered"
    )
    p.add_argument(
        "--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint you trust"
    )
    from saeno.cli.common import add_device_option, add_progress_option, add_rows_option

    add_rows_option(p, "evaluate the first N rows only", old=("--n",))
    p.add_argument("--batch-size", type=int, default=16)
    add_device_option(p, default="cpu")
    add_progress_option(p)
    p.add_argument("--json", default=None, metavar="FILE", help="also write the full report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a table."""

    from saeno.cli.common import load_any_model, write_json
    from saeno.evaluation import evaluate, format_table, summary_rows
    from saeno.hooking import HookedOperator
    from saeno.store import ActivationStore
    from saeno.train.checkpoint import load_sae

    sae = load_sae(args.sae).to(args.device)
    store = ActivationStore.open(args.store)
    hooked = None
    if args.model:
        hooked = HookedOperator(load_any_model(args.model, trust=args.trust)).to(args.device).eval()
    report = evaluate(
        sae,
        store,
        args.hook,
        hooked=hooked,
        other_stores=args.other_store,
        n_rows=args.max_samples,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
    )
    print(format_table(summary_rows(report)))
    if args.json:
        print(f"report: {write_json(args.json, report)}")
    return 0
