"""``saeno export``: write an SAE's concepts (statistics, arrays, figures, report.html) to a folder."""

from __future__ import annotations

import argparse


def _resolution(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"resolution {text!r} must be an int or ints joined by 'x' (e.g. 32 or 32x32)"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"resolution {text!r} must be positive")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``export`` verb."""
    parser = subparsers.add_parser(
        "export",
        help="export concepts: figures, concepts.json, arrays.zarr and an offline report.html",
        description=(
            "Compute per-concept statistics of an SAE on an activation store (density, histogram, "
            "top and quantile examples, correlated concepts, PDE parameters and labels), render "
            "atoms, spectra and code maps, and with --model the effect of ablating each concept on "
            "the FNO's prediction. Writes concepts.json, arrays.zarr, figures/ and report.html."
        ),
    )
    parser.add_argument("--sae", required=True, metavar="DIR", help="SAE folder (saeno.save_sae)")
    parser.add_argument("--store", metavar="STORE", help="activation store path or URL")
    parser.add_argument("--out", metavar="DIR", help="export folder")
    parser.add_argument(
        "--saelens",
        metavar="DIR",
        default=None,
        help="instead of the report, write the (pointwise) SAE in SAELens's format "
        "to DIR, for sae_lens.SAE.load_from_disk (no --store or --out needed)",
    )
    parser.add_argument(
        "--hook",
        default=None,
        help="hook the SAE was trained on (default: from the SAE, or the store's only hook)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help="the FNO the store was captured from (zoo name or model folder); enables the ablation effects",
    )
    parser.add_argument(
        "--trust", action="store_true", help="allow unpickling a neuraloperator checkpoint given as --model"
    )
    parser.add_argument(
        "--n-top", type=int, default=8, metavar="N", help="top-activating samples per concept (default 8)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--max-concepts",
        type=int,
        default=16,
        metavar="N",
        help="figures and pages for the N most active concepts (default 16)",
    )
    group.add_argument("--all", action="store_true", help="figures and pages for every live concept")
    from saeno.cli.common import add_device_option, add_progress_option, add_rows_option

    add_rows_option(parser, "use only the first N rows of the store", old=("--n-rows",))
    parser.add_argument(
        "--resolutions",
        type=_resolution,
        nargs="+",
        default=None,
        metavar="RES",
        help="grids to render atoms on, e.g. 16 32 or 16x16 32x32 (default: the store's grid and twice it)",
    )
    add_device_option(parser, help="torch device (default: the SAE's)")
    parser.add_argument("--dpi", type=int, default=100, help="PNG resolution (default 100)")
    parser.add_argument(
        "--single-file",
        action="store_true",
        help="write report.html as one self-contained file (every concept page a "
        "section, figures inline) that can be mailed or attached on its own",
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="skip the SAE's evaluation (explained variance, loss recovered with "
        "--model, dead share) at the top of the report",
    )
    parser.add_argument(
        "--model-name",
        default=None,
        metavar="NAME",
        help="name of the model in the report (default: its recorded name or the --model given)",
    )
    parser.add_argument(
        "--explanations",
        default=None,
        metavar="FILE",
        help="explanations.json written by `saeno explain` for this SAE: shown on the "
        "concept pages and as index columns",
    )
    add_progress_option(parser, old=("--quiet",))
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``saeno export``; prints a short summary and the report's path."""
    from saeno.errors import SaenoError
    from saeno.export.concepts import export_concepts
    from saeno.export.schema import load_concepts

    if args.saelens:
        from saeno.sae.saelens import export_saelens
        from saeno.train.checkpoint import load_sae

        folder = export_saelens(load_sae(args.sae), args.saelens)
        print(f"SAELens folder: {folder} (load it with sae_lens.SAE.load_from_disk)")
        return 0
    missing = [flag for flag, value in (("--store", args.store), ("--out", args.out)) if not value]
    if missing:
        raise SaenoError(
            f"saeno export needs {' and '.join(missing)} to write a report "
            "(or --saelens DIR to convert the SAE to SAELens's format)"
        )
    report = export_concepts(
        args.sae,
        args.store,
        args.out,
        hook=args.hook,
        model=args.model,
        n_top=args.n_top,
        resolutions=args.resolutions,
        device=args.device,
        progress=not args.no_progress,
        max_concepts=None if args.all else args.max_concepts,
        n_rows=args.max_samples,
        trust=args.trust,
        dpi=args.dpi,
        explanations=args.explanations,
        inline=args.single_file,
        evaluation=False if args.no_eval else None,
        model_name=args.model_name,
    )
    doc = load_concepts(report.parent)
    n = len(doc["concepts"])
    dead = sum(c["stats"]["dead"] for c in doc["concepts"])
    print(
        f"{n} concepts on {doc['store']['hook']} ({dead} never active), "
        f"{len(doc['figures_for'])} with figures"
    )
    if not doc["ablation"]["done"]:
        print(f"ablation effects skipped: {doc['ablation']['reason']}")
    print(f"report: {report}")
    return 0
