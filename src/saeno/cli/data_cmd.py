"""``saeno data``: generate benchmark datasets, list them, describe a dataset or file."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``saeno data {generate,list,info}``."""
    parser = subparsers.add_parser("data", help="generate, list and inspect datasets")
    sub = parser.add_subparsers(dest="data_verb", metavar="ACTION", required=True)

    gen = sub.add_parser("generate", help="generate a benchmark dataset (cached HDF5)")
    gen.add_argument("name", help="benchmark name (see `saeno data list`)")
    from saeno.cli.common import DeprecatedFlag

    gen.add_argument("--n-train", type=int, default=None, help="training samples (default: the card's)")
    gen.add_argument("--n", dest="n_train", type=int, action=DeprecatedFlag, new="--n-train")
    gen.add_argument("--n-test", type=int, default=None, help="test samples (default: the card's, scaled)")
    gen.add_argument(
        "--resolution",
        type=int,
        action="append",
        default=None,
        help="a resolution to store (repeat for several; default: the card's)",
    )
    gen.add_argument("--seed", type=int, default=None, help="base seed (default: the card's)")
    gen.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help="a shifted variant from the card (see `saeno data list`)",
    )
    gen.add_argument("--force", action="store_true", help="regenerate even if cached")
    gen.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="solver processes (default: 1 for quick jobs, else up to 4; same file)",
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=_generate)

    lst = sub.add_parser("list", help="list the benchmark datasets")
    lst.set_defaults(func=_list)

    info = sub.add_parser("info", help="describe a benchmark or a data file")
    info.add_argument("name_or_path")
    info.add_argument("--split", default=None, help="split of a file that has them (default train)")
    info.add_argument("--resolution", type=int, default=None)
    info.add_argument("--trust", action="store_true", help="allow unpickling a .pt file (trusted files only)")
    from saeno.cli.common import add_data_options

    add_data_options(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)


def _generate(args: argparse.Namespace) -> int:
    from saeno.datasets import generate

    path = generate(
        args.name,
        n=args.n_train,
        resolutions=args.resolution,
        seed=args.seed,
        progress=not args.no_progress,
        n_test=args.n_test,
        force=args.force,
        workers=args.workers,
        variant=args.variant,
    )
    print(path)
    return 0


def _list(args: argparse.Namespace) -> int:
    from saeno.datasets import card, names

    for name in names():
        c = card(name)
        print(
            f"{name:16s} {c['ndim']}D  resolutions {c['resolutions']}  n_train {c['n_train']}  "
            f"n_test {c['n_test']}  {c.get('description', '')[:60]}"
        )
        for variant, spec in (c.get("variants") or {}).items():
            print(f"  --variant {variant:12s} {spec.get('description', '')}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from saeno.cli.common import data_keys
    from saeno.datasets import load, names

    keys = data_keys(args)
    if args.name_or_path in names():
        from saeno.datasets import card

        c = card(args.name_or_path)
        print(json.dumps(c, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in c.items()))
        return 0
    ds = load(args.name_or_path, split=args.split, resolution=args.resolution, rows=args.rows, **keys)
    summary = {
        "name": ds.name,
        "n": len(ds),
        "grid": list(ds.grid),
        "x_channels": ds.in_channels,
        "y_channels": ds.out_channels,
        "x_range": [float(np.min(ds.x)), float(np.max(ds.x))],
        "y_range": [float(np.min(ds.y)), float(np.max(ds.y))],
        "params": sorted(ds.params),
        "labels": sorted(ds.labels),
        "card": ds.card,
    }
    print(json.dumps(summary, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0
