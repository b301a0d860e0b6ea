"""``saeno demo``: the whole pipeline on generated Darcy flow, end to end."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` verb."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on generated Darcy flow and write an audit report",
        description="Generate Darcy data, train or load the zoo FNO, capture two hooks at two "
        "resolutions, train an SAE-FNO and a pointwise SAE, evaluate both (also at the other "
        "resolution), export the concept report and print a summary table.",
    )
    p.add_argument("--out", default="saeno-demo", help="output folder (default: saeno-demo)")
    p.add_argument("--fast", action="store_true", help="tiny sizes and the fast zoo FNO (smoke test)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from saeno.demo import run_demo

    run_demo(args.out, fast=args.fast, device=args.device, progress=not args.no_progress)
    return 0
