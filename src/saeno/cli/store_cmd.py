"""``saeno store``: inspect an activation store (``info``) or copy it to HDF5 (``export``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``store`` verb with its ``info`` and ``export`` actions."""
    p = subparsers.add_parser(
        "store",
        help="inspect an activation store or export it to HDF5",
        description="Inspect or convert an activation store written by `saeno capture`.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="print hooks, shapes, rows, statistics and metadata")
    info.add_argument("store", metavar="STORE", help="store path or URL (memory://, s3://, ...)")
    info.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    info.set_defaults(func=run_info)
    export = actions.add_parser("export", help="write the committed rows to an HDF5 file")
    export.add_argument("store", metavar="STORE", help="store path or URL")
    export.add_argument("--hdf5", required=True, metavar="FILE", help="HDF5 file to write")
    export.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    export.set_defaults(func=run_export)


def run_info(args: argparse.Namespace) -> int:
    """Print a summary (or the JSON metadata) of ``args.store``."""
    import json

    from saeno.store.activation_store import ActivationStore, format_bytes

    store = ActivationStore.open(args.store)
    if args.json:
        print(json.dumps(store.attrs, indent=2))
        return 0
    print(store.summary())
    print(f"stored     {format_bytes(store.nbytes_stored())} (compressed)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Copy ``args.store`` to ``args.hdf5``."""
    from saeno.store.activation_store import ActivationStore
    from saeno.store.hdf5 import export_hdf5

    store = ActivationStore.open(args.store)
    path = export_hdf5(store, args.hdf5, overwrite=args.overwrite)
    print(f"wrote {store.n_rows} rows of {len(store.array_names())} arrays to {path}")
    return 0
